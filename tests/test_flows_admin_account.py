"""/bonus, /customer and /gift through the real Dispatcher: previews, confirmations, refusals."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage
from sqlalchemy import func, select, update

from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.cards import card_number
from scenarios.clock import FixedClock
from scenarios.ledger import PointsLedger, balance
from scenarios.rules import Rules
from scenarios.tiers import TierLadder
from storage.audit import SqlAuditLog
from storage.database import Database
from storage.ledger import EntryKind, SqlLedger
from storage.ratings import SqlRatings
from storage.schema import audit_log, customers, gifts, ledger_entries, outbox
from tests.support.flow import Flow, build_flow
from tests.support.seed import member, order
from tests.support.services import services_for
from tests.support.updates import TgUser

MOSCOW = ZoneInfo("Europe/Moscow")
ADMIN = TgUser(9001, first_name="Olga", language_code="en")
ADMIN_UK = TgUser(9002, first_name="Оля", language_code="uk")
ANNA = TgUser(1001, first_name="Anna", language_code="ru", username="anna_cat")
STRANGER = TgUser(1005, first_name="Eve", language_code="en")


@pytest.fixture
def flow(sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    return build_flow(
        db=sqlite_db,
        clock=clock,
        i18n=i18n,
        renderer=renderer,
        admin_ids=(ADMIN.id, ADMIN_UK.id),
    )


def points_ledger(db: Database, clock: FixedClock) -> PointsLedger:
    rules = Rules()
    ladder = TierLadder.from_rules(rules.bonus, currency="RUB")
    return PointsLedger(SqlLedger(db), bonus=rules.bonus, ladder=ladder, clock=clock)


def sent(calls: Sequence[object]) -> list[SendMessage]:
    return [call for call in calls if isinstance(call, SendMessage)]


def edits(calls: Sequence[object]) -> list[EditMessageText]:
    return [call for call in calls if isinstance(call, EditMessageText)]


def answer_of(calls: Sequence[object]) -> AnswerCallbackQuery:
    return next(call for call in calls if isinstance(call, AnswerCallbackQuery))


def plain(text: str | None) -> str:
    return (text or "").replace("\xa0", " ").replace("\u202f", " ")


def button(method: SendMessage, index: int) -> str:
    data = method.reply_markup.inline_keyboard[0][index].callback_data  # type: ignore[union-attr]
    assert data is not None
    return data


async def anna(flow: Flow, clock: FixedClock, *, points: int = 300) -> int:
    """Anna: a member with a phone, a username, and ``points`` available."""
    customer_id = await member(flow.db, ANNA.id)
    async with flow.db.transaction() as conn:
        await conn.execute(
            update(customers)
            .where(customers.c.id == customer_id)
            .values(
                phone="+79991234567",
                username="anna_cat",
                first_name="Anna",
                locale="ru",
                card_number=card_number(customer_id),  # a member from before random cards
            )
        )
    await points_ledger(flow.db, clock).grant(
        customer_id=customer_id,
        kind=EntryKind.WELCOME,
        source=f"customer:{customer_id}",
        points=points,
        reason="welcome",
    )
    return customer_id


async def available(flow: Flow, clock: FixedClock, customer_id: int) -> int:
    view = await balance(SqlLedger(flow.db), customer_id=customer_id, clock=clock)
    return view.available


async def count(flow: Flow, table: object) -> int:
    async with flow.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def test_an_admin_adds_points_after_confirming_and_the_customer_is_told(
    flow: Flow, clock: FixedClock
) -> None:
    customer_id = await anna(flow, clock)
    [unknown] = sent(await flow.send(ADMIN, "/bonus 8 (999) 765-43-21 +100 late"))
    assert unknown.text == "There is no customer with this reference.\nNothing was changed."

    [preview] = sent(await flow.send(ADMIN, "/bonus 8 (999) 123-45-67 +100 late <b>delivery</b>"))
    text = plain(preview.text)
    assert text.startswith("<b>Bonus adjustment</b>\nAnna @anna_cat, +79991234567\n")
    assert "Add: 100 points\nAvailable: 300 points → 400 points\n" in text
    assert "Reason: late &lt;b&gt;delivery&lt;/b&gt;" in text
    assert [b.text for b in preview.reply_markup.inline_keyboard[0]] == ["✅ Confirm", "Cancel"]  # type: ignore[union-attr]
    assert await available(flow, clock, customer_id) == 300, "nothing before the confirmation"

    confirm = button(preview, 0)
    calls = await flow.press(ADMIN, confirm, message=flow.message_from(preview))
    assert answer_of(calls).text == "Done."
    [done] = edits(calls)
    assert plain(done.text) == (
        "Done: +100 points for Anna. Available now: 400 points. The customer is told."
    )
    assert await available(flow, clock, customer_id) == 400

    again = await flow.press(ADMIN, confirm, message=flow.message_from(preview))
    assert answer_of(again).text == (
        "This confirmation is no longer valid: it was used, cancelled or replaced."
    )
    assert await available(flow, clock, customer_id) == 400, "a second press writes nothing"
    async with flow.db.read() as conn:
        adjustments = (
            await conn.execute(
                select(
                    ledger_entries.c.amount, ledger_entries.c.reason, ledger_entries.c.actor_id
                ).where(ledger_entries.c.kind == "adjustment")
            )
        ).all()
        queued = (
            await conn.execute(select(outbox.c.kind, outbox.c.chat_id, outbox.c.payload))
        ).all()
    assert [tuple(row) for row in adjustments] == [(100, "late <b>delivery</b>", ADMIN.id)]
    [(kind, chat_id, payload)] = queued
    assert (kind, chat_id) == ("bonus_adjustment", ANNA.id)
    assert payload["template"] == "bonus_adjusted.html"
    [audit] = await SqlAuditLog(flow.db).for_customer(customer_id=customer_id)
    assert (audit.action, audit.actor_id, audit.details["points"]) == (
        "bonus_adjustment",
        ADMIN.id,
        100,
    )


async def test_a_removal_by_card_number_in_ukrainian_and_one_too_large_is_refused(
    flow: Flow, clock: FixedClock
) -> None:
    customer_id = await anna(flow, clock)
    card = card_number(customer_id)
    [refused] = sent(await flow.send(ADMIN_UK, f"/bonus {card} -500 помилка"))
    assert refused.text == (
        "Стільки списати не можна: у клієнта доступно лише 300.\nНічого не змінено."
    )
    [preview] = sent(await flow.send(ADMIN_UK, f"/bonus {card} -50 помилка каси"))
    assert "Списати: 50 балів\nДоступно: 300 балів → 250 балів" in plain(preview.text)
    calls = await flow.press(ADMIN_UK, button(preview, 0), message=flow.message_from(preview))
    assert plain(edits(calls)[0].text).startswith(
        "Готово: −50 балів для Anna. Доступно зараз: 250 балів."
    )
    assert await available(flow, clock, customer_id) == 250


async def test_bad_bonus_arguments_get_a_usage_answer_and_change_nothing(
    flow: Flow, clock: FixedClock
) -> None:
    customer_id = await anna(flow, clock)
    cases = {
        "/bonus": "Usage: /bonus CUSTOMER +N|-N REASON",
        "/bonus @anna_cat +100": "Please add a reason.",
        "/bonus @anna_cat 0 why": "0 points would change nothing.",
        "/bonus @anna_cat lots why": "The number of points must look like +100 or -50.",
        "/bonus @anna_cat +1.5 why": "The number of points must look like +100 or -50.",
        "/bonus @a! +100 why": "I cannot read this customer reference.",
        "/bonus 2900000000428 +100 why": "I cannot read this customer reference.",
        "/bonus @nobody_here +100 why": "There is no customer with this reference.",
    }
    for command, expected in cases.items():
        [answer] = sent(await flow.send(ADMIN, command))
        assert answer.text.startswith(expected), command
        assert answer.text.endswith("Nothing was changed."), command
        assert answer.reply_markup is None
    assert await available(flow, clock, customer_id) == 300
    assert await count(flow, outbox) == 0


async def test_a_cancelled_or_replaced_confirmation_changes_nothing(
    flow: Flow, clock: FixedClock
) -> None:
    customer_id = await anna(flow, clock)
    [first] = sent(await flow.send(ADMIN, "/bonus @anna_cat +10 first"))
    [second] = sent(await flow.send(ADMIN, "/bonus @anna_cat +20 second"))
    stale = await flow.press(ADMIN, button(first, 0), message=flow.message_from(first))
    assert answer_of(stale).text is not None
    assert "no longer valid" in (answer_of(stale).text or "")
    calls = await flow.press(ADMIN, button(second, 1), message=flow.message_from(second))
    assert edits(calls)[0].text == "Cancelled; nothing was changed."
    assert await available(flow, clock, customer_id) == 300
    assert await count(flow, outbox) == 0


async def test_non_admins_are_refused_and_nothing_changes(flow: Flow, clock: FixedClock) -> None:
    customer_id = await anna(flow, clock)
    for command in ("/bonus @anna_cat +100 gift", "/customer @anna_cat", "/gift 100 New Year"):
        [refusal] = sent(await flow.send(STRANGER, command))
        assert refusal.text == "This command is for the shop's admins."
    [preview] = sent(await flow.send(ADMIN, "/bonus @anna_cat +100 gift"))
    forged = await flow.press(STRANGER, button(preview, 0), message=flow.message_from(preview))
    assert answer_of(forged).text == "This is for the shop's admins."
    forged_gift = await flow.press(STRANGER, "gift:abc:1")
    assert answer_of(forged_gift).text == "This is for the shop's admins."
    assert await available(flow, clock, customer_id) == 300
    assert await count(flow, outbox) == 0
    assert await count(flow, gifts) == 0
    assert await SqlAuditLog(flow.db).for_customer(customer_id=customer_id) == []


async def test_customer_profile_shows_member_tier_orders_consents_and_audit(
    flow: Flow, clock: FixedClock
) -> None:
    customer_id = await anna(flow, clock)
    await order(flow.db, "A-1001", customer_id, 3, total=258_000)
    [preview] = sent(await flow.send(ADMIN, "/bonus tg:1001 +5 sorry"))
    await flow.press(ADMIN, button(preview, 0), message=flow.message_from(preview))
    await flow.send(ANNA, "/settings")
    await flow.press(ANNA, "set:reminder")
    ratings = SqlRatings(flow.db)
    rating_id, _ = await ratings.open_request(
        order_ref="A-1001",
        customer_id=customer_id,
        requested_at=clock.now(),
        expires_at=clock.now() + timedelta(days=7),
    )
    await ratings.save_score(rating_id=rating_id, score=2, now=clock.now())
    await ratings.save_comment(rating_id=rating_id, comment="cold <b>soup</b>")
    await ratings.raise_alert(
        rating_id=rating_id, customer_id=customer_id, snapshot={}, now=clock.now()
    )

    [profile] = sent(await flow.send(ADMIN, f"/customer {card_number(customer_id)}"))
    text = plain(profile.text)
    assert text.startswith("<b>Anna</b> @anna_cat\nPhone: +79991234567\n")
    assert "Card: 2 900000 00001" in text
    assert "Tier: Bronze, cashback 5%" in text
    assert "Points: 305 points available, 0 points pending" in text
    assert "Offers: yes" in text
    assert "Switched off: reminders" in text
    assert "A-1001 — RUB 2,580.00, delivered" in text
    assert "points adjusted by +5 points, reason: sorry (by Telegram id 9001)" in text
    assert "A-1001 ★★☆☆☆ «cold &lt;b&gt;soup&lt;/b&gt;» — complaint open" in text

    [ru_admin_view] = sent(await flow.send(ADMIN_UK, "/customer @anna_cat"))
    assert "Вимкнено: нагадування" in ru_admin_view.text
    [usage] = sent(await flow.send(ADMIN, "/customer"))
    assert usage.text.startswith("Usage: /customer CUSTOMER")


async def test_an_admin_gives_a_holiday_gift_to_one_tier_after_confirming(
    flow: Flow, clock: FixedClock
) -> None:
    bronze = await anna(flow, clock, points=10)
    silver = await member(flow.db, 2001)
    await points_ledger(flow.db, clock).accrue(customer_id=silver, order_id="S-1", total=1_000_000)
    [preview] = sent(await flow.send(ADMIN, "/gift 100 Happy <New> Year! tier:silver"))
    text = plain(preview.text)
    assert text.startswith("<b>Holiday gift</b>\nReason: Happy &lt;New&gt; Year!\n")
    assert "To members of the Silver tier" in text
    assert "Silver: 1 member × 150 points" in text
    assert "In total: 1 recipient, 150 points." in text
    assert await count(flow, gifts) == 0, "nothing before the confirmation"

    confirm = button(preview, 0)
    calls = await flow.press(ADMIN, confirm, message=flow.message_from(preview))
    assert edits(calls)[0].text == (
        "Gift #1 is on its way to 1 recipient. I will write when everyone has it."
    )
    again = await flow.press(ADMIN, confirm, message=flow.message_from(preview))
    assert "no longer valid" in (answer_of(again).text or "")
    assert await count(flow, gifts) == 1
    async with flow.db.read() as conn:
        [(action, details)] = (
            await conn.execute(select(audit_log.c.action, audit_log.c.details))
        ).all()
    assert action == "gift"
    assert (details["recipients"], details["points"], details["tier"]) == (1, 150, "silver")

    jobs = services_for(flow.db, rules=Rules(), clock=clock, zone=MOSCOW).account_jobs
    assert await jobs.gifts.tick() == 1
    assert await available(flow, clock, bronze) == 10
    view = await balance(SqlLedger(flow.db), customer_id=silver, clock=clock)
    assert view.available == 150


async def test_bad_gift_arguments_are_refused_and_change_nothing(flow: Flow) -> None:
    cases = {
        "/gift": "Usage: /gift AMOUNT REASON [tier:NAME]",
        "/gift 0 New Year": "0 points would change nothing.",
        "/gift -5 New Year": "The amount must be a whole number of points, e.g. 100.",
        "/gift 100": "Please add a reason.",
        "/gift 100 New Year tier:iron": "There is no tier iron. Tiers: bronze, silver, gold",
    }
    for command, expected in cases.items():
        [answer] = sent(await flow.send(ADMIN, command))
        assert answer.text.startswith(expected), command
        assert answer.text.endswith("Nothing was changed."), command
    [nobody] = sent(await flow.send(ADMIN, "/gift 100 New Year tier:diamond"))
    assert "Nobody would get it: there are no such members." in nobody.text
    assert nobody.reply_markup is None
    assert await count(flow, gifts) == 0


async def test_i15_9_the_bonus_preview_shows_what_pays_off_the_debt(
    flow: Flow, clock: FixedClock
) -> None:
    """A customer who owes points for a refund: added points pay the debt off first, and the
    preview says so instead of promising them as available."""
    customer_id = await anna(flow, clock, points=50)
    ledger = points_ledger(flow.db, clock)
    await ledger.accrue(customer_id=customer_id, order_id="A-1", total=200_000)  # +100
    clock.advance(timedelta(days=15))
    await ledger.redeem(customer_id=customer_id, order_id="A-2", order_total=100_000, points=150)
    refund = await ledger.cancel_order(customer_id=customer_id, order_id="A-1", reason="refunded")
    assert refund.owed_points == 100

    [preview] = sent(await flow.send(ADMIN, "/bonus 8 (999) 123-45-67 +10 sorry"))
    text = plain(preview.text)
    assert (
        "Add: 10 points\n"
        "Of these, to pay off the debt: 10 points; to the available points: 0 points\n"
        "Debt for refunded orders: 100 points → 90 points\n"
        "Available: 0 points → 0 points\n"
    ) in text
    calls = await flow.press(ADMIN, button(preview, 0), message=flow.message_from(preview))
    [done] = edits(calls)
    assert plain(done.text).startswith("Done: +10 points for Anna. Available now: 0 points.")
    assert await available(flow, clock, customer_id) == 0
    view = await balance(SqlLedger(flow.db), customer_id=customer_id, clock=clock)
    assert view.debt == 90


async def test_i15_13_a_gift_speaks_each_member_s_language(
    flow: Flow, clock: FixedClock, renderer: Renderer
) -> None:
    anna_ru = await anna(flow, clock, points=10)
    taras = await member(flow.db, 2002)
    eve = await member(flow.db, 2003)
    async with flow.db.transaction() as conn:
        await conn.execute(update(customers).values(marketing_opt_in=True))
        await conn.execute(update(customers).where(customers.c.id == taras).values(locale="uk"))
        await conn.execute(update(customers).where(customers.c.id == eve).values(locale="en"))
    command = "/gift 100 Happy New Year!\nru: С Новым годом!\nuk: З Новим роком!"
    [preview] = sent(await flow.send(ADMIN, command))
    text = plain(preview.text)
    assert "Reason: Happy New Year!\nru: С Новым годом!\nuk: З Новим роком!\n" in text
    await flow.press(ADMIN, button(preview, 0), message=flow.message_from(preview))
    jobs = services_for(flow.db, rules=Rules(), clock=clock, zone=MOSCOW).account_jobs
    assert await jobs.gifts.tick() == 3
    async with flow.db.read() as conn:
        rows = (
            await conn.execute(
                select(outbox.c.customer_id, outbox.c.payload).where(outbox.c.kind == "gift")
            )
        ).all()
    wanted = {anna_ru: ("ru", "С Новым годом!"), taras: ("uk", "З Новим роком!")}
    wanted[eve] = ("en", "Happy New Year!")
    shown = {}
    for customer_id, payload in rows:
        locale, _words = wanted[customer_id]
        shown[customer_id] = renderer.render(
            payload["template"], locale=locale, **payload["context"]
        ).splitlines()[1]
    assert shown == {customer_id: words for customer_id, (_, words) in wanted.items()}


async def test_i15_13_available_points_and_money_are_written_the_local_way(
    flow: Flow, clock: FixedClock
) -> None:
    customer_id = await anna(flow, clock, points=1029)
    await order(flow.db, "A-1001", customer_id, 3, total=1_000_000)
    [preview] = sent(await flow.send(ADMIN, "/bonus tg:1001 +100 sorry"))
    calls = await flow.press(ADMIN, button(preview, 0), message=flow.message_from(preview))
    assert "Available now: 1,129 points." in plain(edits(calls)[0].text)
    [profile] = sent(await flow.send(ADMIN, "/customer tg:1001"))
    assert "A-1001 — RUB 10,000.00, delivered" in plain(profile.text)
    assert "RUB10" not in plain(profile.text)
