"""The outbox sender: claims due messages, applies the policy, sends them paced, records outcomes.

Exactly-once is not possible over Telegram's API, so the engine chooses at-most-once for the
moment of a crash: a message is marked ``sending`` (committed) before its request leaves, and
after a crash such messages become ``unknown`` instead of being sent again. At most
``delivery.concurrency`` messages can be in that state at once. A request that may have reached
Telegram without an answer (a timeout, a connection lost after sending) is treated the same way.

When the database refuses a write (restarted, connections killed, locked), the round in hand is
given up: its in-flight slots and chats are freed at once, the rows it held go back to the
queue as soon as the database answers again, and delivery resumes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from zoneinfo import ZoneInfo

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.utils.i18n import I18n

from bot.delivery.batch import SendBatch
from bot.delivery.limiter import Limits, RateLimiter
from bot.delivery.recorder import OutcomeRecorder
from bot.delivery.transport import TelegramRequest, Transport, may_have_arrived
from locales.rendering import Renderer
from scenarios.clock import Clock
from scenarios.customers import resolve_locale
from scenarios.delivery import (
    PRIORITY,
    Category,
    Postpone,
    Recipient,
    Skip,
    decide,
    week_start,
)
from scenarios.rules import Rules
from storage.availability import Backoff, is_database_error
from storage.customers import SqlCustomers
from storage.database import Database
from storage.messages import ButtonRows, MessageContent
from storage.outbox import (
    QUEUED,
    Finished,
    OutboxRow,
    OutboxState,
    Outcome,
    Rescheduled,
    Sent,
    SqlOutbox,
)

log = logging.getLogger(__name__)

# Messages are planned (marked "sending" in groups of up to _START_GROUP, one transaction
# each) up to _LOOKAHEAD seconds before their global slot; each request then waits for its own
# slot. Marking thus overlaps the sending of the group before, instead of holding up the pace.
_LOOKAHEAD = 0.05
_START_GROUP = 32
_CLAIM_CHUNK = 200
# While a batch of less urgent messages goes out, transactional ones queued meanwhile (staff
# alerts, answers) are claimed into it this often instead of waiting for the batch to end.
_EXPRESS_EVERY = 1.0
# Bad requests that mean the chat itself is gone, not that this one message was wrong.
_CHAT_GONE = ("chat not found", "user is deactivated", "peer_id_invalid", "bot was kicked")
_WHO = "outbox sender"
# Stopping while the database is away: outcomes still unwritten wait this long, then their
# messages stay "sending" and are reported unknown at the next start.
_GIVE_UP_ON_STOP = 10.0


def limits_from(rules: Rules) -> Limits:
    delivery = rules.delivery
    share = 1.0 / delivery.processes
    return Limits(
        rate_per_second=delivery.rate_per_second * share,
        paid_rate_per_second=delivery.paid_rate_per_second * share,
        private_interval=delivery.private_interval_seconds,
        group_per_minute=delivery.group_per_minute,
    )


@dataclass(frozen=True, slots=True)
class _Ready:
    text: str
    buttons: ButtonRows | None
    photo: str | None
    paid: bool
    edit_message_id: int | None = None  # set: edit this message of ours instead of sending
    reply_to_message_id: int | None = None


# A row's edit or reply target that is still on its way: the row waits for it, looking again
# this often (seconds; the target is usually a message a moment ahead of it in the queue).
_NOT_YET = object()
_TARGET_WAIT = 1.0


@dataclass(frozen=True, slots=True)
class _Planned:
    """A message given its global slot (a ``time.monotonic`` moment) and about to be marked."""

    row: OutboxRow
    ready: _Ready
    leaving_at: float
    batch: SendBatch


class OutboxSender:
    def __init__(
        self,
        *,
        db: Database,
        bot: Bot,
        renderer: Renderer,
        i18n: I18n,
        rules: Rules,
        clock: Clock,
        shop_zone: ZoneInfo,
        worker_id: str,
        limiter: RateLimiter | None = None,
        outbox: SqlOutbox | None = None,
        customers: SqlCustomers | None = None,
    ) -> None:
        """``limiter``, ``outbox``, ``customers``: the composition root's (bot/services.py), so
        that edits made in answer to a press share the limits; tests may leave them out."""
        self.outbox = outbox or SqlOutbox(db)
        self.customers = customers or SqlCustomers(db)
        self.bot = bot
        self.renderer = renderer
        self.i18n = i18n
        self.rules = rules
        self.delivery = delivery = rules.delivery
        self.clock = clock
        self.shop_zone = shop_zone
        self.worker_id = worker_id
        self.limiter = limiter or RateLimiter(limits_from(rules))
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(self.delivery.concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._departure_gate = {False: asyncio.Lock(), True: asyncio.Lock()}
        self._claimed_ahead: asyncio.Task[SendBatch | None] | None = None
        self._previous: SendBatch | None = None
        fastest = delivery.paid_rate_per_second if delivery.allow_paid_broadcast else 0.0
        self._fastest_rate = max(delivery.rate_per_second, fastest)
        self._claim_seconds_per_row = 0.0  # what the last batch took to claim and read
        # Planned messages hold in-flight slots while they wait: at most half of them, so
        # the other half is there for requests in flight and outcomes being written.
        self._lookahead = min(_LOOKAHEAD, delivery.concurrency / 2 / self._fastest_rate)
        self.health = db.availability
        self._backoff = Backoff()
        # Rows of ours that were claimed (or marked "sending" but never sent) when a database
        # write failed: back to the queue as soon as the database answers.
        self._give_back: set[int] = set()
        self.recorder = OutcomeRecorder(self.outbox, clock, worker_id, availability=db.availability)
        self.transport = Transport(bot, timeout=delivery.request_timeout_seconds)

    # -- running -------------------------------------------------------------------------------

    async def recover(self) -> None:
        """Settle what a previous run left: requeue unattempted claims, report in-flight ones."""
        requeued, unknown = await self.outbox.recover(
            now=self.clock.now(), only_expired=self.delivery.processes > 1
        )
        if requeued or unknown:
            log.warning(
                "outbox recovery: %d claimed message(s) back in the queue, %d in flight when "
                "the previous sender stopped marked unknown (not resent)",
                requeued,
                unknown,
            )

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.recover()
            except Exception as error:
                await self._after_failure(error)
                continue
            self.health.ok(_WHO)
            break
        log.info(
            "delivery: %.0f msg/s, %d in flight, worker %s",
            self.limiter.limits.rate_per_second,
            self.delivery.concurrency,
            self.worker_id,
        )
        while not self._stopping.is_set():
            try:
                handled = await self.drain_once()
            except Exception as error:  # a failing round must not end delivery for good
                await self._after_failure(error)
                continue
            # A round that succeeded with nothing to send is also the database answering.
            self.health.ok(_WHO)
            if handled == 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.delivery.idle_poll_seconds)
        self.recorder.give_up_after(_GIVE_UP_ON_STOP)
        try:
            await self._give_back_claimed_ahead()
            await self._settle()
            await self._return_given_back()
        except Exception as error:  # stopping while the database is away: leases settle it
            log.warning("delivery stopped with the database away: %s", error)

    async def _after_failure(self, error: Exception) -> None:
        """A round failed: free what it held, wait a little, hand its rows back, go on."""
        if is_database_error(error):
            self.health.failed(_WHO, error)
        else:
            log.exception("delivery round failed; retrying shortly", exc_info=error)
        task, self._claimed_ahead = self._claimed_ahead, None
        if task is not None:
            try:
                batch = await task
            except Exception:  # its rows are in _give_back already
                batch = None
            if batch is not None:
                self._give_back.update(row.id for row in batch.rows)
        self._previous = None
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._backoff.step())
            try:
                await self._return_given_back()
            except Exception as again:
                self.health.failed(_WHO, again)
                continue
            return

    async def _return_given_back(self) -> None:
        if self._give_back:
            ids = sorted(self._give_back)
            await self.outbox.give_back(ids=ids, worker=self.worker_id, now=self.clock.now())
            self._give_back.difference_update(ids)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        """Something was queued: look now instead of at the next idle poll."""
        self._wake.set()

    async def drain_until_empty(self) -> None:
        """For tests and benchmarks: send everything due now, see it to its outcome, return."""
        while True:
            while await self.drain_once():
                pass
            await self._settle()
            # Outcomes written just now may have put something back in the queue, due at once.
            if not await self.drain_once():
                return

    # -- one round -----------------------------------------------------------------------------

    async def drain_once(self) -> int:
        """Plan and start one batch of due messages (claimed now, or ahead during the last one).

        Returns when the last of them has left or been given back; their requests may still be
        in flight, and their outcomes are written as they come back.
        """
        task, self._claimed_ahead = self._claimed_ahead, None
        # From cold, a first chunk only: sending starts sooner, the rest is claimed meanwhile.
        batch = await task if task is not None else await self._claim_batch(_CLAIM_CHUNK)
        if batch is None:
            return 0
        if self._previous is not None:
            batch.carry_over(self._previous)
        self._previous = batch
        await self._dispatch(batch)
        return len(batch.rows)

    async def _claim_batch(self, size: int) -> SendBatch | None:
        claimed_at = time.monotonic()
        deadline = claimed_at + self.delivery.lease_seconds / 2
        batch = SendBatch(rows=[], deadline=deadline, recipients={}, history={})
        size = min(size, self.delivery.batch_size)
        try:
            while len(batch.rows) < size:
                # A chunk at a time, in short transactions: on SQLite a claim holds the one
                # write lock, and the "sending" marks of the batch still going out must wait
                # neither long behind it nor behind an event loop busy reading a thousand rows.
                wanted = min(_CLAIM_CHUNK, size - len(batch.rows))
                if len(await self._claim_into(batch, wanted)) < wanted:
                    break
            batch.full = len(batch.rows) >= size
        except Exception:
            # No write now (the database is probably away): the rows go back once it answers.
            self._give_back.update(row.id for row in batch.rows)
            raise
        if batch.rows:
            elapsed = time.monotonic() - claimed_at
            self._claim_seconds_per_row = elapsed / len(batch.rows)
        return batch if batch.rows else None

    async def _claim_into(
        self, batch: SendBatch, limit: int, *, most_urgent: int | None = None
    ) -> list[OutboxRow]:
        """Claim up to ``limit`` due rows into the batch, with what the policy needs about
        their recipients; returns the rows claimed."""
        now = self.clock.now()
        rows = await self.outbox.claim_due(
            now=now,
            limit=limit,
            worker=self.worker_id,
            lease_until=now + timedelta(seconds=self.delivery.lease_seconds),
            most_urgent=most_urgent,
        )
        batch.rows += rows
        try:
            await self._read_recipients(batch, rows)
            await self._read_targets(batch, rows)
        except Exception:
            self._give_back.update(row.id for row in rows)
            raise
        return rows

    def _claim_ahead_at(self, size: int) -> int:
        """Claim the next ``size`` rows while this many messages of the current batch are
        left: twice what the claim should take (at least a quarter of a second's worth)."""
        expected = self._claim_seconds_per_row * size
        return max(1, int(self._fastest_rate * max(0.25, 2 * expected)))

    async def _give_back_claimed_ahead(self) -> None:
        task, self._claimed_ahead = self._claimed_ahead, None
        batch = await task if task is not None else None
        if batch is not None:
            self._give_back.update(row.id for row in batch.rows)
            await self._return_given_back()

    async def _dispatch(self, batch: SendBatch) -> None:
        rows, deadline = batch.rows, batch.deadline
        # Earliest-ready chat first; within a chat, priority then the order they were claimed in.
        heap = [
            (self.limiter.chat_ready_at(row.chat_id), row.priority, order, row)
            for order, row in enumerate(rows)
        ]
        heapq.heapify(heap)
        starting: list[_Planned] = []
        credits = 0  # in-flight slots taken ahead for the next messages
        # Up to twice this batch: from a cold start the batches grow while the next one is
        # claimed in the time this one takes to send.
        next_size = min(2 * len(rows), self.delivery.batch_size)
        claim_ahead_at = self._claim_ahead_at(next_size)
        urgent = PRIORITY[Category.TRANSACTIONAL]
        less_urgent_inside = any(row.priority > urgent for row in rows)
        express_at = time.monotonic() + _EXPRESS_EVERY
        arrival = itertools.count(len(rows))
        try:
            while heap:
                if less_urgent_inside and time.monotonic() >= express_at:
                    express_at = time.monotonic() + _EXPRESS_EVERY
                    express = await self._claim_into(batch, _CLAIM_CHUNK, most_urgent=urgent)
                    for row in express:
                        ready_at = self.limiter.chat_ready_at(row.chat_id)
                        heapq.heappush(heap, (ready_at, row.priority, next(arrival), row))
                if batch.full and self._claimed_ahead is None and len(heap) <= claim_ahead_at:
                    # More is probably waiting: claim it now so there is no gap after this batch.
                    self._claimed_ahead = asyncio.create_task(
                        self._claim_batch(next_size), name="outbox-claim-ahead"
                    )
                if self._stopping.is_set():
                    await self._start(starting)
                    waiting = [item[3].id for item in heap]
                    await self.outbox.release(ids=waiting, now=self.clock.now())
                    break
                ready, priority, order, row = heapq.heappop(heap)
                current = self.limiter.chat_ready_at(row.chat_id)
                if current > ready:  # an earlier message to the same chat moved its slot
                    heapq.heappush(heap, (current, priority, order, row))
                    continue
                if ready > deadline:
                    # This chat cannot take it before our lease ends: give it back for later.
                    wait = timedelta(seconds=ready - time.monotonic())
                    self.recorder.add(
                        Rescheduled(row.id, self.clock.now() + wait, "waiting for the chat's limit")
                    )
                    continue
                if ready > time.monotonic():
                    await self._start(starting)  # nothing may wait in "starting" while we sleep
                    await asyncio.sleep(ready - time.monotonic())
                    # While we slept the chat's previous message may have come back and filled a
                    # group's window: look again before sending.
                    heapq.heappush(
                        heap, (self.limiter.chat_ready_at(row.chat_id), priority, order, row)
                    )
                    continue
                prepared = self._prepare(row, batch)
                if prepared is None:
                    continue
                if credits == 0:
                    # In-flight slots are taken before marking "sending": at most ``concurrency``
                    # messages are ever in that state, which bounds what a crash leaves "unknown".
                    # They are taken a few at a time so that "sending" marks go out in groups.
                    await self._start(starting)  # the slots we wait for may be held by "starting"
                    credits = await self._take_slots()
                delay = self.limiter.global_delay(paid=prepared.paid)
                if delay > self._lookahead:
                    await self._start(starting)
                    await asyncio.sleep(delay - self._lookahead)
                leaving_at = self.limiter.take_global(paid=prepared.paid)
                credits -= 1
                self.limiter.reserve_chat(row.chat_id, leaving_at=leaving_at)
                batch.note_sent(row, self.clock.now())
                starting.append(_Planned(row, prepared, leaving_at, batch))
                if len(starting) >= _START_GROUP:
                    await self._start(starting)
            await self._start(starting)
        except Exception:
            # A database write failed: whatever of the batch did not start goes back (rows
            # whose outcome the recorder still holds too: its write then finds them not ours).
            self._abandon(starting)
            self._give_back.update(row.id for row in batch.rows if row.id not in batch.started)
            raise
        finally:
            for _ in range(credits):
                self._slots.release()

    async def _take_slots(self) -> int:
        """Wait for a quarter of the in-flight slots (at least one) and take them."""
        wanted = max(1, self.delivery.concurrency // 4)
        for _ in range(wanted):
            await self._slots.acquire()
        return wanted

    async def _start(self, starting: list[_Planned]) -> None:
        """Mark a group "sending" in one transaction, then let each request go at its slot."""
        if not starting:
            return
        group = list(starting)
        starting.clear()
        now = self.clock.now()
        try:
            allowed = await self.outbox.start_sending(
                ids=[planned.row.id for planned in group],
                worker=self.worker_id,
                now=now,
                lease_until=now + timedelta(seconds=self.delivery.lease_seconds),
            )
        except Exception:
            # Nothing of the group left: free its slots and chats now, or each failure would
            # leak them until nothing at all could be sent. Whether or not the mark committed,
            # these rows were never sent, so they can go back to the queue.
            self._abandon(group)
            raise
        self.health.ok(_WHO)
        self._backoff.reset()
        for planned in group:
            row = planned.row
            if row.id not in allowed:
                # Our claim lapsed (another sender owns the message now), or the recipient's
                # queue was dropped when they turned out to have blocked the bot.
                self._slots.release()
                self.limiter.chat_done(row.chat_id, sent=False)
                planned.batch.forget(row)
                continue
            planned.batch.started.add(row.id)
            task = asyncio.create_task(self._send(planned), name=f"send-{row.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    def _abandon(self, planned: list[_Planned]) -> None:
        """Planned messages that will not go now: slots and chats freed, rows to give back."""
        for item in planned:
            self._slots.release()
            self.limiter.chat_done(item.row.chat_id, sent=False)
            item.batch.forget(item.row)
            self._give_back.add(item.row.id)
        planned.clear()

    async def _settle(self) -> None:
        """Wait for the requests in flight to come back and every outcome to be written."""
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self.recorder.drain()

    # -- preparing -----------------------------------------------------------------------------

    async def _read_recipients(self, batch: SendBatch, rows: list[OutboxRow]) -> None:
        """Recipients and their recent sends for many rows: two queries, not two per row."""
        customer_ids = [row.customer_id for row in rows if row.customer_id is not None]
        if not customer_ids:
            return
        now = self.clock.now()
        # The widest window any cap looks at: the rolling week, or a local day starting earlier.
        since = min(week_start(now), now - timedelta(days=2))
        batch.recipients.update(await self.outbox.recipients(customer_ids=customer_ids))
        history = await self.outbox.recent_sends(customer_ids=customer_ids, since=since)
        for customer_id, sends in history.items():
            batch.history.setdefault(customer_id, {}).update(sends)

    async def _read_targets(self, batch: SendBatch, rows: list[OutboxRow]) -> None:
        """Where the messages that rows edit or reply to are now: one query per claim."""
        keys = {
            str(row.payload[reference])
            for row in rows
            for reference in ("edit_of", "reply_to")
            if row.payload.get(reference)
        }
        if keys:
            batch.targets.update(await self.outbox.by_keys(dedupe_keys=keys))

    def _prepare(self, row: OutboxRow, batch: SendBatch) -> _Ready | None:
        """Apply the policy and render; None when the message was skipped or postponed."""
        try:
            return self._decide_and_render(row, batch)
        except Exception as error:  # a broken template fails its message, not the queue
            log.exception("outbox message %s cannot be prepared", row.dedupe_key)
            self.recorder.add(Finished(row.id, OutboxState.FAILED, f"cannot prepare: {error!r}"))
            return None

    def _decide_and_render(self, row: OutboxRow, batch: SendBatch) -> _Ready | None:
        category = Category(row.category)
        now = self.clock.now()
        locale = row.payload.get("locale") or self.i18n.default_locale
        recipient: Recipient | None = None
        record = batch.recipients.get(row.customer_id) if row.customer_id is not None else None
        if record is not None:
            locale = resolve_locale(
                chosen=record.locale,
                language_code=record.language_code,
                default=self.i18n.default_locale,
            )
            zone = ZoneInfo(record.timezone) if record.timezone else self.shop_zone
            recipient = batch.recipient(record, zone, now)
        decision = decide(
            category=category,
            kind=row.kind,
            recipient=recipient,
            rules=self.delivery,
            quiet=self.rules.quiet_hours,
            now=now,
        )
        if isinstance(decision, Skip):
            self.recorder.add(Finished(row.id, OutboxState.SKIPPED, decision.reason))
            return None
        if isinstance(decision, Postpone):
            self.recorder.add(Rescheduled(row.id, decision.until, decision.reason))
            return None
        edit_of = self._target(row, batch, "edit_of")
        reply_to = self._target(row, batch, "reply_to")
        if edit_of is _NOT_YET or reply_to is _NOT_YET:
            # The message it refers to has not gone yet: an edit sent now would be a copy.
            wait = timedelta(seconds=_TARGET_WAIT)
            self.recorder.add(
                Rescheduled(row.id, now + wait, "waiting for the message it refers to")
            )
            return None
        return _Ready(
            text=self._render(row.payload, locale),
            buttons=row.payload.get("buttons"),
            photo=row.payload.get("photo"),
            paid=category is Category.MARKETING and self.delivery.allow_paid_broadcast,
            # An edit names its target by dedupe key (edit_of) or, for a message sent long ago
            # (an erasure's redaction), by its Telegram id (edit_message_id).
            edit_message_id=edit_of
            if isinstance(edit_of, int)
            else _message_id(row.payload.get("edit_message_id")),
            reply_to_message_id=reply_to if isinstance(reply_to, int) else None,
        )

    @staticmethod
    def _target(row: OutboxRow, batch: SendBatch, reference: str) -> int | object | None:
        """The Telegram id of the message a row edits or replies to; ``_NOT_YET`` while that
        one is still queued or in flight; None when there is none (never sent, failed...)."""
        key = row.payload.get(reference)
        if not key:
            return None
        target = batch.targets.get(str(key))
        if target is None:
            return None
        if target.state in (*QUEUED, OutboxState.SENDING):
            return _NOT_YET
        if target.state is OutboxState.SENT and target.telegram_message_id is not None:
            return target.telegram_message_id
        return None

    def _render(self, payload: MessageContent, locale: str) -> str:
        if "texts" in payload:
            texts: dict[str, str] = payload["texts"]
            return texts.get(locale) or texts["default"]
        if "template" in payload:
            return self.renderer.render(
                payload["template"], locale=locale, **payload.get("context", {})
            )
        text: str = payload["text"]
        return text

    # -- sending -------------------------------------------------------------------------------

    async def _send(self, planned: _Planned) -> None:
        row, ready = planned.row, planned.ready
        try:
            try:
                await self._wait_for_slot(planned.leaving_at, paid=ready.paid)
                outcome = await self._attempt(row, ready)
            finally:
                self.limiter.chat_done(row.chat_id)
            await self.recorder.record(outcome)
        except Exception:  # recording failed: the row stays "sending" and ends up "unknown"
            log.exception("recording the outcome of outbox message %s failed", row.dedupe_key)
        finally:
            # Freed only once the outcome is written: in flight + unrecorded <= concurrency.
            self._slots.release()

    async def _wait_for_slot(self, leaving_at: float, *, paid: bool) -> None:
        # A 429 that came while this message waited holds it back too.
        wait = max(leaving_at, self.limiter.paused_until) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        # One at a time through the departure window, in the order they got here.
        async with self._departure_gate[paid]:
            delay = self.limiter.departure_delay(paid=paid)
            if delay > 0:
                # By then the oldest departure has left the window (the margin covers a timer
                # that fires a little early); nobody else departs while we hold the gate.
                await asyncio.sleep(delay + 0.0005)
            self.limiter.depart(paid=paid)

    async def _attempt(self, row: OutboxRow, ready: _Ready) -> Outcome:
        now = self.clock.now()
        try:
            sent = await self._call_telegram(row, ready)
        except TelegramRetryAfter as error:
            self.limiter.pause(error.retry_after)
            return Rescheduled(
                row.id,
                now + timedelta(seconds=error.retry_after),
                f"Telegram asked to wait {error.retry_after} s (429)",
                count_attempt=False,
            )
        except TelegramForbiddenError as error:
            return await self._chat_gone(row, error.message)
        except TelegramBadRequest as error:
            if ready.edit_message_id is not None and "not modified" in error.message.lower():
                return Sent(row.id, ready.edit_message_id)  # it already says this
            if any(sign in error.message.lower() for sign in _CHAT_GONE):
                return await self._chat_gone(row, error.message)
            return self._failed(row, f"Telegram refused it: {error.message}")
        except TelegramNetworkError as error:
            if may_have_arrived(error):
                return self._maybe_arrived(row, f"{type(error).__name__}: {error}")
            return self._retry_or_fail(row, f"{type(error).__name__}: {error}")
        except TimeoutError as error:
            return self._maybe_arrived(row, f"{type(error).__name__}: {error}")
        except TelegramServerError as error:  # Telegram answered: it did not take the message
            return self._retry_or_fail(row, f"{type(error).__name__}: {error}")
        except Exception as error:  # never let one message stop the queue
            log.exception("sending outbox message %s failed unexpectedly", row.dedupe_key)
            return self._failed(row, f"unexpected error: {error!r}")
        self.limiter.succeeded()
        return Sent(row.id, sent)

    async def _call_telegram(self, row: OutboxRow, ready: _Ready) -> int:
        message = TelegramRequest(
            chat_id=row.chat_id,
            text=ready.text,
            buttons=ready.buttons,
            photo=ready.photo,
            paid=ready.paid,
            edit_message_id=ready.edit_message_id,
            reply_to_message_id=ready.reply_to_message_id,
        )
        if ready.edit_message_id is None:
            return await self.transport.send(message)
        try:
            return await self.transport.send(message)
        except TelegramBadRequest as error:
            text = error.message.lower()
            if "not modified" in text:
                return ready.edit_message_id
            if any(sign in text for sign in _CHAT_GONE):
                raise
            # Deleted, too old to edit...: the new content goes as a message of its own.
            log.warning("outbox edit %s refused (%s); sending it anew", row.dedupe_key, text)
            return await self.transport.send(replace(message, edit_message_id=None))

    def _retry_or_fail(self, row: OutboxRow, reason: str) -> Outcome:
        attempts = row.attempts + 1
        if attempts >= self.delivery.max_attempts:
            return self._failed(row, f"gave up after {attempts} attempts: {reason}")
        backoff = self.delivery.backoff_seconds * 2 ** (attempts - 1)
        return Rescheduled(row.id, self.clock.now() + timedelta(seconds=backoff), reason)

    def _maybe_arrived(self, row: OutboxRow, reason: str) -> Outcome:
        """No answer, but the request left: at most once means it is not sent again."""
        log.warning(
            "outbox message %s may have reached Telegram without an answer (%s); marked "
            "unknown, not resent",
            row.dedupe_key,
            reason,
        )
        return Finished(row.id, OutboxState.UNKNOWN, f"no answer, may have arrived: {reason}")

    def _failed(self, row: OutboxRow, reason: str) -> Outcome:
        log.warning("outbox message %s failed: %s", row.dedupe_key, reason)
        return Finished(row.id, OutboxState.FAILED, reason)

    async def _chat_gone(self, row: OutboxRow, reason: str) -> Outcome:
        """The recipient blocked the bot (or the chat is gone): stop writing until they return."""
        now = self.clock.now()
        try:
            if row.chat_id > 0:
                await self.customers.mark_blocked(telegram_id=row.chat_id, now=now)
            dropped = await self.outbox.drop_queued_for_chat(
                chat_id=row.chat_id, reason=f"recipient unreachable: {reason}", now=now
            )
        except Exception as error:  # the next message to this chat will find out again
            self.health.failed(_WHO, error)
            return Finished(row.id, OutboxState.DROPPED, reason)
        # A private chat's id is the person's Telegram id: at INFO only the customer id.
        who = f"chat {row.chat_id}" if row.chat_id < 0 else f"customer {row.customer_id}"
        log.info("%s unreachable (%s); %d queued message(s) dropped", who, reason, dropped)
        return Finished(row.id, OutboxState.DROPPED, reason)


def _message_id(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
