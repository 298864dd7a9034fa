"""A star press holds SQLite's single writer for its one write, and a press decided on a
rating that changed before the write is decided again (nothing saved on a cancelled order).

Found measuring the write path (#17): a press read the rating, saved the score, then read
the alert, the order and its items, all inside the write transaction, so under a burst of
presses every other writer (an API order, a store webhook) waited behind five statements
per press instead of one.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import event

from scenarios.clock import FixedClock
from scenarios.ratings import Answer, Press, RatingDesk, Verdict
from storage.database import Database
from storage.ratings import SqlRatings
from tests.test_flows_ratings import ANNA, RULES, Shop, answer_of, edits
from tests.test_flows_ratings import clock as clock  # the same fixtures
from tests.test_flows_ratings import flow as flow
from tests.test_flows_ratings import shop as shop
from tests.test_sqlite_driver import trips_to_the_thread


def statements_run(db: Database, *, under_the_writer: bool = False) -> list[str]:
    """Each statement run from now on (or only while this process holds SQLite's writer) as
    its verb and the table of its first column; the outbox sender's aside."""
    seen: list[str] = []

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "outbox" in statement or (under_the_writer and not db._sqlite_writer.locked()):
            return
        table = re.search(r"(\w+)\.\w+", statement)
        seen.append(f"{statement.split()[0]} {table.group(1) if table else statement}")

    return seen


async def test_a_changed_score_writes_one_statement_under_the_writer(shop: Shop) -> None:
    await shop.ordered(ANNA, "A-1001")
    await shop.press_star(ANNA, "A-1001", 5)
    under_writer = statements_run(shop.flow.db, under_the_writer=True)

    calls = await shop.press_star(ANNA, "A-1001", 4)

    assert answer_of(calls).text == "Thank you for your rating!"
    assert "4" in str(edits(calls)[0].text)
    assert under_writer == ["UPDATE ratings"]


async def test_a_press_runs_four_statements_in_all(shop: Shop) -> None:
    await shop.ordered(ANNA, "A-1001")
    await shop.press_star(ANNA, "A-1001", 5)
    ran = statements_run(shop.flow.db)

    calls = await shop.press_star(ANNA, "A-1001", 4)

    assert answer_of(calls).text == "Thank you for your rating!"
    # The customer (with the FSM row), the rating, the order with its lines and the alert
    # (one statement), the score.
    assert ran == ["SELECT customers", "SELECT ratings", "SELECT orders", "UPDATE ratings"]


async def test_a_press_on_sqlite_never_goes_to_aiosqlite_thread(shop: Shop) -> None:
    await shop.ordered(ANNA, "A-1001")
    await shop.press_star(ANNA, "A-1001", 5)

    with trips_to_the_thread() as handed:
        calls = await shop.press_star(ANNA, "A-1001", 4)

    assert answer_of(calls).text == "Thank you for your rating!"
    # Its reads, BEGIN IMMEDIATE, the one-row UPDATE and the commit all ran in place.
    assert handed == []


async def decided_press(shop: Shop, clock: FixedClock, score: int) -> tuple[RatingDesk, Press]:
    """Anna's order A-1001 and her press of ``score``, decided on the rating but not saved."""
    await shop.ordered(ANNA, "A-1001")
    store = SqlRatings(shop.flow.db)
    desk = RatingDesk(store=store, rules=RULES.ratings, clock=clock)
    rating = await store.by_order(order_ref="A-1001")
    assert rating is not None
    decided = await desk.decide(rating_id=rating.id, customer_id=rating.customer_id, score=score)
    assert isinstance(decided, Press)
    return desk, decided


async def test_a_press_on_an_order_cancelled_after_it_was_read_saves_nothing(
    shop: Shop, clock: FixedClock
) -> None:
    desk, decided = await decided_press(shop, clock, 5)
    store = SqlRatings(shop.flow.db)

    assert await store.withdraw(order_ref="A-1001", now=clock.now())  # the order is cancelled
    answer = await desk.save(decided)

    assert isinstance(answer, Answer)
    assert answer.verdict is Verdict.WITHDRAWN
    kept = await store.by_order(order_ref="A-1001")
    assert kept is not None and kept.score is None


@pytest.mark.parametrize("first", [2, 5])
async def test_a_press_after_another_saved_first_is_decided_on_that_score(
    shop: Shop, clock: FixedClock, first: int
) -> None:
    desk, decided = await decided_press(shop, clock, first)
    # Another process saved the same score meanwhile: this press changes nothing more.
    await SqlRatings(shop.flow.db).save_score(
        rating_id=decided.rating.id, score=first, now=clock.now()
    )

    answer = await desk.save(decided)

    assert answer.verdict is Verdict.UNCHANGED
