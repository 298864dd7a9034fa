"""/birthday through the real Dispatcher: members set or change it later, the 30-day rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage

from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.rules import Rules, Shop
from storage.customers import CustomerRecord, SqlCustomers
from storage.database import Database
from tests.support.flow import Flow, build_flow
from tests.support.services import services_for
from tests.support.signup import contact, entries, inline_labels, photos, texts
from tests.support.updates import TgUser

ANNA = TgUser(2101, first_name="Anna", language_code="en")
OLHA = TgUser(2102, first_name="Ольга", language_code="uk")
IVAN = TgUser(2103, first_name="Иван", language_code="ru")
PETR = TgUser(2104, first_name="Пётр", language_code="ru")
RULES = Rules(shop=Shop(name="Lapki"))


@pytest.fixture
def flow(db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    return build_flow(db=db, clock=clock, i18n=i18n, renderer=renderer, rules=RULES)


async def join(flow: Flow, user: TgUser, phone: str, *, birthday: str | None = None) -> None:
    [welcome] = [c for c in await flow.send(user, "/start") if isinstance(c, SendMessage)]
    await flow.press(user, "join:accept", message=flow.message_from(welcome))
    calls = await flow.feed(contact(flow.updates, user, phone))
    question = [c for c in calls if isinstance(c, SendMessage)][-1]
    if birthday is None:
        await flow.press(user, "bday:skip", message=flow.message_from(question))
    else:
        await flow.send(user, birthday)


async def record_of(flow: Flow, user: TgUser) -> CustomerRecord:
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=user.id)
    assert record is not None
    return record


def birthday_of(record: CustomerRecord) -> tuple[object, ...]:
    return (
        record.birthday_day,
        record.birthday_month,
        record.birthday_year,
        record.birthday_set_at,
    )


async def test_a_member_who_skipped_sets_the_birthday_later(flow: Flow, clock: FixedClock) -> None:
    await join(flow, ANNA, "79991234567")
    [ask] = [c for c in await flow.send(ANNA, "/birthday") if isinstance(c, SendMessage)]
    assert ask.text.startswith(
        "Your birthday is not saved yet.\nSend the day and month, e.g. 31.12"
    )
    assert inline_labels(ask) == ["Cancel"]

    for wrong in ("31.02", "1.1.2099", "soon"):
        [again] = texts(await flow.send(ANNA, wrong))
        assert again.startswith("I could not read that date."), wrong
        assert birthday_of(await record_of(flow, ANNA)) == (None, None, None, None)

    assert texts(await flow.send(ANNA, "15.03.1990")) == ["Your birthday is saved: March 15, 1990."]
    assert birthday_of(await record_of(flow, ANNA)) == (15, 3, 1990, clock.now())
    # The question is answered: more text is not read as a date.
    assert "Your birthday is saved" not in " ".join(texts(await flow.send(ANNA, "16.03")))
    assert birthday_of(await record_of(flow, ANNA))[:2] == (15, 3)


async def test_cancel_keeps_the_birthday_and_a_stale_cancel_changes_nothing(
    flow: Flow,
) -> None:
    await join(flow, OLHA, "380501234567", birthday="31.12")
    before = await record_of(flow, OLHA)
    [ask] = [c for c in await flow.send(OLHA, "/birthday") if isinstance(c, SendMessage)]
    assert ask.text.startswith("Ваш день народження збережено як 31 грудня.\n")
    assert inline_labels(ask) == ["Скасувати"]
    calls = await flow.press(OLHA, "bdaychg:cancel", message=flow.message_from(ask))
    assert [c.text for c in calls if isinstance(c, EditMessageText)] == [
        "Ваш день народження залишається без змін."
    ]
    calls = await flow.press(OLHA, "bdaychg:cancel", message=flow.message_from(ask))
    [answer] = [c for c in calls if isinstance(c, AnswerCallbackQuery)]
    assert answer.text == "Ця кнопка застаріла."
    assert not [c for c in calls if isinstance(c, EditMessageText)]
    # After cancelling, a date-like text is no answer to anything.
    await flow.send(OLHA, "01.01")
    assert await record_of(flow, OLHA) == before


async def test_non_members_are_sent_to_start_and_nothing_is_stored(flow: Flow) -> None:
    [refusal] = texts(await flow.send(IVAN, "/birthday"))
    assert refusal.startswith("Вы ещё не в бонусной программе. Отправьте /start")
    await flow.send(IVAN, "15.03")
    assert birthday_of(await record_of(flow, IVAN)) == (None, None, None, None)
    calls = await flow.press(IVAN, "bdaychg:cancel")
    [answer] = [c for c in calls if isinstance(c, AnswerCallbackQuery)]
    assert answer.text == "Эта кнопка устарела."


async def test_a_birthday_changed_10_days_before_the_date_gets_no_gift_that_year(
    flow: Flow, clock: FixedClock, renderer: Renderer
) -> None:
    # Both set their birthday on 1 November, well ahead of December.
    await join(flow, IVAN, "79991234501", birthday="25.12")
    await join(flow, PETR, "79991234502", birthday="15.12")
    clock.set(datetime(2026, 12, 5, 9, 0, tzinfo=UTC))
    await flow.send(IVAN, "/birthday")
    [saved] = texts(await flow.send(IVAN, "15.12"))
    assert saved == (
        "Ваш день рождения сохранён: 15 декабря.\n"
        "До него меньше 30 дней, поэтому в этот раз подарка ко дню рождения не будет; "
        "со следующего года будет."
    )
    ivan, petr = await record_of(flow, IVAN), await record_of(flow, PETR)
    assert birthday_of(ivan) == (15, 12, None, clock.now())

    gifts = services_for(flow.db, rules=RULES, clock=clock, zone=renderer.zone).birthdays
    clock.set(datetime(2026, 12, 15, 6, 0, tzinfo=UTC))
    assert await gifts.tick() == 1  # Petr's; Ivan's changed date is too fresh
    assert [e for e in await entries(flow.db, ivan.id) if e[0] == "birthday"] == []
    assert [e for e in await entries(flow.db, petr.id) if e[0] == "birthday"] == [
        ("birthday", f"customer:{petr.id}:2026", 100)
    ]
    clock.set(datetime(2027, 12, 15, 6, 0, tzinfo=UTC))
    assert await gifts.tick() == 2
    assert len([e for e in await entries(flow.db, ivan.id) if e[0] == "birthday"]) == 1


async def test_birthday_during_sign_up_asks_the_sign_up_question_and_the_card_follows(
    flow: Flow,
) -> None:
    [welcome] = [c for c in await flow.send(ANNA, "/start") if isinstance(c, SendMessage)]
    await flow.press(ANNA, "join:accept", message=flow.message_from(welcome))
    await flow.feed(contact(flow.updates, ANNA, "79991234567"))
    [ask] = [c for c in await flow.send(ANNA, "/birthday") if isinstance(c, SendMessage)]
    assert ask.text.startswith("One more, optional: when is your birthday?")
    assert inline_labels(ask) == ["Skip"]
    calls = await flow.send(ANNA, "31.12")
    assert texts(calls) == ["Thank you, your birthday is saved."]
    assert len(photos(calls)) == 1
    assert birthday_of(await record_of(flow, ANNA))[:3] == (31, 12, None)


async def test_i15_13_a_date_at_the_end_of_a_sentence_ends_with_one_stop(flow: Flow) -> None:
    await join(flow, IVAN, "79991234568")
    await flow.send(IVAN, "/birthday")
    [saved] = texts(await flow.send(IVAN, "15.05.1990"))
    assert saved.replace("\u202f", " ") == "Ваш день рождения сохранён: 15 мая 1990 г."
    [ask] = texts(await flow.send(IVAN, "/birthday"))
    assert ask.replace("\u202f", " ").startswith("Ваш день рождения сохранён как 15 мая 1990 г.\n")
    await join(flow, OLHA, "79991234569")
    await flow.send(OLHA, "/birthday")
    [saved] = texts(await flow.send(OLHA, "15.05.1990"))
    assert saved.replace("\u202f", " ").endswith("15 травня 1990 р.")
