"""When a consumable runs out and when to say so: pure timing rules, no storage, no Telegram."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from scenarios.delivery import quiet_until
from scenarios.rules import QuietHours


class Basis(StrEnum):
    """Where the time one unit lasts came from, strongest first."""

    CUSTOMER = "customer"  # the customer's own median interval (two or more real intervals)
    CATALOG = "catalog"  # the product's consumption_days
    PRODUCT = "product"  # learned from every customer who buys it often


@dataclass(frozen=True, slots=True)
class Purchase:
    """One purchase of a sku: when, and how many units."""

    at: datetime
    quantity: int


@dataclass(frozen=True, slots=True)
class Interval:
    per_unit: timedelta
    basis: Basis


@dataclass(frozen=True, slots=True)
class Timing:
    runs_out_at: datetime
    remind_at: datetime
    basis: Basis


# A customer's own interval is believed only when it is at least this share of the catalog's
# (or the learned) figure: a week for a 21-day bag is a real habit, a day is a data slip.
PLAUSIBLE_SHARE = 1 / 3
# Real intervals a customer's own rhythm needs: one gap is a coincidence, two are a habit.
MIN_OWN_INTERVALS = 2


def merged_purchases(purchases: Iterable[Purchase], *, window: timedelta) -> list[Purchase]:
    """Purchases within ``window`` after the one that opened them are one purchase of the
    summed quantity, at its moment (a split basket, a second bag added the next day); oldest
    first. Purchases at the same moment always merge."""
    merged: list[Purchase] = []
    for purchase in sorted(purchases, key=lambda p: p.at):
        if merged and purchase.at - merged[-1].at <= window:
            merged[-1] = Purchase(merged[-1].at, merged[-1].quantity + purchase.quantity)
        else:
            merged.append(purchase)
    return merged


def per_unit_intervals(
    purchases: Iterable[Purchase], *, window: timedelta = timedelta(0)
) -> list[timedelta]:
    """The time each purchase lasted, per unit: gap to the next purchase / its quantity.

    Purchases within ``window`` of each other (at the same moment, at least) are one purchase
    of their summed quantity.
    """
    merged = merged_purchases(purchases, window=window)
    return [
        (later.at - earlier.at) / earlier.quantity
        for earlier, later in itertools.pairwise(merged)
        if earlier.quantity > 0
    ]


def median(intervals: Sequence[timedelta]) -> timedelta:
    seconds = statistics.median(interval.total_seconds() for interval in intervals)
    return timedelta(seconds=round(seconds))


def learned_for_customer(
    purchases: Iterable[Purchase],
    *,
    window: timedelta = timedelta(0),
    min_intervals: int = MIN_OWN_INTERVALS,
) -> timedelta | None:
    """The customer's own per-unit interval, once at least ``min_intervals`` real intervals
    (purchases apart by more than ``window``) are known."""
    intervals = [gap for gap in per_unit_intervals(purchases, window=window) if gap > timedelta(0)]
    return median(intervals) if len(intervals) >= max(min_intervals, 1) else None


def learned_for_product(
    histories: Mapping[int, Sequence[Purchase]],
    *,
    min_purchases: int,
    window: timedelta = timedelta(0),
) -> tuple[timedelta, int] | None:
    """The median of the per-customer medians over customers with ``min_purchases`` or more
    purchases (each customer counts once, however often they buy); with how many customers.
    Purchases within ``window`` of each other count as one."""
    own = []
    for purchases in histories.values():
        if len(merged_purchases(purchases, window=window)) < min_purchases:
            continue
        interval = learned_for_customer(purchases, window=window, min_intervals=1)
        if interval is not None:
            own.append(interval)
    if not own:
        return None
    return median(own), len(own)


def choose_interval(
    *, own: timedelta | None, catalog_days: int | None, learned: timedelta | None
) -> Interval | None:
    """The customer's own rhythm beats the catalog; the catalog beats what others do.

    An own rhythm far shorter than the reference figure (the catalog's, else the learned one)
    is not believed: a third of it at least."""
    catalog = (
        timedelta(days=catalog_days) if catalog_days is not None and catalog_days > 0 else None
    )
    reference = catalog or learned
    if own is not None and (reference is None or own >= reference * PLAUSIBLE_SHARE):
        return Interval(own, Basis.CUSTOMER)
    if catalog is not None:
        return Interval(catalog, Basis.CATALOG)
    if learned is not None:
        return Interval(learned, Basis.PRODUCT)
    return None


def out_of_quiet_hours(moment: datetime, zone: ZoneInfo, quiet: QuietHours) -> datetime:
    """The moment itself, or the end of the quiet hours it falls in (customer's local time)."""
    return quiet_until(moment, zone, quiet) or moment


def plan(
    *,
    ordered_at: datetime,
    quantity: int,
    interval: Interval,
    lead_days: int,
    zone: ZoneInfo,
    quiet: QuietHours,
) -> Timing:
    """Runs out after ``per_unit × quantity``; the reminder comes ``lead_days`` before, but
    never in the first half of that time (a short-lived product with a long lead), and never
    in quiet hours."""
    lasts = interval.per_unit * max(quantity, 1)
    runs_out_at = ordered_at + lasts
    moment = max(runs_out_at - timedelta(days=lead_days), ordered_at + lasts / 2)
    return Timing(
        runs_out_at=runs_out_at,
        remind_at=out_of_quiet_hours(moment, zone, quiet),
        basis=interval.basis,
    )


def snoozed_until(now: datetime, *, days: int, zone: ZoneInfo, quiet: QuietHours) -> datetime:
    """ "Remind me in N days": the same time of day N days later, out of quiet hours."""
    return out_of_quiet_hours(now + timedelta(days=days), zone, quiet)


def converts(*, sent_at: datetime | None, ordered_at: datetime, conversion_days: int) -> bool:
    """An order converts a reminder when it comes within ``conversion_days`` after it."""
    return sent_at is not None and sent_at <= ordered_at <= sent_at + timedelta(
        days=conversion_days
    )
