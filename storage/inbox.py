"""The webhook inbox: verified deliveries from store platforms, taken and finished by a worker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, func, select, update

from storage.database import Database
from storage.schema import store_orders, webhook_inbox
from storage.sql import insert

MAX_REASON = 2000


class InboxState(StrEnum):
    PENDING = "pending"  # waiting for the worker (or for its next try at not_before)
    DONE = "done"
    SKIPPED = "skipped"  # nothing for the bot in it (a pending payment, no phone...), with why
    FAILED = "failed"  # could not be mapped after its tries, with why; an admin may retry it


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    platform: str
    delivery_id: str
    topic: str
    body: str
    state: str
    reason: str | None
    attempts: int
    received_at: datetime


_COLUMNS = (
    webhook_inbox.c.id,
    webhook_inbox.c.platform,
    webhook_inbox.c.delivery_id,
    webhook_inbox.c.topic,
    webhook_inbox.c.body,
    webhook_inbox.c.state,
    webhook_inbox.c.reason,
    webhook_inbox.c.attempts,
    webhook_inbox.c.received_at,
)


class SqlInbox:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, *, platform: str, delivery_id: str, topic: str, body: str, now: datetime
    ) -> bool:
        """Keep a verified delivery; False when this delivery id is already kept (a retry)."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                insert(conn, webhook_inbox)
                .values(
                    platform=platform,
                    delivery_id=delivery_id,
                    topic=topic,
                    body=body,
                    state=InboxState.PENDING,
                    attempts=0,
                    not_before=now,
                    received_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["platform", "delivery_id"])
            )
        return bool(result.rowcount)

    async def next_due(self, *, now: datetime) -> InboxRow | None:
        """The oldest delivery due now, locked until the caller's transaction ends: call it
        inside the transaction that processes it and marks it finished, so a crash rolls both
        back and the delivery stays due (no lease to wait out).

        PostgreSQL skips rows other workers hold (SKIP LOCKED); on SQLite the write
        transaction (BEGIN IMMEDIATE) already serialises workers."""
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(
                    select(*_COLUMNS)
                    .where(
                        webhook_inbox.c.state == InboxState.PENDING,
                        webhook_inbox.c.not_before <= now,
                    )
                    .order_by(webhook_inbox.c.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
            ).one_or_none()
        return InboxRow(**row._mapping) if row else None

    async def finish(
        self,
        *,
        id: int,
        state: InboxState,
        now: datetime,
        reason: str | None = None,
        attempt: bool = True,
    ) -> None:
        """Done, skipped or failed (joins the caller's transaction: a delivery mapped into the
        order desk is marked done in the desk's own transaction, so it happens once)."""
        values: dict[str, Any] = {
            "state": state,
            "reason": reason[:MAX_REASON] if reason else None,
            "updated_at": now,
        }
        if attempt:
            values["attempts"] = webhook_inbox.c.attempts + 1
        async with self._db.transaction() as conn:
            await conn.execute(
                update(webhook_inbox).where(webhook_inbox.c.id == id).values(**values)
            )

    async def later(self, *, id: int, not_before: datetime, reason: str, now: datetime) -> None:
        """Back to pending for another try at ``not_before`` (an order not known yet)."""
        async with self._db.transaction() as conn:
            await conn.execute(
                update(webhook_inbox)
                .where(webhook_inbox.c.id == id)
                .values(
                    state=InboxState.PENDING,
                    reason=reason[:MAX_REASON],
                    not_before=not_before,
                    attempts=webhook_inbox.c.attempts + 1,
                    updated_at=now,
                )
            )

    async def retry_failed(self, *, now: datetime, ids: Sequence[int] = ()) -> int:
        """Failed deliveries (these ids, or all) back to pending with fresh tries."""
        condition = webhook_inbox.c.state == InboxState.FAILED
        if ids:
            condition = and_(condition, webhook_inbox.c.id.in_(list(ids)))
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(webhook_inbox)
                .where(condition)
                .values(state=InboxState.PENDING, attempts=0, not_before=now, updated_at=now)
            )
        return int(result.rowcount)

    async def listed(self, *, state: InboxState, limit: int = 100) -> list[InboxRow]:
        """Deliveries in this state, oldest first."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(*_COLUMNS)
                .where(webhook_inbox.c.state == state)
                .order_by(webhook_inbox.c.id)
                .limit(limit)
            )
            return [InboxRow(**row._mapping) for row in rows]

    async def counts(self) -> dict[str, int]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(webhook_inbox.c.state, func.count()).group_by(webhook_inbox.c.state)
            )
        return {state: int(count) for state, count in rows.all()}

    # ---- a platform's order id and the order_ref it is stored under ------------------------

    async def link_order(
        self, *, platform: str, external_id: str, order_ref: str, now: datetime
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                insert(conn, store_orders)
                .values(
                    platform=platform, external_id=external_id, order_ref=order_ref, created_at=now
                )
                .on_conflict_do_nothing(index_elements=["platform", "external_id"])
            )

    async def order_ref(self, *, platform: str, external_id: str) -> str | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(store_orders.c.order_ref).where(
                        store_orders.c.platform == platform,
                        store_orders.c.external_id == external_id,
                    )
                )
            ).one_or_none()
        return str(row.order_ref) if row else None
