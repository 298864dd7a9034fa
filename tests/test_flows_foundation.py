"""Flows through the real Dispatcher: greeting, language choice, admin status, fallbacks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageText,
    SendMessage,
    SetMyCommands,
)
from sqlalchemy import func, select

from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.delivery import Category, Outgoing, enqueue
from scenarios.rules import Rules, Shop
from storage.customers import SqlCustomers
from storage.database import Database
from storage.migrate import head_revision
from storage.outbox import SqlOutbox
from storage.schema import customers
from tests.support.flow import Flow, build_flow
from tests.support.updates import TgUser

ANNA = TgUser(1001, first_name="Anna", language_code="ru")
TARAS = TgUser(1002, first_name="Тарас", language_code="uk")
JOHN = TgUser(1003, first_name="John", language_code="de")
ADMIN = TgUser(9001, first_name="Olga", language_code="en")


@pytest.fixture
def flow(sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    return build_flow(
        db=sqlite_db,
        clock=clock,
        i18n=i18n,
        renderer=renderer,
        admin_ids=(ADMIN.id,),
        rules=Rules(shop=Shop(name="Lapki")),
    )


def only_message(calls: Sequence[object]) -> SendMessage:
    sent = [call for call in calls if isinstance(call, SendMessage)]
    assert len(sent) == 1, calls
    return sent[0]


async def count_customers(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(customers))).scalar_one())


async def test_start_greets_in_the_users_telegram_language(flow: Flow) -> None:
    ru = only_message(await flow.send(ANNA, "/start"))
    assert ru.chat_id == ANNA.id
    assert ru.text.startswith("Здравствуйте, Anna!\nЭто бонусная программа магазина <b>Lapki</b>.")
    uk = only_message(await flow.send(TARAS, "/start"))
    assert uk.text.startswith("Вітаємо, Тарас!\nЦе бонусна програма магазину <b>Lapki</b>.")
    other = only_message(await flow.send(JOHN, "/start"))
    assert other.text.startswith("Hello, John!\nThis is the bonus program of <b>Lapki</b>.")


async def test_returning_users_are_recognised_not_duplicated(flow: Flow, clock: FixedClock) -> None:
    await flow.send(ANNA, "/start")
    clock.advance(timedelta(days=3))
    await flow.send(ANNA, "/start")
    await flow.send(ANNA, "hello")
    assert await count_customers(flow.db) == 1
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert record is not None and record.last_seen_at == clock.now()


async def test_lang_switches_language_menu_and_later_answers(flow: Flow) -> None:
    offer = only_message(await flow.send(ANNA, "/lang"))
    assert offer.text == "Выберите язык бота:"
    buttons = [b.text for row in offer.reply_markup.inline_keyboard for b in row]  # type: ignore[union-attr]
    assert buttons == ["✓ Русский", "Українська", "English"]

    calls = await flow.press(ANNA, "lang:uk", message=flow.message_from(offer))
    edit = next(call for call in calls if isinstance(call, EditMessageText))
    assert edit.text == "Готово! Тепер бот розмовляє з вами українською."
    assert [b.text for b in edit.reply_markup.inline_keyboard[0]] == [  # type: ignore[union-attr]
        "Русский",
        "✓ Українська",
        "English",
    ]
    assert any(isinstance(call, AnswerCallbackQuery) for call in calls)
    menu = next(call for call in calls if isinstance(call, SetMyCommands))
    assert menu.scope.chat_id == ANNA.id  # type: ignore[union-attr]
    assert [c.command for c in menu.commands] == [
        "start",
        "card",
        "balance",
        "history",
        "code",
        "invite",
        "birthday",
        "lang",
        "settings",
        "reminders",
        "help",
        "stop",
        "my_data",
        "delete_me",
    ]
    assert menu.commands[7].description == "Змінити мову"

    again = only_message(await flow.send(ANNA, "/start"))
    assert again.text.startswith("Вітаємо, Anna!")
    stored = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert stored is not None and stored.locale == "uk"


async def test_a_forged_language_button_changes_nothing_and_says_so(flow: Flow) -> None:
    await flow.send(ANNA, "/start")
    calls = await flow.press(ANNA, "lang:xx")
    answer = next(call for call in calls if isinstance(call, AnswerCallbackQuery))
    assert answer.text == "Этот язык недоступен."
    assert answer.show_alert is True
    assert not any(isinstance(call, (EditMessageText, SetMyCommands)) for call in calls)
    stored = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert stored is not None and stored.locale is None


async def test_status_is_for_admins_only(flow: Flow) -> None:
    await flow.send(ANNA, "/start")
    refusal = only_message(await flow.send(ANNA, "/status"))
    assert refusal.text == "Эта команда только для администраторов магазина."
    status = only_message(await flow.send(ADMIN, "/status"))
    assert status.text.startswith(
        f"<b>Bot status</b>\nVersion: test\nDatabase: sqlite, schema {head_revision()}"
    )
    assert "2 customers" in status.text
    assert status.text.endswith("Outbox: 0 waiting, 0 failed, 0 unknown")


async def test_help_lists_the_commands_this_user_may_use(flow: Flow) -> None:
    customer_help = only_message(await flow.send(TARAS, "/help")).text
    assert "/lang — Змінити мову" in customer_help
    assert "/status" not in customer_help
    admin_help = only_message(await flow.send(ADMIN, "/help")).text
    assert "/status — Bot status (admins)" in admin_help
    assert "/balance — Мої бали, рівень і кешбек" in customer_help
    assert "/history — Історія моїх балів" in customer_help
    assert "/birthday — Вказати або змінити день народження" in customer_help
    assert "/bonus" not in customer_help
    assert "/bonus — Add or remove a customer&#39;s points (admins)" in admin_help
    assert "/customer — A customer&#39;s profile (admins)" in admin_help
    assert "/gift — A holiday gift to members (admins)" in admin_help


async def test_unknown_input_gets_a_pointer_to_help(flow: Flow) -> None:
    command = only_message(await flow.send(ANNA, "/frobnicate"))
    assert command.text == "Я не знаю такой команды. /help покажет, что я умею."
    text = only_message(await flow.send(JOHN, "what's up?"))
    assert text.text == "I didn't understand that. /help shows what I can do."


async def test_group_chatter_is_ignored(flow: Flow) -> None:
    calls = await flow.feed(flow.updates.message(ANNA, "hello all", chat_id=-100500))
    assert calls == []


async def test_a_failing_update_rolls_back_and_apologises_in_the_users_language(
    flow: Flow, renderer: Renderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> str:
        raise RuntimeError("template storage on fire")

    monkeypatch.setattr(renderer, "render", broken)
    calls = await flow.send(ANNA, "/start")
    apology = only_message(calls)
    assert apology.text == "Извините, у нас что-то пошло не так. Попробуйте ещё раз через минуту."
    # The customer row written earlier in this update was rolled back with it.
    assert await count_customers(flow.db) == 0


async def test_blocking_the_bot_stops_delivery_and_coming_back_resumes_it(
    flow: Flow, clock: FixedClock
) -> None:
    await flow.send(ANNA, "/start")
    queue = SqlOutbox(flow.db)
    await enqueue(
        queue,
        Outgoing(
            dedupe_key="reminder:1",
            chat_id=ANNA.id,
            category=Category.SERVICE,
            kind="reminder",
            content={"text": "Cat food is running low"},
        ),
        clock=clock,
    )
    assert await flow.feed(flow.updates.membership(ANNA, old="member", new="kicked")) == []
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert record is not None
    assert record.blocked_at == clock.now()
    assert await queue.counts() == {"dropped": 1}

    await flow.feed(flow.updates.membership(ANNA, old="kicked", new="member"))
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert record is not None
    assert record.blocked_at is None


async def test_a_blocked_customer_who_writes_again_is_reachable_again(
    flow: Flow, clock: FixedClock
) -> None:
    await flow.send(ANNA, "/start")
    await SqlCustomers(flow.db).mark_blocked(telegram_id=ANNA.id, now=clock.now())
    await flow.send(ANNA, "hi again")
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert record is not None
    assert record.blocked_at is None
