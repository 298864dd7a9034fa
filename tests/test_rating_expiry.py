"""The expiry sweep against the fake Telegram: unanswered requests lose their stars, once."""

from __future__ import annotations

from datetime import timedelta

from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode

from bot.rating_expiry import RatingExpiry
from handlers.keyboards import keyboard
from handlers.rating import rating_buttons
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.delivery import Category, Outgoing, enqueue
from storage.customers import SqlCustomers
from storage.database import Database
from storage.outbox import SqlOutbox
from storage.ratings import SqlRatings
from tests.fake_telegram import FakeTelegram
from tests.support.seed import NOW, member, order


async def test_expired_requests_are_edited_once_and_queued_ones_withdrawn(
    db: Database, renderer: Renderer, i18n: CatalogI18n
) -> None:
    clock = FixedClock(NOW)
    ratings, outbox = SqlRatings(db), SqlOutbox(db)
    anna = await member(db, 1001)
    await SqlCustomers(db).set_locale(customer_id=anna, locale="ru")
    await order(db, "SENT", anna, days=0, sku="Cat food 2 kg")
    await order(db, "QUEUED", anna, days=0)
    await order(db, "ANSWERED", anna, days=0)
    await order(db, "FRESH", anna, days=0)
    ids = {}
    for ref, expires in (("SENT", -1), ("QUEUED", -1), ("ANSWERED", -1), ("FRESH", 1)):
        ids[ref], _ = await ratings.open_request(
            order_ref=ref,
            customer_id=anna,
            requested_at=NOW - timedelta(days=7),
            expires_at=NOW + timedelta(hours=expires),
        )
    await ratings.save_score(rating_id=ids["ANSWERED"], score=4, now=NOW - timedelta(days=1))
    async with FakeTelegram() as tg:
        user = tg.user(1001, "Anna", language_code="ru", known=True)
        bot = tg.bot(default=DefaultBotProperties(parse_mode=ParseMode.HTML))
        request = await bot.send_message(
            chat_id=user.id,
            text="How was your order SENT?",
            reply_markup=keyboard(rating_buttons(ids["SENT"])),
        )
        for ref in ("SENT", "QUEUED"):
            await enqueue(
                outbox,
                Outgoing(
                    dedupe_key=f"rating-request:{ref}",
                    chat_id=user.id,
                    category=Category.SERVICE,
                    kind="rating_request",
                    content={"text": "x"},
                    customer_id=anna,
                    not_before=NOW + timedelta(days=1) if ref == "QUEUED" else NOW,
                ),
                clock=clock,
            )
        [claimed] = await outbox.claim_due(now=NOW, limit=5, worker="w", lease_until=NOW)
        await outbox.mark_sent(id=claimed.id, message_id=request.message_id, now=NOW)
        sweep = RatingExpiry(
            ratings=ratings, outbox=outbox, bot=bot, renderer=renderer, i18n=i18n, clock=clock
        )

        assert await sweep.tick() == 2
        assert await sweep.tick() == 0

        edited = tg.message(user, request.message_id)
        assert edited.text == (
            "Как вам заказ SENT?\n• Cat food 2 kg × 1\n\nСрок запроса истёк. Всё равно спасибо!"
        )
        assert edited.buttons == []
        assert len(tg.calls_to("editMessageText")) == 1
    queued = await outbox.by_key(dedupe_key="rating-request:QUEUED")
    assert queued is not None
    assert queued.state == "cancelled"
    for ref, closed in (("SENT", True), ("QUEUED", True), ("ANSWERED", False), ("FRESH", False)):
        stored = await ratings.by_order(order_ref=ref)
        assert stored is not None
        assert (stored.closed_at is not None) is closed, ref
