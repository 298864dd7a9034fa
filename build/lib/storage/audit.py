"""Audit log rows: appended in the same transaction as the action they describe."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from storage.database import Database
from storage.schema import audit_log


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor_id: int | None  # Telegram id of the admin or staff member; None for the system
    action: str  # "bonus_adjustment", "compensation", "gift", "erasure", ...
    customer_id: int | None
    details: Mapping[str, Any]


class SqlAuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, entry: AuditEntry) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                insert(audit_log).values(
                    at=entry.at,
                    actor_id=entry.actor_id,
                    action=entry.action,
                    customer_id=entry.customer_id,
                    details=dict(entry.details),
                )
            )

    async def for_customer(self, *, customer_id: int, limit: int = 20) -> list[AuditEntry]:
        """The customer's latest entries, newest first."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(audit_log)
                .where(audit_log.c.customer_id == customer_id)
                .order_by(audit_log.c.id.desc())
                .limit(limit)
            )
            return [
                AuditEntry(
                    at=row.at,
                    actor_id=row.actor_id,
                    action=row.action,
                    customer_id=row.customer_id,
                    details=row.details,
                )
                for row in rows.all()
            ]
