"""Issue 17 through the real Dispatcher: replies leave after the commit, reads take no writer,
a refused reply is retried without undoing the user's action, staff look-ups are cached."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import AnswerCallbackQuery, SendMessage, TelegramMethod
from aiogram.types import ChatMemberLeft, ChatMemberMember, User
from sqlalchemy import event, make_url, text

from handlers.staff_alerts import StaffMembership
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.rules import Ratings, Rules, Staff
from storage.database import Database, ReadOnlyUnitError
from storage.ratings import SqlRatings
from tests.support.flow import Flow, build_flow
from tests.support.recording_session import RecordingSession
from tests.support.seed import NOW
from tests.test_flows_ratings import ADMIN, ANNA, OLGA, STAFF_CHAT, Shop, answer_of, edits, sent

SORRY = "Sorry, something went wrong on our side. Please try again in a minute."
RULES = Rules(
    ratings=Ratings(review_url="https://example.com/reviews"),
    staff=Staff(membership_cache_seconds=60),
)


class Probe(RecordingSession):
    """Notes, for every request as it leaves, whether a transaction or the writer was held."""

    def __init__(self) -> None:
        super().__init__()
        self.db: Database | None = None
        self.held: list[tuple[str, bool, bool]] = []
        self.on_request = self._note

    def _note(self, method: TelegramMethod[Any]) -> None:
        assert self.db is not None
        writer = self.db._sqlite_writer.locked()
        self.held.append((method.__api_method__, self.db.in_transaction, writer))


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def flow(
    db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer, probe: Probe
) -> Flow:
    probe.db = db
    return build_flow(
        db=db,
        clock=clock,
        i18n=i18n,
        renderer=renderer,
        admin_ids=(ADMIN.id,),
        rules=RULES,
        staff_chat_id=STAFF_CHAT,
        session=probe,
    )


@pytest.fixture
def shop(flow: Flow, clock: FixedClock, renderer: Renderer) -> Shop:
    return Shop(flow, clock, renderer)


def answers(calls: list[Any]) -> list[str | None]:
    return [call.text for call in calls if isinstance(call, AnswerCallbackQuery)]


async def score_of(db: Database, ref: str) -> int | None:
    rating = await SqlRatings(db).by_order(order_ref=ref)
    assert rating is not None
    return rating.score


def retry_after(seconds: int) -> TelegramRetryAfter:
    return TelegramRetryAfter(
        method=AnswerCallbackQuery(callback_query_id="1"),
        message="Too Many Requests: retry after 1",
        retry_after=seconds,
    )


def network_error(cause: BaseException) -> TelegramNetworkError:
    """What aiogram's aiohttp session raises: the driver's error as the cause."""
    try:
        raise TelegramNetworkError(
            method=SendMessage(chat_id=ANNA.id, text="x"), message=f"{cause!r}"
        ) from cause
    except TelegramNetworkError as error:
        return error


# ---- item 1: nothing leaves while a transaction is open ---------------------------------


async def test_i17_1_no_transaction_or_writer_is_held_while_a_reply_leaves(
    shop: Shop, flow: Flow, probe: Probe
) -> None:
    await shop.ordered(ANNA, "A-1001")
    await shop.press_star(ANNA, "A-1001", 2)  # negative: an alert, a question, FSM state
    await shop.staff_press(OLGA, "alert:1:take", message=await shop.alert())
    await shop.press_star(ANNA, "A-1001", 5)

    methods = [name for name, _, _ in probe.held]
    assert {"editMessageText", "answerCallbackQuery", "sendMessage", "getChatMember"} <= set(
        methods
    )
    assert [held for held in probe.held if held[1] or held[2]] == []
    assert await score_of(flow.db, "A-1001") == 5


async def test_i17_2_a_press_reads_then_writes_in_one_transaction_on_postgresql_two_on_sqlite(
    shop: Shop, flow: Flow
) -> None:
    await shop.ordered(ANNA, "A-1001")
    await shop.press_star(ANNA, "A-1001", 5)
    engine = flow.db.engine.sync_engine
    seen: list[str] = []  # BEGIN, then the table of each statement

    def began(_connection: Any) -> None:
        seen.append("BEGIN")

    def ran(_c: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append("outbox" if "FROM outbox" in statement else "update's")

    event.listen(engine, "begin", began)
    event.listen(engine, "before_cursor_execute", ran)
    try:
        calls = await shop.press_star(ANNA, "A-1001", 4)
    finally:
        event.remove(engine, "begin", began)
        event.remove(engine, "before_cursor_execute", ran)
    # The test's own look-up of the rating request in the outbox aside:
    begun = [n for n, what in enumerate(seen[:-1]) if what == "BEGIN" and seen[n + 1] != "outbox"]

    assert answers(calls) == ["Thank you for your rating!"]
    assert await score_of(flow.db, "A-1001") == 4
    # SQLite: the reads in a read transaction (no writer), the score in a write one. On
    # PostgreSQL the read transaction goes on as the write: no commit, checkout or BEGIN more.
    assert len(begun) == (2 if flow.db.is_sqlite else 1), seen


async def test_i17_1_a_handler_failing_before_its_reply_changes_nothing_and_says_no_done(
    shop: Shop, flow: Flow, renderer: Renderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await shop.ordered(ANNA, "A-1001")
    request = await shop.request(ANNA, "A-1001")
    render = renderer.render

    def broken(template: str, **context: Any) -> str:
        if template == "rating_request.html":
            raise RuntimeError("template broke")
        return render(template, **context)

    monkeypatch.setattr(renderer, "render", broken)
    five = request.reply_markup.inline_keyboard[0][4]  # type: ignore[union-attr]
    assert five.text == "★5"
    data = str(five.callback_data)
    calls = await flow.press(ANNA, data, message=request)

    assert answers(calls) == [SORRY]
    assert sent(calls) == []
    assert edits(calls) == []
    assert await score_of(flow.db, "A-1001") is None


async def test_i17_1_what_a_reply_told_stays_committed_when_the_handler_fails_later(
    shop: Shop, flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    await shop.ordered(ANNA, "A-1001")
    await shop.press_star(ANNA, "A-1001", 1)  # a complaint: its alert is closed by a 5 below

    async def broken(self: SqlRatings, **_: Any) -> None:
        raise RuntimeError("the database went away")

    # Fails right after "Thank you for your rating!" went out, closing the complaint.
    monkeypatch.setattr(SqlRatings, "resolve_by_customer", broken)
    calls = await shop.press_star(ANNA, "A-1001", 5)

    assert answers(calls) == ["Thank you for your rating!", SORRY]
    assert await score_of(flow.db, "A-1001") == 5


@pytest.mark.postgres
async def test_i17_1_a_commit_refused_at_the_reply_sends_no_done_and_keeps_nothing(
    clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    """PostgreSQL checks a deferred constraint at COMMIT: the reply waits for that verdict."""
    from tests.support.databases import postgres_database

    async with postgres_database() as db:
        flow = build_flow(
            db=db, clock=clock, i18n=i18n, renderer=renderer, rules=RULES, staff_chat_id=STAFF_CHAT
        )
        shop = Shop(flow, clock, renderer)
        await shop.ordered(ANNA, "A-1001")
        async with db.transaction() as conn:
            await conn.execute(
                text(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$"
                )
            )
            await conn.execute(
                text(
                    "CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER UPDATE ON ratings "
                    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()"
                )
            )

        calls = await shop.press_star(ANNA, "A-1001", 5)

        assert answers(calls) == [SORRY]
        assert edits(calls) == []
        assert sent(calls) == []
        assert await score_of(db, "A-1001") is None


# ---- item 2: reads take no write lock ----------------------------------------------------


async def test_i17_2_help_balance_history_answer_while_another_writer_holds_sqlite(
    sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    from tests.support.seed import member

    flow = build_flow(db=sqlite_db, clock=clock, i18n=i18n, renderer=renderer, rules=RULES)
    await member(sqlite_db, ANNA.id)
    await flow.send(ANNA, "/help")  # the first contact stores her name: a write, once

    # The process's writer lock and the file's write lock both taken by someone else.
    path = make_url(sqlite_db.url).database
    assert path is not None
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    await sqlite_db._sqlite_writer.acquire()
    try:
        async with asyncio.timeout(5):
            help_text = sent(await flow.send(ANNA, "/help"))[0].text
            balance_text = sent(await flow.send(ANNA, "/balance"))[0].text
            history_text = sent(await flow.send(ANNA, "/history"))[0].text
    finally:
        sqlite_db._sqlite_writer.release()
        other.execute("ROLLBACK")
        other.close()

    assert "/balance" in help_text
    assert "0" in balance_text
    assert SORRY not in (help_text, balance_text, history_text)


async def test_i17_2_a_write_inside_a_read_only_unit_fails_loudly(sqlite_db: Database) -> None:
    from storage.customers import SqlCustomers

    with pytest.raises(ReadOnlyUnitError):
        async with sqlite_db.unit_of_work("read"):
            await SqlCustomers(sqlite_db).count()
            await SqlCustomers(sqlite_db).set_locale(customer_id=1, locale="en")


# ---- item 3 and 8: a refused reply is retried, one that may have arrived is not -----------


async def test_i17_3_a_429_on_the_reply_to_a_rating_press_keeps_the_rating_once_and_answers(
    shop: Shop, flow: Flow, probe: Probe
) -> None:
    await shop.ordered(ANNA, "A-1001")
    probe.fail_next("answerCallbackQuery", retry_after(1))

    calls = await shop.press_star(ANNA, "A-1001", 5)

    assert answers(calls) == ["Thank you for your rating!", "Thank you for your rating!"]
    [invite] = sent(calls)
    assert invite.text == "Thank you! We would be happy if you shared it in a public review."
    assert await score_of(flow.db, "A-1001") == 5
    assert SORRY not in answers(calls)


async def test_i17_3_a_5xx_on_the_edit_is_retried_and_the_rating_stays(
    shop: Shop, flow: Flow, probe: Probe
) -> None:
    await shop.ordered(ANNA, "A-1001")
    failure = TelegramServerError(
        method=AnswerCallbackQuery(callback_query_id="1"), message="Bad Gateway"
    )
    probe.fail_next("editMessageText", failure, times=2)

    calls = await shop.press_star(ANNA, "A-1001", 5)

    assert len(edits(calls)) == 3
    assert answers(calls) == ["Thank you for your rating!"]
    assert await score_of(flow.db, "A-1001") == 5


async def test_i17_8_a_reply_that_timed_out_is_never_sent_again_and_the_rating_stays(
    shop: Shop, flow: Flow, probe: Probe
) -> None:
    await shop.ordered(ANNA, "A-1001")
    probe.fail_next("sendMessage", network_error(TimeoutError()))

    calls = await shop.press_star(ANNA, "A-1001", 5)

    assert len(sent(calls)) == 1  # it may have reached Telegram: not repeated
    assert answers(calls) == ["Thank you for your rating!"]  # and no "try again" after it
    assert await score_of(flow.db, "A-1001") == 5


async def test_i17_8_a_502_on_the_final_edit_of_a_bonus_confirmation_keeps_the_adjustment(
    flow: Flow, clock: FixedClock, probe: Probe
) -> None:
    from tests.test_flows_admin_account import anna, available, button

    customer_id = await anna(flow, clock)
    [preview] = sent(await flow.send(ADMIN, "/bonus 8 (999) 123-45-67 +100 late delivery"))
    failure = TelegramServerError(
        method=AnswerCallbackQuery(callback_query_id="1"), message="Bad Gateway"
    )
    probe.fail_next("editMessageText", failure)

    calls = await flow.press(ADMIN, button(preview, 0), message=flow.message_from(preview))

    assert answers(calls) == ["Done."]
    done = [edit.text for edit in edits(calls)]
    assert len(done) == 2
    assert done[0] == done[1]
    assert "Done: +100 points for Anna" in str(done[1])
    assert await available(flow, clock, customer_id) == 400


async def test_i17_8_a_reply_refused_before_it_left_is_retried(
    shop: Shop, flow: Flow, probe: Probe
) -> None:
    await shop.ordered(ANNA, "A-1001")
    probe.fail_next("sendMessage", network_error(ConnectionRefusedError(111, "refused")))

    calls = await shop.press_star(ANNA, "A-1001", 5)

    assert [call.text for call in sent(calls)] == [
        "Thank you! We would be happy if you shared it in a public review."
    ] * 2
    assert answers(calls) == ["Thank you for your rating!"]
    assert await score_of(flow.db, "A-1001") == 5


# ---- item 4: staff look-ups are cached and outside transactions ---------------------------


async def test_i17_4_staff_membership_is_asked_once_per_cache_period_and_never_in_a_transaction(
    shop: Shop, flow: Flow, probe: Probe
) -> None:
    await shop.ordered(ANNA, "A-1001")
    await shop.press_star(ANNA, "A-1001", 2)
    alert = await shop.alert()
    probe.prepare(ChatMemberMember(user=User(id=OLGA.id, is_bot=False, first_name="Olga")))

    take = await flow.press(OLGA, "alert:1:take", message=alert)
    resolve = await flow.press(OLGA, "alert:1:resolve", message=alert)

    assert answer_of(take).text == "It is yours now."
    assert answer_of(resolve).text == "Marked as resolved."
    assert len(probe.calls("getChatMember")) == 1
    assert [h for h in probe.held if h[0] == "getChatMember"] == [("getChatMember", False, False)]


async def test_i17_4_a_cached_membership_expires_after_the_configured_time() -> None:
    now = [0.0]
    session = RecordingSession()
    from aiogram import Bot

    bot = Bot("123456:TEST-TOKEN", session=session)
    staff = StaffMembership(staff_chat_id=STAFF_CHAT, admin_ids=(), ttl=60, now=lambda: now[0])
    olga = User(id=OLGA.id, is_bot=False, first_name="Olga")
    session.prepare(ChatMemberMember(user=olga))
    session.prepare(ChatMemberLeft(user=olga))

    assert await staff.is_staff(bot, olga)
    now[0] = 59
    assert await staff.is_staff(bot, olga)  # still trusted
    now[0] = 61
    assert not await staff.is_staff(bot, olga)  # asked again: she left the chat
    assert len(session.calls("getChatMember")) == 2


def test_i17_4_membership_cache_is_a_setting() -> None:
    assert Rules().staff.membership_cache_seconds == 60
    assert Rules.model_validate({"staff": {"membership_cache_seconds": 5}}).staff == Staff(
        membership_cache_seconds=5
    )


async def test_i17_1_units_take_turns_with_other_writers_for_the_sqlite_writer() -> None:
    """A burst of updates queued on the writer cannot make an API order wait behind all of it."""
    from storage.database import WriterLock

    lock = WriterLock()
    order: list[str] = []
    await lock.acquire()

    async def writer(name: str, *, behind: bool) -> None:
        await lock.acquire(behind_others=behind)
        order.append(name)
        await asyncio.sleep(0)
        lock.release()

    units = [asyncio.create_task(writer(f"press{n}", behind=True)) for n in range(4)]
    await asyncio.sleep(0)
    orders = [asyncio.create_task(writer(f"order{n}", behind=False)) for n in range(2)]
    await asyncio.sleep(0)
    lock.release()
    await asyncio.gather(*units, *orders)

    assert order == ["order0", "press0", "order1", "press1", "press2", "press3"]
    assert not lock.locked()
