"""Ratings storage on SQLite and PostgreSQL: one request per order, alerts, stats, suppression."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event, select, update

from scenarios.clock import FixedClock
from scenarios.delivery import Category, Outgoing, enqueue
from scenarios.ratings import CHANGE_WINDOW, RatingDesk, Verdict
from scenarios.rules import Ratings, Rules
from storage.customers import SqlCustomers
from storage.database import Database
from storage.orders import NewOrder, OrderLine, SqlOrders
from storage.outbox import SqlOutbox
from storage.ratings import SqlRatings
from storage.schema import outbox
from tests.support.seed import NOW, member
from tests.support.services import services_for


def count_statements(db: Database) -> Callable[[], int]:
    """How many statements the database ran from now on."""
    ran: list[str] = []

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        ran.append(statement)

    return lambda: len(ran)


async def rated(db: Database, ref: str, customer_id: int, score: int, *, at: timedelta) -> int:
    ratings = SqlRatings(db)
    rating_id, _ = await ratings.open_request(
        order_ref=ref,
        customer_id=customer_id,
        requested_at=NOW - timedelta(days=40),
        expires_at=NOW + timedelta(days=7),
    )
    await ratings.save_score(rating_id=rating_id, score=score, now=NOW - at)
    return rating_id


async def test_one_request_per_order_and_withdrawal_only_while_unanswered(db: Database) -> None:
    anna = await member(db, 1001)
    ratings = SqlRatings(db)
    first = await ratings.open_request(
        order_ref="A-1", customer_id=anna, requested_at=NOW, expires_at=NOW + timedelta(days=7)
    )
    again = await ratings.open_request(
        order_ref="A-1", customer_id=anna, requested_at=NOW, expires_at=NOW + timedelta(days=9)
    )
    assert first == (first[0], True)
    assert again == (first[0], False)
    stored = await ratings.by_id(rating_id=first[0])
    assert stored is not None
    assert stored.expires_at == NOW + timedelta(days=7)

    answered, _ = await ratings.open_request(
        order_ref="A-2", customer_id=anna, requested_at=NOW, expires_at=NOW + timedelta(days=7)
    )
    await ratings.save_score(rating_id=answered, score=4, now=NOW)
    assert await ratings.withdraw(order_ref="A-1", now=NOW)
    assert not await ratings.withdraw(order_ref="A-1", now=NOW)  # already withdrawn
    assert not await ratings.withdraw(order_ref="A-2", now=NOW)  # answered: it stands
    assert not await ratings.withdraw(order_ref="nope", now=NOW)


async def test_the_desk_keeps_the_first_answer_time_and_locks_after_a_day(db: Database) -> None:
    anna = await member(db, 1001)
    boris = await member(db, 1002)
    clock = FixedClock(NOW)
    ratings = SqlRatings(db)
    desk = RatingDesk(store=ratings, rules=Ratings(), clock=clock)
    rating_id, _ = await ratings.open_request(
        order_ref="A-1", customer_id=anna, requested_at=NOW, expires_at=NOW + timedelta(days=7)
    )

    assert (await desk.rate(rating_id=rating_id, customer_id=boris, score=5)).verdict is (
        Verdict.FORGED
    )
    assert (await desk.rate(rating_id=rating_id, customer_id=anna, score=0)).verdict is (
        Verdict.FORGED
    )
    first = await desk.rate(rating_id=rating_id, customer_id=anna, score=2)
    assert (first.verdict, first.previous) == (Verdict.SAVED, None)
    clock.advance(CHANGE_WINDOW - timedelta(minutes=1))
    changed = await desk.rate(rating_id=rating_id, customer_id=anna, score=4)
    assert (changed.verdict, changed.previous) == (Verdict.SAVED, 2)
    assert changed.rating is not None
    assert (changed.rating.first_rated_at, changed.rating.rated_at) == (NOW, clock.now())
    same = await desk.rate(rating_id=rating_id, customer_id=anna, score=4)
    assert same.verdict is Verdict.UNCHANGED
    clock.advance(timedelta(minutes=1))
    locked = await desk.rate(rating_id=rating_id, customer_id=anna, score=1)
    assert locked.verdict is Verdict.LOCKED
    assert locked.rating is not None
    assert locked.rating.score == 4

    assert await desk.comment(rating_id=rating_id, customer_id=boris, text="not mine") is None
    commented = await desk.comment(rating_id=rating_id, customer_id=anna, text="  x" * 2000)
    assert commented is not None
    assert commented.comment is not None
    # A customer's whole message is kept (Telegram's own 4096), stripped.
    assert len(commented.comment) == 4096
    assert commented.comment.startswith("x  x")


async def test_alerts_are_raised_once_and_move_from_open_to_resolved(db: Database) -> None:
    anna = await member(db, 1001)
    ratings = SqlRatings(db)
    rating_id = await rated(db, "A-1", anna, 2, at=timedelta(0))
    alert, created = await ratings.raise_alert(
        rating_id=rating_id, customer_id=anna, snapshot={"order_id": "A-1"}, now=NOW
    )
    again, created_again = await ratings.raise_alert(
        rating_id=rating_id, customer_id=anna, snapshot={"order_id": "other"}, now=NOW
    )
    assert (created, created_again) == (True, False)
    assert again.id == alert.id
    assert again.snapshot == {"order_id": "A-1"}
    assert await ratings.alert_for_rating(rating_id=rating_id) == alert
    assert await ratings.has_open_alert(customer_id=anna)

    assert await ratings.take(alert_id=alert.id, by=7, name="Olga", now=NOW)
    assert await ratings.record_compensation(alert_id=alert.id, points=300, name="Olga", now=NOW)
    assert not await ratings.record_compensation(alert_id=alert.id, points=500, name="Max", now=NOW)
    assert await ratings.resolve(alert_id=alert.id, by=9, name="Max", now=NOW)
    assert not await ratings.resolve(alert_id=alert.id, by=9, name="Max", now=NOW)
    assert not await ratings.take(alert_id=alert.id, by=7, name="Olga", now=NOW)
    stored = await ratings.alert(alert_id=alert.id)
    assert stored is not None
    assert (stored.state, stored.taken_by_name, stored.resolved_by_name) == (
        "resolved",
        "Olga",
        "Max",
    )
    assert stored.compensation_points == 300
    assert not await ratings.has_open_alert(customer_id=anna)


async def test_a_press_reads_its_order_lines_and_alert_in_one_statement(db: Database) -> None:
    anna = await member(db, 1001)
    ratings = SqlRatings(db)
    lines = [
        OrderLine(sku="CAT", name="Cat food", quantity=2, price=100_000),
        OrderLine(sku="TOY", name="Mouse toy", quantity=1, price=50_000),
    ]
    for ref, total, its_lines in (("A-1", 250_000, lines), ("A-2", 10_000, [])):
        order = NewOrder(
            order_ref=ref,
            total=total,
            currency="RUB",
            status="delivered",
            ordered_at=NOW,
            customer_id=anna,
            bonus_redeemed=0,
            lines=its_lines,
        )
        await SqlOrders(db).add(order, now=NOW)
    happy = await rated(db, "A-1", anna, 5, at=timedelta(0))
    unhappy = await rated(db, "A-2", anna, 1, at=timedelta(0))
    alert, _ = await ratings.raise_alert(
        rating_id=unhappy, customer_id=anna, snapshot={"order_id": "A-2"}, now=NOW
    )
    statements = count_statements(db)

    summary, no_alert = await ratings.press_view(rating_id=happy)
    assert statements() == 1
    assert no_alert is None
    assert summary == await ratings.order_summary(order_ref="A-1")
    assert summary is not None
    assert [(line.name, line.quantity) for line in summary.items] == [
        ("Cat food", 2),
        ("Mouse toy", 1),
    ]
    assert (summary.total, summary.status) == (250_000, "delivered")

    lineless, raised = await ratings.press_view(rating_id=unhappy)
    assert raised == alert
    assert lineless is not None
    assert (lineless.order_ref, lineless.items) == ("A-2", ())
    assert await ratings.press_view(rating_id=999) == (None, None)
    assert await ratings.order_summary(order_ref="nope") is None


async def test_the_sender_sees_an_open_complaint_until_it_is_resolved(db: Database) -> None:
    anna = await member(db, 1001)
    boris = await member(db, 1002)
    ratings, outbox = SqlRatings(db), SqlOutbox(db)
    rating_id = await rated(db, "A-1", anna, 1, at=timedelta(0))
    alert, _ = await ratings.raise_alert(
        rating_id=rating_id, customer_id=anna, snapshot={}, now=NOW
    )

    seen = await outbox.recipients(customer_ids=[anna, boris])
    assert (seen[anna].open_complaint, seen[boris].open_complaint) == (True, False)
    await ratings.take(alert_id=alert.id, by=7, name="Olga", now=NOW)
    assert (await outbox.recipients(customer_ids=[anna]))[anna].open_complaint
    await ratings.resolve(alert_id=alert.id, by=7, name="Olga", now=NOW)
    assert not (await outbox.recipients(customer_ids=[anna]))[anna].open_complaint


async def test_a_waiting_message_can_get_new_content_until_a_sender_claims_it(
    db: Database,
) -> None:
    outbox = SqlOutbox(db)
    clock = FixedClock(NOW)
    message = Outgoing(
        dedupe_key="staff-alert:1",
        chat_id=-100,
        category=Category.TRANSACTIONAL,
        kind="staff_alert",
        content={"text": "first"},
    )
    await enqueue(outbox, message, clock=clock)
    assert await outbox.replace_waiting_payload(
        dedupe_key="staff-alert:1", payload={"text": "second"}, now=NOW
    )
    [claimed] = await outbox.claim_due(now=NOW, limit=10, worker="w", lease_until=NOW)
    assert claimed.payload == {"text": "second"}
    assert not await outbox.replace_waiting_payload(
        dedupe_key="staff-alert:1", payload={"text": "third"}, now=NOW
    )
    await outbox.mark_sent(id=claimed.id, message_id=77, now=NOW)
    queued = await outbox.by_key(dedupe_key="staff-alert:1")
    assert queued is not None
    assert (queued.chat_id, queued.state, queued.telegram_message_id) == (-100, "sent", 77)
    assert await outbox.by_key(dedupe_key="nope") is None


async def test_stats_count_average_csat_open_alerts_and_the_median_time_to_resolve(
    db: Database,
) -> None:
    customer = await member(db, 1001)
    ratings = SqlRatings(db)
    empty = await ratings.stats(now=NOW)
    assert (empty.week.count, empty.week.average, empty.median_resolve_seconds) == (0, None, None)

    scores = [(5, 1), (4, 2), (2, 3), (1, 10), (5, 20), (3, 45)]  # (score, days ago)
    ids = [
        await rated(db, f"A-{n}", customer, score, at=timedelta(days=days))
        for n, (score, days) in enumerate(scores)
    ]
    for rating_id, resolve_after in zip(ids[2:5], [1, 3, 5], strict=True):
        alert, _ = await ratings.raise_alert(
            rating_id=rating_id, customer_id=customer, snapshot={}, now=NOW
        )
        await ratings.resolve(
            alert_id=alert.id, by=1, name="x", now=NOW + timedelta(hours=resolve_after)
        )
    open_alert, _ = await ratings.raise_alert(
        rating_id=ids[5], customer_id=customer, snapshot={}, now=NOW
    )

    stats = await ratings.stats(now=NOW)
    assert (stats.week.count, stats.week.satisfied) == (3, 2)
    assert stats.week.average is not None
    assert round(stats.week.average, 4) == round(11 / 3, 4)
    assert (stats.month.count, stats.month.satisfied) == (5, 3)
    assert stats.month.average == 17 / 5
    assert (stats.alerts_open, stats.alerts_resolved) == (1, 3)
    assert stats.median_resolve_seconds is not None
    assert round(stats.median_resolve_seconds) == 3 * 3600

    await ratings.resolve(alert_id=open_alert.id, by=1, name="x", now=NOW + timedelta(hours=7))
    even = await ratings.stats(now=NOW)
    assert (even.alerts_open, even.alerts_resolved) == (0, 4)
    assert even.median_resolve_seconds is not None
    assert round(even.median_resolve_seconds) == 4 * 3600


async def test_erasure_clears_comments_alert_snapshots_and_finished_messages(
    db: Database,
) -> None:
    anna, boris = await member(db, 1001), await member(db, 1002)
    ratings = SqlRatings(db)
    clock = FixedClock(NOW)
    mine = await rated(db, "A-1", anna, 1, at=timedelta(hours=1))
    theirs = await rated(db, "B-1", boris, 2, at=timedelta(hours=1))
    await ratings.save_comment(rating_id=mine, comment="Call me at +7 999 111-22-33")
    await ratings.save_comment(rating_id=theirs, comment="Cold")
    alert, _ = await ratings.raise_alert(
        rating_id=mine, customer_id=anna, snapshot={"name": "Anna", "order_id": "A-1"}, now=NOW
    )
    other, _ = await ratings.raise_alert(
        rating_id=theirs, customer_id=boris, snapshot={"name": "Boris"}, now=NOW
    )
    messages = {
        f"staff-alert:{alert.id}": (-100, None),
        f"staff-alert:{alert.id}:update:1": (-100, None),
        f"staff-alert:{alert.id}:update:2": (-100, None),  # still queued for the staff
        "rating-request:A-1": (1001, anna),
        "note-to-chat": (1001, None),
        "waiting-for-anna": (1001, anna),
        f"staff-alert:{other.id}": (-100, None),
        "rating-request:B-1": (1002, boris),
    }
    for key, (chat_id, customer_id) in messages.items():
        await enqueue(
            SqlOutbox(db),
            Outgoing(
                dedupe_key=key,
                chat_id=chat_id,
                customer_id=customer_id,
                category=Category.TRANSACTIONAL,
                kind="note",
                content={"text": f"about {key}"},
            ),
            clock=clock,
        )
    async with db.transaction() as conn:
        await conn.execute(
            update(outbox)
            .where(
                outbox.c.dedupe_key.not_in([f"staff-alert:{alert.id}:update:2", "waiting-for-anna"])
            )
            .values(state="sent")
        )
    record = await SqlCustomers(db).by_telegram_id(telegram_id=1001)
    assert record is not None

    async with db.transaction():
        erased = await services_for(
            db, rules=Rules(), clock=clock, zone=ZoneInfo("UTC"), staff_redactor=False
        ).signup.erase(record)

    assert (erased.ratings_scrubbed, erased.alert_ids) == (1, (alert.id,))
    async with db.read() as conn:
        rows = {
            key: (state, payload)
            for key, state, payload in (
                await conn.execute(select(outbox.c.dedupe_key, outbox.c.state, outbox.c.payload))
            ).all()
        }
    gone = {"erased": True}
    assert rows == {
        f"staff-alert:{alert.id}": ("sent", gone),
        f"staff-alert:{alert.id}:update:1": ("sent", gone),
        f"staff-alert:{alert.id}:update:2": (
            "pending",
            {"text": f"about staff-alert:{alert.id}:update:2"},
        ),
        "rating-request:A-1": ("sent", gone),
        "note-to-chat": ("sent", gone),
        "waiting-for-anna": ("dropped", gone),
        f"staff-alert:{other.id}": ("sent", {"text": f"about staff-alert:{other.id}"}),
        "rating-request:B-1": ("sent", {"text": "about rating-request:B-1"}),
    }
    scrubbed, kept = await ratings.by_id(rating_id=mine), await ratings.by_id(rating_id=theirs)
    assert scrubbed is not None and (scrubbed.score, scrubbed.comment) == (1, None)
    assert kept is not None and (kept.score, kept.comment) == (2, "Cold")
    assert (await ratings.alert(alert_id=alert.id)).snapshot == {}  # type: ignore[union-attr]
    assert (await ratings.alert(alert_id=other.id)).snapshot == {"name": "Boris"}  # type: ignore[union-attr]
