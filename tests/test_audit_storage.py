"""The audit log on both databases: entries come back newest first, per customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage.audit import AuditEntry, SqlAuditLog
from storage.database import Database

AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def test_entries_are_kept_per_customer_newest_first(db: Database) -> None:
    log = SqlAuditLog(db)
    for minute, (customer, action) in enumerate(
        [(1, "bonus_adjustment"), (2, "gift"), (1, "erasure")]
    ):
        await log.record(
            AuditEntry(
                at=AT + timedelta(minutes=minute),
                actor_id=42,
                action=action,
                customer_id=customer,
                details={"amount": minute, "reason": "тест <b>"},
            )
        )
    first = await log.for_customer(customer_id=1)
    assert [(e.action, e.details["amount"], e.at) for e in first] == [
        ("erasure", 2, AT + timedelta(minutes=2)),
        ("bonus_adjustment", 0, AT),
    ]
    assert first[1].details["reason"] == "тест <b>"
    assert await log.for_customer(customer_id=3) == []
