"""Replenishment timing with a fixed clock: run-out, lead, quiet hours per zone, learning."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from scenarios.replenishment import (
    Basis,
    Interval,
    Purchase,
    choose_interval,
    converts,
    learned_for_customer,
    learned_for_product,
    merged_purchases,
    per_unit_intervals,
    plan,
    snoozed_until,
)
from scenarios.rules import QuietHours

QUIET = QuietHours()  # 21:00-09:00
KYIV = ZoneInfo("Europe/Kyiv")
VLADIVOSTOK = ZoneInfo("Asia/Vladivostok")
DAY = timedelta(days=1)
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def catalog(days: int) -> Interval:
    return Interval(timedelta(days=days), Basis.CATALOG)


def test_two_bags_of_a_30_day_food_run_out_in_60_days_and_the_reminder_comes_3_days_before() -> (
    None
):
    timing = plan(
        ordered_at=T0, quantity=2, interval=catalog(30), lead_days=3, zone=KYIV, quiet=QUIET
    )
    assert timing.runs_out_at == T0 + 60 * DAY
    # 10:00 UTC is 12:00 in Kyiv: outside quiet hours, so exactly 57 days later.
    assert timing.remind_at == T0 + 57 * DAY
    assert timing.basis is Basis.CATALOG


def test_a_reminder_due_at_night_in_the_customers_zone_moves_to_their_morning() -> None:
    # 14:00 UTC is 00:00 in Vladivostok (UTC+10): quiet until 09:00 there, 23:00 UTC.
    ordered = datetime(2026, 11, 1, 14, 0, tzinfo=UTC)
    timing = plan(
        ordered_at=ordered,
        quantity=1,
        interval=catalog(10),
        lead_days=3,
        zone=VLADIVOSTOK,
        quiet=QUIET,
    )
    assert timing.remind_at == datetime(2026, 11, 8, 23, 0, tzinfo=UTC)
    assert timing.remind_at.astimezone(VLADIVOSTOK).time() == time(9, 0)
    # The same moment is 16:00 in Kyiv: no move.
    in_kyiv = plan(
        ordered_at=ordered, quantity=1, interval=catalog(10), lead_days=3, zone=KYIV, quiet=QUIET
    )
    assert in_kyiv.remind_at == ordered + 7 * DAY


def test_a_product_override_of_lead_days_and_a_short_lived_product() -> None:
    timing = plan(
        ordered_at=T0, quantity=1, interval=catalog(30), lead_days=10, zone=KYIV, quiet=QUIET
    )
    assert timing.remind_at == T0 + 20 * DAY
    # Lasts 4 days, lead 3: not after one day, but half-way (2 days).
    short = plan(
        ordered_at=T0, quantity=1, interval=catalog(4), lead_days=3, zone=KYIV, quiet=QUIET
    )
    assert short.remind_at == T0 + 2 * DAY


def test_the_customers_own_rhythm_normalised_by_quantity() -> None:
    purchases = [
        Purchase(T0, 1),  # lasted 20 days
        Purchase(T0 + 20 * DAY, 2),  # two units lasted 44 days: 22 per unit
        Purchase(T0 + 64 * DAY, 1),  # lasted 24 days
        Purchase(T0 + 88 * DAY, 1),  # the latest: no interval yet
    ]
    assert per_unit_intervals(purchases) == [20 * DAY, 22 * DAY, 24 * DAY]
    assert learned_for_customer(purchases) == 22 * DAY
    assert learned_for_customer(purchases[:1]) is None  # one purchase teaches nothing
    assert learned_for_customer(purchases[:2]) is None  # one interval is a coincidence
    assert learned_for_customer(purchases[:3]) == 21 * DAY  # two are a habit


def test_i16_1_orders_minutes_apart_are_one_purchase_and_teach_no_interval() -> None:
    minutes = timedelta(minutes=10)
    split = [Purchase(T0, 1), Purchase(T0 + minutes, 1)]
    # Without the window the second bag "lasted" ten minutes; within it, one purchase of two.
    assert per_unit_intervals(split) == [minutes]
    assert merged_purchases(split, window=2 * DAY) == [Purchase(T0, 2)]
    assert per_unit_intervals(split, window=2 * DAY) == []
    assert learned_for_customer(split, window=2 * DAY) is None
    later = [*split, Purchase(T0 + 150 * DAY, 1), Purchase(T0 + 150 * DAY + DAY, 1)]
    assert per_unit_intervals(later, window=2 * DAY) == [75 * DAY]


def test_i16_1_an_implausibly_short_own_rhythm_gives_way_to_the_catalog() -> None:
    # A third of the catalog's 75 days is 25: 24 days is not believed, 25 is.
    assert choose_interval(own=24 * DAY, catalog_days=75, learned=None) == Interval(
        75 * DAY, Basis.CATALOG
    )
    assert choose_interval(own=25 * DAY, catalog_days=75, learned=None) == Interval(
        25 * DAY, Basis.CUSTOMER
    )
    # Without a catalog figure the learned one is the reference.
    assert choose_interval(own=DAY, catalog_days=None, learned=30 * DAY) == Interval(
        30 * DAY, Basis.PRODUCT
    )
    assert choose_interval(own=DAY, catalog_days=None, learned=None) == Interval(
        DAY, Basis.CUSTOMER
    )


def test_the_strongest_known_figure_wins() -> None:
    assert choose_interval(own=22 * DAY, catalog_days=30, learned=25 * DAY) == Interval(
        22 * DAY, Basis.CUSTOMER
    )
    assert choose_interval(own=None, catalog_days=30, learned=25 * DAY) == Interval(
        30 * DAY, Basis.CATALOG
    )
    assert choose_interval(own=None, catalog_days=None, learned=25 * DAY) == Interval(
        25 * DAY, Basis.PRODUCT
    )
    assert choose_interval(own=None, catalog_days=None, learned=None) is None


def test_a_product_learns_only_from_customers_with_enough_purchases() -> None:
    every = {
        1: [Purchase(T0 + n * 10 * DAY, 1) for n in range(4)],  # 10 days
        2: [Purchase(T0 + n * 30 * DAY, 1) for n in range(3)],  # 30 days
        3: [Purchase(T0 + n * 20 * DAY, 1) for n in range(3)],  # 20 days
        4: [Purchase(T0, 1), Purchase(T0 + 90 * DAY, 1)],  # only two purchases: ignored
    }
    assert learned_for_product(every, min_purchases=3) == (20 * DAY, 3)
    assert learned_for_product(every, min_purchases=4) == (10 * DAY, 1)
    assert learned_for_product(every, min_purchases=5) is None


def test_snooze_keeps_the_time_of_day_unless_it_is_night() -> None:
    afternoon = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)  # 14:00 in Kyiv
    assert snoozed_until(afternoon, days=7, zone=KYIV, quiet=QUIET) == afternoon + 7 * DAY
    evening = datetime(2026, 11, 1, 20, 0, tzinfo=UTC)  # 22:00 in Kyiv: quiet
    assert snoozed_until(evening, days=3, zone=KYIV, quiet=QUIET) == datetime(
        2026, 11, 5, 7, 0, tzinfo=UTC
    )


def test_an_order_converts_within_the_window_after_the_reminder_only() -> None:
    sent = T0
    assert converts(sent_at=sent, ordered_at=sent + 14 * DAY, conversion_days=14)
    assert not converts(sent_at=sent, ordered_at=sent + 15 * DAY, conversion_days=14)
    assert not converts(sent_at=sent, ordered_at=sent - DAY, conversion_days=14)
    assert not converts(sent_at=None, ordered_at=sent, conversion_days=14)


ZONES = st.sampled_from(
    [ZoneInfo(name) for name in ("UTC", "Europe/Kyiv", "Asia/Vladivostok", "America/New_York")]
)
MOMENTS = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


def in_quiet_hours(moment: datetime, zone: ZoneInfo) -> bool:
    local = moment.astimezone(zone).time().replace(tzinfo=None)
    return local >= QUIET.start or local < QUIET.end


@given(
    ordered_at=MOMENTS,
    quantity=st.integers(1, 20),
    days=st.integers(1, 365),
    lead=st.integers(0, 30),
    zone=ZONES,
)
def test_the_reminder_never_falls_in_quiet_hours_nor_before_half_the_time(
    ordered_at: datetime, quantity: int, days: int, lead: int, zone: ZoneInfo
) -> None:
    timing = plan(
        ordered_at=ordered_at,
        quantity=quantity,
        interval=catalog(days),
        lead_days=lead,
        zone=zone,
        quiet=QUIET,
    )
    lasts = timing.runs_out_at - ordered_at
    assert lasts == days * quantity * DAY
    assert not in_quiet_hours(timing.remind_at, zone)
    earliest = max(timing.runs_out_at - lead * DAY, ordered_at + lasts / 2)
    assert earliest <= timing.remind_at <= earliest + 12 * timedelta(hours=1)


@given(
    gaps=st.lists(st.integers(1, 400), min_size=2, max_size=12),
    quantities=st.lists(st.integers(1, 5), min_size=13, max_size=13),
)
def test_the_learned_interval_lies_within_the_customers_own_intervals(
    gaps: list[int], quantities: list[int]
) -> None:
    moments = [T0]
    for gap in gaps:
        moments.append(moments[-1] + gap * DAY)
    purchases = [Purchase(at, quantity) for at, quantity in zip(moments, quantities, strict=False)]
    own = per_unit_intervals(purchases)
    learned = learned_for_customer(purchases)
    assert learned is not None
    assert min(own) - timedelta(seconds=1) <= learned <= max(own) + timedelta(seconds=1)
    # Twice the units over the same gaps: each unit lasted half as long.
    doubled = [Purchase(p.at, p.quantity * 2) for p in purchases]
    halved = learned_for_customer(doubled)
    assert halved is not None
    assert abs(halved * 2 - learned) <= timedelta(seconds=2)


def test_the_readme_example() -> None:
    def at(day: datetime) -> datetime:  # stored times are UTC; Kyiv moves its clocks in March
        return day.astimezone(UTC)

    ordered = at(datetime(2027, 3, 1, 10, 0, tzinfo=KYIV))
    first_time = plan(
        ordered_at=ordered, quantity=2, interval=catalog(30), lead_days=3, zone=KYIV, quiet=QUIET
    )
    assert first_time.runs_out_at.astimezone(KYIV).date().isoformat() == "2027-04-30"
    assert first_time.remind_at.astimezone(KYIV).date().isoformat() == "2027-04-27"
    history = [
        Purchase(at(datetime(2027, 1, 1, 10, 0, tzinfo=KYIV)), 1),
        Purchase(at(datetime(2027, 1, 21, 10, 0, tzinfo=KYIV)), 1),
        Purchase(at(datetime(2027, 2, 10, 10, 0, tzinfo=KYIV)), 1),
        Purchase(ordered, 2),
    ]
    own = choose_interval(own=learned_for_customer(history), catalog_days=30, learned=None)
    assert own == Interval(20 * DAY, Basis.CUSTOMER)
    regular = plan(
        ordered_at=ordered, quantity=2, interval=own, lead_days=3, zone=KYIV, quiet=QUIET
    )
    assert regular.runs_out_at.astimezone(KYIV).date().isoformat() == "2027-04-10"
    assert regular.remind_at.astimezone(KYIV).date().isoformat() == "2027-04-07"
    late = plan(
        ordered_at=at(datetime(2027, 3, 1, 23, 0, tzinfo=KYIV)),
        quantity=2,
        interval=own,
        lead_days=3,
        zone=KYIV,
        quiet=QUIET,
    )
    assert late.remind_at == at(datetime(2027, 4, 8, 9, 0, tzinfo=KYIV))
