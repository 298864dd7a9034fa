"""The tier ladder: which cashback a customer's paid spend earns, and when their tier changes."""

from __future__ import annotations

import bisect
import calendar
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from babel.numbers import get_currency_precision

from scenarios.rules import Bonus

BASIS_POINTS = 10_000  # 100 %


class TierWindow(StrEnum):
    LIFETIME = "lifetime"  # a tier once reached is kept (unless the orders are refunded)
    ROLLING_12_MONTHS = "12 months"  # spend older than 12 months stops counting


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    threshold: int  # paid spend, minor units, from which this tier applies
    cashback_bp: int  # basis points of the paid amount: 500 = 5 %


@dataclass(frozen=True, slots=True)
class TierGap:
    """What a customer still has to pay (minor units) to reach the next tier."""

    next_tier: Tier
    missing: int


@dataclass(frozen=True, slots=True)
class Upgrade:
    before: Tier
    after: Tier


@dataclass(frozen=True, slots=True)
class Downgrade:
    before: Tier
    after: Tier


TierChange = Upgrade | Downgrade | None


def percent_to_basis_points(percent: Decimal) -> int:
    """7.5 → 750; more precision than a basis point is refused rather than rounded."""
    scaled = percent * 100
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{percent} % is finer than a basis point (0.01 %)")
    return int(scaled)


def minor_units_per_major(currency: str) -> int:
    """100 for RUB, UAH, EUR; 1 for JPY (ISO 4217 digits, from CLDR)."""
    return int(10 ** get_currency_precision(currency))


def months_before(moment: datetime, months: int) -> datetime:
    """The same wall time ``months`` calendar months earlier; 31 Mar → 29 Feb or 28 Feb."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def compare_tiers(before: Tier, after: Tier) -> TierChange:
    """An Upgrade or Downgrade to announce, or None when the tier stayed the same."""
    if after.threshold > before.threshold:
        return Upgrade(before=before, after=after)
    if after.threshold < before.threshold:
        return Downgrade(before=before, after=after)
    return None


class TierLadder:
    """Tiers by ascending threshold (the first from 0) and the window spend is counted over."""

    def __init__(self, tiers: Sequence[Tier], *, window: TierWindow) -> None:
        if not tiers or tiers[0].threshold != 0:
            raise ValueError("a tier ladder starts with a tier from 0")
        thresholds = [tier.threshold for tier in tiers]
        if any(low >= high for low, high in itertools.pairwise(thresholds)):
            raise ValueError("tier thresholds must strictly increase")
        self.tiers: tuple[Tier, ...] = tuple(tiers)
        self.window = window
        self._thresholds = thresholds

    @classmethod
    def from_rules(cls, bonus: Bonus, *, currency: str) -> TierLadder:
        """The ladder from config.toml, whose thresholds are whole units of ``currency``."""
        per_major = minor_units_per_major(currency)
        return cls(
            [
                Tier(
                    name=rule.name,
                    threshold=rule.from_spend * per_major,
                    cashback_bp=percent_to_basis_points(rule.cashback_percent),
                )
                for rule in bonus.tiers
            ],
            window=TierWindow(bonus.tier_window),
        )

    def tier_for(self, spend: int) -> Tier:
        """The tier a paid spend (minor units) puts a customer in."""
        if spend < 0:
            raise ValueError(f"spend cannot be negative: {spend}")
        return self.tiers[bisect.bisect_right(self._thresholds, spend) - 1]

    def next_tier_gap(self, spend: int) -> TierGap | None:
        """The next tier and what is missing to reach it; None at the top of the ladder."""
        position = bisect.bisect_right(self._thresholds, spend)
        if position == len(self.tiers):
            return None
        following = self.tiers[position]
        return TierGap(next_tier=following, missing=following.threshold - spend)

    def window_start(self, now: datetime) -> datetime | None:
        """Spend from this moment on counts; None: all of it."""
        if self.window is TierWindow.LIFETIME:
            return None
        return months_before(now, 12)

    def change(self, *, spend_before: int, spend_after: int) -> TierChange:
        return compare_tiers(self.tier_for(spend_before), self.tier_for(spend_after))
