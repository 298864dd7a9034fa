"""Pure rules of the account features: argument parsing, gift shares, warning grouping."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from scenarios.admin_bonus import AdminProblem, Problem, parse_bonus
from scenarios.expiry_watch import warning_key, warnings_for
from scenarios.gifts import UnknownTierError, multipliers_for, parse_gift, share
from scenarios.rules import Bonus, Gifts, Rules, RulesError, load_rules
from scenarios.tiers import TierLadder
from storage.account import ExpiringLot

TIERS = ("bronze", "silver", "gold")


@pytest.mark.parametrize(
    ("args", "ref", "points", "reason"),
    [
        ("@anna +100 late delivery", "@anna", 100, "late delivery"),
        ("+7 999 123-45-67 -50 till error", "+7 999 123-45-67", -50, "till error"),
        ("8 (999) 123-45-67 +5 got +3 wrong", "8 (999) 123-45-67", 5, "got +3 wrong"),
        ("2900000000018 25 unsigned is one word", "2900000000018", 25, "unsigned is one word"),
        ("tg:1001 +1   spaces  ", "tg:1001", 1, "spaces"),
    ],
)
def test_bonus_arguments_are_read(args: str, ref: str, points: int, reason: str) -> None:
    request = parse_bonus(args)
    assert (request.ref, request.points, request.reason) == (ref, points, reason)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (None, Problem.USAGE),
        ("@anna", Problem.USAGE),
        ("@anna +100", Problem.MISSING_REASON),
        ("@anna +0 why", Problem.ZERO),
        ("@anna ten why", Problem.BAD_NUMBER),
        ("@anna +99999999 why", Problem.TOO_MANY),
        ("@anna +1 " + "x" * 501, Problem.REASON_TOO_LONG),
    ],
)
def test_bad_bonus_arguments_are_refused(args: str | None, problem: Problem) -> None:
    with pytest.raises(AdminProblem) as refused:
        parse_bonus(args)
    assert refused.value.problem is problem


def test_gift_arguments_take_an_optional_tier_anywhere() -> None:
    request = parse_gift("100 Happy tier:Gold New Year", tier_names=TIERS)
    assert (request.amount, request.reason, request.tier) == (100, "Happy New Year", "gold")
    assert parse_gift("5 Thanks", tier_names=TIERS).tier is None
    with pytest.raises(UnknownTierError) as unknown:
        parse_gift("5 Thanks tier:iron", tier_names=TIERS)
    assert unknown.value.name == "iron"
    for bad, problem in (("", Problem.USAGE), ("0 x", Problem.ZERO), ("+5 x", Problem.BAD_NUMBER)):
        with pytest.raises(AdminProblem) as refused:
            parse_gift(bad, tier_names=TIERS)
        assert refused.value.problem is problem


def test_gift_shares_round_down_and_unlisted_tiers_get_the_amount() -> None:
    assert share(101, Decimal("1.5")) == 151
    assert share(1, Decimal("0.5")) == 0
    ladder = TierLadder.from_rules(Bonus(), currency="RUB")
    per_tier = multipliers_for(ladder, Gifts().tier_multipliers)
    assert per_tier == {
        "bronze": Decimal(1),
        "silver": Decimal("1.5"),
        "gold": Decimal(2),
        "platinum": Decimal("2.5"),
        "diamond": Decimal(3),
    }


def test_gift_multipliers_must_be_positive(tmp_path: object) -> None:
    assert Rules(gifts=Gifts(tier_multipliers={"gold": Decimal(2)})).gifts.batch_size == 500
    path = tmp_path / "config.toml"  # type: ignore[operator]
    path.write_text("[gifts]\ntier_multipliers = { gold = 0 }\n", encoding="utf-8")
    with pytest.raises(RulesError, match="gifts"):
        load_rules(path, required=True)


def test_warnings_group_points_by_customer_and_local_day() -> None:
    moscow = ZoneInfo("Europe/Moscow")
    lots = [
        # 22:30 UTC on 28 Feb is already 1 March in Moscow; the two lots make one warning.
        ExpiringLot(1, 1001, None, datetime(2027, 2, 28, 22, 30, tzinfo=UTC), 100),
        ExpiringLot(1, 1001, None, datetime(2027, 3, 1, 10, 0, tzinfo=UTC), 20),
        # The customer's own zone decides their day.
        ExpiringLot(2, 1002, "America/New_York", datetime(2027, 3, 1, 2, 0, tzinfo=UTC), 7),
        ExpiringLot(3, None, None, datetime(2027, 3, 1, 2, 0, tzinfo=UTC), 9),  # nobody to tell
    ]
    warnings = warnings_for(lots, shop_zone=moscow)
    assert [(w.customer_id, w.chat_id, w.day, w.points) for w in warnings] == [
        (1, 1001, date(2027, 3, 1), 120),
        (2, 1002, date(2027, 2, 28), 7),
    ]
    assert warning_key(1, date(2027, 3, 1)) == "expiry-warning:1:2027-03-01"


def test_birthday_and_gift_tiers_must_be_on_the_ladder(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[birthday]\npoints = { bronze = 100, gloden = 300 }\n", encoding="utf-8")
    with pytest.raises(RulesError) as refused:
        load_rules(path, required=True)
    assert str(refused.value) == (
        f"{path}: birthday.points: unknown tier 'gloden' "
        "(bonus.tiers are bronze, silver, gold, platinum, diamond)"
    )
    path.write_text("[gifts]\ntier_multipliers = { silver = 1.5, platnum = 2 }\n", encoding="utf-8")
    with pytest.raises(RulesError, match=r"gifts\.tier_multipliers: unknown tier 'platnum'"):
        load_rules(path, required=True)
    # A shop with its own ladder names its own tiers; the default tables are not held against it.
    path.write_text(
        "[[bonus.tiers]]\nname = 'member'\nfrom_spend = 0\ncashback_percent = 3\n"
        "[[bonus.tiers]]\nname = 'friend'\nfrom_spend = 500\ncashback_percent = 5\n"
        "[birthday]\npoints = { member = 50, friend = 150 }\n"
        "[gifts]\ntier_multipliers = { friend = 2 }\n",
        encoding="utf-8",
    )
    rules = load_rules(path, required=True)
    assert rules.birthday.points == {"member": 50, "friend": 150}
    assert rules.gifts.tier_multipliers == {"friend": Decimal(2)}
    path.write_text(
        "[[bonus.tiers]]\nname = 'member'\nfrom_spend = 0\ncashback_percent = 3\n"
        "[birthday]\npoints = { member = 50, gold = 150 }\n",
        encoding="utf-8",
    )
    with pytest.raises(
        RulesError, match=r"birthday\.points: unknown tier 'gold' \(bonus\.tiers are member\)"
    ):
        load_rules(path, required=True)
