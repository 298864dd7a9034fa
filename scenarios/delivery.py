"""What may go out, when: categories, consent, quiet hours and frequency caps for the outbox."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo

from scenarios.clock import Clock
from scenarios.rules import Delivery, QuietHours
from storage.messages import MessageContent

MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64
MAX_DEDUPE_KEY = 200
# Service kinds held back while the customer has an unresolved complaint (a negative rating):
# asking again or nudging to reorder before staff sorted it out would add insult to injury.
HELD_DURING_COMPLAINT = frozenset({"rating_request", "reminder"})
COMPLAINT_RECHECK = timedelta(hours=6)
# Service kinds the daily cap does not move: a birthday greeting carries the day's gift, and on
# the next day it would be late (it still waits for the end of quiet hours).
CAP_EXEMPT = frozenset({"birthday"})
# How a message held back by a complaint is marked, so that resolving it releases exactly those.
COMPLAINT_HOLD = "open complaint:"


_TAG = re.compile(r"<[^>]*>")


def visible_length(text: str) -> int:
    """A message's length as Telegram counts it against MAX_TEXT: after HTML parsing (tags are
    markup, ``&amp;`` is one character). Our texts are built with every customer's word escaped,
    so a ``<`` in them always opens a tag."""
    return len(html.unescape(_TAG.sub("", text)))


def fits(text: str) -> bool:
    return 0 < visible_length(text) <= MAX_TEXT


class Category(StrEnum):
    TRANSACTIONAL = "transactional"  # answers, balance changes, staff alerts: always, at once
    SERVICE = "service"  # rating requests, reminders, expiry warnings: per-kind switches
    MARKETING = "marketing"  # broadcasts, promotional gifts, win-back: opted-in customers only


# Staff alerts and answers first, then reminders and other service messages, then broadcasts.
PRIORITY = {Category.TRANSACTIONAL: 0, Category.SERVICE: 1, Category.MARKETING: 2}


class InvalidMessageError(ValueError):
    """An outgoing message Telegram would refuse; refused before it is queued."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A proactive message to queue. ``content`` is ``{"text": ...}`` (rendered HTML),
    ``{"texts": {"default": ..., "ru": ...}}`` (one per language, e.g. a broadcast) or
    ``{"template": name, "context": {...}}`` (rendered in the recipient's language when sent),
    plus optional ``buttons``: rows of ``{"text", "url"}`` or ``{"text", "callback_data"}``.

    ``edit_of`` (a dedupe key) makes it an edit of the message that key sent, paced like any
    message to that chat; if that one never arrived, it goes as a new message. ``reply_to``
    (a dedupe key) sends it as a reply to that message, when there is one."""

    dedupe_key: str
    chat_id: int
    category: Category
    kind: str
    content: MessageContent
    customer_id: int | None = None
    not_before: datetime | None = None


class OutboxWriter(Protocol):
    async def add(
        self,
        *,
        dedupe_key: str,
        chat_id: int,
        customer_id: int | None,
        category: str,
        kind: str,
        priority: int,
        payload: MessageContent,
        not_before: datetime,
        now: datetime,
    ) -> bool: ...


def validate(message: Outgoing) -> None:
    if not message.dedupe_key or len(message.dedupe_key) > MAX_DEDUPE_KEY:
        raise InvalidMessageError(f"dedupe_key must be 1..{MAX_DEDUPE_KEY} characters")
    content = message.content
    if sum(key in content for key in ("text", "template", "texts")) != 1:
        raise InvalidMessageError("content needs exactly one of 'text', 'texts' or 'template'")
    texts = [content["text"]] if "text" in content else list(content.get("texts", {}).values())
    if not all(fits(text) for text in texts):
        raise InvalidMessageError(f"text must be 1..{MAX_TEXT} characters")
    for reference in ("edit_of", "reply_to"):
        key = content.get(reference)
        if key is not None and not (isinstance(key, str) and 0 < len(key) <= MAX_DEDUPE_KEY):
            raise InvalidMessageError(f"{reference} must be a dedupe key")
    if "texts" in content and "default" not in content["texts"]:
        raise InvalidMessageError("'texts' needs a 'default' entry for other languages")
    for row in content.get("buttons", []):
        for button in row:
            if not button.get("text") or ("url" in button) == ("callback_data" in button):
                raise InvalidMessageError("a button needs a text and either a url or callback_data")
            data = button.get("callback_data")
            if data is not None and len(data.encode()) > MAX_CALLBACK_DATA:
                raise InvalidMessageError(f"callback_data over {MAX_CALLBACK_DATA} bytes: {data!r}")


async def enqueue(outbox: OutboxWriter, message: Outgoing, *, clock: Clock) -> bool:
    """Queue a message once: an existing ``dedupe_key`` makes this a no-op (returns False)."""
    validate(message)
    now = clock.now()
    return await outbox.add(
        dedupe_key=message.dedupe_key,
        chat_id=message.chat_id,
        customer_id=message.customer_id,
        category=message.category.value,
        kind=message.kind,
        priority=PRIORITY[message.category],
        payload=message.content,
        not_before=message.not_before or now,
        now=now,
    )


@dataclass(frozen=True, slots=True)
class Recipient:
    """What the policy needs to know about a customer at the moment of sending."""

    blocked: bool
    marketing_opt_in: bool
    zone: ZoneInfo
    muted_kinds: frozenset[str] = field(default_factory=frozenset)
    service_today: int = 0
    marketing_today: int = 0
    marketing_this_week: int = 0
    open_complaint: bool = False  # a negative rating the staff has not resolved yet


@dataclass(frozen=True, slots=True)
class Send:
    pass


@dataclass(frozen=True, slots=True)
class Postpone:
    until: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


Decision = Send | Postpone | Skip


def local_day_start(now: datetime, zone: ZoneInfo) -> datetime:
    """Midnight of the recipient's current day, as an aware datetime (for "per day" caps)."""
    local = now.astimezone(zone)
    return datetime.combine(local.date(), time(0), tzinfo=zone).astimezone(UTC)


def week_start(now: datetime) -> datetime:
    """The start of the rolling 7-day window of the weekly marketing cap."""
    return now - timedelta(days=7)


def quiet_until(now: datetime, zone: ZoneInfo, quiet: QuietHours) -> datetime | None:
    """When quiet hours end, if ``now`` falls inside them in ``zone``; else None."""
    if quiet.start == quiet.end:
        return None
    local = now.astimezone(zone)
    moment = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        inside = quiet.start <= moment < quiet.end
    else:  # the usual case: quiet hours wrap around midnight (21:00-09:00)
        inside = moment >= quiet.start or moment < quiet.end
    if not inside:
        return None
    end_day = local.date() if moment < quiet.end else local.date() + timedelta(days=1)
    return datetime.combine(end_day, quiet.end, tzinfo=zone).astimezone(UTC)


def next_morning(now: datetime, zone: ZoneInfo, quiet: QuietHours) -> datetime:
    """Tomorrow, local time, when quiet hours end: where a capped message moves to."""
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(tomorrow, quiet.end, tzinfo=zone).astimezone(UTC)


def decide(
    *,
    category: Category,
    kind: str,
    recipient: Recipient | None,
    rules: Delivery,
    quiet: QuietHours,
    now: datetime,
) -> Decision:
    """Whether a due message goes now, later, or not at all.

    Transactional messages (and anything not addressed to a customer, like staff alerts) always
    go. Service and marketing respect reachability, consent, an open complaint (marketing
    skipped, rating requests and reminders held back), the per-kind switches, quiet hours
    and the caps: over the weekly marketing cap a message is skipped (an offer sent a week late
    is stale); over a daily cap it moves to the next morning (a birthday greeting does not).
    """
    if recipient is None or category is Category.TRANSACTIONAL:
        return Send()
    if recipient.blocked:
        return Skip("customer blocked the bot")
    if recipient.open_complaint:
        if category is Category.MARKETING:
            return Skip("open complaint: no marketing until staff resolve it")
        if kind in HELD_DURING_COMPLAINT:
            return Postpone(
                now + COMPLAINT_RECHECK, f"{COMPLAINT_HOLD} {kind} waits until resolved"
            )
    if category is Category.MARKETING:
        if not recipient.marketing_opt_in:
            return Skip("no consent to marketing")
        if recipient.marketing_this_week >= rules.marketing_per_week:
            return Skip("weekly marketing cap reached")
    elif kind in recipient.muted_kinds:
        return Skip(f"customer switched off {kind}")
    quiet_end = quiet_until(now, recipient.zone, quiet)
    if quiet_end is not None:
        return Postpone(quiet_end, "quiet hours")
    if kind in CAP_EXEMPT and category is Category.SERVICE:
        return Send()
    sent_today, cap = (
        (recipient.marketing_today, rules.marketing_per_day)
        if category is Category.MARKETING
        else (recipient.service_today, rules.service_per_day)
    )
    if sent_today >= cap:
        return Postpone(next_morning(now, recipient.zone, quiet), f"daily {category} cap reached")
    return Send()
