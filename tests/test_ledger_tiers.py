"""The tier ladder and the [bonus] rules: thresholds, gaps, upgrades, windows, validation."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.rules import Bonus, RulesError, TierRule, load_rules
from scenarios.tiers import (
    Downgrade,
    Tier,
    TierLadder,
    TierWindow,
    Upgrade,
    compare_tiers,
    minor_units_per_major,
    months_before,
    percent_to_basis_points,
)

LADDER = TierLadder.from_rules(Bonus(), currency="RUB")
RUB = 100


@pytest.mark.parametrize(
    ("spend_rub", "tier", "cashback_bp"),
    [
        (0, "bronze", 500),
        (9_999.99, "bronze", 500),
        (10_000, "silver", 700),
        (29_999, "silver", 700),
        (30_000, "gold", 1000),
        (60_000, "platinum", 1500),
        (99_999.99, "platinum", 1500),
        (100_000, "diamond", 2000),
        (5_000_000, "diamond", 2000),
    ],
)
def test_the_default_ladder_from_the_issue(spend_rub: float, tier: str, cashback_bp: int) -> None:
    spend = int(Decimal(str(spend_rub)) * RUB)
    found = LADDER.tier_for(spend)
    assert (found.name, found.cashback_bp) == (tier, cashback_bp)


def test_thresholds_are_kept_in_minor_units_of_the_shops_currency() -> None:
    assert [tier.threshold for tier in LADDER.tiers] == [
        0,
        1_000_000,
        3_000_000,
        6_000_000,
        10_000_000,
    ]
    yen = TierLadder.from_rules(Bonus(), currency="JPY")
    assert yen.tiers[1].threshold == 10_000  # the yen has no minor unit
    assert (minor_units_per_major("UAH"), minor_units_per_major("JPY")) == (100, 1)


def test_the_gap_to_the_next_tier_and_none_at_the_top() -> None:
    gap = LADDER.next_tier_gap(9_000 * RUB)
    assert gap is not None
    assert (gap.next_tier.name, gap.missing) == ("silver", 1_000 * RUB)
    exactly = LADDER.next_tier_gap(10_000 * RUB)
    assert exactly is not None and (exactly.next_tier.name, exactly.missing) == ("gold", 2_000_000)
    assert LADDER.next_tier_gap(100_000 * RUB) is None


def test_tier_changes_are_told_apart() -> None:
    bronze, silver = LADDER.tiers[0], LADDER.tiers[1]
    assert compare_tiers(bronze, silver) == Upgrade(before=bronze, after=silver)
    assert compare_tiers(silver, bronze) == Downgrade(before=silver, after=bronze)
    assert compare_tiers(silver, silver) is None
    assert LADDER.change(spend_before=9_999 * RUB, spend_after=60_000 * RUB) == Upgrade(
        before=bronze, after=LADDER.tiers[3]
    )
    assert LADDER.change(spend_before=0, spend_after=9_999 * RUB) is None


def test_the_rolling_window_counts_twelve_calendar_months_back() -> None:
    rolling = TierLadder(LADDER.tiers, window=TierWindow.ROLLING_12_MONTHS)
    now = datetime(2027, 3, 15, 10, 30, tzinfo=UTC)
    assert rolling.window_start(now) == datetime(2026, 3, 15, 10, 30, tzinfo=UTC)
    assert LADDER.window_start(now) is None
    assert months_before(datetime(2028, 2, 29, tzinfo=UTC), 12) == datetime(2027, 2, 28, tzinfo=UTC)
    assert months_before(datetime(2027, 3, 31, tzinfo=UTC), 1) == datetime(2027, 2, 28, tzinfo=UTC)
    assert months_before(datetime(2027, 1, 5, tzinfo=UTC), 13) == datetime(2025, 12, 5, tzinfo=UTC)


def test_percentages_become_exact_basis_points() -> None:
    assert percent_to_basis_points(Decimal("7.5")) == 750
    assert percent_to_basis_points(Decimal(30)) == 3000
    with pytest.raises(ValueError, match="finer than a basis point"):
        percent_to_basis_points(Decimal("7.125"))


def test_a_ladder_must_start_at_zero_and_climb() -> None:
    with pytest.raises(ValueError, match="starts with a tier from 0"):
        TierLadder([Tier("a", 100, 500)], window=TierWindow.LIFETIME)
    with pytest.raises(ValueError, match="strictly increase"):
        TierLadder([Tier("a", 0, 500), Tier("b", 0, 700)], window=TierWindow.LIFETIME)
    with pytest.raises(ValueError, match="cannot be negative"):
        LADDER.tier_for(-1)


@settings(max_examples=200, deadline=None)
@given(
    thresholds=st.lists(st.integers(1, 10**9), min_size=0, max_size=6, unique=True),
    spend=st.integers(0, 2 * 10**9),
    more=st.integers(0, 10**9),
)
def test_any_ladder_gives_the_highest_tier_reached_and_the_exact_gap(
    thresholds: list[int], spend: int, more: int
) -> None:
    tiers = [Tier(f"t{n}", limit, 100 * n) for n, limit in enumerate([0, *sorted(thresholds)])]
    ladder = TierLadder(tiers, window=TierWindow.LIFETIME)
    tier = ladder.tier_for(spend)
    assert tier.threshold <= spend
    assert all(t.threshold > spend for t in tiers if t.threshold > tier.threshold)
    gap = ladder.next_tier_gap(spend)
    if gap is None:
        assert tier == tiers[-1]
    else:
        assert ladder.tier_for(spend + gap.missing) == gap.next_tier
        assert ladder.tier_for(spend + gap.missing - 1) == tier
    # more paid spend never lowers the tier
    assert not isinstance(ladder.change(spend_before=spend, spend_after=spend + more), Downgrade)


def test_the_bonus_rules_refuse_a_ladder_that_makes_no_sense(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    cases = {
        "[bonus]\nhold_days = 30\npoints_ttl_days = 30\n": "longer than hold_days",
        "[[bonus.tiers]]\nname = 'a'\nfrom_spend = 5\ncashback_percent = 5\n": "from_spend = 0",
        (
            "[[bonus.tiers]]\nname = 'a'\nfrom_spend = 0\ncashback_percent = 5\n"
            "[[bonus.tiers]]\nname = 'b'\nfrom_spend = 0\ncashback_percent = 7\n"
        ): "strictly increasing",
        (
            "[[bonus.tiers]]\nname = 'a'\nfrom_spend = 0\ncashback_percent = 5\n"
            "[[bonus.tiers]]\nname = 'a'\nfrom_spend = 10\ncashback_percent = 7\n"
        ): "unique",
        "[[bonus.tiers]]\nname = 'a'\nfrom_spend = 0\ncashback_percent = 5.125\n": "decimal",
        "[bonus]\nmax_redeem_share = 101\n": "max_redeem_share",
        "[bonus]\ntier_window = 'forever'\n": "tier_window",
    }
    for text, problem in cases.items():
        config.write_text(text, encoding="utf-8")
        with pytest.raises(RulesError, match=problem):
            load_rules(config, required=True)


def test_a_shop_can_tune_its_ladder_in_config_toml(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        "[bonus]\nhold_days = 0\ntier_window = '12 months'\nmax_redeem_share = 50\n"
        "[[bonus.tiers]]\nname = 'member'\nfrom_spend = 0\ncashback_percent = 2.5\n"
        "[[bonus.tiers]]\nname = 'friend'\nfrom_spend = 500\ncashback_percent = 4\n",
        encoding="utf-8",
    )
    bonus = load_rules(config, required=True).bonus
    assert bonus.tiers == (
        TierRule(name="member", from_spend=0, cashback_percent=Decimal("2.5")),
        TierRule(name="friend", from_spend=500, cashback_percent=Decimal(4)),
    )
    ladder = TierLadder.from_rules(bonus, currency="UAH")
    assert ladder.window is TierWindow.ROLLING_12_MONTHS
    assert [(t.threshold, t.cashback_bp) for t in ladder.tiers] == [(0, 250), (50_000, 400)]
