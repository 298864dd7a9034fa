"""The delivery policy with a fixed clock: consent, switches, quiet hours, caps, validation."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import cast
from zoneinfo import ZoneInfo

import pytest

from scenarios.delivery import (
    Category,
    InvalidMessageError,
    Outgoing,
    Postpone,
    Recipient,
    Send,
    Skip,
    decide,
    local_day_start,
    quiet_until,
    validate,
)
from scenarios.rules import Delivery, QuietHours
from storage.messages import MessageContent

KYIV = ZoneInfo("Europe/Kyiv")
VLADIVOSTOK = ZoneInfo("Asia/Vladivostok")
QUIET = QuietHours(start=time(21, 0), end=time(9, 0))
RULES = Delivery()


def at(hour: int, minute: int = 0, zone: ZoneInfo = KYIV, day: int = 10) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=zone).astimezone(UTC)


def member(**changes: object) -> Recipient:
    fields: dict[str, object] = {"blocked": False, "marketing_opt_in": True, "zone": KYIV}
    fields.update(changes)
    return Recipient(**fields)  # type: ignore[arg-type]


def policy(
    category: Category, recipient: Recipient | None, now: datetime, kind: str = "x"
) -> object:
    return decide(
        category=category, kind=kind, recipient=recipient, rules=RULES, quiet=QUIET, now=now
    )


def test_transactional_and_staff_messages_always_go_at_once() -> None:
    night = at(23)
    assert policy(Category.TRANSACTIONAL, member(blocked=True), night) == Send()
    assert policy(Category.SERVICE, None, night) == Send()  # e.g. the staff chat


def test_marketing_needs_consent_and_reachability() -> None:
    noon = at(12)
    assert policy(Category.MARKETING, member(marketing_opt_in=False), noon) == Skip(
        "no consent to marketing"
    )
    assert policy(Category.MARKETING, member(blocked=True), noon) == Skip(
        "customer blocked the bot"
    )
    assert policy(Category.MARKETING, member(), noon) == Send()


def test_a_switched_off_service_kind_is_skipped_others_go() -> None:
    recipient = member(muted_kinds=frozenset({"reminder"}))
    assert policy(Category.SERVICE, recipient, at(12), kind="reminder") == Skip(
        "customer switched off reminder"
    )
    assert policy(Category.SERVICE, recipient, at(12), kind="rating_request") == Send()


@pytest.mark.parametrize(
    ("local_hour", "postponed_to"),
    [(21, at(9, day=11)), (23, at(9, day=11)), (3, at(9)), (8, at(9))],
)
def test_quiet_hours_move_service_and_marketing_to_the_morning(
    local_hour: int, postponed_to: datetime
) -> None:
    decision = policy(Category.SERVICE, member(), at(local_hour))
    assert isinstance(decision, Postpone)
    assert decision.until == postponed_to
    assert decision.reason == "quiet hours"
    assert policy(Category.SERVICE, member(), at(9)) == Send()
    assert policy(Category.SERVICE, member(), at(20, 59)) == Send()


def test_quiet_hours_follow_the_customers_own_zone() -> None:
    moment = at(12)  # noon in Kyiv is 20:00 in Vladivostok... and 21:00 an hour later
    assert policy(Category.SERVICE, member(zone=VLADIVOSTOK), moment) == Send()
    later = at(13)
    decision = policy(Category.SERVICE, member(zone=VLADIVOSTOK), later)
    assert isinstance(decision, Postpone)
    assert decision.until == datetime(2026, 11, 11, 9, 0, tzinfo=VLADIVOSTOK)


def test_quiet_hours_that_do_not_wrap_midnight_and_switched_off_quiet_hours() -> None:
    siesta = QuietHours(start=time(13, 0), end=time(15, 0))
    assert quiet_until(at(14), KYIV, siesta) == at(15)
    assert quiet_until(at(15), KYIV, siesta) is None
    assert quiet_until(at(23), KYIV, QuietHours(start=time(0), end=time(0))) is None


def test_quiet_hours_across_a_daylight_saving_change() -> None:
    # Kyiv leaves summer time (UTC+3) on 25 Oct 2026 at 04:00: 09:00 that day is 07:00 UTC,
    # not the 06:00 that the evening's offset would give.
    night = datetime(2026, 10, 24, 23, 30, tzinfo=KYIV)
    assert quiet_until(night, KYIV, QUIET) == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)


def test_daily_caps_postpone_to_the_next_morning() -> None:
    decision = policy(Category.SERVICE, member(service_today=1), at(12))
    assert decision == Postpone(at(9, day=11), "daily service cap reached")
    decision = policy(Category.MARKETING, member(marketing_today=1), at(12))
    assert decision == Postpone(at(9, day=11), "daily marketing cap reached")
    # one of each kind per day: a service message does not use up the marketing allowance
    assert policy(Category.MARKETING, member(service_today=1), at(12)) == Send()


def test_the_weekly_marketing_cap_skips() -> None:
    assert policy(Category.MARKETING, member(marketing_this_week=2), at(12)) == Skip(
        "weekly marketing cap reached"
    )


def test_local_day_start_is_local_midnight() -> None:
    assert local_day_start(at(0, 30), KYIV) == datetime(2026, 11, 10, 0, 0, tzinfo=KYIV)


def outgoing(**content: object) -> Outgoing:
    return Outgoing(
        dedupe_key="k",
        chat_id=1,
        category=Category.SERVICE,
        kind="x",
        content=cast(MessageContent, content),
    )


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (outgoing(), "exactly one of"),
        (outgoing(texts={"ru": "привет"}), "'default' entry"),
        (outgoing(text="a", template="t.html"), "exactly one of"),
        (outgoing(text="x" * 4097), "1..4096"),
        (outgoing(text="a", buttons=[[{"text": "go"}]]), "either a url or callback_data"),
        (outgoing(text="a", buttons=[[{"text": "b", "callback_data": "x" * 65}]]), "64 bytes"),
        (
            Outgoing(
                dedupe_key="", chat_id=1, category=Category.SERVICE, kind="x", content={"text": "a"}
            ),
            "dedupe_key",
        ),
    ],
)
def test_messages_telegram_would_refuse_are_refused_before_queueing(
    message: Outgoing, problem: str
) -> None:
    with pytest.raises(InvalidMessageError, match=problem):
        validate(message)
