"""Orders the shop reports over its API: validation, points for members, status changes."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Protocol, runtime_checkable
from zoneinfo import available_timezones

from scenarios.clock import Clock
from scenarios.customers import (
    CustomerMatcher,
    normalize_phone,
    parse_customer_ref,
    region_for,
    telegram_id_problem,
)
from scenarios.group_commit import GroupCommit
from scenarios.ledger import (
    Accrual,
    Cancellation,
    LedgerReader,
    LedgerRefusal,
    PaidOrder,
    PartialRefund,
    PointsLedger,
    RefusalCode,
    order_source,
    redeem_limit,
    tier_status,
)
from scenarios.preferences import ZoneStore
from scenarios.problems import InputProblem, ProblemKind, invalid
from scenarios.rules import Bonus
from scenarios.tiers import TierLadder, minor_units_per_major, percent_to_basis_points
from scenarios.transactions import SavepointUnitOfWork
from storage.ledger import LotRecord, summarize_lots
from storage.orders import (
    ERASED_FINGERPRINT,
    CustomerMatch,
    NewOrder,
    OrderLine,
    StoredOrder,
)
from storage.redeem_codes import CodeCheck

MAX_ORDER_ID = 64  # orders.order_ref
MAX_MONEY = 10**13  # minor units; far above any real order, far below BIGINT
MAX_ITEMS = 500
MAX_QUANTITY = 100_000  # of one line; order_items.quantity is a 32-bit INTEGER
# No shop had orders before this; older dates are typos (year 1) and break date arithmetic.
EARLIEST_ORDER = datetime(2000, 1, 1, tzinfo=UTC)
ORDER_STATUSES = ("paid", "delivered")  # what a new order may be reported as
STATUS_CHANGES = ("delivered", "cancelled", "refunded")
FINAL_STATUSES = frozenset({"cancelled", "refunded"})
# What an imported history line may say: a shop's export has its cancelled and refunded orders.
HISTORY_STATUSES = (*ORDER_STATUSES, "cancelled", "refunded")
_PRINTABLE_ID = re.compile(r"^[\x21-\x7e]+$")
# ASCII digits only: Decimal() also reads "1_000" and Arabic-Indic "١٢٣", which no shop means.
MONEY_PATTERN = r"^[0-9]{1,13}(\.[0-9]{1,2})?$"
_MONEY = re.compile(r"[0-9]+(?:\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class OrderLimits:
    """What a reported order may be at most: its total (minor units) and how far ahead of our
    clock its created_at may lie."""

    max_total: int = 100_000_000
    clock_skew: timedelta = timedelta(minutes=5)


# The order desk's name for InputProblem (the same type), for callers that still say so.
OrderProblem = InputProblem


# ---- the request as the transport parsed it (shape and types already checked) ------------


@dataclass(frozen=True, slots=True)
class RawCustomer:
    phone: str | None = None
    telegram_id: int | None = None
    name: str | None = None
    # The IANA zone the shop knows the customer lives in (quiet hours follow it).
    time_zone: str | None = None


@dataclass(frozen=True, slots=True)
class RawItem:
    sku: str
    name: str
    quantity: int
    price: str
    category: str | None = None


@dataclass(frozen=True, slots=True)
class RawOrder:
    order_id: str
    customer: RawCustomer
    items: Sequence[RawItem]
    total: str
    currency: str
    status: str = "paid"
    created_at: datetime | None = None
    bonus_redeemed: int | str = 0
    # The member's one-time code (/code) that lets bonus_redeemed spend their points. Proof,
    # not order content: it is no part of the fingerprint, so a retry may repeat or omit it.
    redeem_code: str | None = None
    # total = sum(quantity × price) − discount + shipping (see the README for the tolerance)
    discount: str = "0"
    shipping: str = "0"


# ---- pure rules --------------------------------------------------------------------------


def parse_money(text: str, *, currency: str, field: str) -> int:
    """A decimal string of major units ("1290.00") as integer minor units (129000)."""
    if not _MONEY.fullmatch(text.strip()):
        raise invalid(
            "invalid_amount", f"{text!r} is not a decimal number like 1290.00", field
        ) from None
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise invalid("invalid_amount", f"{text!r} is not a decimal number", field) from None
    if not amount.is_finite() or amount < 0:
        raise invalid("invalid_amount", "an amount is a finite number of at least 0", field)
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise invalid(
            "too_many_fraction_digits", f"{text!r} has more than two fraction digits", field
        )
    minor = amount * minor_units_per_major(currency)
    if minor != minor.to_integral_value():
        raise invalid("too_many_fraction_digits", f"{currency} has no such fraction", field)
    if minor > MAX_MONEY:
        raise invalid("invalid_amount", f"{text!r} is too large", field)
    return int(minor)


def parse_points(value: int | str, *, field: str) -> int:
    """Whole points, given as a number or a string ("100")."""
    if isinstance(value, str) and not _MONEY.fullmatch(value.strip()):
        raise invalid("invalid_points", f"{value!r} is not a number of points", field)
    try:
        points = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise invalid("invalid_points", f"{value!r} is not a number of points", field) from None
    if not points.is_finite() or points < 0 or points != points.to_integral_value():
        raise invalid("invalid_points", "points are a whole number of at least 0", field)
    if points > MAX_MONEY:
        raise invalid("invalid_points", "too many points", field)
    return int(points)


@dataclass(frozen=True, slots=True)
class ValidOrder:
    """A reported order after every rule: amounts in minor units, phone in E.164, UTC time."""

    order_ref: str
    phone: str | None
    telegram_id: int | None
    total: int
    currency: str
    status: str
    ordered_at: datetime
    lines: tuple[OrderLine, ...]
    bonus_redeemed: int
    fingerprint: str
    time_zone: str | None = None


def _ordered_at(
    created_at: datetime | None, *, now: datetime, limits: OrderLimits
) -> datetime | None:
    if created_at is None:
        return None
    if created_at.utcoffset() is None:
        raise invalid(
            "naive_datetime", "created_at needs a time zone (e.g. +03:00 or Z)", "created_at"
        )
    moment: datetime | None
    try:
        moment = created_at.astimezone(UTC)
    except OverflowError:  # year 1 east of Greenwich, year 9999 west of it
        moment = datetime.max.replace(tzinfo=UTC) if created_at.year > now.year else None
    if moment is None or moment < EARLIEST_ORDER:
        raise invalid(
            "created_at_out_of_range",
            f"created_at must not be before {EARLIEST_ORDER.date().isoformat()}",
            "created_at",
        )
    if moment > now + limits.clock_skew:
        minutes = int(limits.clock_skew.total_seconds() // 60)
        raise invalid(
            "created_at_in_future",
            f"created_at is in the future (more than {minutes} minutes ahead of our clock)",
            "created_at",
        )
    return moment


def _check_total(
    total: int, lines: Sequence[OrderLine], *, discount: int, shipping: int, currency: str
) -> None:
    """total = Σ quantity × price − discount + shipping, give or take one minor unit per line
    (a shop that rounds each line's share of a discount may be off by that much)."""
    expected = sum(line.quantity * line.price for line in lines) - discount + shipping
    if abs(total - expected) > len(lines):
        per_major = minor_units_per_major(currency)
        raise invalid(
            "total_mismatch",
            f"the total should be {Decimal(expected) / per_major:.2f} "
            "(the items' quantity × price, minus discount, plus shipping)",
            "total",
        )


def validate_order(
    raw: RawOrder,
    *,
    shop_currency: str,
    now: datetime,
    statuses: Sequence[str] = ORDER_STATUSES,
    limits: OrderLimits | None = None,
) -> ValidOrder:
    """Every semantic rule of a reported order; the first broken one is refused.

    ``statuses``: what the order may be reported as (history imports also take the final
    ones)."""
    limits = limits or OrderLimits()
    order_ref = raw.order_id.strip()
    if not 0 < len(order_ref) <= MAX_ORDER_ID or not _PRINTABLE_ID.match(order_ref):
        raise invalid(
            "invalid_order_id",
            f"an order id is 1..{MAX_ORDER_ID} printable characters without spaces",
            "order_id",
        )
    currency = raw.currency.strip().upper()
    if currency != shop_currency:
        raise invalid(
            "currency_mismatch", f"the shop keeps its points in {shop_currency}", "currency"
        )
    customer = raw.customer
    if customer.phone is None and customer.telegram_id is None:
        raise invalid(
            "customer_unidentified", "the customer needs a phone or a telegram_id", "customer"
        )
    phone = (
        normalize_phone(customer.phone, region=region_for(currency), field="customer.phone")
        if customer.phone is not None
        else None
    )
    id_problem = (
        telegram_id_problem(customer.telegram_id) if customer.telegram_id is not None else None
    )
    if id_problem is not None:
        raise invalid("invalid_telegram_id", id_problem, "customer.telegram_id")
    time_zone = _time_zone(customer.time_zone)
    if not raw.items:
        raise invalid("no_items", "an order has at least one item", "items")
    if len(raw.items) > MAX_ITEMS:
        raise invalid("too_many_items", f"at most {MAX_ITEMS} items per order", "items")
    lines = []
    for index, item in enumerate(raw.items):
        where = f"items.{index}"
        if not 1 <= item.quantity <= MAX_QUANTITY:
            raise invalid(
                "invalid_quantity",
                f"a quantity is a whole number from 1 to {MAX_QUANTITY}",
                f"{where}.quantity",
            )
        if not item.sku.strip():
            raise invalid("invalid_sku", "an item needs its SKU", f"{where}.sku")
        lines.append(
            OrderLine(
                sku=item.sku.strip(),
                name=item.name.strip(),
                quantity=item.quantity,
                price=parse_money(item.price, currency=currency, field=f"{where}.price"),
                category=item.category.strip() if item.category else None,
            )
        )
    total = parse_money(raw.total, currency=currency, field="total")
    if total <= 0:
        raise invalid("invalid_amount", "an order total is more than 0", "total")
    if total > limits.max_total:
        per_major = minor_units_per_major(currency)
        raise invalid(
            "total_too_large",
            f"an order total is at most {Decimal(limits.max_total) / per_major:.2f} "
            "(orders.max_total)",
            "total",
        )
    discount = parse_money(raw.discount, currency=currency, field="discount")
    shipping = parse_money(raw.shipping, currency=currency, field="shipping")
    _check_total(total, lines, discount=discount, shipping=shipping, currency=currency)
    status = raw.status.strip().lower()
    if status not in statuses:
        raise invalid(
            "unknown_status",
            f"a new order's status is one of {', '.join(statuses)}",
            "status",
        )
    created_at = _ordered_at(raw.created_at, now=now, limits=limits)
    redeemed = parse_points(raw.bonus_redeemed, field="bonus_redeemed")
    canonical: dict[str, object] = {
        "order_id": order_ref,
        "customer": {"phone": phone, "telegram_id": customer.telegram_id, "name": customer.name},
        "items": [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "price": line.price,
                "category": line.category,
            }
            for line in lines
        ],
        "total": total,
        "currency": currency,
        "status": status,
        # As reported: a default of "now" would make every replay of an undated order differ.
        "created_at": created_at.isoformat() if created_at is not None else None,
        "bonus_redeemed": redeemed,
    }
    # Only when given, so that orders stored before these fields keep their fingerprints.
    if discount:
        canonical["discount"] = discount
    if shipping:
        canonical["shipping"] = shipping
    return ValidOrder(
        order_ref=order_ref,
        phone=phone,
        telegram_id=customer.telegram_id,
        total=total,
        currency=currency,
        status=status,
        ordered_at=created_at or now,
        lines=tuple(lines),
        bonus_redeemed=redeemed,
        fingerprint=fingerprint(canonical),
        time_zone=time_zone,
    )


def _time_zone(name: str | None) -> str | None:
    """An IANA zone name as tzdata spells it, or None. Not part of the order's fingerprint:
    it says where the person lives, not what they bought, so a replay that adds or changes it
    is no conflict (a new order sets it; a replay changes nothing)."""
    if name is None:
        return None
    zone = name.strip()
    if zone not in _known_zones():
        raise invalid(
            "invalid_time_zone",
            "a time zone is an IANA name such as Europe/Kyiv",
            "customer.time_zone",
        )
    return zone


@cache
def _known_zones() -> frozenset[str]:
    # Only tzdata's names: ZoneInfo would also open a path-like key, and a system's zone
    # directory lists files that name no place (its own "localtime", "posixrules", "Factory").
    return frozenset(available_timezones()) - {"localtime", "posixrules", "Factory"}


def fingerprint(canonical: object) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of a validated, normalised body."""
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


# ---- results -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Points:
    available: int
    pending: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the shop is told about a reported order (the same again on a replay)."""

    order_id: str
    customer_id: int | None
    points_accrued: int
    pending_until: datetime | None
    balance: Points


@dataclass(frozen=True, slots=True)
class Reported:
    receipt: Receipt
    created: bool  # False: a replay of the same order, nothing written


@dataclass(frozen=True, slots=True)
class StatusChange:
    """What a status report changed. The hook for what follows a status: a caller starts the
    rating request when ``delivered_now`` is true."""

    order_id: str
    before: str
    after: str
    customer_id: int | None
    cancellation: Cancellation | None  # set when a member's order was cancelled or refunded
    balance: Points | None  # the member's points afterwards

    @property
    def changed(self) -> bool:
        return self.before != self.after

    @property
    def delivered_now(self) -> bool:
        return self.changed and self.after == "delivered"


@dataclass(frozen=True, slots=True)
class Refunded:
    """What a refund of part of an order's money did: the running refunded amount, and either
    the proportional share of its points (``partial``) or, once everything is refunded, the
    full refund (``change``)."""

    order_id: str
    customer_id: int | None
    refunded: int  # minor units refunded so far, this refund included
    total: int
    partial: PartialRefund | None
    change: StatusChange | None
    replayed: bool


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """An order the desk has just recorded, moved or partly refunded, for what follows it
    (points notice, tier, rating request, replenishment reminders, referral rewards).
    Followers run inside the desk's transaction."""

    order_id: str
    customer_id: int | None  # the member it belongs to, None when not (yet) a member
    status: str  # the status now
    previous_status: str | None  # None when the order is new
    ordered_at: datetime
    # False for orders older than ``orders.follow_up_horizon_days`` (imported history): no
    # message should follow them, only bookkeeping.
    recent: bool
    # Part of the order's money was refunded (this refund id); its status stays as it was.
    refund_key: str | None = None

    @property
    def is_new(self) -> bool:
        return self.previous_status is None

    @property
    def is_partial_refund(self) -> bool:
        return self.refund_key is not None


class OrderFollower(Protocol):
    async def after_order(self, event: OrderEvent) -> None: ...


@runtime_checkable
class OrderBatchFollower(OrderFollower, Protocol):
    """A follower that handles a group's new orders (of distinct customers) at once: what
    each would read alone, read in a few statements for all of them. Each event must come to
    exactly what ``after_order`` would make of it."""

    async def after_orders(self, events: Sequence[OrderEvent]) -> None: ...


@dataclass(frozen=True, slots=True)
class CustomerCard:
    customer_id: int
    tier: str
    cashback_percent: Decimal
    balance: Points
    redeemable: int | None  # points that may pay for an order of the asked total


# ---- ports -------------------------------------------------------------------------------


class RedeemProof(Protocol):
    async def spend(self, *, customer_id: int, code: str, order_ref: str) -> CodeCheck: ...

    async def count_wrong(self, *, customer_id: int) -> int: ...


class _WrongCode(Exception):
    """A code that is not the member's: the order is refused, and the try is counted after
    its transaction rolled back (inside it, the count would roll back too)."""

    def __init__(self, member: int) -> None:
        super().__init__(member)
        self.member = member


class RefundStore(Protocol):
    async def record(
        self, *, order_ref: str, refund_key: str, amount: int, now: datetime
    ) -> bool: ...

    async def for_order(self, *, order_ref: str) -> dict[str, int]: ...


class OrderStore(CustomerMatcher, Protocol):
    async def by_ref(self, *, order_ref: str, lock: bool = False) -> StoredOrder | None: ...

    async def add(self, order: NewOrder, *, now: datetime) -> int | None: ...

    async def set_status(self, *, order_ref: str, status: str, now: datetime) -> None: ...

    async def by_refs(self, *, order_refs: Sequence[str]) -> dict[str, StoredOrder]: ...

    async def match_customers(
        self, *, keys: Sequence[tuple[int | None, str | None]]
    ) -> list[CustomerMatch | None]: ...

    async def add_many(self, batch: Sequence[NewOrder], *, now: datetime) -> dict[str, int]: ...


class OrderLedgerReader(LedgerReader, Protocol):
    async def open_lots(self, *, customer_id: int) -> list[LotRecord]: ...

    def prefetched(
        self,
        *,
        sources: Mapping[int, Sequence[str]],
        since: datetime | None,
        at: datetime,
        found_already: bool = False,
    ) -> AbstractAsyncContextManager[None]: ...


def points_of(lots: Sequence[LotRecord], *, at: datetime) -> Points:
    """Available and pending points from the open lots alone, by the balance view's rules."""
    summary = summarize_lots(lots, at=at)
    return Points(available=summary.available, pending=summary.pending)


@dataclass(frozen=True, slots=True)
class _Pending:
    """A valid order of a batch, and where its outcome goes."""

    position: int
    order: ValidOrder
    raw: RawOrder

    @property
    def ref(self) -> str:
        return self.order.order_ref


def _groupable(batch: Sequence[_Pending]) -> tuple[list[_Pending], list[_Pending]]:
    """Orders that may be written together (no points spent, each order id, phone and
    Telegram id once) and the rest, which go one by one after them."""
    together: list[_Pending] = []
    alone: list[_Pending] = []
    seen: set[object] = set()
    for pending in batch:
        order = pending.order
        keys: set[tuple[str, object]] = {("ref", order.order_ref)}
        if order.phone is not None:
            keys.add(("phone", order.phone))
        if order.telegram_id is not None:
            keys.add(("telegram", order.telegram_id))
        if order.bonus_redeemed or keys & seen:
            alone.append(pending)
        else:
            together.append(pending)
        seen |= keys
    return together, alone


# ---- use cases ---------------------------------------------------------------------------


class OrderDesk:
    """The shop's orders in, points out: each call is one unit of work, all or nothing."""

    def __init__(
        self,
        *,
        uow: SavepointUnitOfWork,
        orders: OrderStore,
        points: PointsLedger,
        reader: OrderLedgerReader,
        bonus: Bonus,
        ladder: TierLadder,
        currency: str,
        clock: Clock,
        followers: Sequence[OrderFollower] = (),
        follow_up_horizon: timedelta = timedelta(days=30),
        redeem_codes: RedeemProof | None = None,
        limits: OrderLimits | None = None,
        zones: ZoneStore | None = None,
        refunds: RefundStore | None = None,
        group_commit: bool = False,
    ) -> None:
        """``redeem_codes``: spending points needs the member's one-time code (None: it does
        not, for a shop whose own system signs the customer in, and for imported history).
        ``refunds``: partial refunds (store platforms' webhooks), None where there are none.
        ``group_commit``: ``submit`` writes concurrent orders in one transaction (SQLite, where
        one writer serves the process and each order's statements queue behind the others)."""
        self._group = GroupCommit(self.report_many) if group_commit else None
        self._codes = redeem_codes
        self._zones = zones
        self._refunds = refunds
        self._uow = uow
        self._limits = limits or OrderLimits()
        self._followers = tuple(followers)
        self._horizon = follow_up_horizon
        self._orders = orders
        self._points = points
        self._reader = reader
        self._bonus = bonus
        self._ladder = ladder
        self._currency = currency
        self._clock = clock
        self._share_bp = percent_to_basis_points(bonus.max_redeem_share)

    async def report(self, raw: RawOrder, *, history: bool = False) -> Reported:
        """Record a paid or delivered order; a member redeems and earns points with it.

        The same order again is a replay (the first receipt); a different body under the same
        order id is a conflict. A refused redemption writes nothing, not even the order.
        ``history`` (the CSV import) also takes orders already cancelled or refunded: they are
        recorded with that status for the customer's history and nothing else (no points, no
        follow-up, and they teach reminders no interval).
        """
        now = self._clock.now()
        order = self._validated(raw, now=now, history=history)
        try:
            async with self._uow.transaction():
                return await self._record(order, raw, now=now)
        except _WrongCode as wrong:
            async with self._uow.transaction():  # the order is undone; the wrong try counts
                problem = await self._counted(wrong)
            raise problem from None

    async def submit(self, raw: RawOrder) -> Reported:
        """``report`` for the shop's API. With group commit, concurrent calls are written
        together: one transaction, each order in its own savepoint, every caller answered
        once that transaction has committed."""
        if self._group is None:
            return await self.report(raw)
        return await self._group.submit(raw)

    async def report_many(
        self, raws: Sequence[RawOrder], *, history: bool = False
    ) -> list[Reported | Exception]:
        """``report`` for many orders in one transaction (joined if one is open): what each
        order came to, in their order; a refused or failed order is its exception there, and
        the others are recorded all the same (each behaves as if reported alone).

        Orders that spend no points, of distinct customers, go together in a few statements
        for all of them; if that part fails as a whole, each order is written on its own, in
        its own savepoint. Raises only when the transaction itself fails (nothing of it is
        then written)."""
        now = self._clock.now()
        outcomes: list[Reported | Exception | None] = [None] * len(raws)
        valid: list[_Pending] = []
        for position, raw in enumerate(raws):
            try:
                order = self._validated(raw, now=now, history=history)
            except OrderProblem as problem:
                outcomes[position] = problem
                continue
            valid.append(_Pending(position, order, raw))
        async with self._uow.transaction():
            together, alone = _groupable(valid)
            if together:
                try:
                    async with self._uow.savepoint():
                        done, left = await self._record_together(together, alone, now=now)
                except Exception:  # undone as a whole: each order on its own below
                    done, left = {}, together
                for position, outcome in done.items():
                    outcomes[position] = outcome
                alone = sorted([*alone, *left], key=lambda pending: pending.position)
            for pending in alone:
                try:
                    async with self._uow.savepoint():
                        outcomes[pending.position] = await self._record(
                            pending.order, pending.raw, now=now
                        )
                except _WrongCode as wrong:  # its order undone, the wrong try still counts
                    outcomes[pending.position] = await self._counted(wrong)
                except Exception as error:  # this order's answer; the others go on
                    outcomes[pending.position] = error
        answered = [outcome for outcome in outcomes if outcome is not None]
        assert len(answered) == len(raws), "every order has its outcome"
        return answered

    async def _counted(self, wrong: _WrongCode) -> OrderProblem:
        """A wrong spending code, counted against the member after their order was undone."""
        assert self._codes is not None
        await self._codes.count_wrong(customer_id=wrong.member)
        return invalid(
            "redeem_code_invalid",
            "this is not a code of this member; ask them for the code /code shows",
            "redeem_code",
        )

    def _validated(self, raw: RawOrder, *, now: datetime, history: bool) -> ValidOrder:
        return validate_order(
            raw,
            shop_currency=self._currency,
            now=now,
            statuses=HISTORY_STATUSES if history else ORDER_STATUSES,
            limits=self._limits,
        )

    async def _record(self, order: ValidOrder, raw: RawOrder, *, now: datetime) -> Reported:
        """One order inside the caller's transaction."""
        if not order.bonus_redeemed:
            # Nothing to prove or refuse before the write: insert first, and only an order id
            # already stored costs the look-up (a replay or a conflict).
            match = await self._orders.match_customer(
                telegram_id=order.telegram_id, phone=order.phone
            )
            member = match.id if match is not None and match.joined else None
            row = await self._orders.add(self._new_order(order, member), now=now)
            if row is None:  # a replay tells nothing new, not even where the customer lives
                stored = await self._orders.by_ref(order_ref=order.order_ref)
                assert stored is not None, "ON CONFLICT found the row"
                return Reported(receipt=await self._replay(stored, order), created=False)
            await self._remember_zone(match, order)
            return await self._after_insert(order, member)
        stored = await self._orders.by_ref(order_ref=order.order_ref)
        if stored is not None:
            return Reported(receipt=await self._replay(stored, order), created=False)
        match = await self._orders.match_customer(telegram_id=order.telegram_id, phone=order.phone)
        member = match.id if match is not None and match.joined else None
        await self._remember_zone(match, order)
        if member is None:
            raise invalid(
                "not_a_member",
                "only members of the bonus program redeem points",
                "bonus_redeemed",
            )
        if self._codes is not None:
            await self._prove(member, raw.redeem_code, order.order_ref)
        row = await self._orders.add(self._new_order(order, member), now=now)
        if row is None:  # a concurrent request stored it first; it is committed by now
            stored = await self._orders.by_ref(order_ref=order.order_ref)
            assert stored is not None, "ON CONFLICT found the row"
            return Reported(receipt=await self._replay(stored, order), created=False)
        return await self._after_insert(order, member)

    async def _remember_zone(self, match: CustomerMatch | None, order: ValidOrder) -> None:
        """The shop told the customer's time zone: their messages follow it from now on."""
        if match is not None and order.time_zone is not None and self._zones is not None:
            await self._zones.set_time_zone(customer_id=match.id, zone=order.time_zone)

    @staticmethod
    def _new_order(order: ValidOrder, member: int | None) -> NewOrder:
        return NewOrder(
            order_ref=order.order_ref,
            total=order.total,
            currency=order.currency,
            status=order.status,
            ordered_at=order.ordered_at,
            lines=order.lines,
            customer_id=member,
            phone=order.phone,
            telegram_id=order.telegram_id,
            bonus_redeemed=order.bonus_redeemed,
            fingerprint=order.fingerprint,
        )

    async def _after_insert(self, order: ValidOrder, member: int | None) -> Reported:
        """The order row is written: the member's points, the receipt, the followers."""
        reported = await self._points_of_new(order, member)
        if order.status not in FINAL_STATUSES:  # closed history: recorded, nothing follows
            await self._follow(order.order_ref, member, order.status, None, order.ordered_at)
        return reported

    async def _points_of_new(self, order: ValidOrder, member: int | None) -> Reported:
        """The order row is written: the member's points and the receipt."""
        if order.status in FINAL_STATUSES:  # closed history: recorded, nothing follows
            receipt = Receipt(
                order_id=order.order_ref,
                customer_id=member,
                points_accrued=0,
                pending_until=None,
                balance=await self._balance(member)
                if member is not None
                else Points(available=0, pending=0),
            )
            return Reported(receipt=receipt, created=True)
        if member is None:
            receipt = Receipt(
                order_id=order.order_ref,
                customer_id=None,
                points_accrued=0,
                pending_until=None,
                balance=Points(available=0, pending=0),
            )
            return Reported(receipt=receipt, created=True)
        try:
            if order.bonus_redeemed:
                await self._points.redeem(
                    customer_id=member,
                    order_id=order.order_ref,
                    order_total=order.total,
                    points=order.bonus_redeemed,
                )
            accrual = await self._points.accrue(
                customer_id=member,
                order_id=order.order_ref,
                total=order.total,
                ordered_at=order.ordered_at,
            )
        except LedgerRefusal as refusal:
            raise invalid(refusal.code, refusal.message, "bonus_redeemed") from None
        return await self._accrued(order, member, accrual)

    async def _accrued(self, order: ValidOrder, member: int, accrual: Accrual) -> Reported:
        """The receipt of a member's new order once its points are written."""
        receipt = Receipt(
            order_id=order.order_ref,
            customer_id=member,
            points_accrued=accrual.points,
            pending_until=accrual.available_at,
            balance=Points(
                available=accrual.lots_after.available, pending=accrual.lots_after.pending
            )
            if accrual.lots_after is not None
            else await self._balance(member),
        )
        return Reported(receipt=receipt, created=True)

    async def _points_of_group(
        self,
        written: Sequence[tuple[_Pending, int | None]],
        earning: Sequence[tuple[_Pending, int]],
    ) -> dict[int, Reported]:
        """``_points_of_new`` for a group's orders (no points spent, customers distinct):
        the accruals of those ``earning`` (members' open orders) written together."""
        try:
            accruals = await self._points.accrue_many(
                [
                    PaidOrder(
                        customer_id=member,
                        order_id=pending.ref,
                        total=pending.order.total,
                        ordered_at=pending.order.ordered_at,
                    )
                    for pending, member in earning
                ]
            )
        except LedgerRefusal as refusal:
            raise invalid(refusal.code, refusal.message, "bonus_redeemed") from None
        done = {
            pending.position: await self._accrued(pending.order, member, accrual)
            for (pending, member), accrual in zip(earning, accruals, strict=True)
        }
        for pending, member in written:
            if pending.position not in done:
                done[pending.position] = await self._points_of_new(pending.order, member)
        return done

    async def _record_together(
        self, batch: Sequence[_Pending], alone: Sequence[_Pending], *, now: datetime
    ) -> tuple[dict[int, Reported | Exception], list[_Pending]]:
        """Orders that spend no points, of distinct customers: looked up, matched and inserted
        in one statement each for all of them, then each order's points and followers. What
        the batch leaves (a customer twice, an order id another writer stored meanwhile) is
        returned for the one-by-one path. An order refused after its insert raises (the caller's
        savepoint around the batch then undoes all of it)."""
        done: dict[int, Reported | Exception] = {}
        stored = await self._orders.by_refs(order_refs=[pending.ref for pending in batch])
        fresh: list[_Pending] = []
        for pending in batch:
            known = stored.get(pending.ref)
            if known is None:
                fresh.append(pending)
                continue
            try:
                done[pending.position] = Reported(
                    receipt=await self._replay(known, pending.order), created=False
                )
            except OrderProblem as problem:  # a conflict: refused before anything is written
                done[pending.position] = problem
        matches = await self._orders.match_customers(
            keys=[(pending.order.telegram_id, pending.order.phone) for pending in [*fresh, *alone]]
        )
        # A customer's orders keep their sequence: one that an earlier order of the same
        # customer goes alone before (or that is the customer's second here) waits for it.
        first_alone: dict[int, int] = {}
        for pending, match in zip(alone, matches[len(fresh) :], strict=True):
            if match is not None:
                first_alone.setdefault(match.id, pending.position)
        left: list[_Pending] = []
        chosen: list[tuple[_Pending, int | None]] = []
        chosen_matches: list[CustomerMatch | None] = []
        customers: set[int] = set()
        for pending, match in zip(fresh, matches[: len(fresh)], strict=True):
            if match is not None:
                if match.id in customers or first_alone.get(match.id, pending.position) < (
                    pending.position
                ):
                    left.append(pending)
                    continue
                customers.add(match.id)
            chosen.append((pending, match.id if match is not None and match.joined else None))
            chosen_matches.append(match)
        ids = await self._orders.add_many(
            [self._new_order(pending.order, member) for pending, member in chosen], now=now
        )
        written = []
        for (pending, member), match in zip(chosen, chosen_matches, strict=True):
            if pending.ref in ids:
                await self._remember_zone(match, pending.order)
                written.append((pending, member))
            else:  # another writer stored this order id meanwhile
                left.append(pending)
        earning = [
            (pending, member)
            for pending, member in written
            if member is not None and pending.order.status not in FINAL_STATUSES
        ]
        # What each member's accrual reads first, read for all of them at once.
        async with self._reader.prefetched(
            sources={member: [order_source(pending.ref)] for pending, member in earning},
            since=self._ladder.window_start(now),
            at=now,
            found_already=True,
        ):
            done.update(await self._points_of_group(written, earning))
        # Then what follows them, for all of them at once (their customers are distinct, so
        # no order's followers see another's effects).
        await self._follow_together(
            [
                self._event(
                    pending.order.order_ref,
                    member,
                    pending.order.status,
                    None,
                    pending.order.ordered_at,
                )
                for pending, member in written
                if pending.order.status not in FINAL_STATUSES
            ]
        )
        return done, left

    async def _prove(self, member: int, code: str | None, order_ref: str) -> None:
        """The member's own unused, unexpired code, spent on this order; else a refusal."""
        assert self._codes is not None
        if code is None or not code.strip():
            raise invalid(
                "redeem_code_required",
                "spending points needs the one-time code the member gets in the bot (/code)",
                "redeem_code",
            )
        check = await self._codes.spend(customer_id=member, code=code, order_ref=order_ref)
        if check is CodeCheck.UNKNOWN:
            raise _WrongCode(member)
        refusals = {
            CodeCheck.USED: (
                "redeem_code_used",
                "this code was already used; the member gets a new one with /code",
            ),
            CodeCheck.EXPIRED: (
                "redeem_code_expired",
                "this code has expired; the member gets a new one with /code",
            ),
            CodeCheck.LOCKED: (
                "redeem_code_locked",
                "too many wrong codes were tried for this member; they get a new one with /code",
            ),
        }
        if check in refusals:
            problem, message = refusals[check]
            raise invalid(problem, message, "redeem_code")

    async def _follow(
        self,
        order_id: str,
        customer_id: int | None,
        status: str,
        previous_status: str | None,
        ordered_at: datetime,
        *,
        refund_key: str | None = None,
    ) -> None:
        event = self._event(
            order_id, customer_id, status, previous_status, ordered_at, refund_key=refund_key
        )
        for follower in self._followers:
            await follower.after_order(event)

    async def _follow_together(self, events: Sequence[OrderEvent]) -> None:
        """Each follower after every one of these orders, in one call where it can batch."""
        if not events:
            return
        for follower in self._followers:
            if isinstance(follower, OrderBatchFollower):
                await follower.after_orders(events)
            else:
                for event in events:
                    await follower.after_order(event)

    def _event(
        self,
        order_id: str,
        customer_id: int | None,
        status: str,
        previous_status: str | None,
        ordered_at: datetime,
        *,
        refund_key: str | None = None,
    ) -> OrderEvent:
        return OrderEvent(
            order_id=order_id,
            customer_id=customer_id,
            status=status,
            previous_status=previous_status,
            ordered_at=ordered_at,
            recent=ordered_at >= self._clock.now() - self._horizon,
            refund_key=refund_key,
        )

    async def _replay(self, stored: StoredOrder, order: ValidOrder) -> Receipt:
        if stored.fingerprint not in (order.fingerprint, ERASED_FINGERPRINT):
            raise InputProblem(
                ProblemKind.CONFLICT,
                "order_conflict",
                f"order {order.order_ref} was already reported with a different body",
                "order_id",
            )
        if stored.customer_id is None:
            return Receipt(
                order_id=stored.order_ref,
                customer_id=None,
                points_accrued=0,
                pending_until=None,
                balance=Points(available=0, pending=0),
            )
        if order.status in FINAL_STATUSES:  # imported closed history never earned anything
            return Receipt(
                order_id=stored.order_ref,
                customer_id=stored.customer_id,
                points_accrued=0,
                pending_until=None,
                balance=await self._balance(stored.customer_id),
            )
        points, pending_until = 0, None
        try:  # a replay of an accrual returns the original and writes nothing
            accrual = await self._points.accrue(
                customer_id=stored.customer_id, order_id=stored.order_ref, total=stored.total
            )
            points, pending_until = accrual.points, accrual.available_at
        except LedgerRefusal as refusal:
            if refusal.code is not RefusalCode.ORDER_CANCELLED:
                raise
        return Receipt(
            order_id=stored.order_ref,
            customer_id=stored.customer_id,
            points_accrued=points,
            pending_until=pending_until,
            balance=await self._balance(stored.customer_id),
        )

    async def change_status(self, *, order_id: str, status: str) -> StatusChange:
        """delivered, cancelled or refunded. Cancelling or refunding a member's order reverses
        its points; repeating it changes nothing. A cancelled or refunded order stays so."""
        status = status.strip().lower()
        if status not in STATUS_CHANGES:
            raise invalid(
                "unknown_status", f"a status is one of {', '.join(STATUS_CHANGES)}", "status"
            )
        now = self._clock.now()
        async with self._uow.transaction():
            stored = await self._orders.by_ref(order_ref=order_id, lock=True)
            if stored is None:
                raise InputProblem(
                    ProblemKind.NOT_FOUND, "order_not_found", f"no order {order_id}", "order_id"
                )
            before = stored.status
            if before in FINAL_STATUSES and status != before:
                raise InputProblem(
                    ProblemKind.CONFLICT,
                    "status_final",
                    f"order {order_id} is {before}; it cannot become {status}",
                    "status",
                )
            cancellation = None
            if status in FINAL_STATUSES and stored.customer_id is not None:
                earlier = await self._refunds.for_order(order_ref=order_id) if self._refunds else {}
                try:  # idempotent: a repeat returns the first cancellation and writes nothing
                    cancellation = await self._points.cancel_order(
                        customer_id=stored.customer_id,
                        order_id=order_id,
                        reason=status,
                        earlier_refunds=tuple(earlier),
                    )
                except LedgerRefusal as refusal:
                    raise invalid(refusal.code, refusal.message, "status") from None
            if status != before:
                await self._orders.set_status(order_ref=order_id, status=status, now=now)
                await self._follow(order_id, stored.customer_id, status, before, stored.ordered_at)
            points = (
                await self._balance(stored.customer_id) if stored.customer_id is not None else None
            )
        return StatusChange(
            order_id=order_id,
            before=before,
            after=status,
            customer_id=stored.customer_id,
            cancellation=cancellation,
            balance=points,
        )

    async def refund_part(self, *, order_id: str, refund_key: str, amount: int) -> Refunded:
        """Part of an order's money returned: its points follow in proportion (see
        ``PointsLedger.refund_part``), once per ``refund_key``; the refund that brings the
        refunded amount to the total refunds the order (``change_status``)."""
        if self._refunds is None:
            raise RuntimeError("this order desk keeps no partial refunds")
        if type(amount) is not int or amount <= 0:
            raise invalid("invalid_amount", "a refund returns more than 0", "amount")
        async with self._uow.transaction():
            stored = await self._orders.by_ref(order_ref=order_id, lock=True)
            if stored is None:
                raise OrderProblem(
                    ProblemKind.NOT_FOUND, "order_not_found", f"no order {order_id}", "order_id"
                )
            earlier = await self._refunds.for_order(order_ref=order_id)
            before = sum(earlier.values())
            if refund_key in earlier or stored.status in FINAL_STATUSES:
                return Refunded(
                    order_id=order_id,
                    customer_id=stored.customer_id,
                    refunded=min(before, stored.total),
                    total=stored.total,
                    partial=None,
                    change=None,
                    replayed=True,
                )
            after = min(before + amount, stored.total)
            await self._refunds.record(
                order_ref=order_id, refund_key=refund_key, amount=amount, now=self._clock.now()
            )
            partial, change = None, None
            if after >= stored.total:
                change = await self.change_status(order_id=order_id, status="refunded")
            elif stored.customer_id is not None and after > before:
                try:
                    partial = await self._points.refund_part(
                        customer_id=stored.customer_id,
                        order_id=order_id,
                        refund_key=refund_key,
                        refunded_before=min(before, stored.total),
                        refunded_after=after,
                        total=stored.total,
                    )
                except LedgerRefusal as refusal:
                    raise invalid(refusal.code, refusal.message, "amount") from None
                # The customer is told what this refund did to their points, and their tier
                # counts the order without the refunded part, as after a full refund.
                await self._follow(
                    order_id,
                    stored.customer_id,
                    stored.status,
                    stored.status,
                    stored.ordered_at,
                    refund_key=refund_key,
                )
        return Refunded(
            order_id=order_id,
            customer_id=stored.customer_id,
            refunded=after,
            total=stored.total,
            partial=partial,
            change=change,
            replayed=False,
        )

    async def customer_card(self, *, ref: str, total: str | None = None) -> CustomerCard:
        """A member's tier and points; with an order total, how many points may pay for it."""
        parsed = parse_customer_ref(ref, region=region_for(self._currency))
        order_total = (
            parse_money(total, currency=self._currency, field="total")
            if total is not None
            else None
        )
        match = await self._orders.match_customer(
            telegram_id=parsed.telegram_id,
            phone=parsed.phone,
            customer_id=parsed.customer_id,
            username=parsed.username,
            card=parsed.card,
        )
        if match is None or not match.joined:
            raise InputProblem(
                ProblemKind.NOT_FOUND, "customer_not_found", "no member with this reference", "ref"
            )
        status = await tier_status(
            self._reader, customer_id=match.id, ladder=self._ladder, clock=self._clock
        )
        points = await self._balance(match.id)
        redeemable = None
        if order_total is not None:
            limit = redeem_limit(
                order_total=order_total,
                share_bp=self._share_bp,
                point_value=self._bonus.point_value,
            )
            redeemable = min(points.available, limit)
        return CustomerCard(
            customer_id=match.id,
            tier=status.tier.name,
            cashback_percent=Decimal(status.tier.cashback_bp) / 100,
            balance=points,
            redeemable=redeemable,
        )

    async def _balance(self, customer_id: int) -> Points:
        lots = await self._reader.open_lots(customer_id=customer_id)
        return points_of(lots, at=self._clock.now())
