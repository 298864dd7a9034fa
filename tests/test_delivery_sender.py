"""The outbox sender against a recording Bot session: outcomes, faults, policy, crash recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import SendMessage
from sqlalchemy import select

from bot.delivery.sender import OutboxSender
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.delivery import Category, Outgoing, enqueue
from scenarios.rules import Delivery, Rules
from storage.customers import CustomerRecord, SqlCustomers
from storage.database import Database
from storage.messages import MessageContent
from storage.outbox import SqlOutbox
from storage.schema import outbox
from tests.support.flow import BOT_TOKEN
from tests.support.recording_session import RecordingSession

NOON_KYIV = datetime(2026, 11, 10, 10, 0, tzinfo=UTC)  # 12:00 in Kyiv: no quiet hours
FAST = Delivery(private_interval_seconds=0.0, rate_per_second=1000.0, backoff_seconds=10.0)
SEND = SendMessage(chat_id=1, text="x")


@dataclass
class Rig:
    db: Database
    clock: FixedClock
    session: RecordingSession
    sender: OutboxSender
    outbox: SqlOutbox
    customers: SqlCustomers

    async def customer(
        self, telegram_id: int, *, language_code: str = "ru", marketing: bool = False
    ) -> CustomerRecord:
        record = await self.customers.seen(
            telegram_id=telegram_id,
            first_name="C",
            username=None,
            language_code=language_code,
            now=self.clock.now(),
            refresh_after=timedelta(minutes=10),
        )
        if marketing:
            await self.customers.set_marketing_opt_in(
                customer_id=record.id, opt_in=True, now=self.clock.now()
            )
        return record

    async def queue(
        self,
        key: str,
        chat_id: int,
        *,
        category: Category = Category.TRANSACTIONAL,
        customer_id: int | None = None,
        text: str | None = None,
        template: str | None = None,
        context: dict[str, object] | None = None,
    ) -> bool:
        content: MessageContent = (
            {"template": template, "context": context or {}} if template else {"text": text or key}
        )
        return await enqueue(
            self.outbox,
            Outgoing(
                dedupe_key=key,
                chat_id=chat_id,
                category=category,
                kind="test",
                content=content,
                customer_id=customer_id,
            ),
            clock=self.clock,
        )

    async def states(self) -> dict[str, tuple[str, str | None]]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(outbox.c.dedupe_key, outbox.c.state, outbox.c.last_error)
            )
        return {key: (state, error) for key, state, error in rows.all()}

    def sent_texts(self) -> list[tuple[int, str]]:
        return [(m.chat_id, m.text) for m in self.session.calls("SendMessage")]  # type: ignore[attr-defined]


def make_rig(
    db: Database,
    renderer: Renderer,
    i18n: CatalogI18n,
    delivery: Delivery = FAST,
    worker_id: str = "test-worker",
    session: RecordingSession | None = None,
) -> Rig:
    clock = FixedClock(NOON_KYIV)
    session = session or RecordingSession()
    sender = OutboxSender(
        db=db,
        bot=Bot(BOT_TOKEN, session=session),
        renderer=renderer,
        i18n=i18n,
        rules=Rules(delivery=delivery),
        clock=clock,
        shop_zone=ZoneInfo("Europe/Kyiv"),
        worker_id=worker_id,
    )
    return Rig(db, clock, session, sender, SqlOutbox(db), SqlCustomers(db))


@pytest.fixture
def rig(db: Database, renderer: Renderer, i18n: CatalogI18n) -> Rig:
    return make_rig(db, renderer, i18n)


async def test_queued_messages_are_sent_once_and_recorded(rig: Rig) -> None:
    assert await rig.queue("a", 101, text="first") is True
    assert await rig.queue("a", 101, text="again") is False  # same dedupe_key: a no-op
    await rig.queue("b", 102, text="second")
    await rig.sender.drain_until_empty()
    await rig.sender.drain_until_empty()
    assert sorted(rig.sent_texts()) == [(101, "first"), (102, "second")]
    assert await rig.states() == {"a": ("sent", None), "b": ("sent", None)}


async def test_staff_alerts_and_answers_go_before_reminders_before_broadcasts(rig: Rig) -> None:
    anna = await rig.customer(201, marketing=True)
    await rig.queue("promo", 201, category=Category.MARKETING, customer_id=anna.id)
    await rig.queue("reminder", 202, category=Category.SERVICE)
    await rig.queue("alert", -100, category=Category.TRANSACTIONAL)
    await rig.sender.drain_until_empty()
    assert [text for _, text in rig.sent_texts()] == ["alert", "reminder", "promo"]


async def test_429_waits_and_retries_the_same_message_without_counting_a_failure(
    rig: Rig,
) -> None:
    rig.session.prepare(TelegramRetryAfter(SEND, "Too Many Requests", retry_after=1))
    await rig.queue("a", 101)
    await rig.sender.drain_until_empty()
    assert await rig.states() == {"a": ("pending", "Telegram asked to wait 1 s (429)")}
    async with rig.db.read() as conn:
        attempts = (await conn.execute(select(outbox.c.attempts))).scalar_one()
    assert attempts == 0
    rig.clock.advance(timedelta(seconds=1))
    await rig.sender.drain_until_empty()
    assert (await rig.states())["a"][0] == "sent"
    assert rig.sent_texts().count((101, "a")) == 2  # the refused try and the delivered one


async def test_403_marks_the_customer_unreachable_and_drops_their_queue(rig: Rig) -> None:
    anna = await rig.customer(301, marketing=True)
    rig.session.prepare(TelegramForbiddenError(SEND, "Forbidden: bot was blocked by the user"))
    await rig.queue("first", 301, category=Category.SERVICE, customer_id=anna.id)
    await rig.queue("second", 301, category=Category.TRANSACTIONAL, customer_id=anna.id)
    await rig.queue("other", 302)
    rig.clock.advance(timedelta(seconds=1))
    await rig.sender.drain_until_empty()
    states = await rig.states()
    # The transactional one goes first, meets the block; the rest of her queue is dropped.
    assert states["second"] == ("dropped", "Forbidden: bot was blocked by the user")
    assert states["first"] == (
        "dropped",
        "recipient unreachable: Forbidden: bot was blocked by the user",
    )
    assert states["other"] == ("sent", None)
    record = await rig.customers.by_telegram_id(telegram_id=301)
    assert record is not None
    assert record.blocked_at == rig.clock.now()

    # Nothing but transactional messages are even tried while they are away.
    await rig.queue("later", 301, category=Category.SERVICE, customer_id=anna.id)
    await rig.sender.drain_until_empty()
    assert (await rig.states())["later"] == ("skipped", "customer blocked the bot")
    assert await rig.customers.mark_reachable(telegram_id=301) is True
    await rig.queue("welcome-back", 301, category=Category.SERVICE, customer_id=anna.id)
    await rig.sender.drain_until_empty()
    assert (await rig.states())["welcome-back"][0] == "sent"


async def test_a_400_fails_that_message_only(rig: Rig) -> None:
    rig.session.prepare(TelegramBadRequest(SEND, "Bad Request: can't parse entities"))
    await rig.queue("broken", 101)
    await rig.queue("fine", 102)
    await rig.sender.drain_until_empty()
    states = await rig.states()
    assert states["broken"] == ("failed", "Telegram refused it: Bad Request: can't parse entities")
    assert states["fine"] == ("sent", None)


async def test_5xx_is_retried_with_backoff_then_failed(
    db: Database, renderer: Renderer, i18n: CatalogI18n
) -> None:
    rig = make_rig(db, renderer, i18n, FAST.model_copy(update={"max_attempts": 3}))
    for _ in range(3):
        rig.session.prepare(TelegramServerError(SEND, "Internal Server Error"))
    await rig.queue("a", 101)
    waits = []
    for _ in range(3):
        await rig.sender.drain_until_empty()
        async with rig.db.read() as conn:
            not_before = (await conn.execute(select(outbox.c.not_before))).scalar_one()
        waits.append((not_before - rig.clock.now()).total_seconds())
        rig.clock.advance(timedelta(seconds=60))
    assert waits[:2] == [10.0, 20.0]
    state, error = (await rig.states())["a"]
    assert state == "failed"
    assert error is not None
    assert error.startswith("gave up after 3 attempts: TelegramServerError")


async def test_policy_skips_and_postpones_at_send_time(rig: Rig) -> None:
    silent = await rig.customer(401, marketing=False)
    keen = await rig.customer(402, marketing=True)
    await rig.queue("promo-silent", 401, category=Category.MARKETING, customer_id=silent.id)
    await rig.queue("promo-keen", 402, category=Category.MARKETING, customer_id=keen.id)
    await rig.queue("promo-keen-2", 402, category=Category.MARKETING, customer_id=keen.id)
    await rig.sender.drain_until_empty()
    states = await rig.states()
    assert states["promo-silent"] == ("skipped", "no consent to marketing")
    assert states["promo-keen"] == ("sent", None)
    assert states["promo-keen-2"] == ("pending", "daily marketing cap reached")

    rig.clock.set(datetime(2026, 11, 10, 20, 0, tzinfo=UTC))  # 22:00 in Kyiv
    await rig.queue("reminder", 402, category=Category.SERVICE, customer_id=keen.id)
    await rig.sender.drain_until_empty()
    assert (await rig.states())["reminder"] == ("pending", "quiet hours")


async def test_templates_are_rendered_in_the_recipients_language(rig: Rig) -> None:
    taras = await rig.customer(501, language_code="uk")
    await rig.queue(
        "hello",
        501,
        customer_id=taras.id,
        template="welcome.html",
        context={"name": "Тарас", "shop": "Lapki"},
    )
    await rig.sender.drain_until_empty()
    [(_, text)] = rig.sent_texts()
    assert text.startswith("Вітаємо, Тарас!")


async def test_after_a_crash_in_flight_messages_are_unknown_and_never_resent(
    rig: Rig, renderer: Renderer, i18n: CatalogI18n
) -> None:
    for n in range(4):
        await rig.queue(f"m{n}", 600 + n)
    now = rig.clock.now()
    claimed = await rig.outbox.claim_due(
        now=now, limit=10, worker="dead-worker", lease_until=now + timedelta(minutes=2)
    )
    assert len(claimed) == 4
    # The dead process had started sending two of them when it was killed.
    await rig.outbox.start_sending(
        ids=[claimed[0].id, claimed[1].id],
        worker="dead-worker",
        now=now,
        lease_until=now + timedelta(minutes=2),
    )
    restarted = make_rig(rig.db, renderer, i18n)
    await restarted.sender.recover()
    await restarted.sender.drain_until_empty()
    states = await restarted.states()
    assert states["m0"][0] == states["m1"][0] == "unknown"
    assert states["m2"][0] == states["m3"][0] == "sent"
    assert sorted(restarted.sent_texts()) == [(602, "m2"), (603, "m3")]


async def test_a_lapsed_claim_is_not_sent_by_its_old_owner(rig: Rig) -> None:
    await rig.queue("contested", 700)
    now = rig.clock.now()
    await rig.outbox.claim_due(now=now, limit=1, worker="slow", lease_until=now)
    await rig.outbox.recover(now=now + timedelta(seconds=1))  # someone else: lease expired
    await rig.outbox.claim_due(now=now, limit=1, worker="fast", lease_until=now + timedelta(1))
    allowed = await rig.outbox.start_sending(
        ids=[1], worker="slow", now=now, lease_until=now + timedelta(minutes=1)
    )
    assert allowed == set()


async def test_two_senders_on_one_database_never_send_a_message_twice(
    db: Database, renderer: Renderer, i18n: CatalogI18n
) -> None:
    """Two bot processes share the queue: rows are claimed (SKIP LOCKED), not just read."""
    first = make_rig(db, renderer, i18n)
    second = make_rig(db, renderer, i18n, worker_id="second-worker")
    for n in range(300):
        await first.queue(f"m{n}", 10_000 + n)
    await asyncio.gather(first.sender.drain_until_empty(), second.sender.drain_until_empty())
    texts = first.sent_texts() + second.sent_texts()
    assert len(texts) == 300
    assert len(set(texts)) == 300
    assert first.sent_texts() and second.sent_texts(), "both took a share of the work"
    assert await first.outbox.counts() == {"sent": 300}


class StopOnFirstSend(RecordingSession):
    """Telegram answers the first message, and the bot is told to stop at that moment."""

    sender: OutboxSender

    async def make_request(self, bot: Bot, method: Any, timeout: int | None = None) -> Any:
        if not self.requests:
            self.sender.stop()
        return await super().make_request(bot, method, timeout)


async def test_a_stop_gives_back_the_batch_claimed_ahead_and_nothing_goes_twice(
    db: Database, renderer: Renderer, i18n: CatalogI18n
) -> None:
    # Small batches at 100/s: the next batch is always claimed while the current one goes.
    paced = Delivery(private_interval_seconds=0.0, rate_per_second=100.0, batch_size=4)
    session = StopOnFirstSend()
    rig = make_rig(db, renderer, i18n, delivery=paced, session=session)
    session.sender = rig.sender
    for n in range(40):
        await rig.queue(f"m{n}", 800 + n)
    await rig.sender.run()
    counts = await rig.outbox.counts()
    assert set(counts) == {"sent", "pending"}, "nothing left claimed or in flight"
    assert 0 < counts["sent"] < 40
    first_texts = [text for _, text in rig.sent_texts()]
    assert len(first_texts) == counts["sent"]

    restarted = make_rig(db, renderer, i18n, delivery=paced)
    await restarted.sender.drain_until_empty()
    texts = first_texts + [text for _, text in restarted.sent_texts()]
    assert sorted(texts) == sorted(f"m{n}" for n in range(40)), "each exactly once"


class WhileSending(RecordingSession):
    """Runs ``meanwhile`` as the third message goes out (something happens mid-batch)."""

    meanwhile: Callable[[], Awaitable[object]]

    async def make_request(self, bot: Bot, method: Any, timeout: int | None = None) -> Any:
        if len(self.requests) == 2:
            await self.meanwhile()
        return await super().make_request(bot, method, timeout)


async def test_a_staff_alert_does_not_wait_for_the_batch_of_reminders_going_out(
    db: Database, renderer: Renderer, i18n: CatalogI18n
) -> None:
    # 40 service messages at 20/s: two seconds of sending in one batch.
    slow = Delivery(private_interval_seconds=0.0, rate_per_second=20.0, batch_size=40)
    session = WhileSending()
    rig = make_rig(db, renderer, i18n, delivery=slow, session=session)
    for n in range(40):
        await rig.queue(f"reminder{n}", 900 + n, category=Category.SERVICE)
    session.meanwhile = lambda: rig.queue("alert", -1001, category=Category.TRANSACTIONAL)
    await rig.sender.drain_until_empty()
    texts = [text for _, text in rig.sent_texts()]
    assert len(texts) == 41
    assert texts.index("alert") < 30, "claimed into the running batch, not after it"
