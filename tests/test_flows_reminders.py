"""Reminder buttons, /reminders and /stats through the real Dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage, TelegramMethod
from sqlalchemy import select, update

from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.rules import Rules, Staff
from storage.database import Database
from storage.messages import ButtonRows
from storage.schema import outbox, reminder_stops
from tests.support.flow import Flow, build_flow
from tests.support.reminders import Shop, add_member, add_product, open_shop, reminder_rows
from tests.support.services import services_for
from tests.support.updates import TgUser

DAY = timedelta(days=1)
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
ANNA = TgUser(501, first_name="Anna")
OLHA = TgUser(502, first_name="Ольга", language_code="uk")
ADMIN = TgUser(9001, first_name="Boss")
STAFF_CHAT = -100500


@pytest.fixture
async def shop(sqlite_db: Database, clock: FixedClock) -> AsyncIterator[Shop]:
    await add_product(sqlite_db, "LITTER", name="Litter <fresh>", at=T0, days=20)
    await add_product(
        sqlite_db, "CAT", name="Cat food", at=T0, days=30, url="https://shop.example/cat"
    )
    async with open_shop(sqlite_db, clock=clock) as opened:
        yield opened


@pytest.fixture
def flow(sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    built = build_flow(
        db=sqlite_db, clock=clock, i18n=i18n, renderer=renderer, admin_ids=(ADMIN.id,)
    )
    built.dispatcher["staff_chat_id"] = STAFF_CHAT
    return built


async def remind(
    shop: Shop, db: Database, clock: FixedClock, i18n: CatalogI18n, *, user: TgUser
) -> ButtonRows:
    """Anna orders litter and cat food; 17 days later the sweep queues her reminder."""
    await add_member(db, user.id, at=T0, language_code=user.language_code or "en")
    await shop.order(user.id, [("LITTER", 1)], at=T0, ref=f"L-{user.id}")
    await shop.order(user.id, [("CAT", 1)], at=T0 - 10 * DAY, ref=f"C-{user.id}")
    clock.set(T0 + 17 * DAY)
    sweeper = services_for(
        db, i18n=i18n, rules=Rules(), clock=clock, zone=ZoneInfo("UTC")
    ).reminder_sweeper
    await sweeper.tick()
    async with db.read() as conn:
        payload = (
            await conn.execute(select(outbox.c.payload).where(outbox.c.chat_id == user.id))
        ).scalar_one()
    buttons: ButtonRows = payload["buttons"]
    return buttons


def answer_of(calls: list[TelegramMethod[Any]]) -> AnswerCallbackQuery:
    [answer] = [call for call in calls if isinstance(call, AnswerCallbackQuery)]
    return answer


async def test_the_reminder_offers_reorder_snooze_and_stop_per_product(
    shop: Shop, sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n
) -> None:
    buttons = await remind(shop, sqlite_db, clock, i18n, user=OLHA)
    litter, cat = await reminder_rows(sqlite_db)
    assert buttons == [
        [{"text": "🛒 Замовити: Litter <fresh>", "callback_data": f"rmd:order:{litter['id']}:0"}],
        [
            {"text": "⏰ Через 3 дні", "callback_data": f"rmd:snooze:{litter['id']}:3"},
            {"text": "⏰ Через 7 днів", "callback_data": f"rmd:snooze:{litter['id']}:7"},
            {"text": "🚫 Мені це не потрібно", "callback_data": f"rmd:stop:{litter['id']}:0"},
        ],
        [{"text": "🛒 Замовити: Cat food", "url": "https://shop.example/cat"}],
        [
            {"text": "⏰ Через 3 дні", "callback_data": f"rmd:snooze:{cat['id']}:3"},
            {"text": "⏰ Через 7 днів", "callback_data": f"rmd:snooze:{cat['id']}:7"},
            {"text": "🚫 Мені це не потрібно", "callback_data": f"rmd:stop:{cat['id']}:0"},
        ],
    ]


async def test_snooze_moves_the_reminder_once_and_only_for_its_owner(
    shop: Shop, sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, flow: Flow
) -> None:
    buttons = await remind(shop, sqlite_db, clock, i18n, user=ANNA)
    await add_member(sqlite_db, OLHA.id, at=T0, language_code="uk")
    snooze_7 = buttons[1][1]["callback_data"]

    stranger = answer_of(await flow.press(OLHA, snooze_7))
    assert stranger.text == "Ця кнопка застаріла."
    assert (await reminder_rows(sqlite_db))[0]["state"] == "sent"
    forged = answer_of(await flow.press(ANNA, snooze_7.replace(":7", ":5")))
    assert forged.text == "This button is out of date."

    answer = answer_of(await flow.press(ANNA, snooze_7))
    assert answer.text == "OK, I will remind you about Litter <fresh> in 7 days."
    litter = (await reminder_rows(sqlite_db))[0]
    assert litter["state"] == "snoozed"
    assert litter["due_at"] == clock.now() + 7 * DAY

    again = answer_of(await flow.press(ANNA, buttons[1][0]["callback_data"]))
    assert again.text == "This is already done."
    assert (await reminder_rows(sqlite_db))[0]["due_at"] == clock.now() + 7 * DAY


async def test_i_dont_need_this_stops_the_product_for_good(
    shop: Shop, sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, flow: Flow
) -> None:
    buttons = await remind(shop, sqlite_db, clock, i18n, user=ANNA)
    answer = answer_of(await flow.press(ANNA, buttons[1][2]["callback_data"]))
    assert answer.text == "OK, no more reminders about Litter <fresh>."
    async with sqlite_db.read() as conn:
        stops = (await conn.execute(select(reminder_stops.c.sku))).scalars().all()
    assert stops == ["LITTER"]
    await shop.order(ANNA.id, [("LITTER", 1), ("CAT", 1)], at=clock.now(), ref="A-9")
    waiting = [r["sku"] for r in await reminder_rows(sqlite_db) if r["due_at"] is not None]
    assert waiting == ["CAT"]


async def test_reorder_without_a_link_reaches_staff_once(
    shop: Shop, sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, flow: Flow
) -> None:
    buttons = await remind(shop, sqlite_db, clock, i18n, user=ANNA)
    order = buttons[0][0]["callback_data"]
    answer = answer_of(await flow.press(ANNA, order))
    assert answer.text == "Thank you! The shop will contact you about your order."
    again = answer_of(await flow.press(ANNA, order))
    assert again.text == "The shop already has your request."
    async with sqlite_db.read() as conn:
        [request] = (
            await conn.execute(select(outbox).where(outbox.c.kind == "reorder_request"))
        ).mappings()
    assert (request["chat_id"], request["category"]) == (STAFF_CHAT, "transactional")
    text = request["payload"]["text"]
    assert text.startswith("<b>🛒 Reorder request</b>\nCustomer: Anna, card ")
    assert "Wants to reorder: Litter &lt;fresh&gt; (LITTER), last time 1 pcs." in text


async def test_reminders_lists_what_is_scheduled_and_cancels_each(
    shop: Shop, sqlite_db: Database, clock: FixedClock, flow: Flow
) -> None:
    await add_member(sqlite_db, ANNA.id, at=T0)
    [empty] = [c for c in await flow.send(ANNA, "/reminders") if isinstance(c, SendMessage)]
    assert empty.text.startswith("No reminders are scheduled.")
    await shop.order(ANNA.id, [("LITTER", 1), ("CAT", 1)], at=T0, ref="A-1")

    [shown] = [c for c in await flow.send(ANNA, "/reminders") if isinstance(c, SendMessage)]
    assert shown.text.replace("\u202f", " ").splitlines()[:4] == [
        "<b>Your reminders</b>",
        "",
        "• Litter &lt;fresh&gt;: 11/18/26, 1:00 PM",
        "• Cat food: 11/28/26, 1:00 PM",
    ]
    assert shown.reply_markup is not None
    rows = shown.reply_markup.inline_keyboard  # type: ignore[union-attr]
    assert [row[0].text for row in rows] == ["❌ Cancel: Litter <fresh>", "❌ Cancel: Cat food"]

    calls = await flow.press(ANNA, rows[0][0].callback_data, message=flow.message_from(shown))  # type: ignore[arg-type]
    assert answer_of(calls).text == "Cancelled."
    [edit] = [c for c in calls if isinstance(c, EditMessageText)]
    assert (edit.text or "").startswith("<b>Your reminders</b>\n\n• Cat food: ")
    assert {r["sku"]: r["state"] for r in await reminder_rows(sqlite_db)} == {
        "LITTER": "cancelled",
        "CAT": "scheduled",
    }

    await add_member(sqlite_db, OLHA.id, at=T0, language_code="uk")
    forged = answer_of(await flow.press(OLHA, rows[1][0].callback_data))  # type: ignore[arg-type]
    assert forged.text == "Ця кнопка застаріла."
    assert {r["sku"]: r["state"] for r in await reminder_rows(sqlite_db)} == {
        "LITTER": "cancelled",
        "CAT": "scheduled",
    }


async def test_stats_show_admins_reminders_sent_converted_and_revenue(
    shop: Shop, sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, flow: Flow
) -> None:
    await remind(shop, sqlite_db, clock, i18n, user=ANNA)
    async with sqlite_db.transaction() as conn:
        await conn.execute(update(outbox).values(state="sent", sent_at=clock.now()))
    await shop.order(ANNA.id, [("LITTER", 2)], at=clock.now(), ref="A-2", price="350.00")

    [refused] = [c for c in await flow.send(ANNA, "/stats") if isinstance(c, SendMessage)]
    assert refused.text == "This command is for the shop's admins."
    [summary] = [c for c in await flow.send(ADMIN, "/stats") if isinstance(c, SendMessage)]
    assert summary.reply_markup is not None
    engagement = next(
        str(button.callback_data)
        for row in summary.reply_markup.inline_keyboard  # type: ignore[union-attr]
        for button in row
        if button.text == "Engagement"
    )
    calls = await flow.press(ADMIN, engagement, message=flow.message_from(summary))
    [shown] = [c for c in calls if isinstance(c, EditMessageText)]
    assert shown.text is not None
    lines = shown.text.replace("\xa0", " ").splitlines()
    assert lines[lines.index("<b>Replenishment reminders</b>") :][:4] == [
        "<b>Replenishment reminders</b>",
        "2 reminders sent",
        "1 converted to an order (50%)",
        "Revenue attributed: RUB 700.00",
    ]


async def test_help_and_the_menu_list_reminders(flow: Flow) -> None:
    [help_text] = [c for c in await flow.send(ANNA, "/help") if isinstance(c, SendMessage)]
    assert "/reminders — Your reminders to reorder" in help_text.text
    [admin_help] = [c for c in await flow.send(ADMIN, "/help") if isinstance(c, SendMessage)]
    assert "/stats — Statistics (admins)" in admin_help.text


async def test_i16_13_a_reorder_request_reaches_staff_in_the_staff_chats_language(
    shop: Shop, sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    flow = build_flow(
        db=sqlite_db,
        clock=clock,
        i18n=i18n,
        renderer=renderer,
        rules=Rules(staff=Staff(locale="uk")),
        staff_chat_id=STAFF_CHAT,
    )
    buttons = await remind(shop, sqlite_db, clock, i18n, user=ANNA)

    answer = answer_of(await flow.press(ANNA, buttons[0][0]["callback_data"]))

    assert answer.text == "Thank you! The shop will contact you about your order."
    async with sqlite_db.read() as conn:
        [request] = (
            await conn.execute(select(outbox).where(outbox.c.kind == "reorder_request"))
        ).mappings()
    assert request["payload"]["text"].startswith("<b>🛒 Заявка на повторне замовлення</b>")


async def test_i18_3_erasure_takes_the_name_and_card_out_of_a_queued_reorder_request(
    shop: Shop, sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, flow: Flow
) -> None:
    buttons = await remind(shop, sqlite_db, clock, i18n, user=ANNA)
    await flow.press(ANNA, buttons[0][0]["callback_data"])
    [ask] = [c for c in await flow.send(ANNA, "/delete_me") if isinstance(c, SendMessage)]
    await flow.press(ANNA, "erase:1", message=flow.message_from(ask))
    async with sqlite_db.read() as conn:
        requests = (
            await conn.execute(select(outbox).where(outbox.c.kind == "reorder_request"))
        ).mappings()
        texts = [row["payload"]["text"] for row in requests]
    assert texts, "the request is still there for the shop"
    assert all("Anna" not in text and "card" not in text for text in texts), texts
    assert all("The customer has deleted their personal data." in text for text in texts), texts
    assert all("Litter &lt;fresh&gt; (LITTER)" in text for text in texts), texts
