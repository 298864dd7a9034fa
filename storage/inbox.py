"""The webhook inbox: verified deliveries from store platforms, taken and finished by a worker."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from sqlalchemy import Boolean, and_, bindparam, case, func, select, tuple_, update

from storage.database import Database
from storage.schema import store_orders, webhook_inbox
from storage.sql import insert
from storage.types import UtcDateTime

MAX_REASON = 2000


class StoreOrderLink(NamedTuple):
    platform: str
    external_id: str
    order_ref: str


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


@dataclass(frozen=True, slots=True)
class Settled:
    """What became of a delivery the worker took (one more try): finished (done, skipped,
    failed), or pending again from ``not_before``."""

    id: int
    state: InboxState
    reason: str | None = None
    not_before: datetime | None = None


_SETTLE = (
    update(webhook_inbox)
    .where(webhook_inbox.c.id == bindparam("settled_id"))
    .values(
        state=bindparam("new_state"),
        reason=bindparam("new_reason"),
        not_before=bindparam("new_not_before", type_=UtcDateTime()),
        attempts=webhook_inbox.c.attempts + 1,
        updated_at=bindparam("now", type_=UtcDateTime()),
        # A finished delivery's body (names, phones, addresses) is of no more use: only the
        # id (for retries), the state and the reason stay.
        body=case((bindparam("finished", type_=Boolean()), ""), else_=webhook_inbox.c.body),
    )
)

FINISHED = frozenset({InboxState.DONE, InboxState.SKIPPED})


class SqlInbox:
    """The inbox table, in ``db``: on SQLite a file of its own (storage/inbox_file.py)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def db(self) -> Database:
        return self._db

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

    async def due(self, *, now: datetime, limit: int) -> list[InboxRow]:
        """The oldest deliveries due now, at most ``limit``. In a transaction of the inbox's
        database they stay locked until it ends (PostgreSQL skips rows other workers hold:
        SKIP LOCKED); on SQLite one worker per process takes them, and a read takes no writer
        from the routes' inserts."""
        async with self._db.transaction("read" if self._db.is_sqlite else "write") as conn:
            rows = await conn.execute(
                select(*_COLUMNS)
                .where(
                    webhook_inbox.c.state == InboxState.PENDING,
                    webhook_inbox.c.not_before <= now,
                )
                .order_by(webhook_inbox.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            return [InboxRow(**row._mapping) for row in rows]

    async def settle(self, settled: Sequence[Settled], *, now: datetime) -> None:
        """Each delivery's new state, in one statement (joins the caller's transaction)."""
        if not settled:
            return
        async with self._db.transaction() as conn:
            await conn.execute(
                _SETTLE,
                [
                    {
                        "settled_id": row.id,
                        "new_state": row.state,
                        "new_reason": row.reason[:MAX_REASON] if row.reason else None,
                        "new_not_before": row.not_before or now,
                        "now": now,
                        "finished": row.state in FINISHED,
                    }
                    for row in settled
                ],
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

    async def erase_naming(
        self, names: Callable[[str], bool], *, reason: str, now: datetime
    ) -> int:
        """Deliveries not yet applied (pending, failed) whose body ``names`` someone who erased
        their data: emptied and skipped with ``reason``; how many."""
        async with self._db.transaction() as conn:
            rows = await conn.execute(
                select(webhook_inbox.c.id, webhook_inbox.c.body).where(
                    webhook_inbox.c.state.in_([InboxState.PENDING, InboxState.FAILED]),
                    webhook_inbox.c.body != "",
                )
            )
            ids = [row.id for row in rows if names(row.body)]
            if ids:
                await conn.execute(
                    update(webhook_inbox)
                    .where(webhook_inbox.c.id.in_(ids))
                    .values(state=InboxState.SKIPPED, reason=reason, body="", updated_at=now)
                )
        # No old copy of their bodies left in SQLite's WAL, nor of those the worker emptied
        # when it finished them.
        self._db.checkpoint_soon()
        return len(ids)

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


class SqlStoreOrderLinks:
    """A platform's order id and the order_ref it is stored under, in the main database
    (written in the same transaction as the order)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def link_orders(self, links: Sequence[StoreOrderLink], *, now: datetime) -> None:
        """Remember these links (one already kept stays as it was)."""
        if not links:
            return
        async with self._db.transaction() as conn:
            await conn.execute(
                insert(conn, store_orders).on_conflict_do_nothing(
                    index_elements=["platform", "external_id"]
                ),
                [link._asdict() | {"created_at": now} for link in links],
            )

    async def link_order(
        self, *, platform: str, external_id: str, order_ref: str, now: datetime
    ) -> None:
        await self.link_orders([StoreOrderLink(platform, external_id, order_ref)], now=now)

    async def order_refs(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The order_ref of each (platform, external id) that is linked already."""
        if not keys:
            return {}
        async with self._db.read() as conn:
            key = tuple_(store_orders.c.platform, store_orders.c.external_id)
            rows = await conn.execute(
                select(
                    store_orders.c.platform, store_orders.c.external_id, store_orders.c.order_ref
                ).where(key.in_(list(keys)))
            )
            return {(row.platform, row.external_id): str(row.order_ref) for row in rows}

    async def order_ref(self, *, platform: str, external_id: str) -> str | None:
        return (await self.order_refs([(platform, external_id)])).get((platform, external_id))
