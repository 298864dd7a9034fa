"""Broadcast rows, their recipients and their messages in the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, distinct, func, select, update

from storage.database import Database
from storage.outbox import QUEUED, OutboxState
from storage.schema import broadcast_recipients, broadcasts, customers, orders, outbox
from storage.sql import epoch_seconds

_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class BroadcastRecord:
    id: int
    created_by: int
    segment: dict[str, Any]
    variants: dict[str, Any]
    state: str
    seed: int
    total: int
    progress_chat_id: int | None
    progress_message_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress_final_at: datetime | None
    reported_at: datetime | None


class SqlBroadcasts:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, *, broadcast_id: int) -> BroadcastRecord | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(broadcasts).where(broadcasts.c.id == broadcast_id))
            ).one_or_none()
        return BroadcastRecord(**row._mapping) if row else None

    async def chats_of(self, *, customer_ids: Sequence[int]) -> dict[int, int]:
        """Telegram chat per customer id."""
        found: dict[int, int] = {}
        async with self._db.read() as conn:
            for start in range(0, len(customer_ids), _CHUNK):
                rows = await conn.execute(
                    select(customers.c.id, customers.c.telegram_id).where(
                        customers.c.id.in_(customer_ids[start : start + _CHUNK])
                    )
                )
                found.update({int(c): int(t) for c, t in rows.all() if t is not None})
        return found

    async def start(
        self,
        *,
        created_by: int,
        segment: dict[str, Any],
        variants: dict[str, dict[str, Any]],
        payloads: dict[str, dict[str, Any]],
        seed: int,
        recipients: Sequence[tuple[int, int, str]],
        now: datetime,
    ) -> int:
        """Create a running broadcast and queue one marketing message per recipient.

        ``recipients`` are (customer_id, chat_id, variant). All in one transaction: a
        broadcast is either fully queued or not at all.
        """
        async with self._db.transaction() as conn:
            broadcast_id = (
                await conn.execute(
                    broadcasts.insert()
                    .values(
                        created_by=created_by,
                        segment=segment,
                        variants=variants,
                        state="running",
                        seed=seed,
                        total=len(recipients),
                        created_at=now,
                        started_at=now,
                    )
                    .returning(broadcasts.c.id)
                )
            ).scalar_one()
            for start in range(0, len(recipients), _CHUNK):
                chunk = recipients[start : start + _CHUNK]
                await conn.execute(
                    broadcast_recipients.insert(),
                    [
                        {"broadcast_id": broadcast_id, "customer_id": c, "variant": v}
                        for c, _chat, v in chunk
                    ],
                )
                await conn.execute(
                    outbox.insert(),
                    [
                        {
                            "dedupe_key": f"broadcast:{broadcast_id}:{customer_id}",
                            "chat_id": chat_id,
                            "customer_id": customer_id,
                            "category": "marketing",
                            "kind": "broadcast",
                            "priority": 2,
                            "payload": payloads[variant],
                            "not_before": now,
                            "state": OutboxState.PENDING,
                            "attempts": 0,
                            "created_at": now,
                            "updated_at": now,
                            "broadcast_id": broadcast_id,
                        }
                        for customer_id, chat_id, variant in chunk
                    ],
                )
        return int(broadcast_id)

    async def set_progress_message(
        self, *, broadcast_id: int, chat_id: int, message_id: int
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                update(broadcasts)
                .where(broadcasts.c.id == broadcast_id)
                .values(progress_chat_id=chat_id, progress_message_id=message_id)
            )

    async def change_state(
        self, *, broadcast_id: int, to: str, allowed_from: Sequence[str], now: datetime
    ) -> bool:
        """Pause, resume or cancel; the queued messages follow. False if not allowed now."""
        moves = {
            "paused": ((OutboxState.PENDING, OutboxState.CLAIMED), OutboxState.HELD),
            "running": ((OutboxState.HELD,), OutboxState.PENDING),
            "cancelled": (QUEUED, OutboxState.CANCELLED),
        }
        from_states, outbox_to = moves[to]
        async with self._db.transaction() as conn:
            changed = await conn.execute(
                update(broadcasts)
                .where(broadcasts.c.id == broadcast_id, broadcasts.c.state.in_(allowed_from))
                .values(state=to, finished_at=now if to == "cancelled" else None)
            )
            if not changed.rowcount:
                return False
            # A claimed message changes hands too: the sender's compare-and-set then fails.
            await conn.execute(
                update(outbox)
                .where(outbox.c.broadcast_id == broadcast_id, outbox.c.state.in_(from_states))
                .values(
                    state=outbox_to,
                    claimed_by=None,
                    claimed_until=None,
                    updated_at=now,
                    last_error="cancelled by an admin" if to == "cancelled" else None,
                )
            )
        return True

    async def finish(self, *, broadcast_id: int, now: datetime) -> bool:
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(broadcasts)
                .where(broadcasts.c.id == broadcast_id, broadcasts.c.state == "running")
                .values(state="done", finished_at=now)
            )
        return bool(result.rowcount)

    async def mark_progress_final(self, *, broadcast_id: int, now: datetime) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                update(broadcasts)
                .where(broadcasts.c.id == broadcast_id)
                .values(progress_final_at=now)
            )

    async def recent(self, *, limit: int) -> list[BroadcastRecord]:
        """The latest broadcasts, newest first (for /broadcasts)."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(broadcasts).order_by(broadcasts.c.id.desc()).limit(limit)
            )
            return [BroadcastRecord(**row._mapping) for row in rows]

    async def mark_reported(self, *, broadcast_id: int, now: datetime) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                update(broadcasts).where(broadcasts.c.id == broadcast_id).values(reported_at=now)
            )

    async def unreported(self) -> list[BroadcastRecord]:
        """Broadcasts whose admin still expects progress or the final report (which waits for
        the conversion window to close)."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(broadcasts)
                .where(broadcasts.c.reported_at.is_(None))
                .order_by(broadcasts.c.id)
            )
            return [BroadcastRecord(**row._mapping) for row in rows]

    async def counts(self, *, broadcast_id: int) -> dict[str, int]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(outbox.c.state, func.count())
                .where(outbox.c.broadcast_id == broadcast_id)
                .group_by(outbox.c.state)
            )
            return {state: int(count) for state, count in rows.all()}

    async def results(
        self, *, broadcast_id: int, conversion_days: int
    ) -> list[tuple[str, int, int, int, int]]:
        """Per variant: (variant, recipients, delivered, converted customers, revenue)."""
        window = conversion_days * 86_400.0
        delivered = and_(outbox.c.broadcast_id == broadcast_id, outbox.c.state == "sent")
        joined = broadcast_recipients.outerjoin(
            outbox,
            and_(
                outbox.c.broadcast_id == broadcast_recipients.c.broadcast_id,
                outbox.c.customer_id == broadcast_recipients.c.customer_id,
                delivered,
            ),
        )
        gap = epoch_seconds(orders.c.ordered_at) - epoch_seconds(outbox.c.sent_at)
        converting = joined.outerjoin(
            orders,
            and_(
                orders.c.customer_id == outbox.c.customer_id,
                orders.c.status.not_in(("cancelled", "refunded")),
                gap >= 0,
                gap < window,
            ),
        )
        statement = (
            select(
                broadcast_recipients.c.variant,
                func.count(distinct(broadcast_recipients.c.customer_id)),
                func.count(distinct(outbox.c.customer_id)),
                func.count(distinct(orders.c.customer_id)),
                func.coalesce(func.sum(orders.c.total), 0),
            )
            .select_from(converting)
            .where(broadcast_recipients.c.broadcast_id == broadcast_id)
            .group_by(broadcast_recipients.c.variant)
            .order_by(broadcast_recipients.c.variant)
        )
        async with self._db.read() as conn:
            rows = await conn.execute(statement)
            return [(str(v), int(r), int(d), int(c), int(t)) for v, r, d, c, t in rows.all()]
