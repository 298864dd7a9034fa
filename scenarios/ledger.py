"""The points ledger's rules: earning, spending, expiry, refunds, balances, over storage ports."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from scenarios.clock import Clock
from scenarios.rules import Bonus
from scenarios.tiers import (
    BASIS_POINTS,
    Tier,
    TierChange,
    TierGap,
    TierLadder,
    percent_to_basis_points,
)
from storage.ledger import (
    Allocation,
    Appended,
    Debt,
    EntryKind,
    EntryRecord,
    ExpiringPoints,
    LedgerSnapshot,
    LotRecord,
    LotSummary,
    LotUse,
    NewCredit,
    NewEntry,
    NewLot,
    SpentLot,
    UnknownCustomerError,
)

MAX_KEY = 100  # an order id or adjustment key; with its prefix it fits the 200-character source
MAX_SOURCE = 200
MAX_REASON = 500

GIFT_KINDS = frozenset(
    {
        EntryKind.WELCOME,
        EntryKind.REFERRAL,
        EntryKind.BIRTHDAY,
        EntryKind.COMPENSATION,
        EntryKind.GIFT,
    }
)
# Entries that earn points; a reversal or correction of an order takes its earnings back.
_EARNING_KINDS = frozenset({EntryKind.ACCRUAL, *GIFT_KINDS})


class RefusalCode(StrEnum):
    UNKNOWN_CUSTOMER = "unknown_customer"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_KEY = "invalid_key"
    INVALID_REASON = "invalid_reason"
    NOT_A_GIFT = "not_a_gift"
    NOT_ENOUGH_POINTS = "not_enough_points"
    OVER_ORDER_SHARE = "over_order_share"
    ORDER_ALREADY_PAID = "order_already_paid"
    ORDER_CANCELLED = "order_cancelled"
    TOTAL_BELOW_REDEEMED = "total_below_redeemed"
    KEY_OF_ANOTHER_CUSTOMER = "key_of_another_customer"


class LedgerRefusal(Exception):
    """The ledger will not do this; ``code`` for programs, ``message`` for people.

    Refusals are decided before the first write. The one found at a write, losing a key to
    another customer in a race, rolls the unit of work back with it.
    """

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---- ports -------------------------------------------------------------------------------


class LedgerBook(Protocol):
    """One customer's ledger inside a unit of work that holds the customer's lock."""

    async def entry(self, *, kind: EntryKind, source: str) -> EntryRecord | None: ...

    async def entries_for(self, *, source: str) -> list[EntryRecord]: ...

    async def open_lots(self) -> list[LotRecord]: ...

    async def lot_summary(self, *, at: datetime) -> LotSummary: ...

    async def lots_of(self, *, entry_id: int) -> list[LotRecord]: ...

    async def lot_uses(self, *, lot_id: int) -> list[LotUse]: ...

    async def spent_lots(self, *, entry_id: int) -> list[SpentLot]: ...

    async def debts(self) -> list[Debt]: ...

    async def paid_spend(self, *, since: datetime | None) -> int: ...

    async def append(
        self,
        *,
        entry: NewEntry,
        lots: Sequence[NewLot] = (),
        spend: Sequence[Allocation] = (),
        owed: int = 0,
    ) -> Appended | None: ...

    async def settle(
        self, *, debt_entry_id: int, lot_id: int, amount: int, now: datetime
    ) -> None: ...


class LedgerWriter(Protocol):
    def book(self, *, customer_id: int) -> AbstractAsyncContextManager[LedgerBook]: ...

    async def append_credits(self, credits: Sequence[NewCredit]) -> list[Appended]: ...

    async def customers_with_due_lots(self, *, now: datetime, limit: int) -> list[int]: ...


class LedgerReader(Protocol):
    async def snapshot(self, *, customer_id: int) -> LedgerSnapshot: ...

    async def history(
        self, *, customer_id: int, limit: int, before_id: int | None = None
    ) -> list[EntryRecord]: ...

    async def paid_spend(self, *, customer_id: int, since: datetime | None) -> int: ...

    async def expiring_between(
        self, *, start: datetime, end: datetime, after_customer_id: int = 0, limit: int = 500
    ) -> list[ExpiringPoints]: ...


# ---- pure rules --------------------------------------------------------------------------


def order_source(order_id: str) -> str:
    """The source of every entry an order causes: ``order:A-1001``."""
    return f"order:{_checked_key(order_id, 'order id')}"


def refund_source(order_id: str, refund_key: str) -> str:
    """The source of a partial refund's entries: ``order:A-1001:refund:R-7``."""
    return _checked_source(
        f"{order_source(order_id)}:refund:{_checked_key(refund_key, 'refund key')}"
    )


def welcome_source(customer_id: int) -> str:
    return f"customer:{customer_id}"


def referral_source(referee_id: int) -> str:
    """A referral bonus is paid once per customer brought in."""
    return f"referee:{referee_id}"


def birthday_source(customer_id: int, year: int) -> str:
    return f"customer:{customer_id}:{year}"


def lot_source(lot_id: int) -> str:
    return f"lot:{lot_id}"


def cashback_points(*, paid_amount: int, cashback_bp: int, point_value: int) -> int:
    """Whole points for a paid amount (minor units), rounded down."""
    return paid_amount * cashback_bp // (BASIS_POINTS * point_value)


def redeem_limit(*, order_total: int, share_bp: int, point_value: int) -> int:
    """The most points that may pay for an order of this total, rounded down."""
    return order_total * share_bp // (BASIS_POINTS * point_value)


def spend_order(lot: LotRecord) -> tuple[datetime, datetime, int]:
    """Lots closest to expiry go first, then the oldest.

    With equal TTLs this is plain FIFO by earned time; with welcome or compensation lots living
    shorter or longer, and refunded points returning with their original expiry, it is the
    order that lets the fewest points expire unused.
    """
    return (lot.expires_at, lot.earned_at, lot.id)


def plan_spend(lots: Iterable[LotRecord], amount: int) -> tuple[list[Allocation], int]:
    """Take ``amount`` points from ``lots`` in spend order; returns the takes and the shortfall."""
    allocations = []
    left = amount
    for lot in sorted(lots, key=spend_order):
        if left == 0:
            break
        take = min(lot.remaining, left)
        if take > 0:
            allocations.append(Allocation(lot_id=lot.id, amount=take))
            left -= take
    return allocations, left


def lot_ttl(kind: EntryKind, bonus: Bonus) -> timedelta:
    own = {
        EntryKind.WELCOME: bonus.welcome_ttl_days,
        EntryKind.COMPENSATION: bonus.compensation_ttl_days,
    }.get(kind)
    return timedelta(days=own if own is not None else bonus.points_ttl_days)


def new_lot(kind: EntryKind, points: int, *, now: datetime, bonus: Bonus) -> NewLot:
    """Earned points: an order's wait out the return window, gifts can be spent at once."""
    hold = timedelta(days=bonus.hold_days) if kind is EntryKind.ACCRUAL else timedelta(0)
    return NewLot(
        amount=points, earned_at=now, available_at=now + hold, expires_at=now + lot_ttl(kind, bonus)
    )


def restored_expiry(original: datetime, *, now: datetime, bonus: Bonus) -> datetime:
    """Points given back by a refund keep their original expiry, but live at least the warning
    period (and at least a day): a late refund must not hand back points that die at once."""
    grace = timedelta(days=max(bonus.expiry_warning_days, 1))
    return max(original, now + grace)


def expiry_warning_window(now: datetime, bonus: Bonus) -> tuple[datetime, datetime]:
    """Points expiring in [start, end) deserve a warning now."""
    return now, now + timedelta(days=bonus.expiry_warning_days)


@dataclass(frozen=True, slots=True)
class PendingPoints:
    amount: int
    available_at: datetime


@dataclass(frozen=True, slots=True)
class NearestExpiry:
    """Points that expire on the earliest day that has any (a day in the customer's zone)."""

    amount: int
    day: date
    first_at: datetime


@dataclass(frozen=True, slots=True)
class BalanceView:
    at: datetime
    available: int
    pending: int
    pending_release: tuple[
        PendingPoints, ...
    ]  # when each pending amount can be spent, soonest first
    debt: int  # points charged back that nothing has covered yet
    total: int  # available + pending - debt
    nearest_expiry: NearestExpiry | None
    lifetime_earned: int  # earned and gifted, less what cancelled orders took back
    lifetime_spent: int  # paid for orders, less what cancelled orders gave back


def balance_view(snapshot: LedgerSnapshot, *, at: datetime, zone: tzinfo = UTC) -> BalanceView:
    """A customer's points as of ``at``: lots past their expiry count as gone even before the
    expiry run has written them; lots still in their return window are pending."""
    live = [lot for lot in snapshot.open_lots if lot.expires_at > at]
    available = sum(lot.remaining for lot in live if lot.available_at <= at)
    releases: dict[datetime, int] = defaultdict(int)
    for lot in live:
        if lot.available_at > at:
            releases[lot.available_at] += lot.remaining
    pending = sum(releases.values())
    nearest = None
    if live:
        first = min(lot.expires_at for lot in live)
        day = first.astimezone(zone).date()
        nearest = NearestExpiry(
            amount=sum(
                lot.remaining for lot in live if lot.expires_at.astimezone(zone).date() == day
            ),
            day=day,
            first_at=first,
        )
    credited = {total.kind: total.credited for total in snapshot.totals}
    debited = {total.kind: total.debited for total in snapshot.totals}
    earned = (
        sum(credited.get(kind, 0) for kind in _EARNING_KINDS)
        + credited.get(EntryKind.ADJUSTMENT, 0)
        - debited.get(EntryKind.REVERSAL, 0)
        - debited.get(EntryKind.CORRECTION, 0)
    )
    spent = debited.get(EntryKind.REDEMPTION, 0) - credited.get(EntryKind.RESTORATION, 0)
    debt = snapshot.account.debt
    return BalanceView(
        at=at,
        available=available,
        pending=pending,
        pending_release=tuple(
            PendingPoints(amount=amount, available_at=moment)
            for moment, amount in sorted(releases.items())
        ),
        debt=debt,
        total=available + pending - debt,
        nearest_expiry=nearest,
        lifetime_earned=earned,
        lifetime_spent=spent,
    )


# ---- results -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Posted:
    """A gift or an adjustment as written (or as first written, on a replay)."""

    entry: EntryRecord
    replayed: bool


@dataclass(frozen=True, slots=True)
class Accrual:
    entry: EntryRecord
    points: int
    paid_amount: int
    available_at: datetime | None  # None when the order earned no points
    tier_change: TierChange  # None on a replay: the first call reported it
    replayed: bool
    # The customer's points right after a new accrual, when known without reading the lots
    # again (None on a replay and when the new points paid off a debt).
    lots_after: LotSummary | None = None


@dataclass(frozen=True, slots=True)
class Redemption:
    entry: EntryRecord
    points: int
    replayed: bool


@dataclass(frozen=True, slots=True)
class Cancellation:
    reversed_points: int  # the order's earned points that were still there, taken back
    restored_points: int  # the points that paid for the order, given back
    corrected_points: int  # earned points already spent elsewhere, charged back...
    owed_points: int  # ...of which nothing covered this many yet (the customer's debt)
    entries: tuple[EntryRecord, ...]
    tier_change: TierChange
    replayed: bool


@dataclass(frozen=True, slots=True)
class PartialRefund:
    reversed_points: int  # the order's earned points taken back for this refund
    restored_points: int  # the points that paid for the order given back for this refund
    replayed: bool


@dataclass(frozen=True, slots=True)
class HistoryPage:
    entries: tuple[EntryRecord, ...]
    next_before_id: int | None  # pass as before_id for the next (older) page; None: no more


@dataclass(frozen=True, slots=True)
class TierStatus:
    tier: Tier
    spend: int  # paid spend in the tier window, minor units
    gap: TierGap | None


# ---- use cases ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaidOrder:
    """An order whose cashback a customer earns (see ``PointsLedger.accrue``)."""

    customer_id: int
    order_id: str
    total: int
    actor_id: int | None = None
    ordered_at: datetime | None = None
    backdated: bool = False


@dataclass(frozen=True, slots=True)
class _AccrualPlan:
    """An accrual worked out from the customer's book, not yet written."""

    customer_id: int
    entry: NewEntry
    lots: list[NewLot]
    before: LotSummary  # the customer's open lots just before
    tier_change: TierChange


class PointsLedger:
    """Every change to customers' points. Each call is one unit of work under the customer's
    lock; a repeated call with the same key returns the original effect and writes nothing."""

    def __init__(
        self, store: LedgerWriter, *, bonus: Bonus, ladder: TierLadder, clock: Clock
    ) -> None:
        self._store = store
        self._bonus = bonus
        self._ladder = ladder
        self._clock = clock
        self._share_bp = percent_to_basis_points(bonus.max_redeem_share)

    async def accrue(
        self,
        *,
        customer_id: int,
        order_id: str,
        total: int,
        actor_id: int | None = None,
        ordered_at: datetime | None = None,
        backdated: bool = False,
    ) -> Accrual:
        """Cashback on a paid order: the tier's percent of what was paid in money (the total
        less the points redeemed on it), pending for the return window.

        ``ordered_at`` (default: now) is when the order was placed: the tier window counts its
        spend from then. ``backdated`` points count from that date too (earned, available after
        the return window, expiring), as for orders placed before their buyer joined."""
        paid_order = PaidOrder(
            customer_id=customer_id,
            order_id=order_id,
            total=total,
            actor_id=actor_id,
            ordered_at=ordered_at,
            backdated=backdated,
        )
        now = self._clock.now()
        async with self._book(customer_id) as book:
            plan = await self._plan_accrual(book, paid_order, now=now)
            if isinstance(plan, Accrual):
                return plan
            await _expire(book, plan.before.overdue, now)
            appended = await book.append(entry=plan.entry, lots=plan.lots)
            if appended is None:  # a concurrent writer recorded it first
                existing = await _existing(book, EntryKind.ACCRUAL, plan.entry.source, customer_id)
                return await _accrual_replay(book, existing)
            await _settle_debts(book, appended, now)
        return self._accrued(plan, appended)

    async def accrue_many(self, orders: Sequence[PaidOrder]) -> list[Accrual]:
        """``accrue`` for orders of distinct customers inside ``prefetched()`` of them (which
        holds their locks): each one's points worked out as alone, then written in three
        statements for all of them. An order that needs more (points past their expiry to
        expire first) is accrued alone. A refusal raises (the caller undoes the group)."""
        if len({order.customer_id for order in orders}) != len(orders):
            raise ValueError("accrue_many takes one order per customer")
        now = self._clock.now()
        results: dict[int, Accrual] = {}
        plans: list[tuple[int, _AccrualPlan]] = []
        alone: list[int] = []
        for position, order in enumerate(orders):
            async with self._book(order.customer_id) as book:
                plan = await self._plan_accrual(book, order, now=now)
            if isinstance(plan, Accrual):
                results[position] = plan
            elif plan.before.overdue:
                alone.append(position)
            else:
                plans.append((position, plan))
        written = await self._store.append_credits(
            [
                NewCredit(customer_id=plan.customer_id, entry=plan.entry, lots=tuple(plan.lots))
                for _, plan in plans
            ]
        )
        for (position, plan), appended in zip(plans, written, strict=True):
            if appended.lots and appended.debt_after:
                async with self._book(plan.customer_id) as book:
                    await _settle_debts(book, appended, now)
            results[position] = self._accrued(plan, appended)
        for position in alone:
            order = orders[position]
            results[position] = await self.accrue(
                customer_id=order.customer_id,
                order_id=order.order_id,
                total=order.total,
                actor_id=order.actor_id,
                ordered_at=order.ordered_at,
                backdated=order.backdated,
            )
        return [results[position] for position in range(len(orders))]

    async def _plan_accrual(
        self, book: LedgerBook, order: PaidOrder, *, now: datetime
    ) -> _AccrualPlan | Accrual:
        """What an accrual writes, from the customer's book (an Accrual: its replay)."""
        _require_positive(order.total, "the order total")
        source = order_source(order.order_id)
        placed = min(order.ordered_at, now) if order.ordered_at is not None else now
        earned_at = placed if order.backdated else now
        recorded = await _order_entries(book, customer_id=order.customer_id, source=source)
        if recorded.accrual is not None:
            return await _accrual_replay(book, recorded.accrual)
        if recorded.reversal is not None:
            raise LedgerRefusal(
                RefusalCode.ORDER_CANCELLED,
                f"order {order.order_id} was cancelled; nothing to earn",
            )
        redeemed = -recorded.redemption.amount if recorded.redemption else 0
        paid = order.total - redeemed * self._bonus.point_value
        if paid < 0:
            raise LedgerRefusal(
                RefusalCode.TOTAL_BELOW_REDEEMED,
                f"order {order.order_id}: the total {order.total} is less than the {redeemed} "
                "points redeemed on it",
            )
        window = self._ladder.window_start(now)
        spend_before = await book.paid_spend(since=window)
        tier = self._ladder.tier_for(spend_before)
        points = cashback_points(
            paid_amount=paid, cashback_bp=tier.cashback_bp, point_value=self._bonus.point_value
        )
        return _AccrualPlan(
            customer_id=order.customer_id,
            entry=NewEntry(
                kind=EntryKind.ACCRUAL,
                source=source,
                amount=points,
                paid_amount=paid,
                reason=(
                    f"{tier.name} cashback {_percent(tier.cashback_bp)} % of {paid} paid "
                    f"(minor units) on order {order.order_id}"
                ),
                actor_id=order.actor_id,
                occurred_at=now,
                ordered_at=placed,
            ),
            lots=[new_lot(EntryKind.ACCRUAL, points, now=earned_at, bonus=self._bonus)]
            if points
            else [],
            before=await book.lot_summary(at=now),
            # An order placed before the window began lifts no tier.
            tier_change=self._ladder.change(
                spend_before=spend_before,
                spend_after=spend_before + (paid if window is None or placed >= window else 0),
            ),
        )

    @staticmethod
    def _accrued(plan: _AccrualPlan, appended: Appended) -> Accrual:
        paid_off_debt = bool(appended.lots) and appended.debt_after != 0
        return Accrual(
            entry=appended.entry,
            points=plan.entry.amount,
            paid_amount=plan.entry.paid_amount or 0,
            available_at=appended.lots[0].available_at if appended.lots else None,
            tier_change=plan.tier_change,
            replayed=False,
            lots_after=None if paid_off_debt else plan.before.plus(appended.lots),
        )

    async def redeem(
        self,
        *,
        customer_id: int,
        order_id: str,
        order_total: int,
        points: int,
        actor_id: int | None = None,
    ) -> Redemption:
        """Points paying for an order before it is paid: at most ``max_redeem_share`` of its
        total and never more than the customer can spend now."""
        _require_positive(points, "points")
        _require_positive(order_total, "the order total")
        source = order_source(order_id)
        now = self._clock.now()
        async with self._book(customer_id) as book:
            order = await _order_entries(book, customer_id=customer_id, source=source)
            if order.redemption is not None:
                return Redemption(
                    entry=order.redemption, points=-order.redemption.amount, replayed=True
                )
            if order.reversal is not None:
                raise LedgerRefusal(RefusalCode.ORDER_CANCELLED, f"order {order_id} was cancelled")
            if order.accrual is not None:
                raise LedgerRefusal(
                    RefusalCode.ORDER_ALREADY_PAID,
                    f"order {order_id} is already paid; points pay only before payment",
                )
            limit = redeem_limit(
                order_total=order_total,
                share_bp=self._share_bp,
                point_value=self._bonus.point_value,
            )
            if points > limit:
                raise LedgerRefusal(
                    RefusalCode.OVER_ORDER_SHARE,
                    f"at most {limit} points can pay for this order "
                    f"({self._bonus.max_redeem_share} % of its total)",
                )
            lots = await book.open_lots()
            spendable = [lot for lot in lots if lot.expires_at > now and lot.available_at <= now]
            allocations, shortfall = plan_spend(spendable, points)
            if shortfall:
                available = sum(lot.remaining for lot in spendable)
                raise LedgerRefusal(
                    RefusalCode.NOT_ENOUGH_POINTS, f"only {available} points can be spent now"
                )
            await _expire(book, _overdue(lots, now), now)
            appended = await book.append(
                entry=NewEntry(
                    kind=EntryKind.REDEMPTION,
                    source=source,
                    amount=-points,
                    reason=f"{points} points paid for order {order_id} (total {order_total})",
                    actor_id=actor_id,
                    occurred_at=now,
                ),
                spend=allocations,
            )
            if appended is None:
                entry = await _existing(book, EntryKind.REDEMPTION, source, customer_id)
                return Redemption(entry=entry, points=-entry.amount, replayed=True)
        return Redemption(entry=appended.entry, points=points, replayed=False)

    async def cancel_order(
        self,
        *,
        customer_id: int,
        order_id: str,
        reason: str,
        actor_id: int | None = None,
        earlier_refunds: Sequence[str] = (),
    ) -> Cancellation:
        """A cancelled or refunded order: the points that paid for it come back, the points it
        earned go. Earned points already spent elsewhere are charged back from the customer's
        other points, and what those cannot cover stays as a debt the next credits pay off.

        The order is marked cancelled even if it earned nothing (a reversal of 0), so a late
        accrual for it is refused. ``earlier_refunds``: the keys of the order's partial refunds
        (``refund_part``); what they already took back or gave back is not done twice.
        """
        source = order_source(order_id)
        partial_sources = {refund_source(order_id, key) for key in earlier_refunds}
        why = _checked_reason(reason)
        now = self._clock.now()
        async with self._book(customer_id) as book:
            order = await _order_entries(book, customer_id=customer_id, source=source)
            if order.reversal is not None:
                return await _cancellation_replay(book, order, order.reversal)
            window = self._ladder.window_start(now)
            spend_before = await book.paid_spend(since=window)
            await _expire(book, _overdue(await book.open_lots(), now), now)
            written: list[EntryRecord] = []

            restored = 0
            already_restored = 0
            for partial in sorted(partial_sources):
                for entry in await book.entries_for(source=partial):
                    if entry.kind is EntryKind.RESTORATION:
                        already_restored += entry.amount
            if order.redemption is not None:
                spent = await book.spent_lots(entry_id=order.redemption.id)
                restored = sum(part.amount for part in spent) - already_restored
            if order.redemption is not None and restored > 0:
                given_back = await _append(
                    book,
                    NewEntry(
                        kind=EntryKind.RESTORATION,
                        source=source,
                        amount=restored,
                        reason=_clip(
                            f"order {order_id} {why}: the {restored} points that paid for it"
                        ),
                        actor_id=actor_id,
                        occurred_at=now,
                    ),
                    customer_id=customer_id,
                    lots=_restored_lots(
                        spent, skip=already_restored, amount=restored, now=now, bonus=self._bonus
                    ),
                )
                written.append(given_back.entry)
                await _settle_debts(book, given_back, now)

            earned_lots = (
                await book.lots_of(entry_id=order.accrual.id) if order.accrual is not None else []
            )
            # Points that left the order's lot other than by expiring: spending, an admin's
            # deduction, paying off a debt. Without this order they would have come from the
            # customer's other points, so those pay them now. Expired points are simply gone.
            used_elsewhere = [
                use
                for lot in earned_lots
                for use in await book.lot_uses(lot_id=lot.id)
                if use.kind is not EntryKind.EXPIRY and use.source not in partial_sources
            ]
            take_back = [
                Allocation(lot_id=lot.id, amount=lot.remaining)
                for lot in earned_lots
                if lot.remaining > 0
            ]
            reversed_points = sum(part.amount for part in take_back)
            reversal = await _append(
                book,
                NewEntry(
                    kind=EntryKind.REVERSAL,
                    source=source,
                    amount=-reversed_points,
                    paid_amount=-order.accrual.paid_amount
                    if order.accrual is not None and order.accrual.paid_amount is not None
                    else None,
                    reason=_clip(
                        f"order {order_id} {why}: {reversed_points} earned points taken back"
                    ),
                    actor_id=actor_id,
                    occurred_at=now,
                ),
                customer_id=customer_id,
                spend=take_back,
            )
            written.append(reversal.entry)

            corrected = sum(use.amount for use in used_elsewhere)
            owed = 0
            if corrected:
                live = [lot for lot in await book.open_lots() if lot.expires_at > now]
                allocations, owed = plan_spend(live, corrected)
                uses = ", ".join(
                    f"{use.amount} by {use.kind} {use.source}" for use in used_elsewhere
                )
                correction = await _append(
                    book,
                    NewEntry(
                        kind=EntryKind.CORRECTION,
                        source=source,
                        amount=-corrected,
                        reason=_clip(
                            f"order {order_id} {why}: {corrected} of its earned points were "
                            f"already used ({uses}); {corrected - owed} taken from other points, "
                            f"{owed} owed"
                        ),
                        actor_id=actor_id,
                        occurred_at=now,
                    ),
                    customer_id=customer_id,
                    spend=allocations,
                    owed=owed,
                )
                written.append(correction.entry)
            spend_after = await book.paid_spend(since=window)
        return Cancellation(
            reversed_points=reversed_points,
            restored_points=restored,
            corrected_points=corrected,
            owed_points=owed,
            entries=tuple(written),
            tier_change=self._ladder.change(spend_before=spend_before, spend_after=spend_after),
            replayed=False,
        )

    async def refund_part(
        self,
        *,
        customer_id: int,
        order_id: str,
        refund_key: str,
        refunded_before: int,
        refunded_after: int,
        total: int,
        actor_id: int | None = None,
    ) -> PartialRefund:
        """Part of an order's money returned (``refunded_before`` → ``refunded_after`` of its
        ``total``, minor units): the points it earned are taken back and the points that paid
        for it given back, both in that proportion, once per ``refund_key``.

        Shares are computed on the running totals, so refunds in several parts add up to what
        one full refund would do. The points taken back come from the order's own points still
        unspent, never from elsewhere and never as a debt (a later full refund charges back
        what was spent, see ``cancel_order``)."""
        _require_positive(total, "the order total")
        if not 0 <= refunded_before < refunded_after <= total:
            raise LedgerRefusal(
                RefusalCode.INVALID_AMOUNT,
                f"a partial refund moves the refunded amount up within the total {total}",
            )
        source = refund_source(order_id, refund_key)
        now = self._clock.now()
        async with self._book(customer_id) as book:
            done = {entry.kind: entry for entry in await book.entries_for(source=source)}
            if EntryKind.REVERSAL in done:
                _same_customer(done[EntryKind.REVERSAL], customer_id)
                restoration = done.get(EntryKind.RESTORATION)
                return PartialRefund(
                    reversed_points=-done[EntryKind.REVERSAL].amount,
                    restored_points=restoration.amount if restoration else 0,
                    replayed=True,
                )
            order = await _order_entries(
                book, customer_id=customer_id, source=order_source(order_id)
            )
            if order.reversal is not None:
                raise LedgerRefusal(RefusalCode.ORDER_CANCELLED, f"order {order_id} was cancelled")
            await _expire(book, _overdue(await book.open_lots(), now), now)
            share = f"{refunded_after - refunded_before} of {total} (minor units) refunded"
            restored = 0
            if order.redemption is not None:
                spent_points = -order.redemption.amount
                before = spent_points * refunded_before // total
                restored = spent_points * refunded_after // total - before
                if restored > 0:
                    given_back = await _append(
                        book,
                        NewEntry(
                            kind=EntryKind.RESTORATION,
                            source=source,
                            amount=restored,
                            reason=_clip(
                                f"order {order_id} partly refunded, {share}: {restored} of the "
                                f"{spent_points} points that paid for it given back"
                            ),
                            actor_id=actor_id,
                            occurred_at=now,
                        ),
                        customer_id=customer_id,
                        lots=_restored_lots(
                            await book.spent_lots(entry_id=order.redemption.id),
                            skip=before,
                            amount=restored,
                            now=now,
                            bonus=self._bonus,
                        ),
                    )
                    await _settle_debts(book, given_back, now)
            earned = order.accrual.amount if order.accrual is not None else 0
            wanted = earned * refunded_after // total - earned * refunded_before // total
            own_lots = (
                await book.lots_of(entry_id=order.accrual.id) if order.accrual is not None else []
            )
            take_back, _ = plan_spend(
                [lot for lot in own_lots if lot.expires_at > now and lot.remaining > 0], wanted
            )
            reversed_points = sum(part.amount for part in take_back)
            await _append(
                book,
                NewEntry(
                    kind=EntryKind.REVERSAL,
                    source=source,
                    amount=-reversed_points,
                    reason=_clip(
                        f"order {order_id} partly refunded, {share}: {reversed_points} of its "
                        f"{earned} earned points taken back"
                        + (
                            f" ({wanted - reversed_points} already spent)"
                            if wanted > reversed_points
                            else ""
                        )
                    ),
                    actor_id=actor_id,
                    occurred_at=now,
                ),
                customer_id=customer_id,
                spend=take_back,
            )
        return PartialRefund(
            reversed_points=reversed_points, restored_points=restored, replayed=False
        )

    async def grant(
        self,
        *,
        customer_id: int,
        kind: EntryKind,
        source: str,
        points: int,
        reason: str,
        actor_id: int | None = None,
    ) -> Posted:
        """Welcome, referral, birthday or compensation points, spendable at once. ``source``
        makes the gift once-only (see ``welcome_source``, ``referral_source``...)."""
        if kind not in GIFT_KINDS:
            raise LedgerRefusal(RefusalCode.NOT_A_GIFT, f"{kind} is not a kind of gift")
        _require_positive(points, "points")
        _checked_source(source)
        why = _checked_reason(reason)
        now = self._clock.now()
        async with self._book(customer_id) as book:
            existing = await book.entry(kind=kind, source=source)
            if existing is not None:
                _same_customer(existing, customer_id)
                return Posted(entry=existing, replayed=True)
            await _expire(book, _overdue(await book.open_lots(), now), now)
            appended = await book.append(
                entry=NewEntry(
                    kind=kind,
                    source=source,
                    amount=points,
                    reason=why,
                    actor_id=actor_id,
                    occurred_at=now,
                ),
                lots=[new_lot(kind, points, now=now, bonus=self._bonus)],
            )
            if appended is None:
                entry = await _existing(book, kind, source, customer_id)
                return Posted(entry=entry, replayed=True)
            await _settle_debts(book, appended, now)
        return Posted(entry=appended.entry, replayed=False)

    async def adjust(
        self, *, customer_id: int, key: str, points: int, reason: str, admin_id: int
    ) -> Posted:
        """An admin adds (points > 0) or removes (points < 0) points, with a reason. ``key``
        (e.g. the admin's request id) makes a repeated press a no-op. Removal takes from any
        unexpired points, pending ones too, closest to expiry first, and never more than the
        customer has."""
        if type(points) is not int or points == 0:
            raise LedgerRefusal(RefusalCode.INVALID_AMOUNT, "an adjustment needs a non-zero number")
        source = f"adjustment:{_checked_key(key, 'adjustment key')}"
        why = _checked_reason(reason)
        now = self._clock.now()
        async with self._book(customer_id) as book:
            existing = await book.entry(kind=EntryKind.ADJUSTMENT, source=source)
            if existing is not None:
                _same_customer(existing, customer_id)
                return Posted(entry=existing, replayed=True)
            lots = await book.open_lots()
            allocations: list[Allocation] = []
            if points < 0:
                live = [lot for lot in lots if lot.expires_at > now]
                allocations, shortfall = plan_spend(live, -points)
                if shortfall:
                    has = sum(lot.remaining for lot in live)
                    raise LedgerRefusal(
                        RefusalCode.NOT_ENOUGH_POINTS, f"the customer has only {has} points"
                    )
            await _expire(book, _overdue(lots, now), now)
            appended = await book.append(
                entry=NewEntry(
                    kind=EntryKind.ADJUSTMENT,
                    source=source,
                    amount=points,
                    reason=why,
                    actor_id=admin_id,
                    occurred_at=now,
                ),
                lots=[new_lot(EntryKind.ADJUSTMENT, points, now=now, bonus=self._bonus)]
                if points > 0
                else [],
                spend=allocations,
            )
            if appended is None:
                entry = await _existing(book, EntryKind.ADJUSTMENT, source, customer_id)
                return Posted(entry=entry, replayed=True)
            await _settle_debts(book, appended, now)
        return Posted(entry=appended.entry, replayed=False)

    async def forfeit(self, *, customer_id: int, reason: str) -> Posted | None:
        """Every point the customer still has (pending ones too) is gone: one forfeiture entry,
        once per customer (its key is the customer), so the shop's liability matches the
        ledger. None when there was nothing left to forfeit."""
        source = f"forfeit:{customer_id}"
        why = _checked_reason(reason)
        now = self._clock.now()
        async with self._book(customer_id) as book:
            existing = await book.entry(kind=EntryKind.FORFEITURE, source=source)
            if existing is not None:
                return Posted(entry=existing, replayed=True)
            lots = await book.open_lots()
            await _expire(book, _overdue(lots, now), now)
            live = [lot for lot in lots if lot.expires_at > now and lot.remaining > 0]
            points = sum(lot.remaining for lot in live)
            if points == 0:
                return None
            appended = await _append(
                book,
                NewEntry(
                    kind=EntryKind.FORFEITURE,
                    source=source,
                    amount=-points,
                    reason=why,
                    actor_id=None,
                    occurred_at=now,
                ),
                customer_id=customer_id,
                spend=[Allocation(lot_id=lot.id, amount=lot.remaining) for lot in live],
            )
        return Posted(entry=appended.entry, replayed=False)

    async def expire_due(self, *, batch: int = 200) -> int:
        """Write expiry entries for the unspent rest of every lot past its expiry; returns how
        many. One short transaction per customer; safe to run from several processes (each
        lot's expiry has its own key, ``lot:<id>``)."""
        now = self._clock.now()
        written = 0
        while True:
            due = await self._store.customers_with_due_lots(now=now, limit=batch)
            progress = 0
            for customer_id in due:
                async with self._store.book(customer_id=customer_id) as book:
                    progress += await _expire(book, _overdue(await book.open_lots(), now), now)
            written += progress
            # Fewer than a batch means that was the last; no progress means another process
            # is writing the same expiries, so leave the rest to it.
            if len(due) < batch or progress == 0:
                return written

    @asynccontextmanager
    async def _book(self, customer_id: int) -> AsyncIterator[LedgerBook]:
        try:
            async with self._store.book(customer_id=customer_id) as book:
                yield book
        except UnknownCustomerError:
            raise LedgerRefusal(
                RefusalCode.UNKNOWN_CUSTOMER, f"there is no customer {customer_id}"
            ) from None


# ---- read side ---------------------------------------------------------------------------


async def balance(
    reader: LedgerReader,
    *,
    customer_id: int,
    clock: Clock,
    at: datetime | None = None,
    zone: tzinfo = UTC,
) -> BalanceView:
    """Available, pending (and when), debt, total, nearest expiry, lifetime earned and spent."""
    snapshot = await reader.snapshot(customer_id=customer_id)
    return balance_view(snapshot, at=at or clock.now(), zone=zone)


async def history(
    reader: LedgerReader, *, customer_id: int, limit: int = 10, before_id: int | None = None
) -> HistoryPage:
    """Latest movements first, ``limit`` per page (keyset paging: stable while entries arrive)."""
    if limit < 1:
        raise ValueError("a page holds at least one entry")
    rows = await reader.history(customer_id=customer_id, limit=limit + 1, before_id=before_id)
    page = rows[:limit]
    more = len(rows) > limit
    return HistoryPage(entries=tuple(page), next_before_id=page[-1].id if more else None)


async def tier_status(
    reader: LedgerReader, *, customer_id: int, ladder: TierLadder, clock: Clock
) -> TierStatus:
    spend = await reader.paid_spend(customer_id=customer_id, since=ladder.window_start(clock.now()))
    return TierStatus(tier=ladder.tier_for(spend), spend=spend, gap=ladder.next_tier_gap(spend))


async def expiring_soon(
    reader: LedgerReader,
    *,
    bonus: Bonus,
    clock: Clock,
    after_customer_id: int = 0,
    limit: int = 500,
) -> list[ExpiringPoints]:
    """Customers to warn: points expiring within ``expiry_warning_days``, a page at a time."""
    start, end = expiry_warning_window(clock.now(), bonus)
    return await reader.expiring_between(
        start=start, end=end, after_customer_id=after_customer_id, limit=limit
    )


# ---- helpers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _OrderEntries:
    accrual: EntryRecord | None
    redemption: EntryRecord | None
    reversal: EntryRecord | None
    restoration: EntryRecord | None
    correction: EntryRecord | None


async def _order_entries(book: LedgerBook, *, customer_id: int, source: str) -> _OrderEntries:
    entries = await book.entries_for(source=source)
    for entry in entries:
        _same_customer(entry, customer_id)
    by_kind = {entry.kind: entry for entry in entries}
    return _OrderEntries(
        accrual=by_kind.get(EntryKind.ACCRUAL),
        redemption=by_kind.get(EntryKind.REDEMPTION),
        reversal=by_kind.get(EntryKind.REVERSAL),
        restoration=by_kind.get(EntryKind.RESTORATION),
        correction=by_kind.get(EntryKind.CORRECTION),
    )


async def _accrual_replay(book: LedgerBook, entry: EntryRecord) -> Accrual:
    lots = await book.lots_of(entry_id=entry.id)
    return Accrual(
        entry=entry,
        points=entry.amount,
        paid_amount=entry.paid_amount or 0,
        available_at=lots[0].available_at if lots else None,
        tier_change=None,
        replayed=True,
    )


async def _cancellation_replay(
    book: LedgerBook, order: _OrderEntries, reversal: EntryRecord
) -> Cancellation:
    owed = 0
    if order.correction is not None:
        # What the correction left owed then, not what is still owed now: later credits that
        # paid the debt off took from lots newer than the correction itself.
        covered = sum(
            part.amount
            for part in await book.spent_lots(entry_id=order.correction.id)
            if part.lot.entry_id < order.correction.id
        )
        owed = -order.correction.amount - covered
    return Cancellation(
        reversed_points=-reversal.amount,
        restored_points=order.restoration.amount if order.restoration else 0,
        corrected_points=-order.correction.amount if order.correction else 0,
        owed_points=owed,
        entries=tuple(
            entry for entry in (order.restoration, reversal, order.correction) if entry is not None
        ),
        tier_change=None,
        replayed=True,
    )


def _restored_lots(
    spent: Sequence[SpentLot], *, skip: int, amount: int, now: datetime, bonus: Bonus
) -> list[NewLot]:
    """Lots giving back ``amount`` of the points a redemption took, after the first ``skip``
    of them (given back by earlier partial refunds), each with its original lot's expiry."""
    lots = []
    for part in spent:
        take = min(part.amount, max(0, part.amount - skip), amount)
        skip = max(0, skip - part.amount)
        if take <= 0:
            continue
        lots.append(
            NewLot(
                amount=take,
                earned_at=part.lot.earned_at,
                available_at=now,
                expires_at=restored_expiry(part.lot.expires_at, now=now, bonus=bonus),
            )
        )
        amount -= take
        if amount == 0:
            break
    return lots


def _overdue(lots: Iterable[LotRecord], now: datetime) -> list[LotRecord]:
    return [lot for lot in lots if lot.expires_at <= now and lot.remaining > 0]


async def _expire(book: LedgerBook, lots: Iterable[LotRecord], now: datetime) -> int:
    """Expiry entries for these overdue lots, one per lot (its key: ``lot:<id>``)."""
    written = 0
    for lot in lots:
        appended = await book.append(
            entry=NewEntry(
                kind=EntryKind.EXPIRY,
                source=lot_source(lot.id),
                amount=-lot.remaining,
                reason=(
                    f"{lot.remaining} of {lot.amount} points earned {lot.earned_at:%Y-%m-%d} "
                    f"expired {lot.expires_at:%Y-%m-%d %H:%M} UTC"
                ),
                actor_id=None,
                occurred_at=now,
            ),
            spend=[Allocation(lot_id=lot.id, amount=lot.remaining)],
        )
        written += appended is not None
    return written


async def _settle_debts(book: LedgerBook, credit: Appended, now: datetime) -> None:
    """New points pay off the customer's debt first, oldest debt first."""
    lots = credit.lots
    if not lots or credit.debt_after == 0:
        return
    debts = await book.debts()
    left = {lot.id: lot.remaining for lot in lots}
    for debt in debts:
        unsettled = debt.unsettled
        for lot in lots:
            take = min(left[lot.id], unsettled)
            if take > 0:
                await book.settle(debt_entry_id=debt.entry_id, lot_id=lot.id, amount=take, now=now)
                left[lot.id] -= take
                unsettled -= take


async def _append(
    book: LedgerBook,
    entry: NewEntry,
    *,
    customer_id: int,
    lots: Sequence[NewLot] = (),
    spend: Sequence[Allocation] = (),
    owed: int = 0,
) -> Appended:
    """Append an entry the caller, holding the customer's lock, knows to be new."""
    appended = await book.append(entry=entry, lots=lots, spend=spend, owed=owed)
    if appended is None:
        # Under the customer's lock only another customer can have taken the key meanwhile.
        await _existing(book, entry.kind, entry.source, customer_id)
        raise RuntimeError(f"{entry.kind} {entry.source} appeared under the customer's lock")
    return appended


async def _existing(
    book: LedgerBook, kind: EntryKind, source: str, customer_id: int
) -> EntryRecord:
    """The entry that won a race for this key: a replay if it is this customer's."""
    entry = await book.entry(kind=kind, source=source)
    if entry is None:
        raise RuntimeError(f"{kind} {source} conflicted but cannot be found")
    _same_customer(entry, customer_id)
    return entry


def _same_customer(entry: EntryRecord, customer_id: int) -> None:
    if entry.customer_id != customer_id:
        raise LedgerRefusal(
            RefusalCode.KEY_OF_ANOTHER_CUSTOMER,
            f"{entry.source} is already recorded for another customer",
        )


def _require_positive(value: int, what: str) -> None:
    # type() rather than isinstance(): True is an int too, and a float must never pass as money.
    if type(value) is not int or value <= 0:
        raise LedgerRefusal(RefusalCode.INVALID_AMOUNT, f"{what} must be a positive whole number")


def _checked_key(key: str, what: str) -> str:
    if not 0 < len(key) <= MAX_KEY or not key.isprintable() or any(c.isspace() for c in key):
        raise LedgerRefusal(
            RefusalCode.INVALID_KEY, f"{what} must be 1..{MAX_KEY} characters without spaces"
        )
    return key


def _checked_source(source: str) -> str:
    if not 0 < len(source) <= MAX_SOURCE or not source.isprintable():
        raise LedgerRefusal(RefusalCode.INVALID_KEY, f"a source must be 1..{MAX_SOURCE} characters")
    return source


def _checked_reason(reason: str) -> str:
    reason = reason.strip()
    if not 0 < len(reason) <= MAX_REASON:
        raise LedgerRefusal(
            RefusalCode.INVALID_REASON, f"a reason must be 1..{MAX_REASON} characters"
        )
    return reason


def _clip(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _percent(basis_points: int) -> str:
    return str(Decimal(basis_points).scaleb(-2))
