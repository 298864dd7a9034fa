"""Broadcasts on both backends: launch with an A/B split, pause, resume, cancel, report."""

from __future__ import annotations

from datetime import timedelta

import pytest

from scenarios.broadcasts import (
    Button,
    InvalidBroadcastError,
    Progress,
    Variant,
    VariantResult,
    ab_verdict,
    audience,
    broadcast_report,
    fisher_exact_p,
    launch,
    parse_button,
    split_variants,
)
from scenarios.clock import FixedClock
from scenarios.rules import Rules
from scenarios.segments import Segment, SegmentKind
from storage.broadcasts import SqlBroadcasts
from storage.database import Database
from storage.outbox import Sent, SqlOutbox
from storage.segments import SqlSegments
from tests.support.seed import NOW, member, order

RULES = Rules()
OFFER = Variant(text="<b>-20%</b> on cat food", by_locale={"uk": "<b>-20%</b> на корм"})
OTHER = Variant(text="Cat food sale", button=Button("Shop", "https://lapki.example/sale"))


@pytest.fixture
def now_clock() -> FixedClock:
    return FixedClock(NOW)


async def test_launch_queues_one_message_per_reachable_member_split_a_b(
    db: Database, now_clock: FixedClock
) -> None:
    reachable = [await member(db, 100 + n) for n in range(10)]
    await member(db, 200, opt_in=False)
    await member(db, 201, blocked=True)
    segments, store = SqlSegments(db), SqlBroadcasts(db)
    assert await audience(segments, Segment(SegmentKind.ALL), rules=RULES, clock=now_clock) == (
        12,
        10,
    )
    broadcast_id, total = await launch(
        segments,
        store,
        admin_id=9001,
        segment=Segment(SegmentKind.ALL),
        variants={"A": OFFER, "B": OTHER},
        rules=RULES,
        clock=now_clock,
        seed=42,
    )
    assert total == 10
    record = await store.get(broadcast_id=broadcast_id)
    assert record is not None
    assert (record.state, record.total) == ("running", 10)
    assert await store.counts(broadcast_id=broadcast_id) == {"pending": 10}
    again = split_variants(reachable, seed=42, ab=True)
    assert sorted(v for _, v in again).count("A") == 5
    assert split_variants(reachable, seed=42, ab=True) == again, "the split is reproducible"


async def test_pause_resume_and_cancel_move_the_queued_messages(
    db: Database, now_clock: FixedClock
) -> None:
    for n in range(4):
        await member(db, 300 + n)
    store = SqlBroadcasts(db)
    broadcast_id, _ = await launch(
        SqlSegments(db),
        store,
        admin_id=1,
        segment=Segment(SegmentKind.ALL),
        variants={"A": OFFER},
        rules=RULES,
        clock=now_clock,
        seed=1,
    )
    # One message is already in a sender's hands when the admin presses Pause.
    await SqlOutbox(db).claim_due(now=NOW, limit=1, worker="w", lease_until=NOW + timedelta(1))
    now = now_clock.now()
    assert await store.change_state(
        broadcast_id=broadcast_id, to="paused", allowed_from=["running"], now=now
    )
    assert await store.counts(broadcast_id=broadcast_id) == {"held": 4}
    assert await SqlOutbox(db).claim_due(now=NOW, limit=10, worker="w", lease_until=NOW) == []
    assert not await store.change_state(
        broadcast_id=broadcast_id, to="paused", allowed_from=["running"], now=now
    )
    assert await store.change_state(
        broadcast_id=broadcast_id, to="running", allowed_from=["paused"], now=now
    )
    assert await store.counts(broadcast_id=broadcast_id) == {"pending": 4}
    assert await store.change_state(
        broadcast_id=broadcast_id, to="cancelled", allowed_from=["running", "paused"], now=now
    )
    assert await store.counts(broadcast_id=broadcast_id) == {"cancelled": 4}
    progress = Progress.from_counts(await store.counts(broadcast_id=broadcast_id), total=4)
    assert progress.finished


async def test_the_report_counts_orders_after_delivery_per_variant(
    db: Database, now_clock: FixedClock
) -> None:
    customers = [await member(db, 400 + n) for n in range(6)]
    store = SqlBroadcasts(db)
    broadcast_id, _ = await launch(
        SqlSegments(db),
        store,
        admin_id=1,
        segment=Segment(SegmentKind.ALL),
        variants={"A": OFFER, "B": OTHER},
        rules=RULES,
        clock=now_clock,
        seed=7,
    )
    outbox = SqlOutbox(db)
    rows = await outbox.claim_due(now=NOW, limit=10, worker="w", lease_until=NOW + timedelta(1))
    await outbox.start_sending(
        ids=[r.id for r in rows], worker="w", now=NOW, lease_until=NOW + timedelta(1)
    )
    await outbox.record(outcomes=[Sent(r.id, 1) for r in rows], worker="w", now=NOW)
    variant_of = dict(split_variants(customers, seed=7, ab=True))
    buyer_a = next(c for c in customers if variant_of[c] == "A")
    buyer_b = next(c for c in customers if variant_of[c] == "B")
    # Orders within 14 days after delivery count; one before it or a month later does not.
    await order(db, "after-a", buyer_a, days=-2, total=300_000)
    await order(db, "after-a-2", buyer_a, days=-3, total=100_000)
    await order(db, "late-b", buyer_b, days=-30, total=999_000)
    await order(db, "before-b", buyer_b, days=1, total=999_000)
    results = await store.results(broadcast_id=broadcast_id, conversion_days=14)
    assert results == [("A", 3, 3, 1, 400_000), ("B", 3, 3, 0, 0)]


def test_i16_2_fisher_exact_test_and_the_ab_verdict() -> None:
    # Fisher's own tea-tasting table gives the textbook two-sided p of 0.00276.
    assert fisher_exact_p(1, 10, 11, 14) == pytest.approx(0.0027595, rel=1e-4)
    assert fisher_exact_p(0, 5, 5, 5) == pytest.approx(2 / 252)
    assert fisher_exact_p(0, 5, 0, 5) == 1.0
    won = ab_verdict([VariantResult("A", 100, 100, 10, 0), VariantResult("B", 100, 100, 30, 0)])
    assert won is not None
    assert (won.leader, won.other, won.significant) == ("B", "A", True)
    assert won.p_value == pytest.approx(0.00065, rel=1e-2)
    close = ab_verdict([VariantResult("A", 40, 40, 12, 0), VariantResult("B", 40, 40, 5, 0)])
    assert close is not None
    assert (close.leader, close.significant, str(close.p_rounded)) == ("A", False, "0.099")
    tie = ab_verdict([VariantResult("A", 9, 8, 2, 0), VariantResult("B", 9, 4, 1, 0)])
    assert tie is not None
    assert (tie.leader, tie.significant) == (None, False)
    assert ab_verdict([VariantResult("A", 9, 8, 2, 0)]) is None  # no B: no verdict
    assert ab_verdict([VariantResult("A", 9, 8, 2, 0), VariantResult("B", 9, 0, 0, 0)]) is None


async def test_i16_2_figures_so_far_until_the_window_closes_then_final(
    db: Database, now_clock: FixedClock
) -> None:
    buyer = await member(db, 500)
    await member(db, 501)
    store = SqlBroadcasts(db)
    broadcast_id, _ = await launch(
        SqlSegments(db),
        store,
        admin_id=1,
        segment=Segment(SegmentKind.ALL),
        variants={"A": OFFER},
        rules=RULES,
        clock=now_clock,
        seed=3,
    )
    outbox = SqlOutbox(db)
    rows = await outbox.claim_due(now=NOW, limit=10, worker="w", lease_until=NOW + timedelta(1))
    await outbox.start_sending(
        ids=[r.id for r in rows], worker="w", now=NOW, lease_until=NOW + timedelta(1)
    )
    await outbox.record(outcomes=[Sent(r.id, 1) for r in rows], worker="w", now=NOW)
    assert await store.finish(broadcast_id=broadcast_id, now=NOW)
    # The report the old code sent at this moment: nobody could have ordered yet.
    early = await broadcast_report(store, broadcast_id=broadcast_id, days=14, clock=now_clock)
    assert early is not None
    assert (early.final, early.closes_at) == (False, NOW + timedelta(days=14))
    assert [(r.delivered, r.converted) for r in early.results] == [(2, 0)]
    await order(db, "after", buyer, days=-10, total=250_000)  # ten days after delivery
    later = FixedClock(NOW + timedelta(days=14))
    final = await broadcast_report(store, broadcast_id=broadcast_id, days=14, clock=later)
    assert final is not None
    assert final.final
    assert [(r.delivered, r.converted, r.revenue) for r in final.results] == [(2, 1, 250_000)]
    [listed] = await store.recent(limit=5)
    assert (listed.id, listed.state, listed.progress_final_at) == (broadcast_id, "done", None)
    await store.mark_progress_final(broadcast_id=broadcast_id, now=NOW)
    [waiting] = await store.unreported()
    assert waiting.progress_final_at == NOW


def test_buttons_and_texts_are_checked() -> None:
    assert parse_button("Shop now | https://lapki.example/sale") == Button(
        "Shop now", "https://lapki.example/sale"
    )
    for bad in ("Shop now", "| https://x.example", "Shop | ftp://x.example", "Shop | lapki"):
        with pytest.raises(InvalidBroadcastError):
            parse_button(bad)
