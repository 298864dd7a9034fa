"""Ratings without a database: the complaint rule of the delivery policy, config, thresholds."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from handlers.rating import RateOrder, rating_buttons
from handlers.staff_alerts import AlertPress, CompensatePress
from scenarios.clock import FixedClock
from scenarios.delivery import Category, Postpone, Recipient, Send, Skip, decide
from scenarios.ratings import is_negative
from scenarios.rules import Delivery, QuietHours, Ratings

KYIV = ZoneInfo("Europe/Kyiv")
NOON = datetime(2026, 11, 10, 10, 0, tzinfo=UTC)  # 12:00 in Kyiv: not quiet hours


def policy(category: Category, kind: str, *, complaint: bool) -> object:
    recipient = Recipient(blocked=False, marketing_opt_in=True, zone=KYIV, open_complaint=complaint)
    return decide(
        category=category,
        kind=kind,
        recipient=recipient,
        rules=Delivery(),
        quiet=QuietHours(start=time(21), end=time(9)),
        now=FixedClock(NOON).now(),
    )


def test_an_open_complaint_holds_back_marketing_rating_requests_and_reminders() -> None:
    assert policy(Category.MARKETING, "broadcast", complaint=True) == Skip(
        "open complaint: no marketing until staff resolve it"
    )
    for kind in ("rating_request", "reminder"):
        assert policy(Category.SERVICE, kind, complaint=True) == Postpone(
            NOON + timedelta(hours=6), f"open complaint: {kind} waits until resolved"
        )


def test_an_open_complaint_lets_balance_changes_and_other_messages_through() -> None:
    assert policy(Category.TRANSACTIONAL, "compensation", complaint=True) == Send()
    assert policy(Category.TRANSACTIONAL, "balance", complaint=True) == Send()
    assert policy(Category.SERVICE, "expiry_warning", complaint=True) == Send()


def test_without_a_complaint_the_same_messages_go() -> None:
    assert policy(Category.MARKETING, "broadcast", complaint=False) == Send()
    assert policy(Category.SERVICE, "rating_request", complaint=False) == Send()
    assert policy(Category.SERVICE, "reminder", complaint=False) == Send()


def test_the_negative_threshold_is_configurable() -> None:
    default = Ratings()
    assert [is_negative(score, default) for score in range(1, 6)] == [
        True,
        True,
        True,
        False,
        False,
    ]
    strict = Ratings(negative_threshold=4)
    assert is_negative(4, strict)
    assert not is_negative(5, strict)


def test_ratings_config_defaults_and_refusals() -> None:
    rules = Ratings()
    assert (rules.rate_on, rules.rating_delay_minutes, rules.rating_ttl_days) == (
        "delivered",
        60,
        7,
    )
    assert rules.compensation_points == (100, 300, 500)
    assert rules.review_url is None
    assert Ratings(rating_delay_minutes=0).rating_delay_minutes == 0
    refused: list[dict[str, object]] = [
        {"rate_on": "shipped"},
        {"negative_threshold": 5},
        {"rating_delay_minutes": -1},
        {"compensation_points": [100, 0]},
        {"compensation_points": [100, 100]},
        {"compensation_points": []},
        {"review_url": "not a url"},
    ]
    for bad in refused:
        with pytest.raises(ValidationError):
            Ratings.model_validate(bad)


def test_callback_data_fits_telegrams_64_bytes_and_round_trips() -> None:
    big = 10**15
    for data in (
        RateOrder(rating=big, score=5).pack(),
        AlertPress(alert=big, action="resolve").pack(),
        CompensatePress(alert=big, points=10**9).pack(),
    ):
        assert len(data.encode()) <= 64
    [stars] = rating_buttons(42)
    assert [RateOrder.unpack(b["callback_data"]) for b in stars] == [
        RateOrder(rating=42, score=score) for score in range(1, 6)
    ]
