"""Ratings end to end: the shop's HTTP API, the real Dispatcher polling the fake Telegram, the
outbox sender under enforced limits, and the staff group."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from sqlalchemy import select

from bot.api import create_api_app, start_api
from bot.delivery.limiter import Limits, RateLimiter
from bot.delivery.sender import OutboxSender
from bot.dispatcher import create_dispatcher
from bot.fsm_storage import DatabaseFsmStorage
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import SystemClock
from scenarios.delivery import Category, Outgoing, enqueue
from scenarios.ledger import balance
from scenarios.rules import Delivery, QuietHours, Ratings, Rules
from storage.database import Database
from storage.fsm import SqlFsmStates
from storage.ledger import SqlLedger
from storage.outbox import SqlOutbox
from storage.ratings import SqlRatings
from storage.schema import outbox
from tests.fake_telegram import FakeGroup, FakeTelegram, FakeUser, RateLimits, SentMessage
from tests.support.seed import member
from tests.support.services import services_for

pytestmark = pytest.mark.e2e

TOKEN = "shop-secret"
STAFF_CHAT = -1001500
ADMIN_ID = 9001
# Telegram's group limit is 20 a minute; the same 20 per 3 seconds, enforced by the fake with
# 429s, lets a burst run in seconds while still having to queue.
GROUP_WINDOW = 3.0
ALWAYS = QuietHours(start=time(9), end=time(9))
RULES = Rules(
    quiet_hours=ALWAYS,
    delivery=Delivery(
        rate_per_second=25, private_interval_seconds=0.0, idle_poll_seconds=0.05, batch_size=50
    ),
    ratings=Ratings(rating_delay_minutes=0),
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Shop:
    tg: FakeTelegram
    db: Database
    http: aiohttp.ClientSession
    base: str
    staff: FakeGroup

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self.http.post(
            f"{self.base}{path}", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as response:
            return response.status, await response.json()

    async def order(self, ref: str, telegram_id: int, status: str = "paid") -> None:
        status_code, _ = await self.post(
            "/api/v1/orders",
            {
                "order_id": ref,
                "customer": {"telegram_id": telegram_id},
                "items": [
                    {"sku": "CAT-2KG", "name": "Cat food 2 kg", "quantity": 2, "price": "1290.00"}
                ],
                "total": "2580.00",
                "currency": "RUB",
                "status": status,
            },
        )
        assert status_code == 201

    async def outbox_rows(self, kind: str) -> list[Any]:
        async with self.db.read() as conn:
            return list(
                await conn.execute(
                    select(outbox.c.dedupe_key, outbox.c.state, outbox.c.last_error)
                    .where(outbox.c.kind == kind)
                    .order_by(outbox.c.id)
                )
            )


async def eventually(check: Callable[[], Any], *, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


@pytest.fixture
async def shop(db: Database, renderer: Renderer, i18n: CatalogI18n) -> AsyncIterator[Shop]:
    tg = FakeTelegram(
        limits=RateLimits(
            global_per_second=200,
            private_min_interval=0.0,
            group_per_minute=20,
            group_window=GROUP_WINDOW,
            mode="reject",
        )
    )
    await tg.start()
    bot: Bot = tg.bot(default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    clock = SystemClock()
    services = services_for(
        db,
        rules=RULES,
        clock=clock,
        i18n=i18n,
        renderer=renderer,
        admin_ids=(ADMIN_ID,),
        staff_chat_id=STAFF_CHAT,
        followers=lambda services: [services.rating_requests],  # the API's only follower
    )
    dispatcher: Dispatcher = create_dispatcher(
        services=services,
        fsm_storage=DatabaseFsmStorage(SqlFsmStates(db), clock),
        version="e2e",
        started_at=clock.now(),
    )
    sender = OutboxSender(
        db=db,
        bot=bot,
        renderer=renderer,
        i18n=i18n,
        rules=RULES,
        clock=clock,
        shop_zone=ZoneInfo("UTC"),
        worker_id="e2e",
        limiter=RateLimiter(
            Limits(
                rate_per_second=25,
                private_interval=0.0,
                group_per_minute=20,
                group_window=GROUP_WINDOW,
            )
        ),
    )
    port = free_port()
    runner = await start_api(
        create_api_app(services, api_token=TOKEN),
        "127.0.0.1",
        port,
    )
    polling = asyncio.create_task(
        dispatcher.start_polling(bot, handle_signals=False, polling_timeout=1)
    )
    delivering = asyncio.create_task(sender.run())
    staff = tg.group(STAFF_CHAT, "Staff")
    try:
        async with aiohttp.ClientSession() as http:
            yield Shop(tg, db, http, f"http://127.0.0.1:{port}", staff)
    finally:
        sender.stop()
        await delivering
        await dispatcher.stop_polling()
        await polling
        await runner.cleanup()
        await tg.close()


def last_text(messages: list[SentMessage]) -> str:
    return messages[-1].text or ""


async def rate(shop: Shop, user: FakeUser, score: int, *, count: int = 1) -> SentMessage:
    """Wait for the rating request, press a star, wait for the answer; the request after."""
    request = (await shop.tg.wait_for(user, count, timeout=10))[count - 1]
    press = await user.press_button(request, text=f"★{score}")
    await shop.tg.wait_callback_answer(press, timeout=10)
    return shop.tg.message(user, request.message_id)


async def test_an_order_in_a_rating_out_and_a_complaint_handled_by_staff(
    shop: Shop, db: Database
) -> None:
    tg = shop.tg
    anna_id = await member(db, 1001)
    anna = tg.user(1001, "Anna", known=True)
    await shop.order("A-1001", anna.id)
    assert tg.sent(anna) == [], "paid is not delivered: no request yet"
    status, body = await shop.post("/api/v1/orders/A-1001/status", {"status": "delivered"})
    assert (status, body["status"], body["previous_status"]) == (200, "delivered", "paid")

    [request] = await tg.wait_for(anna, 1, timeout=10)
    assert request.text == (
        "How was your order A-1001?\n• Cat food 2 kg × 2\n\nTap a star: 1 is bad, 5 is excellent."
    )
    assert [b["text"] for b in request.buttons] == ["★1", "★2", "★3", "★4", "★5"]

    # Someone else's press on Anna's request changes nothing.
    mallory = tg.user(1666, "Mallory", known=True)
    forged = await mallory.press(request, request.buttons[0]["callback_data"], force=True)
    answer = await tg.wait_callback_answer(forged, timeout=10)
    assert answer.text == "This button is not valid for you, so nothing was changed."

    rated = await rate(shop, anna, 2)
    assert "Your rating: ★★☆☆☆" in (rated.text or "")
    ask = (await tg.wait_for(anna, 2, timeout=10))[1]
    assert (ask.text or "").startswith("We are sorry. What went wrong?")

    [alert] = await tg.wait_for(shop.staff, 1, timeout=10)
    assert "Negative rating of order A-1001" in (alert.text or "")
    assert "Score: ★★☆☆☆ (2/5)" in (alert.text or "")
    assert [b["text"] for b in alert.buttons] == ["Take", "Resolved", "Compensate", "Reply"]

    await anna.send("The bag was <torn> & wet")
    thanks = await tg.wait_for(anna, 3, timeout=10)
    assert last_text(thanks) == "Thank you. Our team has your message and will get back to you."

    async def comment_shown() -> bool:
        return any("Comment: The bag was <torn> & wet" in (m.text or "") for m in shop.staff.sent)

    await eventually(comment_shown)

    # A press by someone outside the staff chat: refused, nothing changes.
    eve = tg.user(7002, "Eve")
    take = next(b for b in alert.buttons if b["text"] == "Take")["callback_data"]
    update = shop.staff.callback_update(alert, take, from_user=eve)
    shop.staff.members.discard(eve.id)
    await tg.deliver(update)
    refused = await tg.wait_callback_answer(update, timeout=10)
    assert refused.text == "Sorry, only the shop's staff may do this."
    stored = await SqlRatings(db).alert(alert_id=1)
    assert stored is not None
    assert (stored.state, stored.taken_by) == ("open", None)

    # The customer has an open complaint: no marketing, no reminders; balance news still go.
    clock = SystemClock()
    store = SqlOutbox(db)
    for key, category, kind in (
        ("promo", Category.MARKETING, "broadcast"),
        ("remind", Category.SERVICE, "reminder"),
        ("balance", Category.TRANSACTIONAL, "balance"),
    ):
        await enqueue(
            store,
            Outgoing(
                dedupe_key=key,
                chat_id=anna.id,
                category=category,
                kind=kind,
                content={"text": f"{kind} news"},
                customer_id=anna_id,
            ),
            clock=clock,
        )
    balance_news = await tg.wait_for(anna, 4, timeout=10)
    assert last_text(balance_news) == "balance news"

    async def settled() -> bool:
        promo = await shop.outbox_rows("broadcast")
        remind = await shop.outbox_rows("reminder")
        return bool(promo and promo[0].state == "skipped" and remind[0].last_error)

    await eventually(settled)
    [promo] = await shop.outbox_rows("broadcast")
    assert promo.last_error == "open complaint: no marketing until staff resolve it"
    [remind] = await shop.outbox_rows("reminder")
    assert (remind.state, remind.last_error) == (
        "pending",
        "open complaint: reminder waits until resolved",
    )

    # Staff: take, compensate (once), reply, resolve.
    olga = tg.user(7001, "Olga", username="olga", known=True)
    await shop.staff.press_button(alert, text="Take", from_user=olga)

    async def taken() -> bool:
        return "Taken by Olga (@olga)" in (tg.message(shop.staff, alert.message_id).text or "")

    await eventually(taken)
    press = await shop.staff.press_button(alert, text="Compensate", from_user=olga)
    await tg.wait_callback_answer(press, timeout=10)

    async def presets_shown() -> bool:
        shown = tg.message(shop.staff, alert.message_id).buttons
        return [b["text"] for b in shown] == ["+100", "+300", "+500", "Back"]

    await eventually(presets_shown)
    grant = await shop.staff.press_button(alert, text="+300", from_user=olga)
    granted = await tg.wait_callback_answer(grant, timeout=10)
    assert granted.text == "Granted 300 points; the customer is told."
    told = await tg.wait_for(anna, 5, timeout=10)
    assert last_text(told) == (
        "We are sorry that order A-1001 disappointed you.\n"
        "We have added 300 points to your account as an apology."
    )
    again = await shop.staff.press(alert, "comp:1:500", from_user=olga, force=True)
    repeated = await tg.wait_callback_answer(again, timeout=10)
    assert repeated.text == "Already compensated with 300 points; nothing more was granted."
    view = await balance(SqlLedger(db), customer_id=anna_id, clock=clock)
    assert view.available == 300

    press = await shop.staff.press_button(alert, text="Reply", from_user=olga)
    await tg.wait_callback_answer(press, timeout=10)
    await shop.staff.send("We will bring a new bag today.", from_user=olga)
    relayed = await tg.wait_for(anna, 6, timeout=10)
    assert last_text(relayed) == (
        "Our shop, about your order A-1001:\nWe will bring a new bag today."
    )

    press = await shop.staff.press_button(alert, text="Resolved", from_user=olga)
    await tg.wait_callback_answer(press, timeout=10)

    async def resolved() -> bool:
        return "✅" in (tg.message(shop.staff, alert.message_id).text or "")

    await eventually(resolved)
    final = tg.message(shop.staff, alert.message_id).text or ""
    assert "✅ Resolved by Olga (@olga)" in final
    assert "🎁 Compensated with 300 points by Olga (@olga)" in final
    assert "💬 Olga (@olga) replied to the customer" in final
    assert not [c for c in tg.calls if c.status == 429]


async def test_a_burst_of_50_negative_ratings_reaches_the_staff_chat_without_429_or_loss(
    shop: Shop, db: Database
) -> None:
    tg = shop.tg
    users = [tg.user(20_000 + n, f"Customer {n}", known=True) for n in range(50)]
    for user in users:
        await member(db, user.id)
        await shop.order(f"B-{user.id}", user.id, status="delivered")
    for user in users:
        await tg.wait_for(user, 1, timeout=30)

    presses = [await user.press_button(tg.sent(user)[0], text="★1") for user in users]
    for press in presses:
        await tg.wait_callback_answer(press, timeout=30)

    alerts = await tg.wait_for(shop.staff, 50, timeout=60)

    orders = sorted(
        line.removeprefix("Negative rating of order ")
        for message in alerts
        for line in (message.text or "").splitlines()
        if line.startswith("Negative rating of order ")
    )
    assert orders == sorted(f"B-{user.id}" for user in users)

    async def all_recorded() -> bool:
        rows = await shop.outbox_rows("staff_alert")
        return len(rows) == 50 and {row.state for row in rows} == {"sent"}

    await eventually(all_recorded)
    assert not [call for call in tg.calls if call.status == 429]
    assert tg.violations["group"] == 0
    # 20 per window: the burst had to wait its turn, it was not sent at once.
    first, last = alerts[0].date, alerts[-1].date
    assert last - first >= 2 * GROUP_WINDOW - 1


async def test_i16_4_a_raised_score_closes_the_alert_in_the_staff_chat(
    shop: Shop, db: Database
) -> None:
    tg = shop.tg
    anna_id = await member(db, 1001)
    anna = tg.user(1001, "Anna", known=True)
    await shop.order("A-1001", anna.id, status="delivered")
    rated = await rate(shop, anna, 1)
    [alert] = await tg.wait_for(shop.staff, 1, timeout=10)
    assert "Open: nobody has taken it yet" in (alert.text or "")
    assert await SqlRatings(db).has_open_alert(customer_id=anna_id)

    press = await anna.press_button(rated, text="★5")
    await tg.wait_callback_answer(press, timeout=10)

    async def closed() -> bool:
        shown = tg.message(shop.staff, alert.message_id).text or ""
        return "✅ Resolved by the customer: they raised the score" in shown

    await eventually(closed)
    final = tg.message(shop.staff, alert.message_id)
    assert "Score: ★★★★★ (5/5)" in (final.text or "")
    assert [b["text"] for b in final.buttons] == ["Compensate", "Reply"]
    assert len(shop.staff.sent) == 1, "edited in place, no second message"
    assert not await SqlRatings(db).has_open_alert(customer_id=anna_id)
    assert not [c for c in tg.calls if c.status == 429]
