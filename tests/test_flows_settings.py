"""/settings through the real Dispatcher: switches are stored, forged buttons change nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage
from sqlalchemy import select

from bot.delivery.sender import OutboxSender
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.delivery import Category, Outgoing, enqueue
from scenarios.rules import Delivery, Rules
from storage.customers import SqlCustomers
from storage.database import Database
from storage.outbox import SqlOutbox
from storage.preferences import SqlPreferences
from storage.schema import outbox
from tests.support.flow import Flow, build_flow
from tests.support.updates import TgUser

TARAS = TgUser(1002, first_name="Тарас", language_code="uk")
BORIS = TgUser(1003, first_name="Борис", language_code="ru")


@pytest.fixture
def flow(sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    return build_flow(db=sqlite_db, clock=clock, i18n=i18n, renderer=renderer)


def buttons(method: SendMessage | EditMessageText) -> list[str]:
    assert method.reply_markup is not None
    return [row[0].text for row in method.reply_markup.inline_keyboard]  # type: ignore[union-attr]


async def test_a_customer_switches_offers_on_and_reminders_off(
    flow: Flow, clock: FixedClock
) -> None:
    [shown] = [c for c in await flow.send(TARAS, "/settings") if isinstance(c, SendMessage)]
    assert shown.text.startswith("Що вам надсилати?")
    assert buttons(shown) == [
        "🚫 Пропозиції та новини",
        "✅ Нагадування про повторне замовлення",
        "✅ Прохання оцінити замовлення",
        "✅ Попередження про згоряння балів",
        "🕒 Часовий пояс: Москва",
    ]
    calls = await flow.press(TARAS, "set:marketing", message=flow.message_from(shown))
    [edit] = [c for c in calls if isinstance(c, EditMessageText)]
    assert buttons(edit)[0] == "✅ Пропозиції та новини"
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=TARAS.id)
    assert record is not None
    assert record.marketing_opt_in is True
    assert record.marketing_changed_at == clock.now()

    calls = await flow.press(TARAS, "set:reminder", message=flow.message_from(shown))
    [edit] = [c for c in calls if isinstance(c, EditMessageText)]
    assert buttons(edit)[1] == "🚫 Нагадування про повторне замовлення"
    muted = await SqlPreferences(flow.db).muted_kinds(customer_id=record.id)
    assert muted == frozenset({"reminder"})


async def test_a_forged_switch_changes_nothing(flow: Flow) -> None:
    await flow.send(TARAS, "/settings")
    calls = await flow.press(TARAS, "set:everything")
    [answer] = [c for c in calls if isinstance(c, AnswerCallbackQuery)]
    assert answer.text == "Ця кнопка застаріла."
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=TARAS.id)
    assert record is not None
    assert record.marketing_opt_in is False
    assert await SqlPreferences(flow.db).muted_kinds(customer_id=record.id) == frozenset()


async def test_i16_10_a_customer_picks_their_time_zone_and_quiet_hours_follow_it(
    db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    flow = build_flow(db=db, clock=clock, i18n=i18n, renderer=renderer)  # the shop: Moscow
    clock.set(datetime(2026, 11, 20, 17, 0, tzinfo=UTC))  # 20:00 in Moscow, 22:00 in Yekaterinburg
    [shown] = [c for c in await flow.send(BORIS, "/settings") if isinstance(c, SendMessage)]
    assert buttons(shown)[-1] == "🕒 Часовой пояс: Москва"

    calls = await flow.press(BORIS, "tzm:1", message=flow.message_from(shown))
    [menu] = [c for c in calls if isinstance(c, EditMessageText)]
    assert str(menu.text).startswith("В каком вы часовом поясе?")
    # One zone per offset of the shop's country, the time there now on each.
    assert buttons(menu) == [
        "19:00 · Калининград",
        "✅ 20:00 · Москва",
        "21:00 · Самара",
        "22:00 · Екатеринбург",
        "23:00 · Омск",
        "00:00 · Красноярск",
        "01:00 · Иркутск",
        "02:00 · Якутск",
        "03:00 · Владивосток",
        "04:00 · Магадан",
        "05:00 · Петропавловск-Камчатский",
        "Назад",
    ]
    forged = await flow.press(BORIS, "tz:Europe/Paris", message=flow.message_from(shown))
    [refused] = [c for c in forged if isinstance(c, AnswerCallbackQuery)]
    assert refused.text == "Эта кнопка устарела."
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=BORIS.id)
    assert record is not None and record.timezone is None

    calls = await flow.press(BORIS, "tz:Asia/Yekaterinburg", message=flow.message_from(menu))

    [answer] = [c for c in calls if isinstance(c, AnswerCallbackQuery)]
    assert answer.text == "Сохранено: Екатеринбург, там сейчас 22:00."
    [back] = [c for c in calls if isinstance(c, EditMessageText)]
    assert buttons(back)[-1] == "🕒 Часовой пояс: Екатеринбург"
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=BORIS.id)
    assert record is not None and record.timezone == "Asia/Yekaterinburg"

    # Quiet hours (21:00-09:00) now follow Boris's clock, not the shop's.
    await enqueue(
        SqlOutbox(flow.db),
        Outgoing(
            dedupe_key="reminder:1",
            chat_id=BORIS.id,
            category=Category.SERVICE,
            kind="reminder",
            content={"text": "Time to reorder"},
            customer_id=record.id,
        ),
        clock=clock,
    )
    sender = OutboxSender(
        db=flow.db,
        bot=flow.bot,
        renderer=renderer,
        i18n=i18n,
        rules=Rules(delivery=Delivery(private_interval_seconds=0.0)),
        clock=clock,
        shop_zone=renderer.zone,
        worker_id="test",
    )
    await sender.drain_until_empty()
    assert "Time to reorder" not in flow.session.texts_to(BORIS.id)
    async with flow.db.read() as conn:
        held = (
            await conn.execute(select(outbox.c.state, outbox.c.not_before, outbox.c.last_error))
        ).one()
    assert tuple(held) == ("pending", datetime(2026, 11, 21, 4, 0, tzinfo=UTC), "quiet hours")

    # Back to the shop's zone: stored as none, so the customer follows the shop.
    await flow.press(BORIS, "tz:Europe/Moscow", message=flow.message_from(menu))
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=BORIS.id)
    assert record is not None and record.timezone is None
