"""The outbox: proactive messages as rows, claimed by one sender at a time, never sent twice."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, func, or_, select, true, update

from storage.database import Database
from storage.messages import MessageContent
from storage.ratings import UNRESOLVED
from storage.schema import customers, notification_mutes, outbox, rating_alerts
from storage.sql import insert


class OutboxState(StrEnum):
    PENDING = "pending"  # waiting for not_before
    HELD = "held"  # its broadcast is paused
    CLAIMED = "claimed"  # taken by a sender, not yet attempted: safe to hand back after a crash
    SENDING = "sending"  # an attempt started: after a crash we cannot know whether it arrived
    SENT = "sent"
    FAILED = "failed"  # Telegram refused it for good, or retries ran out
    DROPPED = "dropped"  # the recipient blocked the bot or their chat is gone
    SKIPPED = "skipped"  # policy: no consent, switched off, over the weekly cap
    CANCELLED = "cancelled"  # withdrawn by whoever queued it (e.g. an order was cancelled)
    UNKNOWN = "unknown"  # was in flight when a sender died; reported, never resent


# Sent, or possibly sent: what counts toward a customer's caps.
DELIVERED_OR_MAYBE = (OutboxState.SENDING, OutboxState.SENT, OutboxState.UNKNOWN)
QUEUED = (OutboxState.PENDING, OutboxState.HELD, OutboxState.CLAIMED)
# What is left of a message's content once its recipient erased their data.
ERASED_PAYLOAD: MessageContent = {"erased": True}


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    dedupe_key: str
    chat_id: int
    customer_id: int | None
    category: str
    kind: str
    priority: int
    payload: MessageContent
    not_before: datetime
    attempts: int


@dataclass(frozen=True, slots=True)
class RecipientRecord:
    """A customer as the sender sees them: reachability, consent, switches, language, zone."""

    customer_id: int
    blocked: bool
    marketing_opt_in: bool
    muted_kinds: frozenset[str]
    locale: str | None
    language_code: str | None
    timezone: str | None
    open_complaint: bool = False  # a negative rating not yet resolved by staff


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    chat_id: int
    state: OutboxState
    telegram_message_id: int | None


@dataclass(frozen=True, slots=True)
class Sent:
    id: int
    message_id: int | None


@dataclass(frozen=True, slots=True)
class Rescheduled:
    """Back to the queue: postponed by policy, retried after an error, or waiting out a 429
    (``count_attempt=False``: Telegram did not take it, so the try does not count)."""

    id: int
    not_before: datetime
    reason: str
    count_attempt: bool = True


@dataclass(frozen=True, slots=True)
class Finished:
    """The end without sending: failed, skipped, dropped, cancelled."""

    id: int
    state: OutboxState
    reason: str


Outcome = Sent | Rescheduled | Finished


_ROW_COLUMNS = (
    outbox.c.id,
    outbox.c.dedupe_key,
    outbox.c.chat_id,
    outbox.c.customer_id,
    outbox.c.category,
    outbox.c.kind,
    outbox.c.priority,
    outbox.c.payload,
    outbox.c.not_before,
    outbox.c.attempts,
)


class SqlOutbox:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        *,
        dedupe_key: str,
        chat_id: int,
        customer_id: int | None,
        category: str,
        kind: str,
        priority: int,
        payload: MessageContent,
        not_before: datetime,
        now: datetime,
    ) -> bool:
        """Insert unless the dedupe_key exists (the unique index decides, not an if)."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                insert(conn, outbox)
                .values(
                    dedupe_key=dedupe_key,
                    chat_id=chat_id,
                    customer_id=customer_id,
                    category=category,
                    kind=kind,
                    priority=priority,
                    payload=payload,
                    not_before=not_before,
                    state=OutboxState.PENDING,
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["dedupe_key"])
            )
        return bool(result.rowcount)

    async def claim_due(
        self,
        *,
        now: datetime,
        limit: int,
        worker: str,
        lease_until: datetime,
        most_urgent: int | None = None,
    ) -> list[OutboxRow]:
        """Take up to ``limit`` due messages, most urgent first, for this worker only (only
        those of priority ``most_urgent`` or more urgent, when given).

        PostgreSQL skips rows another process is claiming (SKIP LOCKED); SQLite's write
        transaction (BEGIN IMMEDIATE) already serialises claimers.
        """
        wanted = [outbox.c.state == OutboxState.PENDING, outbox.c.not_before <= now]
        if most_urgent is not None:
            wanted.append(outbox.c.priority <= most_urgent)
        async with self._db.transaction() as conn:
            due = (
                select(*_ROW_COLUMNS)
                .where(*wanted)
                .order_by(outbox.c.priority, outbox.c.not_before, outbox.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            rows = [OutboxRow(**row._mapping) for row in await conn.execute(due)]
            if rows:
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_([row.id for row in rows]))
                    .values(
                        state=OutboxState.CLAIMED,
                        claimed_by=worker,
                        claimed_until=lease_until,
                        updated_at=now,
                    )
                )
        return rows

    async def start_sending(
        self, *, ids: Iterable[int], worker: str, now: datetime, lease_until: datetime
    ) -> set[int]:
        """Record the attempt before it leaves: a crash from here on means "unknown".

        Only rows still claimed by ``worker`` move on (a compare-and-set): if a lease expired
        and another sender took a row meanwhile, this worker must not send it. Returns the ids
        this worker may now send.
        """
        id_list = list(ids)
        if not id_list:
            return set()
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(outbox)
                .where(
                    outbox.c.id.in_(id_list),
                    outbox.c.state == OutboxState.CLAIMED,
                    outbox.c.claimed_by == worker,
                )
                .values(
                    state=OutboxState.SENDING,
                    sent_at=now,
                    attempts=outbox.c.attempts + 1,
                    claimed_until=lease_until,
                    updated_at=now,
                )
                .returning(outbox.c.id)
            )
            return set(result.scalars())

    async def mark_sent(self, *, id: int, message_id: int | None, now: datetime) -> None:
        await self._set([id], {"state": OutboxState.SENT, "telegram_message_id": message_id}, now)

    async def finish(self, *, id: int, state: OutboxState, reason: str, now: datetime) -> None:
        """End a message's life without sending it: failed, skipped, dropped, cancelled."""
        await self._set([id], {"state": state, "last_error": reason[:2000]}, now)

    async def reschedule(
        self,
        *,
        id: int,
        not_before: datetime,
        reason: str,
        now: datetime,
        count_attempt: bool = True,
    ) -> None:
        """Back to the queue for later: postponed by policy, or retried after an error.

        ``count_attempt=False`` takes back the attempt recorded when sending started (a 429
        means Telegram did not take the message; waiting it out is not a failed try).
        """
        values: dict[str, Any] = {
            "state": OutboxState.PENDING,
            "not_before": not_before,
            "last_error": reason[:2000],
            "sent_at": None,
        }
        if not count_attempt:
            values["attempts"] = outbox.c.attempts - 1
        await self._set([id], values, now)

    async def release(self, *, ids: Iterable[int], now: datetime) -> None:
        """Hand claimed, unattempted messages back (a sender stopping cleanly)."""
        await self._set(ids, {"state": OutboxState.PENDING}, now, only=OutboxState.CLAIMED)

    async def give_back(self, *, ids: Iterable[int], worker: str, now: datetime) -> int:
        """Back to the queue: messages this worker claimed, or marked "sending", but did not
        send (a database write failed on the way). A "sending" mark taken back takes its
        attempt back too. Rows another worker holds now are left alone."""
        id_list = list(ids)
        if not id_list:
            return 0
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(outbox)
                .where(
                    outbox.c.id.in_(id_list),
                    outbox.c.claimed_by == worker,
                    outbox.c.state.in_((OutboxState.CLAIMED, OutboxState.SENDING)),
                )
                .values(
                    state=OutboxState.PENDING,
                    attempts=outbox.c.attempts
                    - case((outbox.c.state == OutboxState.SENDING, 1), else_=0),
                    sent_at=None,
                    claimed_by=None,
                    claimed_until=None,
                    updated_at=now,
                )
            )
        return int(result.rowcount)

    async def drop_queued_for_chat(self, *, chat_id: int, reason: str, now: datetime) -> int:
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(outbox)
                .where(outbox.c.chat_id == chat_id, outbox.c.state.in_(QUEUED))
                .values(
                    state=OutboxState.DROPPED,
                    last_error=reason,
                    claimed_by=None,
                    claimed_until=None,
                    updated_at=now,
                )
            )
        return int(result.rowcount)

    async def scrub_finished(
        self,
        *,
        customer_id: int,
        chat_id: int | None,
        dedupe_keys: Sequence[str],
        key_prefixes: Sequence[str],
        now: datetime,
    ) -> int:
        """Erasure: the content of messages done with (sent, dropped, failed...) that were for
        this customer, to their chat, or under one of these keys becomes an empty marker. Rows
        stay (caps, statistics, edits by key read only their ids and states); queued and
        in-flight rows are left to the sender."""
        about = [outbox.c.customer_id == customer_id]
        if chat_id is not None:
            about.append(outbox.c.chat_id == chat_id)
        if dedupe_keys:
            about.append(outbox.c.dedupe_key.in_(list(dedupe_keys)))
        about.extend(
            outbox.c.dedupe_key.startswith(prefix, autoescape=True) for prefix in key_prefixes
        )
        done = outbox.c.state.not_in([*QUEUED, OutboxState.SENDING])
        theirs = [outbox.c.customer_id == customer_id]
        if chat_id is not None:
            theirs.append(outbox.c.chat_id == chat_id)
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(outbox)
                .where(or_(*about), done)
                .values(payload=ERASED_PAYLOAD, updated_at=now)
            )
            # Their own chat's id is their Telegram id: gone too (0 is no chat). The staff
            # chat's rows keep theirs, which edits of those messages need.
            await conn.execute(update(outbox).where(or_(*theirs), done).values(chat_id=0))
        return int(result.rowcount)

    async def cancel(self, *, dedupe_key: str, reason: str, now: datetime) -> bool:
        """Withdraw a message that has not gone out yet; False if it already went (or never was)."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(outbox)
                .where(outbox.c.dedupe_key == dedupe_key, outbox.c.state.in_(QUEUED))
                .values(state=OutboxState.CANCELLED, last_error=reason, updated_at=now)
            )
        return bool(result.rowcount)

    async def keys_with_prefix(self, *, prefix: str) -> list[str]:
        """Keys of the messages under ``prefix`` (an alert's follow-up copies), oldest first."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(outbox.c.dedupe_key)
                .where(outbox.c.dedupe_key.startswith(prefix, autoescape=True))
                .order_by(outbox.c.id)
            )
            return list(rows.scalars())

    async def by_key(self, *, dedupe_key: str) -> QueuedMessage | None:
        """A message's state and, once sent, its Telegram message id (to edit it later)."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(outbox.c.chat_id, outbox.c.state, outbox.c.telegram_message_id).where(
                        outbox.c.dedupe_key == dedupe_key
                    )
                )
            ).one_or_none()
        if row is None:
            return None
        return QueuedMessage(
            chat_id=row.chat_id,
            state=OutboxState(row.state),
            telegram_message_id=row.telegram_message_id,
        )

    async def by_keys(self, *, dedupe_keys: Iterable[str]) -> dict[str, QueuedMessage]:
        """Several messages' states and Telegram ids at once (what edits and replies refer to)."""
        wanted = sorted(set(dedupe_keys))
        if not wanted:
            return {}
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(
                    outbox.c.dedupe_key,
                    outbox.c.chat_id,
                    outbox.c.state,
                    outbox.c.telegram_message_id,
                ).where(outbox.c.dedupe_key.in_(wanted))
            )
            return {
                row.dedupe_key: QueuedMessage(
                    chat_id=row.chat_id,
                    state=OutboxState(row.state),
                    telegram_message_id=row.telegram_message_id,
                )
                for row in rows
            }

    async def supersede(self, *, key_prefix: str, reason: str, now: datetime) -> int:
        """Withdraw the queued messages whose key starts with the prefix (an edit that a newer
        edit of the same message makes pointless)."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(outbox)
                .where(
                    outbox.c.dedupe_key.startswith(key_prefix, autoescape=True),
                    outbox.c.state.in_(QUEUED),
                )
                .values(state=OutboxState.CANCELLED, last_error=reason, updated_at=now)
            )
        return int(result.rowcount)

    async def release_held(
        self, *, customer_id: int, kinds: Iterable[str], hold_reason: str, now: datetime
    ) -> int:
        """Messages the policy held back for a reason (a complaint) are due again at once; the
        policy decides anew when they are claimed (quiet hours, caps)."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(outbox)
                .where(
                    outbox.c.customer_id == customer_id,
                    outbox.c.state == OutboxState.PENDING,
                    outbox.c.kind.in_(sorted(set(kinds))),
                    outbox.c.last_error.startswith(hold_reason, autoescape=True),
                    outbox.c.not_before > now,
                )
                .values(not_before=now, updated_at=now)
            )
        return int(result.rowcount)

    async def replace_waiting_payload(
        self, *, dedupe_key: str, payload: MessageContent, now: datetime
    ) -> bool:
        """New content for a message still waiting in the queue; False once a sender has it."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(outbox)
                .where(
                    outbox.c.dedupe_key == dedupe_key,
                    outbox.c.state.in_((OutboxState.PENDING, OutboxState.HELD)),
                )
                .values(payload=payload, updated_at=now)
            )
        return bool(result.rowcount)

    async def recover(self, *, now: datetime, only_expired: bool = True) -> tuple[int, int]:
        """After a crash: unattempted claims go back to the queue, attempts become "unknown".

        With ``only_expired`` (several processes share the queue) only rows whose lease ran
        out are touched; a single process starting up settles everything its predecessor left.
        Returns (requeued, unknown).
        """
        stale: ColumnElement[bool] = outbox.c.claimed_until < now if only_expired else true()
        async with self._db.transaction() as conn:
            requeued = await conn.execute(
                update(outbox)
                .where(outbox.c.state == OutboxState.CLAIMED, stale)
                .values(
                    state=OutboxState.PENDING, claimed_by=None, claimed_until=None, updated_at=now
                )
            )
            unknown = await conn.execute(
                update(outbox)
                .where(outbox.c.state == OutboxState.SENDING, stale)
                .values(
                    state=OutboxState.UNKNOWN,
                    last_error="in flight when its sender stopped; not resent",
                    claimed_by=None,
                    claimed_until=None,
                    updated_at=now,
                )
            )
        return int(requeued.rowcount), int(unknown.rowcount)

    async def recipients(self, *, customer_ids: Iterable[int]) -> dict[int, RecipientRecord]:
        """The customers a batch is addressed to, in three queries whatever the batch size."""
        wanted = sorted(set(customer_ids))
        if not wanted:
            return {}
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(
                        customers.c.id,
                        customers.c.blocked_at,
                        customers.c.marketing_opt_in,
                        customers.c.locale,
                        customers.c.language_code,
                        customers.c.timezone,
                    ).where(customers.c.id.in_(wanted))
                )
            ).all()
            mutes = (
                await conn.execute(
                    select(notification_mutes.c.customer_id, notification_mutes.c.kind).where(
                        notification_mutes.c.customer_id.in_(wanted)
                    )
                )
            ).all()
            complaining = set(
                (
                    await conn.execute(
                        select(rating_alerts.c.customer_id)
                        .where(
                            rating_alerts.c.customer_id.in_(wanted),
                            rating_alerts.c.state.in_(UNRESOLVED),
                        )
                        .distinct()
                    )
                ).scalars()
            )
        muted: dict[int, set[str]] = {}
        for customer_id, kind in mutes:
            muted.setdefault(customer_id, set()).add(kind)
        return {
            row.id: RecipientRecord(
                customer_id=row.id,
                blocked=row.blocked_at is not None,
                marketing_opt_in=row.marketing_opt_in,
                muted_kinds=frozenset(muted.get(row.id, ())),
                locale=row.locale,
                language_code=row.language_code,
                timezone=row.timezone,
                open_complaint=row.id in complaining,
            )
            for row in rows
        }

    async def recent_sends(
        self, *, customer_ids: Iterable[int], since: datetime
    ) -> dict[int, dict[int, tuple[str, datetime]]]:
        """What went, or may have gone, to each customer since a moment: by outbox row id,
        (category, sent_at)."""
        wanted = sorted(set(customer_ids))
        if not wanted:
            return {}
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(
                    outbox.c.customer_id, outbox.c.id, outbox.c.category, outbox.c.sent_at
                ).where(
                    outbox.c.customer_id.in_(wanted),
                    outbox.c.state.in_(DELIVERED_OR_MAYBE),
                    outbox.c.sent_at >= since,
                )
            )
            history: dict[int, dict[int, tuple[str, datetime]]] = {}
            for customer_id, row_id, category, sent_at in rows:
                history.setdefault(customer_id, {})[row_id] = (category, sent_at)
        return history

    async def record(self, *, outcomes: Iterable[Outcome], worker: str, now: datetime) -> None:
        """Write many outcomes in one transaction (the sender commits them in groups).

        Only rows this worker still holds change: if the recipient's queue was dropped
        meanwhile (they blocked the bot), the drop stands.
        """
        sent: list[dict[str, Any]] = []
        later: list[dict[str, Any]] = []
        ended: list[dict[str, Any]] = []
        for outcome in outcomes:
            if isinstance(outcome, Sent):
                sent.append({"row_id": outcome.id, "message_id": outcome.message_id})
            elif isinstance(outcome, Rescheduled):
                later.append(
                    {
                        "row_id": outcome.id,
                        "due": outcome.not_before,
                        "reason": outcome.reason[:2000],
                        "taken_back": 0 if outcome.count_attempt else 1,
                    }
                )
            else:
                ended.append(
                    {
                        "row_id": outcome.id,
                        "new_state": outcome.state,
                        "reason": outcome.reason[:2000],
                    }
                )
        released = {"claimed_by": None, "claimed_until": None, "updated_at": now}
        row = and_(
            outbox.c.id == bindparam("row_id"),
            outbox.c.claimed_by == worker,
            # Not IN (...): an expanding parameter cannot be used with executemany.
            or_(outbox.c.state == OutboxState.CLAIMED, outbox.c.state == OutboxState.SENDING),
        )
        async with self._db.transaction() as conn:
            if sent:
                await conn.execute(
                    update(outbox)
                    .where(row)
                    .values(
                        state=OutboxState.SENT,
                        telegram_message_id=bindparam("message_id"),
                        **released,
                    ),
                    sent,
                )
            if later:
                await conn.execute(
                    update(outbox)
                    .where(row)
                    .values(
                        state=OutboxState.PENDING,
                        not_before=bindparam("due"),
                        last_error=bindparam("reason"),
                        sent_at=None,
                        attempts=outbox.c.attempts - bindparam("taken_back"),
                        **released,
                    ),
                    later,
                )
            if ended:
                await conn.execute(
                    update(outbox)
                    .where(row)
                    .values(
                        state=bindparam("new_state"), last_error=bindparam("reason"), **released
                    ),
                    ended,
                )

    async def sent_since(self, *, customer_id: int, category: str, since: datetime) -> int:
        """Messages of a category that went (or may have gone) to a customer since a moment."""
        async with self._db.read() as conn:
            count = await conn.execute(
                select(func.count())
                .select_from(outbox)
                .where(
                    outbox.c.customer_id == customer_id,
                    outbox.c.category == category,
                    outbox.c.state.in_(DELIVERED_OR_MAYBE),
                    outbox.c.sent_at >= since,
                )
            )
        return int(count.scalar_one())

    async def counts(self) -> dict[str, int]:
        async with self._db.read() as conn:
            rows = await conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state))
        return {state: int(count) for state, count in rows.all()}

    async def _set(
        self,
        ids: Iterable[int],
        values: dict[str, Any],
        now: datetime,
        *,
        only: OutboxState | None = None,
    ) -> None:
        id_list = list(ids)
        if not id_list:
            return
        condition: ColumnElement[bool] = outbox.c.id.in_(id_list)
        if only is not None:
            condition = and_(condition, outbox.c.state == only)
        final = values.get("state") not in (OutboxState.CLAIMED, OutboxState.SENDING)
        if final:
            values = {**values, "claimed_by": None, "claimed_until": None}
        async with self._db.transaction() as conn:
            await conn.execute(update(outbox).where(condition).values(**values, updated_at=now))
