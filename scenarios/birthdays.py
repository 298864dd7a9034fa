"""Birthdays: reading the date a customer types, and the yearly gift that grows with the tier."""

from __future__ import annotations

import calendar
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from scenarios.clock import Clock
from scenarios.delivery import Category, OutboxWriter, Outgoing, enqueue
from scenarios.ledger import LedgerReader, PointsLedger, birthday_source, tier_status
from scenarios.rules import Rules
from scenarios.tiers import TierLadder
from scenarios.transactions import UnitOfWork
from storage.ledger import EntryKind
from storage.signup import BirthdayMember

log = logging.getLogger(__name__)

# A birthday entered or changed closer to the date than this earns no gift that year.
FRESH_BIRTHDAY = timedelta(days=30)
OLDEST_YEAR = 1900
_BIRTHDAY = re.compile(r"^\s*(\d{1,2})\s*[./-]\s*(\d{1,2})(?:\s*[./-]\s*(\d{4}))?\s*$")


@dataclass(frozen=True, slots=True)
class Birthday:
    day: int
    month: int
    year: int | None = None


def parse_birthday(text: str, *, today: date) -> Birthday | None:
    """``31.12`` or ``31.12.1990`` (also with / or -); None unless it is a real date, with a
    year from 1900 up to today."""
    match = _BIRTHDAY.match(text)
    if match is None:
        return None
    day, month = int(match[1]), int(match[2])
    year = int(match[3]) if match[3] else None
    try:
        # Without a year, 29 February is a birthday too: check it in a leap year.
        born = date(year if year is not None else 2000, month, day)
    except ValueError:
        return None
    if year is not None and not (year >= OLDEST_YEAR and born <= today):
        return None
    return Birthday(day=day, month=month, year=year)


def occurrence(*, month: int, day: int, year: int) -> date:
    """The birthday in ``year``; 29 February falls on the 28th in other years."""
    if (month, day) == (2, 29) and not calendar.isleap(year):
        return date(year, 2, 28)
    return date(year, month, day)


def next_birthday(birthday: Birthday, *, today: date) -> date:
    """The next time the birthday comes: today if it is today."""
    this_year = occurrence(month=birthday.month, day=birthday.day, year=today.year)
    if this_year >= today:
        return this_year
    return occurrence(month=birthday.month, day=birthday.day, year=today.year + 1)


def gift_eligible(*, birthday_set_at: datetime | None, birthday: date, zone: ZoneInfo) -> bool:
    """Only a birthday known at least 30 days before the day (its start, shop time) earns a
    gift: a date typed in just before it would be an easy way to collect points."""
    if birthday_set_at is None:
        return False
    day_start = datetime.combine(birthday, time(0), tzinfo=zone).astimezone(UTC)
    return birthday_set_at <= day_start - FRESH_BIRTHDAY


def birthdays_to_look_at(today: date, days_before: int) -> list[tuple[date, int, int]]:
    """(birthday date, month, day) pairs whose gift may be due today: from the birthday that is
    ``days_before`` away down to today's, so a day the bot missed is caught up later."""
    wanted = []
    for ahead in range(days_before, -1, -1):
        when = today + timedelta(days=ahead)
        wanted.append((when, when.month, when.day))
        if (when.month, when.day) == (2, 28) and not calendar.isleap(when.year):
            wanted.append((when, 2, 29))
    return wanted


# ---- ports -------------------------------------------------------------------------------


class BirthdayStore(Protocol):
    async def birthdays_on(
        self, *, month: int, day: int, year: int, limit: int
    ) -> list[BirthdayMember]: ...

    async def settle_birthday(self, *, customer_id: int, year: int) -> None: ...


# ---- the daily gift ----------------------------------------------------------------------


class BirthdayGifts:
    def __init__(
        self,
        *,
        members: BirthdayStore,
        reader: LedgerReader,
        ledger: PointsLedger,
        ladder: TierLadder,
        outbox: OutboxWriter,
        uow: UnitOfWork,
        rules: Rules,
        clock: Clock,
        zone: ZoneInfo,
    ) -> None:
        self._members = members
        self._reader = reader
        self._ledger = ledger
        self._ladder = ladder
        self._outbox = outbox
        self._uow = uow
        self._rules = rules
        self._clock = clock
        self._zone = zone

    async def tick(self, *, batch: int = 200) -> int:
        """Give today's birthday gifts (shop's time zone); returns how many were given. Safe to
        run often: a member's year is settled once, and the ledger key is per member and year."""
        today = self._clock.now().astimezone(self._zone).date()
        given = 0
        for birthday, month, day in birthdays_to_look_at(
            today, self._rules.birthday.birthday_days_before
        ):
            while True:
                members = await self._members.birthdays_on(
                    month=month, day=day, year=birthday.year, limit=batch
                )
                for member in members:
                    async with self._uow.transaction():
                        given += await self._celebrate(member, birthday)
                if len(members) < batch:
                    break
        return given

    async def _celebrate(self, member: BirthdayMember, birthday: date) -> int:
        year = birthday.year
        await self._members.settle_birthday(customer_id=member.customer_id, year=year)
        if not gift_eligible(
            birthday_set_at=member.birthday_set_at, birthday=birthday, zone=self._zone
        ):
            log.info(
                "no birthday gift %s for customer %s: birthday entered less than %s days before",
                year,
                member.customer_id,
                FRESH_BIRTHDAY.days,
            )
            return 0
        status = await tier_status(
            self._reader, customer_id=member.customer_id, ladder=self._ladder, clock=self._clock
        )
        points = self._rules.birthday.points.get(status.tier.name, 0)
        if points <= 0:
            return 0
        posted = await self._ledger.grant(
            customer_id=member.customer_id,
            kind=EntryKind.BIRTHDAY,
            source=birthday_source(member.customer_id, year),
            points=points,
            reason=f"birthday gift {year} ({status.tier.name})",
        )
        if posted.replayed:
            return 0
        if member.telegram_id is not None:
            await enqueue(
                self._outbox,
                Outgoing(
                    dedupe_key=f"birthday:{member.customer_id}:{year}",
                    chat_id=member.telegram_id,
                    customer_id=member.customer_id,
                    # A greeting, not an offer: it respects quiet hours but needs no opt-in.
                    category=Category.SERVICE,
                    kind="birthday",
                    content={
                        "template": "birthday_gift.html",
                        "context": {"points": points, "name": member.first_name or ""},
                    },
                ),
                clock=self._clock,
            )
        return 1
