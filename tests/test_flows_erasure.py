"""Erasure through the real Dispatcher: what a returning customer gets, the points forfeited,
and what the database holds afterwards (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiogram.methods import EditMessageText, SendDocument, SendMessage
from aiogram.types import BufferedInputFile, Message
from sqlalchemy import select, update

from bot.cli import export_customer
from bot.delivery.sender import OutboxSender
from bot.settings import Settings
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.ledger import PointsLedger
from scenarios.orders import OrderDesk, RawCustomer, RawItem, RawOrder
from scenarios.referrals import Referrals
from scenarios.rules import Rules, Shop
from scenarios.tiers import TierLadder
from storage.customers import CustomerRecord, SqlCustomers
from storage.database import Database
from storage.ledger import SqlLedger
from storage.referrals import SqlReferrals
from storage.schema import erased_identities, ledger_entries, metadata, orders, outbox
from tests.support.databases import sqlite_database
from tests.support.flow import Flow, build_flow
from tests.support.services import services_for
from tests.support.signup import contact, entries, inline_labels, photos, texts
from tests.support.updates import TgUser

ANNA = TgUser(918273645, first_name="Annabel", username="annabel_k", language_code="en")
OLHA = TgUser(918273646, first_name="Ольга", language_code="uk")
IVAN = TgUser(918273647, first_name="Иван", language_code="ru")
ANNA_PHONE = "79991234567"
IVAN_PHONE = "79997654321"
RULES = Rules(shop=Shop(name="Lapki"))
ZONE = ZoneInfo("Europe/Moscow")


@pytest.fixture
def flow(db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    return build_flow(db=db, clock=clock, i18n=i18n, renderer=renderer, rules=RULES)


def order_desk(flow: Flow, clock: FixedClock) -> OrderDesk:
    """The shop's API side over the same database, with every follower (referrals too)."""
    return services_for(flow.db, rules=RULES, clock=clock, zone=ZONE).order_desk


def referrals(flow: Flow, clock: FixedClock) -> Referrals:
    return services_for(flow.db, rules=RULES, clock=clock, zone=ZONE).referrals


async def report(desk: OrderDesk, ref: str, user: TgUser, total: str = "1500.00") -> None:
    await desk.report(
        RawOrder(
            order_id=ref,
            customer=RawCustomer(telegram_id=user.id),
            items=[RawItem(sku="CAT", name="Cat food", quantity=1, price=total)],
            total=total,
            currency="RUB",
            status="paid",
        )
    )


async def join(flow: Flow, user: TgUser, phone: str, *, start: str = "/start") -> list[str]:
    """/start (with a payload), accept, share the phone, skip the birthday: what was said."""
    [welcome] = [c for c in await flow.send(user, start) if isinstance(c, SendMessage)]
    await flow.press(user, "join:accept", message=flow.message_from(welcome))
    calls = await flow.feed(contact(flow.updates, user, phone))
    said = texts(calls)
    question = [c for c in calls if isinstance(c, SendMessage)][-1]
    calls = await flow.press(user, "bday:skip", message=flow.message_from(question))
    return said + [photo.caption or "" for photo in photos(calls)]


async def erase(flow: Flow, user: TgUser) -> str:
    [ask] = [c for c in await flow.send(user, "/delete_me") if isinstance(c, SendMessage)]
    await flow.press(user, "erase:1", message=flow.message_from(ask))
    return ask.text


async def member(flow: Flow, user: TgUser) -> CustomerRecord:
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=user.id)
    assert record is not None
    return record


async def invite_code(flow: Flow, user: TgUser) -> str:
    [text] = texts(await flow.send(user, "/invite"))
    return text.split("\n")[1].rsplit("=", 1)[1]


@pytest.mark.parametrize(
    ("again", "phone"),
    [(ANNA, ANNA_PHONE), (ANNA, "79990001122"), (OLHA, ANNA_PHONE)],
    ids=["same-phone-same-telegram", "new-phone-same-telegram", "same-phone-new-telegram"],
)
async def test_i15_1_an_erased_customer_who_rejoins_gets_no_second_welcome_and_no_referral(
    flow: Flow, clock: FixedClock, again: TgUser, phone: str
) -> None:
    desk = order_desk(flow, clock)
    await join(flow, IVAN, IVAN_PHONE)
    ivan = await member(flow, IVAN)
    code = await invite_code(flow, IVAN)
    said = await join(flow, ANNA, ANNA_PHONE)
    assert any("100 points are already yours" in text for text in said)
    await report(desk, "A-1", ANNA)
    await erase(flow, ANNA)

    said = await join(flow, again, phone, start=f"/start {code}")
    back = await member(flow, again)
    assert back.joined_at is not None
    assert not any("100" in text and "already" in text for text in said), said
    assert [e for e in await entries(flow.db, back.id) if e[0] == "welcome"] == []
    assert await SqlReferrals(flow.db).of_referee(referee_id=back.id) is None
    refusals = await SqlReferrals(flow.db).refusals()
    assert [(r.reason, r.referrer_id, r.referee_id) for r in refusals] == [
        ("returning_customer", ivan.id, back.id)
    ]
    # A qualifying order, well past the hold window: nobody is rewarded.
    await report(desk, "A-2", again, total="5000.00")
    clock.advance(timedelta(days=30))
    assert await referrals(flow, clock).reward_due() == 0
    for customer_id in (ivan.id, back.id):
        assert [e for e in await entries(flow.db, customer_id) if e[0] == "referral"] == []


async def test_i15_1_a_new_customer_still_gets_the_welcome_and_the_referral(
    flow: Flow, clock: FixedClock
) -> None:
    """The check tells returning customers from new ones: an unrelated newcomer is referred."""
    await join(flow, IVAN, IVAN_PHONE)
    code = await invite_code(flow, IVAN)
    await join(flow, ANNA, ANNA_PHONE)
    await erase(flow, ANNA)
    said = await join(flow, OLHA, "380501234567", start=f"/start {code}")
    assert any("100 балів" in text for text in said), said
    olha = await member(flow, OLHA)
    assert [e[0] for e in await entries(flow.db, olha.id)] == ["welcome"]
    referral = await SqlReferrals(flow.db).of_referee(referee_id=olha.id)
    assert referral is not None and referral.state == "joined"


@pytest.mark.parametrize(
    ("user", "lost"),
    [
        (ANNA, "your points are lost"),
        (OLHA, "бали згорять"),
        (IVAN, "бонусы сгорят"),
    ],
)
async def test_i15_4_erasure_forfeits_the_points_the_customer_was_told_are_lost(
    flow: Flow, clock: FixedClock, user: TgUser, lost: str
) -> None:
    desk = order_desk(flow, clock)
    await join(flow, user, ANNA_PHONE)
    await report(desk, "A-1", user, total="2000.00")  # 100 pending points on top of 100
    record = await member(flow, user)
    ledger = SqlLedger(flow.db)
    assert (await ledger.reconcile(customer_id=record.id)).lots_remaining == 200

    [ask] = [c for c in await flow.send(user, "/delete_me") if isinstance(c, SendMessage)]
    assert lost in ask.text
    assert len(inline_labels(ask)) == 2
    await flow.press(user, "erase:1", message=flow.message_from(ask))

    [forfeiture, *_] = await ledger.history(customer_id=record.id, limit=10)
    assert (forfeiture.kind, forfeiture.amount, forfeiture.reason) == (
        "forfeiture",
        -200,
        "account erased",
    )
    check = await ledger.reconcile(customer_id=record.id)
    assert check.consistent
    assert (check.entries_sum, check.cached_balance, check.lots_remaining) == (0, 0, 0)
    # Nothing is left to expire or to warn about later.
    clock.advance(timedelta(days=400))
    ladder = TierLadder.from_rules(RULES.bonus, currency="RUB")
    assert (
        await PointsLedger(ledger, bonus=RULES.bonus, ladder=ladder, clock=clock).expire_due() == 0
    )


# ---- #18.1: what the database holds after an erasure --------------------------------------

STAFF_CHAT = -1001234
ADMIN = TgUser(9001, first_name="Max", language_code="en")
COMMENT = "Torn bag, the courier was rude"


@pytest.fixture
def staffed(db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    return build_flow(
        db=db,
        clock=clock,
        i18n=i18n,
        renderer=renderer,
        rules=RULES,
        admin_ids=(ADMIN.id,),
        staff_chat_id=STAFF_CHAT,
    )


def first_button(method: Any, label: str | None = None) -> str:
    for row in method.reply_markup.inline_keyboard:
        for button in row:
            if label is None or button.text == label:
                return str(button.callback_data)
    raise AssertionError(f"no button {label!r}")


async def a_customer_with_a_history(flow: Flow, clock: FixedClock) -> CustomerRecord:
    """Joined with a birthday, ordered, rated 2 with a comment (a staff alert), got points from
    an admin whose reason names them, and has messages sent and queued."""
    [welcome] = [c for c in await flow.send(ANNA, "/start") if isinstance(c, SendMessage)]
    await flow.press(ANNA, "join:accept", message=flow.message_from(welcome))
    await flow.feed(contact(flow.updates, ANNA, ANNA_PHONE))
    await flow.send(ANNA, "31.12.1990")
    desk = order_desk(flow, clock)
    await desk.report(
        RawOrder(
            order_id="A-1",
            customer=RawCustomer(telegram_id=ANNA.id, phone="+7 999 123-45-67"),
            items=[RawItem(sku="CAT", name="Cat food", quantity=1, price="1500.00")],
            total="1500.00",
            currency="RUB",
            status="paid",
        )
    )
    await desk.change_status(order_id="A-1", status="delivered")
    record = await member(flow, ANNA)
    async with flow.db.read() as conn:
        request = (
            await conn.execute(select(outbox).where(outbox.c.dedupe_key == "rating-request:A-1"))
        ).one()
    stars = Message.model_validate(
        {
            "message_id": 600,
            "date": 0,
            "chat": {"id": ANNA.id, "type": "private"},
            "text": "How was your order A-1?",
            "reply_markup": {"inline_keyboard": request.payload["buttons"]},
        }
    )
    await flow.press(ANNA, first_button(stars, "★2"), message=stars)
    await flow.send(ANNA, COMMENT)
    [preview] = [
        c
        for c in await flow.send(
            ADMIN, "/bonus +79991234567 +50 sorry Annabel (@annabel_k), called 8 999 123 45 67"
        )
        if isinstance(c, SendMessage)
    ]
    await flow.press(ADMIN, first_button(preview), message=flow.message_from(preview))
    async with flow.db.transaction() as conn:  # what was queued went out, but one message
        await conn.execute(
            update(outbox)
            .where(outbox.c.dedupe_key != "rating-request:A-1")
            .values(state="sent", telegram_message_id=777)
        )
    return record


def leaks(value: object, *, telegram_id: int, needles: list[str]) -> list[str]:
    """Which of the person's data a stored value holds (phones in any spelling)."""
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, int):
        return ["telegram id"] if value == telegram_id else []
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    digits = re.sub(r"[\s\-().+]", "", text)
    found = [needle for needle in needles if needle.lower() in text.lower()]
    if "9991234567" in digits:
        found.append("phone")
    if str(telegram_id) in digits:
        found.append("telegram id")
    return found


async def test_i18_1_after_erasure_no_table_holds_the_customers_data(
    staffed: Flow, clock: FixedClock
) -> None:
    flow = staffed
    record = await a_customer_with_a_history(flow, clock)
    needles = ["Annabel", "annabel_k", COMMENT, "1990"]
    before: list[str] = []
    async with flow.db.read() as conn:
        for table in metadata.sorted_tables:
            for row in (await conn.execute(select(table))).all():
                for column, value in row._mapping.items():
                    for leak in leaks(value, telegram_id=ANNA.id, needles=needles):
                        before.append(f"{table.name}.{column}: {leak}")
    # The scenario does put the data everywhere the test then looks.
    for where in (
        "customers.phone: phone",
        "orders.phone: phone",
        "ratings.comment: " + COMMENT,
        "ledger_entries.reason: Annabel",
        "audit_log.details: annabel_k",
        "outbox.chat_id: telegram id",
    ):
        assert where in before, before

    await erase(flow, ANNA)

    found: list[str] = []
    async with flow.db.read() as conn:
        for table in metadata.sorted_tables:
            # The keyed hashes, by design; and the bot's own random key (a hex string may
            # happen to hold a birth year).
            if table.name in ("erased_identities", "app_secrets"):
                continue
            for row in (await conn.execute(select(table))).all():
                for column, value in row._mapping.items():
                    for leak in leaks(value, telegram_id=ANNA.id, needles=needles):
                        found.append(f"{table.name}.{column} = {value!r}: {leak}")
    assert found == []

    # What the admin wrote stays readable, without the person in it.
    async with flow.db.read() as conn:
        reasons = (
            (
                await conn.execute(
                    select(ledger_entries.c.reason).where(
                        ledger_entries.c.customer_id == record.id,
                        ledger_entries.c.kind == "adjustment",
                    )
                )
            )
            .scalars()
            .all()
        )
    assert reasons == ["sorry [erased] ([erased]), called [erased]"]


# ---- #18.2: what the files hold after an erasure ---------------------------------------------


async def test_after_erasure_no_fingerprint_of_an_order_that_named_the_phone_is_kept(
    flow: Flow, clock: FixedClock
) -> None:
    """A plain sha256 of a body that held the phone gives the phone back to whoever tries every
    number against it with the order's stored lines; the shop's replay still is one."""
    desk = order_desk(flow, clock)
    await join(flow, ANNA, ANNA_PHONE)
    order = RawOrder(
        order_id="A-7",
        customer=RawCustomer(phone="+7 999 123-45-67"),
        items=[RawItem(sku="CAT", name="Cat food", quantity=1, price="1500.00")],
        total="1500.00",
        currency="RUB",
        status="paid",
    )
    assert (await desk.report(order)).created
    record = await member(flow, ANNA)
    async with flow.db.read() as conn:
        [kept] = (await conn.execute(select(orders.c.fingerprint))).scalars().all()
    assert kept is not None and len(kept) == 64

    await erase(flow, ANNA)

    async with flow.db.read() as conn:
        for table in metadata.sorted_tables:
            for row in (await conn.execute(select(table))).all():
                assert kept not in [str(value) for value in row], table.name
    again = await desk.report(order)
    assert not again.created  # the first answer again; nothing is applied twice
    assert [e[0] for e in await entries(flow.db, record.id)] == [
        "welcome",
        "accrual",
        "forfeiture",
    ]


async def test_i18_2_a_byte_search_of_the_sqlite_files_finds_nothing_after_erasure(
    tmp_path: Path, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    path = tmp_path / "bot.sqlite3"
    async with sqlite_database(path) as db:
        flow = build_flow(
            db=db,
            clock=clock,
            i18n=i18n,
            renderer=renderer,
            rules=RULES,
            admin_ids=(ADMIN.id,),
            staff_chat_id=STAFF_CHAT,
        )
        await a_customer_with_a_history(flow, clock)
        await db.settle()
        files = [path, path.with_name(path.name + "-wal")]
        needles = [b"Annabel", b"annabel_k", ANNA_PHONE.encode(), COMMENT.encode()]
        held = b"".join(f.read_bytes() for f in files if f.exists())
        assert all(needle in held for needle in needles)

        await erase(flow, ANNA)
        await db.settle()
        for file in files:
            content = file.read_bytes() if file.exists() else b""
            assert [n for n in needles if n in content] == [], file.name
        # The bot goes on writing as before.
        await flow.send(OLHA, "/start")
        await db.settle()


# ---- #18.3: the staff chat's messages about them ----------------------------------------------


async def test_i18_3_erasure_edits_the_staff_alert_through_the_outbox(
    staffed: Flow, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    flow = staffed
    await a_customer_with_a_history(flow, clock)  # the alert went out as message 777
    async with flow.db.read() as conn:
        [alert] = (await conn.execute(select(outbox).where(outbox.c.kind == "staff_alert"))).all()
    before = leaks(alert.payload, telegram_id=ANNA.id, needles=["Annabel", "annabel_k"])
    assert "Annabel" in before and "phone" in before

    start = len(flow.session.requests)
    await erase(flow, ANNA)
    calls = flow.session.requests[start:]
    assert not any(getattr(c, "chat_id", None) == STAFF_CHAT for c in calls), "not in the update"
    async with flow.db.read() as conn:
        [edit] = (
            await conn.execute(select(outbox).where(outbox.c.dedupe_key == "staff-alert:1:erased"))
        ).all()
    assert (edit.chat_id, edit.category, edit.state) == (STAFF_CHAT, "transactional", "pending")
    assert edit.payload["edit_message_id"] == 777
    assert leaks(edit.payload, telegram_id=ANNA.id, needles=["Annabel", "annabel_k"]) == []

    sender = OutboxSender(
        db=flow.db,
        bot=flow.bot,
        renderer=renderer,
        i18n=i18n,
        rules=RULES,
        clock=clock,
        shop_zone=ZONE,
        worker_id="test",
    )
    start = len(flow.session.requests)
    await sender.drain_until_empty()
    [edited] = [c for c in flow.session.requests[start:] if isinstance(c, EditMessageText)]
    assert (edited.chat_id, edited.message_id) == (STAFF_CHAT, 777)
    text = str(edited.text)
    assert "Negative rating of order A-1" in text
    assert "The customer has deleted their personal data." in text
    assert "Annabel" not in text and "999" not in text
    assert edited.reply_markup is not None
    labels = [b.text for row in edited.reply_markup.inline_keyboard for b in row]
    assert labels == ["Take", "Resolved"], "nothing can reach them: no Compensate, no Reply"
    async with flow.db.read() as conn:
        state = (
            await conn.execute(
                select(outbox.c.state).where(outbox.c.dedupe_key == "staff-alert:1:erased")
            )
        ).scalar_one()
    assert state == "sent"


# ---- #18.6: a copy of my data ------------------------------------------------------------------


async def test_i18_6_my_data_sends_a_json_file_labelled_in_the_customers_language(
    staffed: Flow, clock: FixedClock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = staffed
    record = await a_customer_with_a_history(flow, clock)
    calls = await flow.send(ANNA, "/my_data")
    [document] = [c for c in calls if isinstance(c, SendDocument)]
    assert document.caption is not None and document.caption.startswith("A copy of everything")
    upload = document.document
    assert isinstance(upload, BufferedInputFile) and upload.filename == "my-data.json"
    mine = json.loads(upload.data)["My data"]
    assert mine["Profile"]["Phone"] == "+79991234567"
    assert mine["Profile"]["Name"] == "Annabel"
    assert mine["Profile"]["Birthday: year"] == 1990
    assert mine["Consents"]["Program terms accepted"] == clock.now().isoformat()
    assert [o["Order"] for o in mine["Orders"]] == ["A-1"]
    assert mine["Orders"][0]["Items"][0]["Product code"] == "CAT"
    assert [e["Kind"] for e in mine["Points history"]] == ["welcome", "accrual", "adjustment"]
    assert mine["Ratings and comments"] == [
        {"Order": "A-1", "Score": 2, "Comment": COMMENT, "Rated": clock.now().isoformat()}
    ]
    assert "Reminders" in mine and mine["Messages kept"]

    # In Russian for a Russian-speaking customer.
    await join(flow, IVAN, IVAN_PHONE)
    [ru] = [c for c in await flow.send(IVAN, "/my_data") if isinstance(c, SendDocument)]
    assert isinstance(ru.document, BufferedInputFile)
    theirs = json.loads(ru.document.data)["Мои данные"]
    assert theirs["Профиль"]["Телефон"] == "+79997654321"
    assert theirs["История бонусов"][0]["Вид"] == "welcome"

    # The admin's command prints the same document.
    if not flow.db.is_sqlite:
        return
    settings = Settings(database_url=flow.db.url, bot_token=None, default_locale="en")
    assert await export_customer(settings, RULES, "+7 999 123-45-67") == 0
    assert json.loads(capsys.readouterr().out) == json.loads(upload.data)
    assert await export_customer(settings, RULES, "+7 999 000-00-00") == 1
    assert "no customer matches" in capsys.readouterr().err
    assert record.id == mine["Profile"]["Customer number"]


async def ivan_invites_anna_who_orders(flow: Flow, clock: FixedClock) -> tuple[int, int]:
    """Ivan's friend Anna joins through his link and her first order qualifies the referral:
    (Ivan's id, Anna's id)."""
    desk = order_desk(flow, clock)
    await join(flow, IVAN, IVAN_PHONE)
    ivan = await member(flow, IVAN)
    await join(flow, ANNA, ANNA_PHONE, start=f"/start {await invite_code(flow, IVAN)}")
    anna = await member(flow, ANNA)
    await report(desk, "A-1", ANNA, total="5000.00")
    referral = await SqlReferrals(flow.db).of_referee(referee_id=anna.id)
    assert referral is not None and referral.state == "qualified"
    return ivan.id, anna.id


async def test_i15_4_a_friend_who_erases_before_the_reward_earns_nobody_points(
    flow: Flow, clock: FixedClock
) -> None:
    ivan_id, anna_id = await ivan_invites_anna_who_orders(flow, clock)
    await erase(flow, ANNA)
    clock.advance(timedelta(days=30))
    assert await referrals(flow, clock).reward_due() == 0
    for customer_id in (ivan_id, anna_id):
        assert [e for e in await entries(flow.db, customer_id) if e[0] == "referral"] == []
    referral = await SqlReferrals(flow.db).of_referee(referee_id=anna_id)
    assert referral is not None and (referral.state, referral.reason) == ("refused", "erased")


async def test_a_referrer_who_erases_before_the_reward_earns_nothing_and_the_friend_still_does(
    flow: Flow, clock: FixedClock
) -> None:
    """Points paid into an erased account would be a liability nobody can ever spend."""
    ivan_id, anna_id = await ivan_invites_anna_who_orders(flow, clock)
    await erase(flow, IVAN)
    clock.advance(timedelta(days=30))

    assert await referrals(flow, clock).reward_due() == 1

    assert [e for e in await entries(flow.db, ivan_id) if e[0] == "referral"] == []
    assert (await SqlLedger(flow.db).reconcile(customer_id=ivan_id)).entries_sum == 0
    assert [(e[0], e[2]) for e in await entries(flow.db, anna_id) if e[0] == "referral"] == [
        ("referral", 200)
    ]
    referral = await SqlReferrals(flow.db).of_referee(referee_id=anna_id)
    assert referral is not None
    assert (referral.state, referral.reason) == ("rewarded", "referrer_left")
    refusals = await SqlReferrals(flow.db).refusals()
    assert [(r.reason, r.referrer_id, r.referee_id) for r in refusals] == [
        ("referrer_left", ivan_id, anna_id)
    ]


async def test_i15_1_someone_who_never_joined_leaves_no_hash(flow: Flow) -> None:
    await flow.send(OLHA, "/start")
    await erase(flow, OLHA)
    async with flow.db.read() as conn:
        assert (await conn.execute(select(erased_identities))).all() == []
    said = await join(flow, OLHA, "380501234567")
    assert any("100 балів" in text for text in said), said
