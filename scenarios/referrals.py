"""Referrals: invite links, the rules that refuse a referral, and rewards once the order holds."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo

from scenarios.clock import Clock
from scenarios.delivery import Category, OutboxWriter, Outgoing, enqueue
from scenarios.ledger import PointsLedger, referral_source
from scenarios.orders import FINAL_STATUSES, OrderEvent
from scenarios.rules import Rules
from scenarios.tiers import minor_units_per_major
from scenarios.transactions import UnitOfWork
from storage.ledger import EntryKind
from storage.orders import StoredOrder
from storage.referrals import ReferralRecord

log = logging.getLogger(__name__)

INVITE_CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what Telegram allows in a /start payload
PAID_STATUSES = frozenset({"paid", "delivered"})


class RefusalReason(StrEnum):
    UNKNOWN_CODE = "unknown_code"  # no member has this code (typo, or the member left)
    SELF_REFERRAL = "self_referral"
    ALREADY_ORDERED = "already_ordered"  # the friend's phone had ordered before they joined
    SECOND_REFERRER = "second_referrer"
    # The friend's phone or Telegram id belonged to a customer who erased their data.
    RETURNING_CUSTOMER = "returning_customer"
    ALREADY_MEMBER = "already_member"  # a member opened someone's link
    BELOW_MINIMUM = "below_minimum"  # the first paid order is under referral_min_order
    ORDER_CANCELLED = "order_cancelled"  # cancelled or refunded within the hold window
    MONTHLY_CAP = "monthly_cap"
    ERASED = "erased"  # the friend erased their data before the reward
    REFERRER_LEFT = "referrer_left"  # the member who invited erased their data meanwhile


# ---- pure rules --------------------------------------------------------------------------


def valid_code(text: str | None) -> bool:
    return text is not None and bool(INVITE_CODE.match(text))


def new_invite_code() -> str:
    """12 random characters of A-Za-z0-9_-: unguessable, and short enough to share."""
    return secrets.token_urlsafe(9)


def invite_link(bot_username: str, code: str) -> str:
    return f"https://t.me/{bot_username}?start={code}"


def friend_source(referee_id: int) -> str:
    """The friend's own reward, once per friend (the referrer's is ``referral_source``)."""
    return f"friend:{referee_id}"


def signup_refusal(
    *,
    referrer_id: int | None,
    referee_id: int,
    phone_ordered_before: bool,
    has_referrer: bool,
    returning: bool = False,
) -> RefusalReason | None:
    """Why a new member's link cannot count, or None when it does. ``returning``: the phone
    or Telegram id belonged to a customer who erased their data (a "new" friend who is not)."""
    if referrer_id is None:
        return RefusalReason.UNKNOWN_CODE
    if referrer_id == referee_id:
        return RefusalReason.SELF_REFERRAL
    if has_referrer:
        return RefusalReason.SECOND_REFERRER
    if returning:
        return RefusalReason.RETURNING_CUSTOMER
    if phone_ordered_before:
        return RefusalReason.ALREADY_ORDERED
    return None


def member_link_refusal(
    *, referrer_id: int | None, member_id: int, has_referrer: bool
) -> RefusalReason:
    """A member opening a link never gains a referrer; the reason is logged."""
    if referrer_id is None:
        return RefusalReason.UNKNOWN_CODE
    if referrer_id == member_id:
        return RefusalReason.SELF_REFERRAL
    if has_referrer:
        return RefusalReason.SECOND_REFERRER
    return RefusalReason.ALREADY_MEMBER


def first_order_refusal(*, paid_amount: int, minimum: int) -> RefusalReason | None:
    return RefusalReason.BELOW_MINIMUM if paid_amount < minimum else None


def reward_refusal(
    *, order_status: str | None, rewarded_this_month: int, monthly_cap: int
) -> RefusalReason | None:
    """Why a matured referral earns nothing, or None when both sides are rewarded."""
    if order_status is None or order_status in FINAL_STATUSES:
        return RefusalReason.ORDER_CANCELLED
    if rewarded_this_month >= monthly_cap:
        return RefusalReason.MONTHLY_CAP
    return None


def month_bounds(now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The calendar month around ``now`` in the shop's zone, as UTC [start, end)."""
    local = now.astimezone(zone).date()
    first = local.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return (
        datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC),
        datetime.combine(following, time(0), tzinfo=zone).astimezone(UTC),
    )


# ---- ports -------------------------------------------------------------------------------


class ReferralStore(Protocol):
    async def add(self, *, referee_id: int, referrer_id: int, now: datetime) -> bool: ...

    async def of_referee(self, *, referee_id: int) -> ReferralRecord | None: ...

    async def of_referees(self, *, referee_ids: Sequence[int]) -> dict[int, ReferralRecord]: ...

    async def qualify(self, *, referee_id: int, order_ref: str, mature_at: datetime) -> bool: ...

    async def settle(
        self, *, referee_id: int, state: str, reason: str | None, now: datetime
    ) -> bool: ...

    async def due(self, *, now: datetime, limit: int) -> list[ReferralRecord]: ...

    async def rewarded_between(
        self, *, referrer_id: int, start: datetime, end: datetime
    ) -> int: ...

    async def log_refusal(
        self,
        *,
        reason: str,
        now: datetime,
        referrer_id: int | None = None,
        referee_id: int | None = None,
        order_ref: str | None = None,
    ) -> None: ...


class InviteCodes(Protocol):
    async def set_invite_code(self, *, customer_id: int, code: str) -> str: ...

    async def by_invite_code(self, *, code: str) -> int | None: ...

    async def orders_for_phone(self, *, phone: str) -> int: ...

    async def telegram_id_of(self, *, customer_id: int) -> int | None: ...

    async def is_member(self, *, customer_id: int) -> bool: ...


class OrderLookup(Protocol):
    async def by_ref(self, *, order_ref: str, lock: bool = False) -> StoredOrder | None: ...


# ---- use cases ---------------------------------------------------------------------------


class Referrals:
    """Links in, rewards out. Also an ``OrderFollower``: it notes the friend's first order."""

    def __init__(
        self,
        *,
        store: ReferralStore,
        members: InviteCodes,
        orders: OrderLookup,
        ledger: PointsLedger,
        outbox: OutboxWriter,
        uow: UnitOfWork,
        rules: Rules,
        clock: Clock,
        zone: ZoneInfo,
    ) -> None:
        self._store = store
        self._members = members
        self._orders = orders
        self._ledger = ledger
        self._outbox = outbox
        self._uow = uow
        self._rules = rules
        self._clock = clock
        self._zone = zone
        self._minimum = rules.referral.referral_min_order * minor_units_per_major(
            rules.shop.currency
        )

    async def invite_code(self, *, customer_id: int) -> str:
        return await self._members.set_invite_code(customer_id=customer_id, code=new_invite_code())

    async def at_signup(
        self, *, referee_id: int, code: str, phone: str, returning: bool = False
    ) -> bool:
        """A new member joined through a link: record the referrer, or log why not."""
        referrer = await self._members.by_invite_code(code=code)
        existing = await self._store.of_referee(referee_id=referee_id)
        refusal = signup_refusal(
            referrer_id=referrer,
            referee_id=referee_id,
            phone_ordered_before=await self._members.orders_for_phone(phone=phone) > 0,
            has_referrer=existing is not None,
            returning=returning,
        )
        if refusal is None and referrer is not None:
            added = await self._store.add(
                referee_id=referee_id, referrer_id=referrer, now=self._clock.now()
            )
            if added:
                await self._tell_referrer(referrer, referee_id)
            return added
        await self._refuse(refusal or RefusalReason.SECOND_REFERRER, referrer, referee_id)
        return False

    async def _tell_referrer(self, referrer_id: int, referee_id: int) -> None:
        """The member whose link brought a friend hears of it, and of what the reward waits for."""
        chat_id = await self._members.telegram_id_of(customer_id=referrer_id)
        rules = self._rules.referral
        if chat_id is None or rules.referrer_points <= 0:
            return
        await enqueue(
            self._outbox,
            Outgoing(
                dedupe_key=f"referral-joined:{referee_id}",
                chat_id=chat_id,
                customer_id=referrer_id,
                category=Category.TRANSACTIONAL,
                kind="referral_joined",
                content={
                    "template": "referral_joined.html",
                    "context": {
                        "points": rules.referrer_points,
                        "min_order": rules.referral_min_order
                        * minor_units_per_major(self._rules.shop.currency),
                        "hold_days": self._rules.bonus.hold_days,
                    },
                },
            ),
            clock=self._clock,
        )

    async def at_erasure(self, *, customer_id: int) -> bool:
        """A friend who erases their data before the reward ends their referral: no points
        for an account that is gone, nor for bringing someone who left."""
        referral = await self._store.of_referee(referee_id=customer_id)
        if referral is None or referral.state not in ("joined", "qualified"):
            return False
        await self._settle_refused(referral, RefusalReason.ERASED, referral.order_ref)
        return True

    async def member_followed_link(self, *, member_id: int, code: str) -> RefusalReason:
        referrer = await self._members.by_invite_code(code=code)
        existing = await self._store.of_referee(referee_id=member_id)
        refusal = member_link_refusal(
            referrer_id=referrer, member_id=member_id, has_referrer=existing is not None
        )
        await self._refuse(refusal, referrer, member_id)
        return refusal

    async def after_order(self, event: OrderEvent) -> None:
        if event.customer_id is None:
            return
        referral = await self._store.of_referee(referee_id=event.customer_id)
        if referral is not None:
            await self._follow(event, referral)

    async def after_orders(self, events: Sequence[OrderEvent]) -> None:
        """The referrals of these orders' customers read at once (most have none)."""
        members = [event.customer_id for event in events if event.customer_id is not None]
        if not members:
            return
        referrals = await self._store.of_referees(referee_ids=members)
        for event in events:
            referral = referrals.get(event.customer_id) if event.customer_id is not None else None
            if referral is not None:
                await self._follow(event, referral)

    async def _follow(self, event: OrderEvent, referral: ReferralRecord) -> None:
        if referral.state == "joined" and event.is_new and event.status in PAID_STATUSES:
            order = await self._orders.by_ref(order_ref=event.order_id)
            assert order is not None, "the desk has just stored it"
            paid = order.total - order.bonus_redeemed * self._rules.bonus.point_value
            refusal = first_order_refusal(paid_amount=paid, minimum=self._minimum)
            if refusal is not None:
                await self._settle_refused(referral, refusal, event.order_id)
                return
            mature_at = self._clock.now() + timedelta(days=self._rules.bonus.hold_days)
            await self._store.qualify(
                referee_id=referral.referee_id, order_ref=event.order_id, mature_at=mature_at
            )
            log.info(
                "referral of customer %s qualified by order %s; matures %s",
                referral.referee_id,
                event.order_id,
                mature_at.isoformat(),
            )
        elif (
            referral.state == "qualified"
            and referral.order_ref == event.order_id
            and event.status in FINAL_STATUSES
        ):
            await self._settle_refused(referral, RefusalReason.ORDER_CANCELLED, event.order_id)

    async def reward_due(self, *, batch: int = 100) -> int:
        """Reward both sides of every referral whose order left the hold window; returns how
        many were rewarded. One transaction per referral; the ledger keys make it once-only."""
        now = self._clock.now()
        rewarded = 0
        for referral in await self._store.due(now=now, limit=batch):
            async with self._uow.transaction():
                if await self._reward(referral, now):
                    rewarded += 1
        return rewarded

    async def _reward(self, referral: ReferralRecord, now: datetime) -> bool:
        assert referral.order_ref is not None, "a qualified referral has its order"
        order = await self._orders.by_ref(order_ref=referral.order_ref)
        start, end = month_bounds(now, self._zone)
        refusal = reward_refusal(
            order_status=order.status if order is not None else None,
            rewarded_this_month=await self._store.rewarded_between(
                referrer_id=referral.referrer_id, start=start, end=end
            ),
            monthly_cap=self._rules.referral.referral_monthly_cap,
        )
        if refusal is None and not await self._members.is_member(customer_id=referral.referrer_id):
            refusal = RefusalReason.REFERRER_LEFT
        # The friend still gets the points the link promised them when the referrer cannot be
        # paid: the cap limits what one member earns by inviting (a capped referral does not
        # count towards it), and an account that was erased earns nothing any more.
        friend_only = refusal in (RefusalReason.MONTHLY_CAP, RefusalReason.REFERRER_LEFT)
        if refusal is not None and not friend_only:
            await self._settle_refused(referral, refusal, referral.order_ref)
            return False
        capped = refusal is RefusalReason.MONTHLY_CAP
        if not await self._store.settle(
            referee_id=referral.referee_id,
            state="capped" if capped else "rewarded",
            reason=refusal.value if refusal is not None else None,
            now=now,
        ):
            return False  # another process settled it first
        if refusal is not None:
            await self._refuse(
                refusal, referral.referrer_id, referral.referee_id, referral.order_ref
            )
        rules = self._rules.referral
        await self._pay(referral, "friend", referral.referee_id, rules.friend_points)
        if capped:
            await self._tell(
                referral.referrer_id,
                key=f"referral-capped:{referral.referee_id}",
                context={"role": "referrer_capped", "points": 0, "cap": rules.referral_monthly_cap},
            )
        elif refusal is None:
            await self._pay(referral, "referrer", referral.referrer_id, rules.referrer_points)
        why = {
            RefusalReason.MONTHLY_CAP: "; the friend only: the referrer reached the monthly cap",
            RefusalReason.REFERRER_LEFT: "; the friend only: the referrer erased their data",
        }
        log.info(
            "referral rewarded: customer %s brought customer %s (order %s)%s",
            referral.referrer_id,
            referral.referee_id,
            referral.order_ref,
            why.get(refusal, "") if refusal is not None else "",
        )
        return True

    async def _pay(
        self, referral: ReferralRecord, role: str, customer_id: int, points: int
    ) -> None:
        if points <= 0:
            return
        source = (
            friend_source(referral.referee_id)
            if role == "friend"
            else referral_source(referral.referee_id)
        )
        await self._ledger.grant(
            customer_id=customer_id,
            kind=EntryKind.REFERRAL,
            source=source,
            points=points,
            reason=f"referral reward ({role}) for order {referral.order_ref}",
        )
        await self._tell(
            customer_id,
            key=f"referral-reward:{referral.referee_id}:{role}",
            context={"points": points, "role": role},
        )

    async def _tell(self, customer_id: int, *, key: str, context: dict[str, object]) -> None:
        chat_id = await self._members.telegram_id_of(customer_id=customer_id)
        if chat_id is None:
            return
        await enqueue(
            self._outbox,
            Outgoing(
                dedupe_key=key,
                chat_id=chat_id,
                customer_id=customer_id,
                category=Category.TRANSACTIONAL,
                kind="referral_reward",
                content={"template": "referral_reward.html", "context": context},
            ),
            clock=self._clock,
        )

    async def _settle_refused(
        self, referral: ReferralRecord, reason: RefusalReason, order_ref: str | None
    ) -> None:
        now = self._clock.now()
        await self._store.settle(
            referee_id=referral.referee_id, state="refused", reason=reason.value, now=now
        )
        await self._refuse(reason, referral.referrer_id, referral.referee_id, order_ref)

    async def _refuse(
        self,
        reason: RefusalReason,
        referrer_id: int | None,
        referee_id: int | None,
        order_ref: str | None = None,
    ) -> None:
        await self._store.log_refusal(
            reason=reason.value,
            now=self._clock.now(),
            referrer_id=referrer_id,
            referee_id=referee_id,
            order_ref=order_ref,
        )
        log.info(
            "referral refused (%s): referrer %s, customer %s, order %s",
            reason.value,
            referrer_id,
            referee_id,
            order_ref,
        )
