"""Ratings after orders: the request, the customer's answer, escalation and staff actions."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from scenarios.audit import AuditEntry, AuditLog
from scenarios.clock import Clock
from scenarios.delivery import (
    COMPLAINT_HOLD,
    HELD_DURING_COMPLAINT,
    Category,
    OutboxWriter,
    Outgoing,
    enqueue,
)
from scenarios.ledger import LedgerReader, LedgerRefusal, PointsLedger, tier_status
from scenarios.orders import FINAL_STATUSES, OrderEvent
from scenarios.rules import Ratings
from scenarios.tiers import TierLadder
from storage.ledger import EntryKind
from storage.messages import ButtonRows
from storage.ratings import (
    AlertRecord,
    AlertState,
    MemberContact,
    OrderSummary,
    RatingRecord,
)

RATING_KIND = "rating_request"
STAFF_ALERT_KIND = "staff_alert"
SCORES = range(1, 6)
# After the first answer the customer may change their mind for this long; then it is final.
CHANGE_WINDOW = timedelta(hours=24)
# A customer's whole message (Telegram's own limit): a long comment goes to staff as a reply of
# its own when the alert has no room for it, so none of it is cut off.
MAX_COMMENT = 4096

# Rows of buttons for a rating request, given the rating's id (callback data is the handlers'
# business: scenarios know no Telegram).
ButtonsFor = Callable[[int], ButtonRows]


def request_key(order_ref: str) -> str:
    return f"rating-request:{order_ref}"


def alert_key(alert_id: int) -> str:
    return f"staff-alert:{alert_id}"


def compensation_source(alert_id: int) -> str:
    return f"rating-alert:{alert_id}"


def is_negative(score: int, rules: Ratings) -> bool:
    return score <= rules.negative_threshold


# ---- ports -------------------------------------------------------------------------------


class RatingStore(Protocol):
    async def open_request(
        self, *, order_ref: str, customer_id: int, requested_at: datetime, expires_at: datetime
    ) -> tuple[int, bool]: ...

    async def withdraw(self, *, order_ref: str, now: datetime) -> bool: ...

    async def by_id(self, *, rating_id: int, lock: bool = False) -> RatingRecord | None: ...

    async def save_score(
        self,
        *,
        rating_id: int,
        score: int,
        now: datetime,
        unchanged_since: RatingRecord | None = None,
    ) -> RatingRecord | None: ...

    async def save_comment(self, *, rating_id: int, comment: str) -> None: ...

    async def order_summary(self, *, order_ref: str) -> OrderSummary | None: ...

    async def member(self, *, customer_id: int) -> MemberContact | None: ...

    async def raise_alert(
        self, *, rating_id: int, customer_id: int, snapshot: dict[str, Any], now: datetime
    ) -> tuple[AlertRecord, bool]: ...

    async def alert(self, *, alert_id: int, lock: bool = False) -> AlertRecord | None: ...

    async def alert_for_rating(self, *, rating_id: int) -> AlertRecord | None: ...

    async def take(self, *, alert_id: int, by: int, name: str, now: datetime) -> bool: ...

    async def resolve(self, *, alert_id: int, by: int, name: str, now: datetime) -> bool: ...

    async def resolve_by_customer(self, *, alert_id: int, now: datetime) -> bool: ...

    async def reopen(self, *, alert_id: int) -> bool: ...

    async def has_open_alert(self, *, customer_id: int) -> bool: ...

    async def record_compensation(
        self, *, alert_id: int, points: int, name: str, now: datetime
    ) -> bool: ...

    async def record_reply(self, *, alert_id: int, name: str, now: datetime) -> bool: ...


class Withdrawer(OutboxWriter, Protocol):
    async def cancel(self, *, dedupe_key: str, reason: str, now: datetime) -> bool: ...


class HoldReleaser(OutboxWriter, Protocol):
    async def release_held(
        self, *, customer_id: int, kinds: Iterable[str], hold_reason: str, now: datetime
    ) -> int: ...


# ---- the request -------------------------------------------------------------------------


class RatingRequests:
    """An order follower: one rating request per member's order, withdrawn if it is cancelled."""

    def __init__(
        self,
        *,
        store: RatingStore,
        outbox: Withdrawer,
        rules: Ratings,
        clock: Clock,
        buttons: ButtonsFor,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._rules = rules
        self._clock = clock
        self._buttons = buttons

    def _starts(self, status: str) -> bool:
        if self._rules.rate_on == "paid":
            return status in ("paid", "delivered")
        return status == "delivered"

    async def after_order(self, event: OrderEvent) -> None:
        if event.is_partial_refund:  # the order stands; its rating request is as it was
            return
        now = self._clock.now()
        if event.status in FINAL_STATUSES:
            reason = f"order {event.order_id} was {event.status}"
            key = request_key(event.order_id)
            await self._outbox.cancel(dedupe_key=key, reason=reason, now=now)
            await self._store.withdraw(order_ref=event.order_id, now=now)
            return
        if event.customer_id is None or not event.recent or not self._starts(event.status):
            return
        member = await self._store.member(customer_id=event.customer_id)
        summary = await self._store.order_summary(order_ref=event.order_id)
        if member is None or member.telegram_id is None or summary is None:
            return
        due = now + timedelta(minutes=self._rules.rating_delay_minutes)
        rating_id, created = await self._store.open_request(
            order_ref=event.order_id,
            customer_id=event.customer_id,
            requested_at=due,
            expires_at=due + timedelta(days=self._rules.rating_ttl_days),
        )
        if not created:  # paid, then delivered: still one request per order
            return
        await enqueue(
            self._outbox,
            Outgoing(
                dedupe_key=request_key(event.order_id),
                chat_id=member.telegram_id,
                category=Category.SERVICE,
                kind=RATING_KIND,
                content={
                    "template": "rating_request.html",
                    "context": request_context(summary),
                    "buttons": self._buttons(rating_id),
                },
                customer_id=event.customer_id,
                not_before=due,
            ),
            clock=self._clock,
        )


def request_context(summary: OrderSummary, score: int | None = None) -> dict[str, Any]:
    """What rating_request.html shows: the order, its items and (once rated) the score."""
    return {
        "order_id": summary.order_ref,
        "items": [[item.name, item.quantity] for item in summary.items],
        "score": score,
    }


# ---- the answer --------------------------------------------------------------------------


class Verdict(StrEnum):
    SAVED = "saved"
    UNCHANGED = "unchanged"  # the same score again
    FORGED = "forged"  # no such rating, not this customer's, or not a score
    WITHDRAWN = "withdrawn"  # the order was cancelled
    EXPIRED = "expired"  # never answered within rating_ttl_days
    LOCKED = "locked"  # answered more than CHANGE_WINDOW ago


@dataclass(frozen=True, slots=True)
class Answer:
    verdict: Verdict
    rating: RatingRecord | None = None
    previous: int | None = None  # the score before this press


@dataclass(frozen=True, slots=True)
class Press:
    """A press decided on the rating as read: its score is saved unless the rating changed."""

    rating: RatingRecord
    score: int


class RatingDesk:
    """A customer's press and comment, checked against the database, never the button."""

    def __init__(self, *, store: RatingStore, rules: Ratings, clock: Clock) -> None:
        self._store = store
        self._rules = rules
        self._clock = clock

    async def rate(self, *, rating_id: int, customer_id: int, score: int) -> Answer:
        decided = await self.decide(rating_id=rating_id, customer_id=customer_id, score=score)
        return decided if isinstance(decided, Answer) else await self.save(decided)

    async def decide(self, *, rating_id: int, customer_id: int, score: int) -> Answer | Press:
        """What a press means, on the rating as it is now, writing nothing: an answer, or a
        press to ``save``. Reads outside the write (and the caller's reads before ``save``)
        leave SQLite's single writer to one statement."""
        if score not in SCORES:
            return Answer(Verdict.FORGED)
        rating = await self._store.by_id(rating_id=rating_id)
        if rating is None or rating.customer_id != customer_id:
            return Answer(Verdict.FORGED)
        if rating.withdrawn_at is not None:
            return Answer(Verdict.WITHDRAWN, rating)
        now = self._clock.now()
        if rating.first_rated_at is None:
            if now >= rating.expires_at:
                return Answer(Verdict.EXPIRED, rating)
        elif now >= rating.first_rated_at + CHANGE_WINDOW:
            return Answer(Verdict.LOCKED, rating)
        if rating.score == score:
            return Answer(Verdict.UNCHANGED, rating, previous=score)
        return Press(rating, score)

    async def save(self, press: Press) -> Answer:
        """Save a decided press. If the rating changed since it was read (its order cancelled,
        another press saved first), nothing is written and the press is decided again on the
        rating as it is then: it changes only by its owner's presses (one at a time) and its
        withdrawal (once), so this ends."""
        while True:
            saved = await self._store.save_score(
                rating_id=press.rating.id,
                score=press.score,
                now=self._clock.now(),
                unchanged_since=press.rating,
            )
            if saved is not None:
                return Answer(Verdict.SAVED, saved, previous=press.rating.score)
            decided = await self.decide(
                rating_id=press.rating.id, customer_id=press.rating.customer_id, score=press.score
            )
            if isinstance(decided, Answer):
                return decided
            press = decided

    async def comment(self, *, rating_id: int, customer_id: int, text: str) -> RatingRecord | None:
        """Store what went wrong; None if the rating is not this customer's."""
        rating = await self._store.by_id(rating_id=rating_id, lock=True)
        if rating is None or rating.customer_id != customer_id:
            return None
        await self._store.save_comment(rating_id=rating_id, comment=text.strip()[:MAX_COMMENT])
        return await self._store.by_id(rating_id=rating_id)

    def is_negative(self, score: int) -> bool:
        return is_negative(score, self._rules)


# ---- escalation and staff actions --------------------------------------------------------


class Escalation:
    """Negative ratings become alerts; staff take, resolve, compensate and reply."""

    def __init__(
        self,
        *,
        store: RatingStore,
        outbox: HoldReleaser,
        reader: LedgerReader,
        ladder: TierLadder,
        clock: Clock,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._reader = reader
        self._ladder = ladder
        self._clock = clock

    async def raise_alert(self, rating: RatingRecord) -> tuple[AlertRecord, bool]:
        """The rating's alert, raised once; a snapshot of who and what staff need to see."""
        existing = await self._store.alert_for_rating(rating_id=rating.id)
        if existing is not None:
            if await self._store.reopen(alert_id=existing.id):  # lowered again after raising
                reopened = await self._store.alert(alert_id=existing.id)
                return reopened or existing, False
            return existing, False
        member = await self._store.member(customer_id=rating.customer_id)
        summary = await self._store.order_summary(order_ref=rating.order_ref)
        status = await tier_status(
            self._reader, customer_id=rating.customer_id, ladder=self._ladder, clock=self._clock
        )
        snapshot: dict[str, Any] = {
            "name": (member.first_name if member else None) or "",
            "username": member.username if member else None,
            "phone": member.phone if member else None,
            "telegram_id": member.telegram_id if member else None,
            "tier": status.tier.name,
            "order_id": rating.order_ref,
            "items": [[i.name, i.quantity] for i in summary.items] if summary else [],
            "total": summary.total if summary else 0,
            "currency": summary.currency if summary else "",
        }
        return await self._store.raise_alert(
            rating_id=rating.id,
            customer_id=rating.customer_id,
            snapshot=snapshot,
            now=self._clock.now(),
        )

    async def take(self, *, alert_id: int, by: int, name: str) -> bool:
        return await self._store.take(alert_id=alert_id, by=by, name=name, now=self._clock.now())

    async def resolve(self, *, alert_id: int, by: int, name: str) -> bool:
        now = self._clock.now()
        if not await self._store.resolve(alert_id=alert_id, by=by, name=name, now=now):
            return False
        await self._released(alert_id)
        return True

    async def score_raised(self, alert: AlertRecord) -> AlertRecord:
        """The customer changed a negative score to a good one: their complaint is over, closed
        as resolved by the customer. The rating's alert as it is now."""
        if await self._store.resolve_by_customer(alert_id=alert.id, now=self._clock.now()):
            await self._released(alert.id)
            return await self._store.alert(alert_id=alert.id) or alert
        return alert

    async def _released(self, alert_id: int) -> None:
        """With the customer's last complaint resolved, what it held back goes now (marketing
        is paused only while one is open, so it resumes by itself)."""
        alert = await self._store.alert(alert_id=alert_id)
        if alert is None or await self._store.has_open_alert(customer_id=alert.customer_id):
            return
        await self._outbox.release_held(
            customer_id=alert.customer_id,
            kinds=HELD_DURING_COMPLAINT,
            hold_reason=COMPLAINT_HOLD,
            now=self._clock.now(),
        )

    async def compensate(
        self,
        *,
        alert_id: int,
        points: int,
        by: int,
        name: str,
        presets: tuple[int, ...],
        ledger: PointsLedger,
        audit: AuditLog,
    ) -> Compensation:
        """Grant preset points once per alert, tell the customer, and leave an audit trail."""
        alert = await self._store.alert(alert_id=alert_id, lock=True)
        if alert is None or points not in presets:
            return Compensation(CompensationResult.REFUSED, 0)
        if alert.compensation_points is not None:
            return Compensation(CompensationResult.ALREADY, alert.compensation_points)
        order_ref = str(alert.snapshot.get("order_id", ""))
        try:
            posted = await ledger.grant(
                customer_id=alert.customer_id,
                kind=EntryKind.COMPENSATION,
                source=compensation_source(alert_id),
                points=points,
                reason=f"compensation for a negative rating of order {order_ref}",
                actor_id=by,
            )
        except LedgerRefusal:
            return Compensation(CompensationResult.REFUSED, 0)
        if posted.replayed:  # granted before, but the alert row missed it: settle the row
            await self._store.record_compensation(
                alert_id=alert_id, points=posted.entry.amount, name=name, now=self._clock.now()
            )
            return Compensation(CompensationResult.ALREADY, posted.entry.amount)
        now = self._clock.now()
        await self._store.record_compensation(alert_id=alert_id, points=points, name=name, now=now)
        await audit.record(
            AuditEntry(
                at=now,
                actor_id=by,
                action="compensation",
                customer_id=alert.customer_id,
                details={"alert_id": alert_id, "order_id": order_ref, "points": points},
            )
        )
        chat_id = alert.snapshot.get("telegram_id")
        if chat_id is not None:
            await enqueue(
                self._outbox,
                Outgoing(
                    dedupe_key=f"compensation:{alert_id}",
                    chat_id=int(chat_id),
                    category=Category.TRANSACTIONAL,
                    kind="compensation",
                    content={
                        "template": "rating_compensation.html",
                        "context": {"points": points, "order_id": order_ref},
                    },
                    customer_id=alert.customer_id,
                ),
                clock=self._clock,
            )
        return Compensation(CompensationResult.GRANTED, points)

    async def relay_reply(
        self, *, alert_id: int, message_id: int, text: str, name: str, shop: str
    ) -> bool:
        """A staff member's answer, to the customer's chat, signed as the shop."""
        alert = await self._store.alert(alert_id=alert_id)
        chat_id = alert.snapshot.get("telegram_id") if alert is not None else None
        if alert is None or chat_id is None:
            return False
        await enqueue(
            self._outbox,
            Outgoing(
                dedupe_key=f"staff-reply:{alert_id}:{message_id}",
                chat_id=int(chat_id),
                category=Category.TRANSACTIONAL,
                kind="staff_reply",
                content={
                    "template": "rating_staff_reply.html",
                    "context": {
                        "text": text[:3000],
                        "shop": shop,
                        "order_id": alert.snapshot.get("order_id", ""),
                    },
                },
                customer_id=alert.customer_id,
            ),
            clock=self._clock,
        )
        await self._store.record_reply(alert_id=alert_id, name=name, now=self._clock.now())
        return True


class CompensationResult(StrEnum):
    GRANTED = "granted"
    ALREADY = "already"  # this alert was compensated before (the first amount stands)
    REFUSED = "refused"  # no such alert, or not one of the preset amounts


@dataclass(frozen=True, slots=True)
class Compensation:
    result: CompensationResult
    points: int


def alert_is_open(alert: AlertRecord) -> bool:
    return alert.state != AlertState.RESOLVED
