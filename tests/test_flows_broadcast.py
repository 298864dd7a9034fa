"""The /broadcast wizard through the real Dispatcher, its controls, progress and report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage
from sqlalchemy import select

from bot.broadcast_progress import BroadcastProgress
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.rules import Rules
from storage.broadcasts import BroadcastRecord, SqlBroadcasts
from storage.customers import SqlCustomers
from storage.database import Database
from storage.orders import NewOrder, OrderLine, SqlOrders
from storage.outbox import Sent, SqlOutbox
from storage.schema import broadcast_recipients
from tests.support.flow import Flow, build_flow
from tests.support.seed import complaint, member
from tests.support.updates import TgUser

ADMIN = TgUser(9001, first_name="Olga", language_code="en")
STRANGER = TgUser(1001, first_name="Anna", language_code="ru")


@pytest.fixture
def flow(sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    return build_flow(
        db=sqlite_db, clock=clock, i18n=i18n, renderer=renderer, admin_ids=(ADMIN.id,)
    )


def sent(calls: Sequence[object]) -> list[SendMessage]:
    return [call for call in calls if isinstance(call, SendMessage)]


def answer_of(calls: Sequence[object]) -> AnswerCallbackQuery:
    return next(call for call in calls if isinstance(call, AnswerCallbackQuery))


async def test_an_admin_sends_a_broadcast_through_the_wizard(flow: Flow) -> None:
    for telegram_id in (5001, 5002, 5003):
        await member(flow.db, telegram_id)
    await member(flow.db, 5004, opt_in=False)

    [menu] = sent(await flow.send(ADMIN, "/broadcast"))
    assert menu.text.startswith("New broadcast. Who should receive it?")
    labels = [row[0].text for row in menu.reply_markup.inline_keyboard]  # type: ignore[union-attr]
    assert labels[:3] == ["All members", "By tier", "New (first order within 30 days)"]

    [audience] = sent(await flow.press(ADMIN, "bseg:all", message=flow.message_from(menu)))
    assert "Segment: All members" in audience.text
    assert "4 members in it;\n3 can receive a broadcast now" in audience.text

    [ask_button] = sent(await flow.send(ADMIN, "<b>Sale</b> -20% on cat food"))
    assert ask_button.text == "Add one link button? Send it as: Label | https://link"
    [bad] = sent(await flow.send(ADMIN, "Shop"))
    assert bad.text == "Please send the button as: Label | https://link"
    [extras] = sent(await flow.send(ADMIN, "Shop | https://lapki.example/sale"))
    options = [row[0].text for row in extras.reply_markup.inline_keyboard]  # type: ignore[union-attr]
    assert options[-1] == "Preview"

    preview = sent(await flow.press(ADMIN, "bstep:preview"))
    assert [m.text for m in preview[:2]] == ["⬇️ Variant A", "<b>Sale</b> -20% on cat food"]
    button = preview[1].reply_markup.inline_keyboard[0][0]  # type: ignore[union-attr]
    assert (button.text, button.url) == ("Shop", "https://lapki.example/sale")
    assert preview[2].text == "This is exactly what customers will see. Recipients now: 3."

    [queued] = sent(await flow.press(ADMIN, "bstep:send"))
    assert queued.text == "Broadcast #1 is queued for 3 recipients."
    outbox = SqlOutbox(flow.db)
    assert await outbox.counts() == {"pending": 3}

    # Someone else cannot stop it, by command or by button.
    [refusal] = sent(await flow.send(STRANGER, "/broadcast"))
    assert refusal.text == "Эта команда только для администраторов магазина."
    forged = answer_of(await flow.press(STRANGER, "bctl:pause:1"))
    assert forged.text == "Это только для администраторов магазина."
    assert await outbox.counts() == {"pending": 3}

    paused = answer_of(await flow.press(ADMIN, "bctl:pause:1", message=flow.message_from(queued)))
    assert paused.text == "Paused."
    assert await outbox.counts() == {"held": 3}
    again = answer_of(await flow.press(ADMIN, "bctl:pause:1"))
    assert again.text == "This broadcast can no longer be changed."
    await flow.press(ADMIN, "bctl:resume:1")
    assert await outbox.counts() == {"pending": 3}


async def test_i16_7_the_recipient_count_leaves_out_open_complaints(flow: Flow) -> None:
    for telegram_id in (5101, 5102):
        await member(flow.db, telegram_id)
    unhappy = await member(flow.db, 5103)
    await complaint(flow.db, unhappy)  # marketing is skipped for them until staff resolve it
    settled = await member(flow.db, 5104)
    await complaint(flow.db, settled, state="resolved")

    [menu] = sent(await flow.send(ADMIN, "/broadcast"))
    [audience] = sent(await flow.press(ADMIN, "bseg:all", message=flow.message_from(menu)))
    assert "4 members in it;\n3 can receive a broadcast now" in audience.text
    assert "no open complaint" in audience.text
    await flow.send(ADMIN, "Sale")
    await flow.press(ADMIN, "bstep:skip_button")
    preview = sent(await flow.press(ADMIN, "bstep:preview"))
    assert preview[-1].text == "This is exactly what customers will see. Recipients now: 3."
    [queued] = sent(await flow.press(ADMIN, "bstep:send"))
    assert queued.text == "Broadcast #1 is queued for 3 recipients."
    assert await SqlOutbox(flow.db).counts() == {"pending": 3}


async def test_i16_9_the_wizard_names_tiers_from_the_catalogs(flow: Flow) -> None:
    admin_uk = TgUser(ADMIN.id, first_name="Olga", language_code="uk")
    await member(flow.db, 5201)
    [menu] = sent(await flow.send(admin_uk, "/broadcast"))
    [ask] = sent(await flow.press(admin_uk, "bseg:tier", message=flow.message_from(menu)))
    assert ask.text == "Який рівень?"
    buttons = [b for row in ask.reply_markup.inline_keyboard for b in row]  # type: ignore[union-attr]
    assert [b.text for b in buttons] == ["Бронза", "Срібло", "Золото", "Платина", "Діамант"]
    assert buttons[1].callback_data == "btier:silver"
    [audience] = sent(await flow.press(admin_uk, "btier:silver", message=flow.message_from(ask)))
    assert audience.text.startswith("Сегмент: За рівнем: Срібло\n")


async def test_a_bad_segment_value_is_refused_and_asked_again(flow: Flow) -> None:
    [menu] = sent(await flow.send(ADMIN, "/broadcast"))
    [ask] = sent(await flow.press(ADMIN, "bseg:inactive", message=flow.message_from(menu)))
    assert ask.text == "Send the number of days without an order, e.g. 60."
    [refused] = sent(await flow.send(ADMIN, "soon"))
    assert refused.text == "That does not fit this segment; please try again."
    [audience] = sent(await flow.send(ADMIN, "60"))
    assert "Segment: No order for N days: 60" in audience.text
    stale = answer_of(await flow.press(ADMIN, "bseg:galaxy"))
    assert stale.text == "This button is out of date."


def progress_desk(
    flow: Flow, clock: FixedClock, renderer: Renderer, i18n: CatalogI18n
) -> BroadcastProgress:
    return BroadcastProgress(
        broadcasts=SqlBroadcasts(flow.db),
        customers=SqlCustomers(flow.db),
        bot=flow.bot,
        renderer=renderer,
        i18n=i18n,
        rules=Rules(),
        clock=clock,
    )


async def deliver_all(flow: Flow, clock: FixedClock) -> None:
    outbox = SqlOutbox(flow.db)
    rows = await outbox.claim_due(
        now=clock.now(), limit=50, worker="w", lease_until=clock.now() + timedelta(1)
    )
    await outbox.start_sending(
        ids=[r.id for r in rows], worker="w", now=clock.now(), lease_until=clock.now()
    )
    await outbox.record(outcomes=[Sent(r.id, 1) for r in rows], worker="w", now=clock.now())


async def buy(flow: Flow, ref: str, customer_id: int, at: datetime) -> None:
    await SqlOrders(flow.db).add(
        NewOrder(
            order_ref=ref,
            total=150_000,
            currency="RUB",
            status="paid",
            ordered_at=at,
            customer_id=customer_id,
            lines=[OrderLine(sku="CAT", name="Cat food", quantity=1, price=150_000)],
        ),
        now=at,
    )


async def test_progress_is_edited_and_the_end_says_when_the_report_comes(
    flow: Flow, clock: FixedClock, renderer: Renderer, i18n: CatalogI18n
) -> None:
    for telegram_id in (6001, 6002):
        await member(flow.db, telegram_id)
    await flow.send(ADMIN, "/start")
    await flow.send(ADMIN, "/broadcast")
    await flow.press(ADMIN, "bseg:all")
    await flow.send(ADMIN, "Hello")
    await flow.press(ADMIN, "bstep:skip_button")
    await flow.press(ADMIN, "bstep:preview")
    await flow.press(ADMIN, "bstep:send")
    progress = progress_desk(flow, clock, renderer, i18n)
    flow.session.clear()
    await progress.tick()
    [edit] = [c for c in flow.session.requests if isinstance(c, EditMessageText)]
    assert edit.text is not None
    assert edit.text.startswith("<b>Broadcast #1</b> —\nsending\n\nSent: 0 of 2")

    await deliver_all(flow, clock)
    flow.session.clear()
    await progress.tick()
    edits = [c for c in flow.session.requests if isinstance(c, EditMessageText)]
    final = edits[0].text or ""
    assert "finished" in final
    assert "Sent: 2 of 2" in final
    assert "The report with the orders it brought comes on 11/15/26" in final
    assert sent(flow.session.requests) == [], "the report waits for the conversion window"
    flow.session.clear()
    await progress.tick()
    assert flow.session.requests == [], "the end is shown once"


async def test_i16_2_conversion_counts_the_whole_window_and_the_report_comes_when_it_closes(
    flow: Flow, clock: FixedClock, renderer: Renderer, i18n: CatalogI18n
) -> None:
    for telegram_id in (6001, 6002, 6003, 6004):
        await member(flow.db, telegram_id)
    await flow.send(ADMIN, "/start")
    await flow.send(ADMIN, "/broadcast")
    await flow.press(ADMIN, "bseg:all")
    await flow.send(ADMIN, "Sale A")
    await flow.press(ADMIN, "bstep:skip_button")
    await flow.press(ADMIN, "bstep:add_b")
    await flow.send(ADMIN, "Sale B")
    await flow.press(ADMIN, "bstep:skip_button")
    await flow.press(ADMIN, "bstep:preview")
    await flow.press(ADMIN, "bstep:send")
    async with flow.db.read() as conn:
        rows = (await conn.execute(select(broadcast_recipients))).mappings().all()
    by_variant = {v: sorted(r["customer_id"] for r in rows if r["variant"] == v) for v in "AB"}
    assert [len(ids) for ids in by_variant.values()] == [2, 2]
    progress = progress_desk(flow, clock, renderer, i18n)
    await deliver_all(flow, clock)
    start = clock.now()
    await progress.tick()  # the end: shown, the report waits

    # Both A recipients order, one on day 3 and one on day 13; a B recipient only on day 20.
    first_a, second_a = by_variant["A"]
    await buy(flow, "A-3", first_a, start + timedelta(days=3))

    clock.set(start + timedelta(days=5))
    flow.session.clear()
    [listing] = sent(await flow.send(ADMIN, "/broadcasts"))
    assert listing.text.startswith("<b>Latest broadcasts</b>\n#1 · 11/1/26")
    assert "All members — finished · 4 recipients" in listing.text
    [[button]] = listing.reply_markup.inline_keyboard  # type: ignore[union-attr]
    assert (button.text, button.callback_data) == ("Figures of #1", "brep:1")
    [so_far] = sent(await flow.press(ADMIN, "brep:1", message=flow.message_from(listing)))
    assert so_far.text.startswith("<b>Broadcast #1: figures so far</b>\nOrders count until")
    assert "1 customer ordered within 14 days (50%)" in so_far.text  # A, so far
    assert "0 customers ordered within 14 days (0%)" in so_far.text  # B
    forged = answer_of(await flow.press(STRANGER, "brep:1"))
    assert forged.text == "Это только для администраторов магазина."

    await buy(flow, "A-13", second_a, start + timedelta(days=13))
    clock.set(start + timedelta(days=14) - timedelta(minutes=1))
    flow.session.clear()
    await progress.tick()
    assert flow.session.requests == [], "the window is still open"

    clock.set(start + timedelta(days=14))
    await progress.tick()
    [report] = sent(flow.session.requests)
    assert report.text.startswith("<b>Broadcast #1: report</b>\n\n<b>Variant A</b>")
    assert "Variant A</b>\nDelivered: 2 of 2\n2 customers ordered within 14 days (100%)" in (
        report.text
    )
    assert "Revenue from those orders: RUB\xa03,000.00" in report.text
    assert "Variant B</b>\nDelivered: 2 of 2\n0 customers ordered within 14 days (0%)" in (
        report.text
    )
    assert report.text.endswith(
        "A/B: variant A is ahead, but the difference is not significant "
        "(Fisher's exact test, p = 0.333): it may be chance."
    )
    flow.session.clear()
    await buy(flow, "B-20", by_variant["B"][0], start + timedelta(days=20))  # too late
    clock.set(start + timedelta(days=20))
    await progress.tick()
    assert flow.session.requests == [], "a broadcast is reported once"
    [again] = sent(await flow.press(ADMIN, "brep:1", message=flow.message_from(report)))
    assert again.text.startswith("<b>Broadcast #1: report</b>")
    assert "Variant B</b>\nDelivered: 2 of 2\n0 customers ordered" in again.text


async def test_i16_8_a_broadcast_cancelled_while_progress_is_read_says_cancelled(
    flow: Flow, clock: FixedClock, renderer: Renderer, i18n: CatalogI18n
) -> None:
    for telegram_id in (6101, 6102, 6103):
        await member(flow.db, telegram_id)
    await flow.send(ADMIN, "/start")
    await flow.send(ADMIN, "/broadcast")
    await flow.press(ADMIN, "bseg:all")
    await flow.send(ADMIN, "Hello")
    await flow.press(ADMIN, "bstep:skip_button")
    await flow.press(ADMIN, "bstep:preview")
    [queued] = sent(await flow.press(ADMIN, "bstep:send"))
    outbox = SqlOutbox(flow.db)
    [first] = await outbox.claim_due(
        now=clock.now(), limit=1, worker="w", lease_until=clock.now() + timedelta(1)
    )
    await outbox.start_sending(ids=[first.id], worker="w", now=clock.now(), lease_until=clock.now())
    await outbox.record(outcomes=[Sent(first.id, 1)], worker="w", now=clock.now())

    class CancelledMeanwhile(SqlBroadcasts):
        """The admin presses Cancel just after the tick read the running broadcast."""

        async def unreported(self) -> list[BroadcastRecord]:
            found = await super().unreported()
            pressed = await flow.press(ADMIN, "bctl:cancel:1", message=flow.message_from(queued))
            assert answer_of(pressed).text == "Cancelled; what was not sent yet will not be."
            return found

    progress = progress_desk(flow, clock, renderer, i18n)
    progress.broadcasts = CancelledMeanwhile(flow.db)
    flow.session.clear()
    await progress.tick()
    [edit] = [c for c in flow.session.requests if isinstance(c, EditMessageText)]
    text = edit.text or ""
    assert text.startswith("<b>Broadcast #1</b> —\ncancelled\n\nSent: 1 of 3")
    assert "Skipped (consent, limits, cancelled): 2" in text
    assert "finished" not in text
    assert edit.reply_markup is None, "a cancelled broadcast has no controls left"
    record = await SqlBroadcasts(flow.db).get(broadcast_id=1)
    assert record is not None
    assert record.state == "cancelled"
