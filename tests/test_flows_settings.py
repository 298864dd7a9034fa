"""/settings through the real Dispatcher: switches are stored, forged buttons change nothing."""

from __future__ import annotations

import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage

from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from storage.customers import SqlCustomers
from storage.database import Database
from storage.preferences import SqlPreferences
from tests.support.flow import Flow, build_flow
from tests.support.updates import TgUser

TARAS = TgUser(1002, first_name="Тарас", language_code="uk")


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
