"""/balance and /history through the real Dispatcher, in ru, uk and en."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage

from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.ledger import PointsLedger
from scenarios.rules import Rules
from scenarios.tiers import TierLadder
from storage.database import Database
from storage.ledger import EntryKind, SqlLedger
from tests.support.flow import Flow, build_flow
from tests.support.seed import member
from tests.support.updates import TgUser

ANNA = TgUser(1001, first_name="Anna", language_code="ru")
TARAS = TgUser(1002, first_name="Тарас", language_code="uk")
JOHN = TgUser(1003, first_name="John", language_code="en")


@pytest.fixture
def flow(sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    return build_flow(db=sqlite_db, clock=clock, i18n=i18n, renderer=renderer)


def points_ledger(db: Database, clock: FixedClock) -> PointsLedger:
    rules = Rules()
    ladder = TierLadder.from_rules(rules.bonus, currency="RUB")
    return PointsLedger(SqlLedger(db), bonus=rules.bonus, ladder=ladder, clock=clock)


def sent(calls: Sequence[object]) -> list[SendMessage]:
    return [call for call in calls if isinstance(call, SendMessage)]


def plain(text: str) -> str:
    return text.replace("\xa0", " ").replace("\u202f", " ")


def first_button(method: SendMessage | EditMessageText) -> str:
    assert method.reply_markup is not None
    data = method.reply_markup.inline_keyboard[0][0].callback_data  # type: ignore[union-attr]
    assert isinstance(data, str)
    return data


def labels(method: SendMessage | EditMessageText) -> list[str]:
    if method.reply_markup is None:
        return []
    return [b.text for row in method.reply_markup.inline_keyboard for b in row]  # type: ignore[union-attr]


async def seed_points(flow: Flow, clock: FixedClock, telegram_id: int) -> int:
    """A member with a 1 200,00 ₽ order (60 points pending) and a 100-point welcome bonus."""
    customer_id = await member(flow.db, telegram_id)
    ledger = points_ledger(flow.db, clock)
    await ledger.accrue(customer_id=customer_id, order_id=f"A-{telegram_id}", total=120_000)
    await ledger.grant(
        customer_id=customer_id,
        kind=EntryKind.WELCOME,
        source=f"customer:{customer_id}",
        points=100,
        reason="welcome",
    )
    return customer_id


async def test_balance_shows_points_tier_next_tier_and_expiry_in_each_language(
    flow: Flow, clock: FixedClock
) -> None:
    for user in (ANNA, TARAS, JOHN):
        await seed_points(flow, clock, user.id)

    [ru] = sent(await flow.send(ANNA, "/balance"))
    assert plain(ru.text) == (
        "<b>Ваши бонусы</b>\n"
        "Доступно: 100 бонусов\n"
        "Ожидают: 60 бонусов (можно потратить с 15 ноября 2026 г.)\n\n"
        "Уровень: <b>Бронза</b>, кешбэк 5 %\n"
        "До уровня «Серебро» (кешбэк 7 %) осталось потратить 8 800,00 ₽.\n\n"
        "160 бонусов сгорят 1 ноября 2027 г."
    )
    [uk] = sent(await flow.send(TARAS, "/balance"))
    assert "Доступно: 100 балів" in uk.text
    assert "Рівень: <b>Бронза</b>, кешбек 5" in uk.text
    assert plain(uk.text).endswith("160 балів згорять 1 листопада 2027 р.")
    [en] = sent(await flow.send(JOHN, "/balance"))
    assert en.text.startswith("<b>Your points</b>\nAvailable: 100 points\nPending: 60 points")
    assert "Spend RUB" in en.text
    assert en.text.endswith("160 points expire on November 1, 2027")


async def test_a_non_member_is_told_to_join_with_start(flow: Flow) -> None:
    [balance] = sent(await flow.send(JOHN, "/balance"))
    assert balance.text == "You are not in the bonus program yet. Send /start to join."
    [history] = sent(await flow.send(ANNA, "/history"))
    assert history.text == "Вы ещё не в бонусной программе. Отправьте /start, чтобы вступить."


async def test_history_pages_older_and_newer_with_reasons(flow: Flow, clock: FixedClock) -> None:
    customer_id = await seed_points(flow, clock, JOHN.id)
    ledger = points_ledger(flow.db, clock)
    for number in range(1, 12):
        clock.advance(timedelta(hours=1))
        await ledger.adjust(
            customer_id=customer_id,
            key=f"k{number}",
            points=number,
            reason=f"fix <{number}>",
            admin_id=9001,
        )

    [first] = sent(await flow.send(JOHN, "/history"))
    lines = first.text.split("\n")
    assert lines[0] == "<b>Points history</b>"
    assert lines[2].endswith("· <b>+11 points</b> — adjustment by the shop: fix &lt;11&gt;")
    assert len([line for line in lines if "·" in line]) == 10
    assert labels(first) == ["◀ Older"]

    calls = await flow.press(JOHN, first_button(first), message=flow.message_from(first))
    [older] = [c for c in calls if isinstance(c, EditMessageText)]
    assert older.text is not None
    assert older.text.startswith("<b>Points history</b> (older)")
    assert "+1 point</b> — adjustment by the shop: fix &lt;1&gt;" in older.text
    assert "+100 points</b> — welcome bonus" in older.text
    assert "+60 points</b> — cashback for order A-1003" in older.text
    assert labels(older) == ["Newer ▶"]

    calls = await flow.press(JOHN, first_button(older), message=flow.message_from(first))
    [newest] = [c for c in calls if isinstance(c, EditMessageText)]
    assert newest.text == first.text
    assert labels(newest) == ["◀ Older"]


async def test_forged_and_stale_history_buttons_answer_politely(
    flow: Flow, clock: FixedClock
) -> None:
    await seed_points(flow, clock, ANNA.id)
    for data in ("hist:-5", "hist:abc"):
        calls = await flow.press(ANNA, data)
        [answer] = [c for c in calls if isinstance(c, AnswerCallbackQuery)]
        assert answer.text == "Эта кнопка устарела."
        assert not [c for c in calls if isinstance(c, (SendMessage, EditMessageText))]
    calls = await flow.press(ANNA, "hist:1")
    [answer] = [c for c in calls if isinstance(c, AnswerCallbackQuery)]
    assert answer.text == "Более ранних записей нет."


async def test_a_button_pressed_by_someone_else_shows_only_their_own_history(
    flow: Flow, clock: FixedClock
) -> None:
    ledger = points_ledger(flow.db, clock)
    taras_id = await member(flow.db, TARAS.id)
    anna_id = await member(flow.db, ANNA.id)
    for customer_id, reason in ((taras_id, "Taras only"), (anna_id, "Anna only")):
        for number in range(12):
            await ledger.adjust(
                customer_id=customer_id,
                key=f"{customer_id}-{number}",
                points=7,
                reason=reason,
                admin_id=1,
            )
    [annas] = sent(await flow.send(ANNA, "/history"))
    button = first_button(annas)

    # Taras presses the Older button under Anna's message (forwarded to him, say).
    calls = await flow.press(TARAS, button, message=flow.message_from(annas))
    assert not [c for c in calls if isinstance(c, EditMessageText)], "Anna's message stays"
    [own] = sent(calls)
    assert own.chat_id == TARAS.id
    assert "Taras only" in own.text
    assert "Anna only" not in own.text


async def test_i15_9_history_shows_no_plus_zero_rows(
    db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    """An order too small to earn, and its refund (a reversal of 0), moved no points: the
    history leaves them out, and its pages still add up."""
    flow = build_flow(db=db, clock=clock, i18n=i18n, renderer=renderer)
    customer_id = await seed_points(flow, clock, JOHN.id)
    ledger = points_ledger(db, clock)
    tiny = await ledger.accrue(customer_id=customer_id, order_id="TINY", total=1_000)
    assert tiny.points == 0
    await ledger.cancel_order(customer_id=customer_id, order_id="TINY", reason="refunded")
    for number in range(1, 10):
        await ledger.adjust(
            customer_id=customer_id, key=f"k{number}", points=number, reason="fix", admin_id=1
        )
    [first] = sent(await flow.send(JOHN, "/history"))
    assert "TINY" not in first.text and "+0" not in first.text
    assert len([line for line in first.text.split("\n") if "·" in line]) == 10
    calls = await flow.press(JOHN, first_button(first), message=flow.message_from(first))
    [older] = [c for c in calls if isinstance(c, EditMessageText)]
    assert older.text is not None and "TINY" not in older.text
    assert "+60 points</b> — cashback for order A-1003" in older.text
    assert len([line for line in older.text.split("\n") if "·" in line]) == 1
    calls = await flow.press(JOHN, first_button(older), message=flow.message_from(first))
    [newest] = [c for c in calls if isinstance(c, EditMessageText)]
    assert newest.text == first.text
