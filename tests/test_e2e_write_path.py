"""Issue 17 end to end: while Telegram is slow to take one user's reply, the rest of the shop
(another user, the HTTP API, the outbox) goes on, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from scenarios.clock import SystemClock
from scenarios.delivery import Category, Outgoing, enqueue
from storage.database import Database
from storage.outbox import SqlOutbox
from tests.support.seed import member
from tests.test_e2e_ratings import Shop, shop  # noqa: F401  (the fixture, reused)

pytestmark = pytest.mark.e2e

SLOW = 4.0  # seconds Telegram takes to accept Anna's reply


async def test_i17_1_a_slow_reply_to_one_user_stalls_no_other_user_api_order_or_outbox_send(
    shop: Shop,  # noqa: F811
    db: Database,
) -> None:
    tg = shop.tg
    await member(db, 1001)
    await member(db, 1002)
    anna = tg.user(1001, "Anna", known=True)
    boris = tg.user(1002, "Boris", known=True)
    carla = tg.user(1003, "Carla", known=True)
    await shop.order("A-1001", anna.id, status="delivered")
    [request] = await tg.wait_for(anna, 1, timeout=10)
    await boris.ask("/help", timeout=10)  # Boris is known and seen: his next update only reads

    # Anna presses a star; Telegram takes SLOW seconds to accept the edit of her message.
    slow = tg.fail_next("editMessageText", None, delay=SLOW, chat_id=anna.id)
    press = await anna.press(request, request.buttons[4]["callback_data"])
    async with asyncio.timeout(SLOW):
        while slow.hits == 0:
            await asyncio.sleep(0.02)

    # Meanwhile: Boris's /balance, a new API order, and an outbox message to Carla.
    [balance] = await boris.ask("/balance", timeout=SLOW)
    await shop.order("A-2002", boris.id)
    await enqueue(
        SqlOutbox(db),
        Outgoing(
            dedupe_key="e2e:carla",
            chat_id=carla.id,
            category=Category.TRANSACTIONAL,
            kind="e2e",
            content={"text": "Your parcel is on its way."},
        ),
        clock=SystemClock(),
    )
    [parcel] = await tg.wait_for(carla, 1, timeout=SLOW)

    assert "points" in (balance.text or "").lower() or "bonus" in (balance.text or "").lower()
    assert parcel.text == "Your parcel is on its way."
    # All three happened while Telegram still held Anna's edit: her message is not edited yet.
    assert "Your rating" not in (tg.message(anna, request.message_id).text or "")
    # Anna's own press completes: her answer (sent alongside the edit) and, once Telegram has
    # taken the slow edit, her message showing the rating.
    answer = await tg.wait_callback_answer(press, timeout=SLOW + 5)
    assert answer.text == "Thank you for your rating!"
    async with asyncio.timeout(SLOW + 5):
        while "Your rating: ★★★★★" not in (tg.message(anna, request.message_id).text or ""):
            await asyncio.sleep(0.05)
