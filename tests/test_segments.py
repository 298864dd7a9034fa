"""Segments computed by the database, on both backends, with a fixed clock."""

from __future__ import annotations

import pytest

from scenarios.segments import InvalidSegmentError, Segment, SegmentKind, segment_with_value
from storage.database import Database
from storage.products import ProductRecord, SqlProducts
from storage.segments import SegmentQuery, SqlSegments
from tests.support.seed import NOW, complaint, days_ago, member, order


def query(kind: str, **extra: object) -> SegmentQuery:
    return SegmentQuery(
        kind=kind,
        now=NOW,
        sleeping_days=90,
        lost_days=365,
        point_value=100,
        **extra,  # type: ignore[arg-type]
    )


async def ids(db: Database, kind: str, **extra: object) -> set[int]:
    return set(await SqlSegments(db).member_ids(query(kind, **extra)))


async def test_recency_segments(db: Database) -> None:
    newbie = await member(db, 1)
    await order(db, "n1", newbie, days=10)
    regular = await member(db, 2)  # every ~30 days, last 20 days ago: on schedule
    for n, age in enumerate((80, 50, 20)):
        await order(db, f"r{n}", regular, days=age)
    overdue = await member(db, 3)  # every ~10 days, but the last was 40 days ago
    for n, age in enumerate((60, 50, 40)):
        await order(db, f"o{n}", overdue, days=age)
    one_old = await member(db, 4)  # one order 120 days ago: over sleeping_days
    await order(db, "s1", one_old, days=120)
    gone = await member(db, 5)
    await order(db, "g1", gone, days=500)
    cancelled_only = await member(db, 6)
    await order(db, "c1", cancelled_only, days=5, status="cancelled")
    never = await member(db, 7)
    outsider = await member(db, 8, joined=False)
    await order(db, "x1", outsider, days=3)

    assert await ids(db, "all") == {newbie, regular, overdue, one_old, gone, cancelled_only, never}
    assert await ids(db, "new") == {newbie}  # the first order within new_days (30)
    assert await ids(db, "regular") == {regular}
    assert await ids(db, "sleeping") == {overdue, one_old}
    assert await ids(db, "lost") == {gone}
    assert await ids(db, "inactive", days=30) == {overdue, one_old, gone, cancelled_only, never}


async def test_purchase_and_tier_segments(db: Database) -> None:
    cat = await member(db, 11)
    await order(db, "a", cat, days=5, sku="CAT-2KG", category="food", total=1_200_000)
    dog = await member(db, 12)
    await order(db, "b", dog, days=5, sku="DOG-5KG", category="food", total=500_000)
    await order(db, "c", dog, days=400, sku="LITTER", category="litter", total=5_000_000)
    refunded = await member(db, 13)
    await order(db, "d", refunded, days=5, sku="LITTER", category="litter", status="refunded")
    nothing = await member(db, 14)

    assert await ids(db, "sku", sku="CAT-2KG") == {cat}
    assert await ids(db, "category", category="litter") == {dog}
    # Paid spend = total minus redeemed points; thresholds in kopecks: 10 000 ₽ = 1 000 000.
    assert await ids(db, "tier", spend_from=0, spend_to=1_000_000) == {refunded, nothing}
    assert await ids(db, "tier", spend_from=1_000_000, spend_to=3_000_000) == {cat}
    assert await ids(db, "tier", spend_from=3_000_000, spend_to=None) == {dog}
    # With a rolling window the old big order no longer counts.
    windowed = await ids(db, "tier", spend_from=0, spend_to=1_000_000, spend_since=days_ago(365))
    assert windowed == {dog, refunded, nothing}


async def test_i16_3_a_category_counts_from_the_catalog_when_lines_carry_none(
    db: Database,
) -> None:
    for sku, category in (("CAT-2KG", "food"), ("SAND", "litter")):
        await SqlProducts(db).save(
            ProductRecord(
                sku=sku,
                name=sku,
                url=None,
                category=category,
                consumption_days=None,
                lead_days=None,
                related=(),
            ),
            now=NOW,
        )
    from_catalog = await member(db, 31)
    await order(db, "p1", from_catalog, days=5, sku="CAT-2KG", category=None)
    said_so = await member(db, 32)  # the line's own category wins over the catalog's
    await order(db, "p2", said_so, days=5, sku="SAND", category="food")
    litter = await member(db, 33)
    await order(db, "p3", litter, days=5, sku="SAND", category=None)
    unknown = await member(db, 34)  # neither the line nor the catalog knows
    await order(db, "p4", unknown, days=5, sku="MYSTERY", category=None)
    void = await member(db, 35)
    await order(db, "p5", void, days=5, sku="CAT-2KG", category=None, status="cancelled")

    assert await ids(db, "category", category="food") == {from_catalog, said_so}
    assert await ids(db, "category", category="litter") == {litter}


async def test_i16_7_members_with_an_open_complaint_are_not_counted_as_reachable(
    db: Database,
) -> None:
    calm = await member(db, 41)
    unhappy = await member(db, 42)
    await complaint(db, unhappy)
    being_handled = await member(db, 43)
    await complaint(db, being_handled, state="taken")
    settled = await member(db, 44)
    await complaint(db, settled, state="resolved")
    segments = SqlSegments(db)
    assert await segments.count(query("all"), marketing_per_week=2) == (4, 2)
    assert await segments.reachable_ids(query("all"), marketing_per_week=2) == [calm, settled]


async def test_i16_11_new_and_inactive_follow_order_history_not_the_join_date(
    db: Database,
) -> None:
    # Everyone joined at launch, a week ago; their history was imported.
    last_year = await member(db, 51, joined_days_ago=7)
    await order(db, "y1", last_year, days=300)
    this_month = await member(db, 52, joined_days_ago=7)
    await order(db, "m1", this_month, days=20)
    await order(db, "m2", this_month, days=3)  # a second order: still new this month
    old_regular = await member(db, 53, joined_days_ago=7)
    await order(db, "o1", old_regular, days=200)
    await order(db, "o2", old_regular, days=2)
    fresh_no_orders = await member(db, 54, joined_days_ago=7)
    old_no_orders = await member(db, 55, joined_days_ago=90)

    assert await ids(db, "new", new_days=30) == {this_month}
    assert await ids(db, "new", new_days=365) == {last_year, this_month, old_regular}
    # No order for 60 days: last year's buyer, whenever they joined; a member without orders
    # only once they have been one for 60 days.
    assert await ids(db, "inactive", days=60) == {last_year, old_no_orders}
    assert await ids(db, "inactive", days=5) == {last_year, fresh_no_orders, old_no_orders}
    assert await ids(db, "inactive", days=10) == {last_year, old_no_orders}


async def test_counts_apply_consent_blocks_and_the_weekly_cap(db: Database) -> None:
    await member(db, 21)
    await member(db, 22, opt_in=False)
    await member(db, 23, blocked=True)
    assert await SqlSegments(db).count(query("all"), marketing_per_week=2) == (3, 1)
    assert await SqlSegments(db).count(query("all"), marketing_per_week=0) == (3, 0)


def test_segment_values_are_checked() -> None:
    tiers = ("base", "silver", "gold")
    assert segment_with_value(SegmentKind.TIER, " Gold ", tier_names=tiers) == Segment(
        SegmentKind.TIER, tier="gold"
    )
    assert segment_with_value(SegmentKind.INACTIVE, "60", tier_names=tiers).days == 60
    for kind, raw in [
        (SegmentKind.TIER, "diamond"),
        (SegmentKind.INACTIVE, "-3"),
        (SegmentKind.INACTIVE, "soon"),
        (SegmentKind.SKU, "two words"),
    ]:
        with pytest.raises(InvalidSegmentError):
            segment_with_value(kind, raw, tier_names=tiers)
    segment = Segment(SegmentKind.SKU, sku="CAT")
    assert Segment.from_json(segment.as_json()) == segment
