"""The outbox sender: claims due messages, applies the policy, sends them paced, records outcomes.

Exactly-once is not possible over Telegram's API, so the engine chooses at-most-once for the
moment of a crash: a message is marked ``sending`` (committed) before its request leaves, and
after a crash such messages become ``unknown`` instead of being sent again. At most
``delivery.concurrency`` messages can be in that state at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n

from bot.delivery.limiter import Limits, RateLimiter
from locales.rendering import Renderer
from scenarios.clock import Clock
from scenarios.customers import resolve_locale
from scenarios.delivery import (
    Category,
    Postpone,
    Recipient,
    Skip,
    decide,
    local_day_start,
    week_start,
)
from scenarios.rules import Rules
from storage.customers import SqlCustomers
from storage.database import Database
from storage.outbox import OutboxRow, OutboxState, SqlOutbox

log = logging.getLogger(__name__)

# Bad requests that mean the chat itself is gone, not that this one message was wrong.
_CHAT_GONE = ("chat not found", "user is deactivated", "peer_id_invalid", "bot was kicked")


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
    markup: InlineKeyboardMarkup | None
    photo: str | None
    paid: bool


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
    ) -> None:
        self.outbox = SqlOutbox(db)
        self.customers = SqlCustomers(db)
        self.bot = bot
        self.renderer = renderer
        self.i18n = i18n
        self.rules = rules
        self.delivery = rules.delivery
        self.clock = clock
        self.shop_zone = shop_zone
        self.worker_id = worker_id
        self.limiter = limiter or RateLimiter(limits_from(rules))
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(self.delivery.concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._gone_chats: set[int] = set()

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
        await self.recover()
        log.info(
            "delivery: %.0f msg/s, %d in flight, worker %s",
            self.limiter.limits.rate_per_second,
            self.delivery.concurrency,
            self.worker_id,
        )
        while not self._stopping.is_set():
            try:
                handled = await self.drain_once()
            except Exception:  # a failing round must not end delivery for good
                log.exception("delivery round failed; retrying shortly")
                handled = 0
            if handled == 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.delivery.idle_poll_seconds)
        await self._settle_in_flight()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        """Something was queued: look now instead of at the next idle poll."""
        self._wake.set()

    async def drain_until_empty(self) -> None:
        """For tests and benchmarks: send everything due now, then return."""
        while await self.drain_once():
            pass
        await self._settle_in_flight()

    # -- one round -----------------------------------------------------------------------------

    async def drain_once(self) -> int:
        """Claim one batch of due messages and see each to an outcome (or back to the queue)."""
        now = self.clock.now()
        lease = timedelta(seconds=self.delivery.lease_seconds)
        rows = await self.outbox.claim_due(
            now=now, limit=self.delivery.batch_size, worker=self.worker_id, lease_until=now + lease
        )
        if rows:
            await self._dispatch(rows, deadline=time.monotonic() + self.delivery.lease_seconds / 2)
        return len(rows)

    async def _dispatch(self, rows: list[OutboxRow], *, deadline: float) -> None:
        # Chats found gone in this batch had their queued rows dropped in the database already;
        # rows claimed in later rounds meet the policy (blocked) again instead.
        self._gone_chats.clear()
        # Earliest-ready chat first; within a chat, priority then the order they were claimed in.
        heap = [
            (self.limiter.chat_ready_at(row.chat_id), row.priority, order, row)
            for order, row in enumerate(rows)
        ]
        heapq.heapify(heap)
        while heap:
            if self._stopping.is_set():
                await self.outbox.release(ids=[item[3].id for item in heap], now=self.clock.now())
                return
            ready, priority, order, row = heapq.heappop(heap)
            current = self.limiter.chat_ready_at(row.chat_id)
            if current > ready:  # an earlier message to the same chat moved its slot
                heapq.heappush(heap, (current, priority, order, row))
                continue
            if row.chat_id in self._gone_chats:
                continue  # already dropped in the database together with its chat
            if ready > deadline:
                # This chat cannot take it before our lease ends: give it back for later.
                wait = ready - time.monotonic()
                await self.outbox.reschedule(
                    id=row.id,
                    not_before=self.clock.now() + timedelta(seconds=wait),
                    reason="waiting for the chat's rate limit",
                    now=self.clock.now(),
                )
                continue
            delay = ready - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._launch(row)
        await self._settle_in_flight()

    async def _launch(self, row: OutboxRow) -> None:
        try:
            ready = await self._prepare(row)
        except Exception as error:  # a broken template fails its message, not the queue
            log.exception("outbox message %s cannot be prepared", row.dedupe_key)
            await self._finish(row, OutboxState.FAILED, f"cannot prepare: {error!r}")
            return
        if ready is None:
            return
        await self.limiter.global_slot(paid=ready.paid)
        # Take the in-flight slot before marking "sending": at most ``concurrency`` messages
        # may be in that state, which bounds how many a crash can leave as "unknown".
        await self._slots.acquire()
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.delivery.lease_seconds)
        allowed = await self.outbox.start_sending(
            ids=[row.id], worker=self.worker_id, now=now, lease_until=lease_until
        )
        if row.id not in allowed:
            self._slots.release()
            return  # our claim lapsed and someone else owns the message now
        self.limiter.reserve_chat(row.chat_id)
        task = asyncio.create_task(self._send(row, ready), name=f"send-{row.id}")
        self._in_flight.add(task)
        task.add_done_callback(self._sent_callback)

    def _sent_callback(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slots.release()

    async def _settle_in_flight(self) -> None:
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    # -- preparing -----------------------------------------------------------------------------

    async def _prepare(self, row: OutboxRow) -> _Ready | None:
        """Apply the policy and render; None when the message was skipped or postponed."""
        category = Category(row.category)
        locale = row.payload.get("locale") or self.i18n.default_locale
        recipient: Recipient | None = None
        if row.customer_id is not None:
            record = await self.outbox.recipient(customer_id=row.customer_id)
            if record is not None:
                locale = resolve_locale(
                    chosen=record.locale,
                    language_code=record.language_code,
                    default=self.i18n.default_locale,
                )
                zone = ZoneInfo(record.timezone) if record.timezone else self.shop_zone
                recipient = await self._recipient(record.customer_id, record, zone, category)
        decision = decide(
            category=category,
            kind=row.kind,
            recipient=recipient,
            rules=self.delivery,
            quiet=self.rules.quiet_hours,
            now=self.clock.now(),
        )
        if isinstance(decision, Skip):
            await self._finish(row, OutboxState.SKIPPED, decision.reason)
            return None
        if isinstance(decision, Postpone):
            await self.outbox.reschedule(
                id=row.id, not_before=decision.until, reason=decision.reason, now=self.clock.now()
            )
            return None
        return _Ready(
            text=self._render(row.payload, locale),
            markup=_keyboard(row.payload.get("buttons")),
            photo=row.payload.get("photo"),
            paid=category is Category.MARKETING and self.delivery.allow_paid_broadcast,
        )

    async def _recipient(
        self, customer_id: int, record: Any, zone: ZoneInfo, category: Category
    ) -> Recipient:
        now = self.clock.now()
        day = local_day_start(now, zone)
        counts = {"service": 0, "marketing": 0, "week": 0}
        if category is Category.SERVICE:
            counts["service"] = await self.outbox.sent_since(
                customer_id=customer_id, category=Category.SERVICE, since=day
            )
        elif category is Category.MARKETING:
            counts["marketing"] = await self.outbox.sent_since(
                customer_id=customer_id, category=Category.MARKETING, since=day
            )
            counts["week"] = await self.outbox.sent_since(
                customer_id=customer_id, category=Category.MARKETING, since=week_start(now)
            )
        return Recipient(
            blocked=record.blocked,
            marketing_opt_in=record.marketing_opt_in,
            zone=zone,
            muted_kinds=record.muted_kinds,
            service_today=counts["service"],
            marketing_today=counts["marketing"],
            marketing_this_week=counts["week"],
        )

    def _render(self, payload: dict[str, Any], locale: str) -> str:
        if "template" in payload:
            return self.renderer.render(
                payload["template"], locale=locale, **payload.get("context", {})
            )
        text: str = payload["text"]
        return text

    # -- sending -------------------------------------------------------------------------------

    async def _send(self, row: OutboxRow, ready: _Ready) -> None:
        try:
            sent = await self._call_telegram(row, ready)
        except TelegramRetryAfter as error:
            self.limiter.pause(error.retry_after)
            await self.outbox.reschedule(
                id=row.id,
                not_before=self.clock.now() + timedelta(seconds=error.retry_after),
                reason=f"Telegram asked to wait {error.retry_after} s (429)",
                now=self.clock.now(),
                count_attempt=False,
            )
        except TelegramForbiddenError as error:
            await self._chat_gone(row, error.message)
        except TelegramBadRequest as error:
            if any(sign in error.message.lower() for sign in _CHAT_GONE):
                await self._chat_gone(row, error.message)
            else:
                await self._finish(row, OutboxState.FAILED, f"Telegram refused it: {error.message}")
        except (TelegramNetworkError, TelegramServerError, TimeoutError) as error:
            await self._retry_or_fail(row, f"{type(error).__name__}: {error}")
        except Exception as error:  # never let one message stop the queue
            log.exception("sending outbox message %s failed unexpectedly", row.dedupe_key)
            await self._finish(row, OutboxState.FAILED, f"unexpected error: {error!r}")
        else:
            self.limiter.succeeded()
            await self.outbox.mark_sent(id=row.id, message_id=sent.message_id, now=self.clock.now())

    async def _call_telegram(self, row: OutboxRow, ready: _Ready) -> Message:
        paid = True if ready.paid else None
        if ready.photo:
            return await self.bot.send_photo(
                row.chat_id,
                ready.photo,
                caption=ready.text,
                reply_markup=ready.markup,
                allow_paid_broadcast=paid,
            )
        return await self.bot.send_message(
            row.chat_id, ready.text, reply_markup=ready.markup, allow_paid_broadcast=paid
        )

    async def _retry_or_fail(self, row: OutboxRow, reason: str) -> None:
        attempts = row.attempts + 1
        if attempts >= self.delivery.max_attempts:
            await self._finish(
                row, OutboxState.FAILED, f"gave up after {attempts} attempts: {reason}"
            )
            return
        backoff = self.delivery.backoff_seconds * 2 ** (attempts - 1)
        await self.outbox.reschedule(
            id=row.id,
            not_before=self.clock.now() + timedelta(seconds=backoff),
            reason=reason,
            now=self.clock.now(),
        )

    async def _chat_gone(self, row: OutboxRow, reason: str) -> None:
        """The recipient blocked the bot (or the chat is gone): stop writing until they return."""
        now = self.clock.now()
        self._gone_chats.add(row.chat_id)
        await self._finish(row, OutboxState.DROPPED, reason)
        if row.chat_id > 0:
            await self.customers.mark_blocked(telegram_id=row.chat_id, now=now)
        dropped = await self.outbox.drop_queued_for_chat(
            chat_id=row.chat_id, reason=f"recipient unreachable: {reason}", now=now
        )
        log.info(
            "chat %s unreachable (%s); %d queued message(s) dropped", row.chat_id, reason, dropped
        )

    async def _finish(self, row: OutboxRow, state: OutboxState, reason: str) -> None:
        if state is OutboxState.FAILED:
            log.warning("outbox message %s failed: %s", row.dedupe_key, reason)
        await self.outbox.finish(id=row.id, state=state, reason=reason, now=self.clock.now())


def _keyboard(rows: list[list[dict[str, str]]] | None) -> InlineKeyboardMarkup | None:
    if not rows:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton.model_validate(button) for button in row] for row in rows
        ]
    )
