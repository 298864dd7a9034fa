"""The points ledger in SQL: append-only entries, lots, allocations, and per-customer locks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Row,
    String,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    select,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.database import Database
from storage.refunds import paid_after_refunds
from storage.schema import (
    customers,
    ledger_accounts,
    ledger_allocations,
    ledger_entries,
    ledger_lots,
)
from storage.sql import insert
from storage.types import UtcDateTime


class EntryKind(StrEnum):
    ACCRUAL = "accrual"  # cashback on an order's paid amount
    REDEMPTION = "redemption"  # points paying for an order
    REVERSAL = "reversal"  # a cancelled order's earned points taken back (0: nothing to take)
    RESTORATION = "restoration"  # a cancelled order's spent points given back
    CORRECTION = "correction"  # earned points already spent elsewhere: charged, or owed as debt
    EXPIRY = "expiry"  # the unspent rest of a lot at its expiry
    WELCOME = "welcome"
    REFERRAL = "referral"
    BIRTHDAY = "birthday"
    COMPENSATION = "compensation"
    ADJUSTMENT = "adjustment"  # by an admin, either sign
    GIFT = "gift"  # an admin's holiday gift to members (/gift)
    FORFEITURE = "forfeiture"  # every point left when the customer erased their account


class UnknownCustomerError(LookupError):
    """No customer with this id: there is no ledger to write to."""


class LedgerIntegrityError(RuntimeError):
    """A write would break the ledger's arithmetic (a programming error, never a user's)."""


@dataclass(frozen=True, slots=True)
class EntryRecord:
    id: int
    customer_id: int
    kind: EntryKind
    source: str
    amount: int
    paid_amount: int | None
    reason: str
    actor_id: int | None
    occurred_at: datetime
    # Accruals: when the order was placed (the tier window counts from it), not reported.
    ordered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LotRecord:
    id: int
    entry_id: int
    customer_id: int
    amount: int
    remaining: int
    earned_at: datetime
    available_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class NewEntry:
    kind: EntryKind
    source: str
    amount: int
    reason: str
    actor_id: int | None
    occurred_at: datetime
    paid_amount: int | None = None
    ordered_at: datetime | None = None  # accruals: the order's own date


@dataclass(frozen=True, slots=True)
class NewLot:
    amount: int
    earned_at: datetime
    available_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class NewCredit:
    """A credit of one customer and the lots it creates (see ``SqlLedger.append_credits``)."""

    customer_id: int
    entry: NewEntry
    lots: tuple[NewLot, ...]


@dataclass(frozen=True, slots=True)
class LotSummary:
    """What a customer's open lots hold at one moment, as an accrual needs it: the points of
    the live lots, spendable and pending, and the lots already past their expiry."""

    at: datetime
    available: int
    pending: int
    overdue: tuple[LotRecord, ...]
    # Until then no lot is released or expires, so the figures stay true (None: no live lot).
    steady_until: datetime | None

    def holds_at(self, moment: datetime) -> bool:
        """The same figures are true at this moment."""
        return self.at <= moment and (self.steady_until is None or moment < self.steady_until)

    def plus(self, lots: Iterable[LotRecord]) -> LotSummary:
        """After these new lots and once the overdue ones are expired."""
        added = summarize_lots(lots, at=self.at)
        changes = [moment for moment in (self.steady_until, added.steady_until) if moment]
        return LotSummary(
            at=self.at,
            available=self.available + added.available,
            pending=self.pending + added.pending,
            overdue=(),
            steady_until=min(changes, default=None),
        )


def summarize_lots(lots: Iterable[LotRecord], *, at: datetime) -> LotSummary:
    """The balance view's rules on open lots: a lot past its expiry counts as gone, a lot
    still in its return window is pending."""
    available = pending = 0
    overdue: list[LotRecord] = []
    steady: datetime | None = None
    for lot in lots:
        if lot.remaining <= 0:
            continue
        if lot.expires_at <= at:
            overdue.append(lot)
            continue
        changes = lot.expires_at
        if lot.available_at <= at:
            available += lot.remaining
        else:
            pending += lot.remaining
            changes = min(changes, lot.available_at)
        steady = changes if steady is None else min(steady, changes)
    return LotSummary(
        at=at, available=available, pending=pending, overdue=tuple(overdue), steady_until=steady
    )


@dataclass(frozen=True, slots=True)
class Allocation:
    """Points a debit takes from one lot."""

    lot_id: int
    amount: int


@dataclass(frozen=True, slots=True)
class Appended:
    entry: EntryRecord
    lots: tuple[LotRecord, ...]
    debt_after: int  # the customer's uncovered debt once this entry is written


@dataclass(frozen=True, slots=True)
class LotUse:
    """Points taken from a lot by one entry (a redemption, an expiry, a debt paid off...)."""

    entry_id: int
    kind: EntryKind
    source: str
    amount: int


@dataclass(frozen=True, slots=True)
class SpentLot:
    """A lot an entry took points from, and how many."""

    lot: LotRecord
    amount: int


@dataclass(frozen=True, slots=True)
class Debt:
    """A correction entry whose charge no lot has covered yet, in part or in full."""

    entry_id: int
    unsettled: int


@dataclass(frozen=True, slots=True)
class AccountRecord:
    customer_id: int
    balance: int
    debt: int


@dataclass(frozen=True, slots=True)
class KindTotal:
    kind: EntryKind
    credited: int  # sum of the positive entries of this kind
    debited: int  # sum of the negative ones, as a positive number


@dataclass(frozen=True, slots=True)
class LedgerSnapshot:
    """What a balance view needs, read at one moment."""

    open_lots: tuple[LotRecord, ...]  # lots with points left, closest to expiry first
    account: AccountRecord
    totals: tuple[KindTotal, ...]


@dataclass(frozen=True, slots=True)
class ExpiringPoints:
    customer_id: int
    amount: int
    earliest: datetime


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """The cached numbers next to what the entries, lots and allocations say."""

    entries_sum: int
    cached_balance: int
    lots_remaining: int
    cached_debt: int
    unsettled_debt: int
    # Lots whose cached remaining differs from amount minus allocations, or are over-allocated.
    inconsistent_lots: tuple[int, ...]

    @property
    def consistent(self) -> bool:
        return (
            self.entries_sum == self.cached_balance == self.lots_remaining - self.cached_debt
            and self.cached_debt == self.unsettled_debt
            and not self.inconsistent_lots
        )


_ENTRY_COLUMNS = (
    ledger_entries.c.id,
    ledger_entries.c.customer_id,
    ledger_entries.c.kind,
    ledger_entries.c.source,
    ledger_entries.c.amount,
    ledger_entries.c.paid_amount,
    ledger_entries.c.reason,
    ledger_entries.c.actor_id,
    ledger_entries.c.occurred_at,
    ledger_entries.c.ordered_at,
)
_LOT_COLUMNS = (
    ledger_lots.c.id,
    ledger_lots.c.entry_id,
    ledger_lots.c.customer_id,
    ledger_lots.c.amount,
    ledger_lots.c.remaining,
    ledger_lots.c.earned_at,
    ledger_lots.c.available_at,
    ledger_lots.c.expires_at,
)


# The statements every order runs, built once (bind parameters carry the values): building
# them per call cost more Python time than the database spent answering them.
_LOCK_CUSTOMER = (
    select(customers.c.id)
    .where(customers.c.id == bindparam("customer_id"))
    .with_for_update(key_share=True)
)
_ENTRY_BY_KEY = select(*_ENTRY_COLUMNS).where(
    ledger_entries.c.source == bindparam("source"), ledger_entries.c.kind == bindparam("kind")
)
_ENTRIES_BY_SOURCE = (
    select(*_ENTRY_COLUMNS)
    .where(ledger_entries.c.source == bindparam("source"))
    .order_by(ledger_entries.c.id)
)
_OPEN_LOTS = (
    select(*_LOT_COLUMNS)
    .where(ledger_lots.c.customer_id == bindparam("customer_id"), ledger_lots.c.remaining > 0)
    .order_by(ledger_lots.c.expires_at, ledger_lots.c.earned_at, ledger_lots.c.id)
)
_LOT_COLUMN_NAMES = (
    "entry_id",
    "customer_id",
    "amount",
    "remaining",
    "earned_at",
    "available_at",
    "expires_at",
)
_reversal = ledger_entries.alias("reversal")
_PAID_ORDERS = and_(
    ledger_entries.c.customer_id == bindparam("customer_id"),
    ledger_entries.c.kind == EntryKind.ACCRUAL,
    ~exists().where(
        _reversal.c.source == ledger_entries.c.source, _reversal.c.kind == EntryKind.REVERSAL
    ),
)
# What the tier counts of an order: what was paid for it, less what partial refunds returned.
_PAID_NET = paid_after_refunds(ledger_entries.c.paid_amount, ledger_entries.c.source)
_PAID_SPEND = select(func.coalesce(func.sum(_PAID_NET), 0))
_PAID_SPEND_EVER = _PAID_SPEND.where(_PAID_ORDERS)
# The tier window counts an order from when it was placed: a backdated or imported order of
# 13 months ago is outside a 12-month window even though it was reported today.
_PAID_SPEND_SINCE = _PAID_SPEND.where(
    _PAID_ORDERS, ledger_entries.c.ordered_at >= bindparam("since")
)

# The same reads for a batch of customers (SqlLedger.prefetched).
_LOCK_CUSTOMERS = (
    select(customers.c.id)
    .where(customers.c.id.in_(bindparam("customer_ids", expanding=True)))
    .order_by(customers.c.id)  # one order for every batch: two batches never deadlock
    .with_for_update(key_share=True)
)
_ENTRIES_BY_SOURCES = (
    select(*_ENTRY_COLUMNS)
    .where(ledger_entries.c.source.in_(bindparam("sources", expanding=True)))
    .order_by(ledger_entries.c.id)
)
_PAID_ORDERS_MANY = and_(
    ledger_entries.c.customer_id.in_(bindparam("customer_ids", expanding=True)),
    ledger_entries.c.kind == EntryKind.ACCRUAL,
    ~exists().where(
        _reversal.c.source == ledger_entries.c.source, _reversal.c.kind == EntryKind.REVERSAL
    ),
)
# Sums, and each customer's earliest order among them: a book asks for the spend since its
# own "now", a moment later than the batch's, and the sum holds while no order lies between.
_PAID_SUMS = select(
    ledger_entries.c.customer_id,
    func.sum(_PAID_NET).label("paid"),
    type_coerce(func.min(ledger_entries.c.ordered_at), UtcDateTime).label("first_at"),
    (func.count() - func.count(ledger_entries.c.ordered_at)).label("undated"),
).group_by(ledger_entries.c.customer_id)
_PAID_SUMS_EVER = _PAID_SUMS.where(_PAID_ORDERS_MANY)
_PAID_SUMS_SINCE = _PAID_SUMS.where(
    _PAID_ORDERS_MANY, ledger_entries.c.ordered_at >= bindparam("since")
)
# What an accrual needs of each customer's open lots, summed by the database instead of every
# lot read into Python: a frequent buyer has dozens of them, and each order read them all.
_AT = bindparam("at", type_=UtcDateTime)
_LIVE = ledger_lots.c.expires_at > _AT
_RELEASED = ledger_lots.c.available_at <= _AT
_LOT_SUMS_MANY = (
    select(
        ledger_lots.c.customer_id,
        func.sum(case((and_(_LIVE, _RELEASED), ledger_lots.c.remaining), else_=0)).label(
            "available"
        ),
        func.sum(case((and_(_LIVE, ~_RELEASED), ledger_lots.c.remaining), else_=0)).label(
            "pending"
        ),
        func.count(case((~_LIVE, 1))).label("overdue"),
        type_coerce(
            func.min(case((and_(_LIVE, ~_RELEASED), ledger_lots.c.available_at))), UtcDateTime
        ).label("next_release"),
        type_coerce(func.min(case((_LIVE, ledger_lots.c.expires_at))), UtcDateTime).label(
            "next_expiry"
        ),
    )
    .where(
        ledger_lots.c.customer_id.in_(bindparam("customer_ids", expanding=True)),
        ledger_lots.c.remaining > 0,
    )
    .group_by(ledger_lots.c.customer_id)
)
_OPEN_LOTS_MANY = (
    select(*_LOT_COLUMNS)
    .where(
        ledger_lots.c.customer_id.in_(bindparam("customer_ids", expanding=True)),
        ledger_lots.c.remaining > 0,
    )
    .order_by(
        ledger_lots.c.customer_id,
        ledger_lots.c.expires_at,
        ledger_lots.c.earned_at,
        ledger_lots.c.id,
    )
)

# The per-kind sums of a customer's entries and, as one more row, their cached account.
_ACCOUNT_ROW = "#account"  # no entry kind starts with "#"
_amount = ledger_entries.c.amount
_TOTALS_AND_ACCOUNT = union_all(
    select(
        ledger_entries.c.kind.label("kind"),
        func.sum(case((_amount > 0, _amount), else_=0)).label("credited"),
        func.sum(case((_amount < 0, -_amount), else_=0)).label("debited"),
    )
    .where(ledger_entries.c.customer_id == bindparam("customer_id"))
    .group_by(ledger_entries.c.kind),
    select(
        literal(_ACCOUNT_ROW, String()).label("kind"),
        ledger_accounts.c.balance.label("credited"),
        ledger_accounts.c.debt.label("debited"),
    ).where(ledger_accounts.c.customer_id == bindparam("customer_id")),
)
# The same for a batch of customers, each row naming its customer.
_TOTALS_AND_ACCOUNTS = union_all(
    select(
        ledger_entries.c.customer_id.label("customer_id"),
        ledger_entries.c.kind.label("kind"),
        func.sum(case((_amount > 0, _amount), else_=0)).label("credited"),
        func.sum(case((_amount < 0, -_amount), else_=0)).label("debited"),
    )
    .where(ledger_entries.c.customer_id.in_(bindparam("customer_ids", expanding=True)))
    .group_by(ledger_entries.c.customer_id, ledger_entries.c.kind),
    select(
        ledger_accounts.c.customer_id.label("customer_id"),
        literal(_ACCOUNT_ROW, String()).label("kind"),
        ledger_accounts.c.balance.label("credited"),
        ledger_accounts.c.debt.label("debited"),
    ).where(ledger_accounts.c.customer_id.in_(bindparam("customer_ids", expanding=True))),
)

_INSERT_LOT = (
    ledger_lots.insert()
    .values({column: bindparam(column) for column in _LOT_COLUMN_NAMES})
    .returning(*_LOT_COLUMNS)
)
_ENTRY_COLUMN_NAMES = (
    "customer_id",
    "kind",
    "source",
    "amount",
    "paid_amount",
    "reason",
    "actor_id",
    "occurred_at",
    "ordered_at",
)
_prepared: dict[tuple[str, str], Any] = {}


def _insert_entry(conn: AsyncConnection) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING, prepared once per backend."""
    key = (conn.dialect.name, "insert_entry")
    if key not in _prepared:
        _prepared[key] = (
            insert(conn, ledger_entries)
            .values({column: bindparam(column) for column in _ENTRY_COLUMN_NAMES})
            .on_conflict_do_nothing(index_elements=["source", "kind"])
            .returning(*_ENTRY_COLUMNS)
        )
    return _prepared[key]


def _upsert_account(conn: AsyncConnection) -> Any:
    """Add deltas to a customer's cached sums (creating the row), returning the new debt."""
    key = (conn.dialect.name, "upsert_account")
    if key not in _prepared:
        statement = insert(conn, ledger_accounts).values(
            customer_id=bindparam("customer_id"),
            balance=bindparam("balance"),
            debt=bindparam("debt"),
            updated_at=bindparam("updated_at"),
        )
        _prepared[key] = statement.on_conflict_do_update(
            index_elements=["customer_id"],
            set_={
                "balance": ledger_accounts.c.balance + statement.excluded.balance,
                "debt": ledger_accounts.c.debt + statement.excluded.debt,
                "updated_at": statement.excluded.updated_at,
            },
        ).returning(ledger_accounts.c.debt, ledger_accounts.c.customer_id)
    return _prepared[key]


def _entry(row: Row[*tuple[Any, ...]]) -> EntryRecord:
    values = dict(row._mapping)
    values["kind"] = EntryKind(values["kind"])
    return EntryRecord(**values)


def _lot(row: Row[*tuple[Any, ...]]) -> LotRecord:
    return LotRecord(**row._mapping)


def _check_adds_up(
    entry: NewEntry, lots: Sequence[NewLot], spend: Sequence[Allocation], owed: int
) -> None:
    if lots and spend:
        raise LedgerIntegrityError("an entry either creates lots or takes from them")
    if entry.amount >= 0 and (sum(lot.amount for lot in lots) != entry.amount or owed):
        raise LedgerIntegrityError(f"{entry.kind} {entry.source}: lots do not add up")
    if entry.amount < 0 and sum(part.amount for part in spend) + owed != -entry.amount:
        raise LedgerIntegrityError(f"{entry.kind} {entry.source}: allocations do not add up")


def _entry_row(customer_id: int, entry: NewEntry) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "kind": entry.kind,
        "source": entry.source,
        "amount": entry.amount,
        "paid_amount": entry.paid_amount,
        "reason": entry.reason,
        "actor_id": entry.actor_id,
        "occurred_at": entry.occurred_at,
        "ordered_at": entry.ordered_at,
    }


def _lot_row(entry: EntryRecord, lot: NewLot) -> dict[str, Any]:
    return {
        "entry_id": entry.id,
        "customer_id": entry.customer_id,
        "amount": lot.amount,
        "remaining": lot.amount,
        "earned_at": lot.earned_at,
        "available_at": lot.available_at,
        "expires_at": lot.expires_at,
    }


@dataclass(slots=True)
class _PaidSum:
    """A customer's paid spend since a moment, and the earliest order it counts."""

    since: datetime | None  # None: every order ever
    paid: int
    first_at: datetime | None  # None: no dated order
    undated: int  # orders without a date (only counted when ``since`` is None)

    def since_later(self, moment: datetime | None) -> int | None:
        """The spend since a moment no earlier than ``since``, while the sum is still it."""
        if moment == self.since:
            return self.paid
        if moment is None or (self.since is not None and moment < self.since):
            return None  # orders before ``since`` were not read
        if self.undated:
            return None
        return self.paid if self.first_at is None or moment <= self.first_at else None


@dataclass(slots=True)
class _Prefetched:
    """What a customer's first book of a batch reads, read for the whole batch at once."""

    entries: dict[str, list[EntryRecord]]  # by source, for the sources asked for
    paid: _PaidSum
    lots: LotSummary | None  # None: some lot is overdue, and the book reads them itself


# Customer id -> their prefetched reads, inside ``SqlLedger.prefetched()`` (this task only).
# Any book of that customer takes its entry away, so no later book ever reads a stale copy.
_prefetched: ContextVar[dict[int, _Prefetched] | None] = ContextVar(
    "ledger_prefetched", default=None
)


# The customers whose locks ``SqlLedger.prefetched()`` holds on this task, for
# ``append_credits``, which writes for many customers without a book of each.
_locked: ContextVar[frozenset[int]] = ContextVar("ledger_locked", default=frozenset())


class SqlLedgerBook:
    """One customer's ledger inside a unit of work that holds the customer's lock.

    Only valid inside ``SqlLedger.book()``; every write keeps the cached account in step.
    ``prefetched``: reads made for a batch, served until the book's first write.
    """

    def __init__(
        self, connection: AsyncConnection, customer_id: int, prefetched: _Prefetched | None = None
    ) -> None:
        self._conn = connection
        self.customer_id = customer_id
        self._prefetched = prefetched

    async def entry(self, *, kind: EntryKind, source: str) -> EntryRecord | None:
        """The entry under this idempotency key, whoever's it is (the key is global)."""
        row = (
            await self._conn.execute(_ENTRY_BY_KEY, {"source": source, "kind": kind})
        ).one_or_none()
        return _entry(row) if row else None

    async def entries_for(self, *, source: str) -> list[EntryRecord]:
        """Every entry one cause produced (an order's accrual, redemption, reversal...)."""
        known = self._prefetched
        if known is not None and source in known.entries:
            return list(known.entries[source])
        rows = await self._conn.execute(_ENTRIES_BY_SOURCE, {"source": source})
        return [_entry(row) for row in rows]

    async def open_lots(self) -> list[LotRecord]:
        return await _open_lots(self._conn, self.customer_id)

    async def lot_summary(self, *, at: datetime) -> LotSummary:
        """The open lots' points at this moment and the lots past their expiry."""
        known = self._prefetched.lots if self._prefetched is not None else None
        if known is not None and known.holds_at(at):
            return known
        return summarize_lots(await _open_lots(self._conn, self.customer_id), at=at)

    async def lots_of(self, *, entry_id: int) -> list[LotRecord]:
        """The lots an entry created, spent or not."""
        rows = await self._conn.execute(
            select(*_LOT_COLUMNS)
            .where(ledger_lots.c.entry_id == entry_id)
            .order_by(ledger_lots.c.id)
        )
        return [_lot(row) for row in rows]

    async def lot_uses(self, *, lot_id: int) -> list[LotUse]:
        rows = await self._conn.execute(
            select(
                ledger_allocations.c.entry_id,
                ledger_entries.c.kind,
                ledger_entries.c.source,
                ledger_allocations.c.amount,
            )
            .join(ledger_entries, ledger_entries.c.id == ledger_allocations.c.entry_id)
            .where(ledger_allocations.c.lot_id == lot_id)
            .order_by(ledger_allocations.c.entry_id)
        )
        return [
            LotUse(
                entry_id=row.entry_id,
                kind=EntryKind(row.kind),
                source=row.source,
                amount=row.amount,
            )
            for row in rows
        ]

    async def spent_lots(self, *, entry_id: int) -> list[SpentLot]:
        rows = await self._conn.execute(
            select(*_LOT_COLUMNS, ledger_allocations.c.amount.label("taken"))
            .join(ledger_lots, ledger_lots.c.id == ledger_allocations.c.lot_id)
            .where(ledger_allocations.c.entry_id == entry_id)
            .order_by(ledger_lots.c.id)
        )
        spent = []
        for row in rows:
            values = dict(row._mapping)
            taken = values.pop("taken")
            spent.append(SpentLot(lot=LotRecord(**values), amount=taken))
        return spent

    async def debts(self) -> list[Debt]:
        """Corrections not yet fully covered, oldest first (only when the account owes)."""
        settled = (
            select(func.coalesce(func.sum(ledger_allocations.c.amount), 0))
            .where(ledger_allocations.c.entry_id == ledger_entries.c.id)
            .scalar_subquery()
        )
        unsettled = (-ledger_entries.c.amount - settled).label("unsettled")
        rows = await self._conn.execute(
            select(ledger_entries.c.id, unsettled)
            .where(
                ledger_entries.c.customer_id == self.customer_id,
                ledger_entries.c.kind == EntryKind.CORRECTION,
                -ledger_entries.c.amount - settled > 0,
            )
            .order_by(ledger_entries.c.id)
        )
        return [Debt(entry_id=row.id, unsettled=int(row.unsettled)) for row in rows]

    async def paid_spend(self, *, since: datetime | None) -> int:
        known = self._prefetched.paid.since_later(since) if self._prefetched is not None else None
        if known is not None:
            return known
        return await _paid_spend(self._conn, self.customer_id, since)

    async def append(
        self,
        *,
        entry: NewEntry,
        lots: Sequence[NewLot] = (),
        spend: Sequence[Allocation] = (),
        owed: int = 0,
    ) -> Appended | None:
        """Write an entry with the lots it creates or the lots it takes from; None on a replay.

        The unique (source, kind) index decides whether this is a replay, so two racing writers
        of the same effect leave one entry. A credit's lots must add up to its amount; a debit
        must take its whole amount from lots, or leave ``owed`` as the customer's debt.
        """
        _check_adds_up(entry, lots, spend, owed)
        self._prefetched = None  # from the first write on, only the database is current
        conn = self._conn
        row = (
            await conn.execute(_insert_entry(conn), _entry_row(self.customer_id, entry))
        ).one_or_none()
        if row is None:
            return None
        written = _entry(row)
        created = [
            _lot((await conn.execute(_INSERT_LOT, _lot_row(written, lot))).one()) for lot in lots
        ]
        for part in spend:
            await self._take(entry_id=written.id, lot_id=part.lot_id, amount=part.amount)
        debt = await self._change_account(balance=entry.amount, debt=owed, now=entry.occurred_at)
        return Appended(entry=written, lots=tuple(created), debt_after=debt)

    async def settle(self, *, debt_entry_id: int, lot_id: int, amount: int, now: datetime) -> None:
        """Pay ``amount`` of a debt (an uncovered correction) from a lot."""
        self._prefetched = None
        await self._take(entry_id=debt_entry_id, lot_id=lot_id, amount=amount)
        await self._change_account(balance=0, debt=-amount, now=now)

    async def _take(self, *, entry_id: int, lot_id: int, amount: int) -> None:
        if amount <= 0:
            raise LedgerIntegrityError(f"an allocation must take points, not {amount}")
        taken = await self._conn.execute(
            update(ledger_lots)
            .where(
                ledger_lots.c.id == lot_id,
                ledger_lots.c.customer_id == self.customer_id,
                ledger_lots.c.remaining >= amount,
            )
            .values(remaining=ledger_lots.c.remaining - amount)
        )
        if taken.rowcount != 1:
            raise LedgerIntegrityError(f"lot {lot_id} cannot give {amount} points")
        await self._conn.execute(
            ledger_allocations.insert().values(entry_id=entry_id, lot_id=lot_id, amount=amount)
        )

    async def _change_account(self, *, balance: int, debt: int, now: datetime) -> int:
        """Move the cached sums by these deltas; returns the debt afterwards."""
        changed = await self._conn.execute(
            _upsert_account(self._conn),
            {"customer_id": self.customer_id, "balance": balance, "debt": debt, "updated_at": now},
        )
        return int(changed.scalar_one())


class SqlLedger:
    """Entry point to the ledger: per-customer units of work, and the read-side queries."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @asynccontextmanager
    async def book(self, *, customer_id: int) -> AsyncIterator[SqlLedgerBook]:
        """A unit of work on one customer's ledger, holding that customer's lock until it ends.

        PostgreSQL: the customer row is locked FOR NO KEY UPDATE, which serialises ledger work
        per customer without blocking inserts that merely reference the customer (outbox rows).
        SQLite: the write transaction (BEGIN IMMEDIATE) already serialises every writer.
        Joins the caller's transaction if there is one.
        """
        async with self._db.transaction() as conn:
            batch = _prefetched.get()
            known = batch.pop(customer_id, None) if batch is not None else None
            if known is None:  # prefetched: locked (and found) with the batch's customers
                locked = await conn.execute(_LOCK_CUSTOMER, {"customer_id": customer_id})
                if locked.scalar_one_or_none() is None:
                    raise UnknownCustomerError(customer_id)
            yield SqlLedgerBook(conn, customer_id, known)

    @asynccontextmanager
    async def prefetched(
        self,
        *,
        sources: Mapping[int, Sequence[str]],
        since: datetime | None,
        at: datetime,
        found_already: bool = False,
    ) -> AsyncIterator[None]:
        """Inside the caller's transaction: lock these customers and read, in four statements
        for all of them, what each one's first book reads (the entries of their sources, the
        paid spend since ``since``, what their open lots hold at ``at``). Each customer's first
        ``book()`` in the block, of any SqlLedger on this task, is served from it until it
        writes; customers not found are left out (their book raises UnknownCustomerError).

        ``found_already``: the caller read these customers in this transaction. On SQLite,
        whose write transaction keeps every other writer out, they are then neither looked
        up nor locked again (on PostgreSQL they are locked all the same)."""
        if not sources:
            yield
            return
        ids = sorted(sources)
        wanted = [source for listed in sources.values() for source in listed]
        async with self._db.transaction() as conn:
            found = (
                set(ids)
                if found_already and conn.dialect.name == "sqlite"
                else {
                    int(customer)
                    for customer in (
                        await conn.execute(_LOCK_CUSTOMERS, {"customer_ids": ids})
                    ).scalars()
                }
            )
            entries: dict[str, list[EntryRecord]] = {source: [] for source in wanted}
            for entry_row in await conn.execute(_ENTRIES_BY_SOURCES, {"sources": wanted}):
                entries[entry_row.source].append(_entry(entry_row))
            paid = {
                customer: _PaidSum(since=since, paid=0, first_at=None, undated=0)
                for customer in found
            }
            for row in await conn.execute(*_paid_sums(ids, since)):
                paid[int(row.customer_id)] = _PaidSum(
                    since=since,
                    paid=int(row.paid or 0),
                    first_at=row.first_at,
                    undated=int(row.undated),
                )
            lots: dict[int, LotSummary | None] = {
                customer: LotSummary(at=at, available=0, pending=0, overdue=(), steady_until=None)
                for customer in found
            }
            for row in await conn.execute(_LOT_SUMS_MANY, {"customer_ids": ids, "at": at}):
                changes = [moment for moment in (row.next_release, row.next_expiry) if moment]
                lots[int(row.customer_id)] = (
                    LotSummary(
                        at=at,
                        available=int(row.available),
                        pending=int(row.pending),
                        overdue=(),
                        steady_until=min(changes, default=None),
                    )
                    if not row.overdue
                    else None
                )
            batch = {
                customer: _Prefetched(
                    entries={source: entries[source] for source in sources[customer]},
                    paid=paid[customer],
                    lots=lots[customer],
                )
                for customer in found
            }
            token = _prefetched.set(batch)
            locked = _locked.set(_locked.get() | found)
            try:
                yield
            finally:
                _locked.reset(locked)
                _prefetched.reset(token)

    async def append_credits(self, credits: Sequence[NewCredit]) -> list[Appended]:
        """New credits of distinct customers and the lots each creates, in three statements
        for all of them (entries, lots, cached accounts), in the order given. Only inside
        ``prefetched()`` of these customers, whose locks it holds. A credit whose key is
        already written raises LedgerIntegrityError: the caller read the keys first, under
        the locks, so nothing should have taken one since."""
        if not credits:
            return []
        customer_ids = [credit.customer_id for credit in credits]
        if len(set(customer_ids)) != len(customer_ids):
            raise LedgerIntegrityError("one credit per customer in a group")
        if not set(customer_ids) <= _locked.get():
            raise LedgerIntegrityError("credits of a group need their customers' locks")
        for credit in credits:
            _check_adds_up(credit.entry, credit.lots, (), 0)
        async with self._db.transaction() as conn:
            rows = await conn.execute(
                _insert_entry(conn),
                [_entry_row(credit.customer_id, credit.entry) for credit in credits],
            )
            entries = {(row.source, row.kind): _entry(row) for row in rows}
            if len(entries) != len(credits):
                raise LedgerIntegrityError("a credit of the group was already written")
            written = [entries[(credit.entry.source, credit.entry.kind)] for credit in credits]
            lots: dict[int, list[LotRecord]] = {entry.id: [] for entry in written}
            new_lots = [
                _lot_row(entry, lot)
                for credit, entry in zip(credits, written, strict=True)
                for lot in credit.lots
            ]
            if new_lots:
                for lot_row in await conn.execute(_INSERT_LOT, new_lots):
                    lots[lot_row.entry_id].append(_lot(lot_row))
            debts = {
                int(row.customer_id): int(row.debt)
                for row in await conn.execute(
                    _upsert_account(conn),
                    [
                        {
                            "customer_id": credit.customer_id,
                            "balance": credit.entry.amount,
                            "debt": 0,
                            "updated_at": credit.entry.occurred_at,
                        }
                        for credit in credits
                    ],
                )
            }
        return [
            Appended(
                entry=entry,
                lots=tuple(sorted(lots[entry.id], key=lambda lot: lot.id)),
                debt_after=debts[entry.customer_id],
            )
            for entry in written
        ]

    async def snapshot(self, *, customer_id: int) -> LedgerSnapshot:
        """Open lots, cached account and per-kind sums, read in one transaction (two
        statements: the account rides along with the sums, each round trip costs more than
        the rows)."""
        async with self._db.read() as conn:
            lots = await _open_lots(conn, customer_id)
            rows = (await conn.execute(_TOTALS_AND_ACCOUNT, {"customer_id": customer_id})).all()
        return _snapshot_of(customer_id, lots, rows)

    async def snapshots(self, *, customer_ids: Sequence[int]) -> dict[int, LedgerSnapshot]:
        """``snapshot`` of each of these customers, in two statements for all of them."""
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        lots: dict[int, list[LotRecord]] = {customer: [] for customer in ids}
        rows: dict[int, list[Row[Any]]] = {customer: [] for customer in ids}
        async with self._db.read() as conn:
            for lot_row in await conn.execute(_OPEN_LOTS_MANY, {"customer_ids": ids}):
                lots[lot_row.customer_id].append(_lot(lot_row))
            for row in await conn.execute(_TOTALS_AND_ACCOUNTS, {"customer_ids": ids}):
                rows[row.customer_id].append(row)
        return {
            customer: _snapshot_of(customer, lots[customer], rows[customer]) for customer in ids
        }

    async def entries_of(self, *, sources: Sequence[str]) -> dict[str, list[EntryRecord]]:
        """Every entry of each of these causes (an order's, a refund's), oldest first, in one
        statement; entries of 0 points are left out, as ``history`` leaves them."""
        found: dict[str, list[EntryRecord]] = {source: [] for source in sources}
        if not found:
            return found
        async with self._db.read() as conn:
            for row in await conn.execute(_ENTRIES_BY_SOURCES, {"sources": sorted(found)}):
                if row.amount != 0:
                    found[row.source].append(_entry(row))
        return found

    async def paid_spends(
        self, *, customer_ids: Sequence[int], since: datetime | None
    ) -> dict[int, int]:
        """``paid_spend`` of each of these customers, in one statement for all of them."""
        ids = sorted(set(customer_ids))
        spent = {customer: 0 for customer in ids}
        if not ids:
            return spent
        async with self._db.read() as conn:
            for row in await conn.execute(*_paid_sums(ids, since)):
                spent[int(row.customer_id)] = int(row.paid or 0)
        return spent

    async def open_lots(self, *, customer_id: int) -> list[LotRecord]:
        """The customer's lots with points left: all an order's receipt needs (available and
        pending), in one statement where ``snapshot`` takes three."""
        async with self._db.read() as conn:
            return await _open_lots(conn, customer_id)

    async def history(
        self, *, customer_id: int, limit: int, before_id: int | None = None
    ) -> list[EntryRecord]:
        """The customer's entries, newest first; pass the last id seen to get the next page.

        Entries of 0 points (an order too small to earn, a cancelled order that had earned
        nothing) moved nothing: a "+0" row would only puzzle the customer."""
        condition = and_(ledger_entries.c.customer_id == customer_id, ledger_entries.c.amount != 0)
        if before_id is not None:
            condition = and_(condition, ledger_entries.c.id < before_id)
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(*_ENTRY_COLUMNS)
                .where(condition)
                .order_by(ledger_entries.c.id.desc())
                .limit(limit)
            )
            return [_entry(row) for row in rows]

    async def paid_spend(self, *, customer_id: int, since: datetime | None) -> int:
        async with self._db.read() as conn:
            return await _paid_spend(conn, customer_id, since)

    async def expiring_between(
        self, *, start: datetime, end: datetime, after_customer_id: int = 0, limit: int = 500
    ) -> list[ExpiringPoints]:
        """Customers with unspent points expiring in [start, end): how many, and the earliest.

        Pages by customer id: pass the last customer of one page as ``after_customer_id``.
        """
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(
                    ledger_lots.c.customer_id,
                    func.sum(ledger_lots.c.remaining).label("amount"),
                    func.min(ledger_lots.c.expires_at).label("earliest"),
                )
                .where(
                    ledger_lots.c.remaining > 0,
                    ledger_lots.c.expires_at >= start,
                    ledger_lots.c.expires_at < end,
                    ledger_lots.c.customer_id > after_customer_id,
                )
                .group_by(ledger_lots.c.customer_id)
                .order_by(ledger_lots.c.customer_id)
                .limit(limit)
            )
            return [
                ExpiringPoints(
                    customer_id=row.customer_id,
                    amount=int(row.amount),
                    earliest=row.earliest,
                )
                for row in rows
            ]

    async def customers_with_due_lots(self, *, now: datetime, limit: int) -> list[int]:
        """Customers who have lots past their expiry with points left (expiry not yet written).

        Any ``limit`` of them, in no particular order: without an ORDER BY the database can
        walk the partial index of open lots instead of every lot ever made.
        """
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(ledger_lots.c.customer_id)
                .where(ledger_lots.c.remaining > 0, ledger_lots.c.expires_at <= now)
                .distinct()
                .limit(limit)
            )
            return sorted(int(customer_id) for customer_id in rows.scalars())

    async def reconcile(self, *, customer_id: int) -> Reconciliation:
        """Check the cached balance and debt and every lot's remaining against the ledger."""
        async with self._db.read() as conn:
            entries_sum = (
                await conn.execute(
                    select(func.coalesce(func.sum(ledger_entries.c.amount), 0)).where(
                        ledger_entries.c.customer_id == customer_id
                    )
                )
            ).scalar_one()
            lots_remaining = (
                await conn.execute(
                    select(func.coalesce(func.sum(ledger_lots.c.remaining), 0)).where(
                        ledger_lots.c.customer_id == customer_id
                    )
                )
            ).scalar_one()
            taken = (
                select(func.coalesce(func.sum(ledger_allocations.c.amount), 0))
                .where(ledger_allocations.c.lot_id == ledger_lots.c.id)
                .scalar_subquery()
            )
            bad_lots = await conn.execute(
                select(ledger_lots.c.id)
                .where(
                    ledger_lots.c.customer_id == customer_id,
                    (ledger_lots.c.remaining != ledger_lots.c.amount - taken)
                    | (taken > ledger_lots.c.amount),
                )
                .order_by(ledger_lots.c.id)
            )
            inconsistent = tuple(int(lot_id) for lot_id in bad_lots.scalars())
            account = await _account(conn, customer_id)
            settled = (
                select(func.coalesce(func.sum(ledger_allocations.c.amount), 0))
                .where(ledger_allocations.c.entry_id == ledger_entries.c.id)
                .scalar_subquery()
            )
            # Only corrections may leave part of their charge uncovered; any other debit that
            # does not match its allocations counts here too, so the check would catch it.
            unsettled = (
                await conn.execute(
                    select(func.coalesce(func.sum(-ledger_entries.c.amount - settled), 0)).where(
                        ledger_entries.c.customer_id == customer_id, ledger_entries.c.amount < 0
                    )
                )
            ).scalar_one()
        return Reconciliation(
            entries_sum=int(entries_sum),
            cached_balance=account.balance,
            lots_remaining=int(lots_remaining),
            cached_debt=account.debt,
            unsettled_debt=int(unsettled),
            inconsistent_lots=inconsistent,
        )


def _paid_sums(ids: Sequence[int], since: datetime | None) -> tuple[Any, dict[str, Any]]:
    """The statement and parameters of the paid spend of these customers since a moment."""
    if since is None:
        return _PAID_SUMS_EVER, {"customer_ids": ids}
    return _PAID_SUMS_SINCE, {"customer_ids": ids, "since": since}


def _snapshot_of(
    customer_id: int, lots: Sequence[LotRecord], rows: Sequence[Row[Any]]
) -> LedgerSnapshot:
    """A snapshot from the customer's open lots and their rows of ``_TOTALS_AND_ACCOUNT``."""
    account = AccountRecord(customer_id=customer_id, balance=0, debt=0)  # no entry yet
    totals = []
    for row in rows:
        if row.kind == _ACCOUNT_ROW:
            account = AccountRecord(
                customer_id=customer_id, balance=int(row.credited), debt=int(row.debited)
            )
        else:
            totals.append(
                KindTotal(
                    kind=EntryKind(row.kind),
                    credited=int(row.credited),
                    debited=int(row.debited),
                )
            )
    totals.sort(key=lambda total: total.kind)
    return LedgerSnapshot(open_lots=tuple(lots), account=account, totals=tuple(totals))


async def _open_lots(conn: AsyncConnection, customer_id: int) -> list[LotRecord]:
    """Lots with points left (expired ones too, until their expiry is written)."""
    rows = await conn.execute(_OPEN_LOTS, {"customer_id": customer_id})
    return [_lot(row) for row in rows]


async def _account(conn: AsyncConnection, customer_id: int) -> AccountRecord:
    row = (
        await conn.execute(
            select(ledger_accounts.c.balance, ledger_accounts.c.debt).where(
                ledger_accounts.c.customer_id == customer_id
            )
        )
    ).one_or_none()
    if row is None:  # no entry yet
        return AccountRecord(customer_id=customer_id, balance=0, debt=0)
    return AccountRecord(customer_id=customer_id, balance=row.balance, debt=row.debt)


async def _paid_spend(conn: AsyncConnection, customer_id: int, since: datetime | None) -> int:
    """Money paid on the customer's orders since a moment (None: ever), cancelled ones left out
    and partly refunded ones less the refunded share."""
    if since is None:
        total = await conn.execute(_PAID_SPEND_EVER, {"customer_id": customer_id})
    else:
        total = await conn.execute(_PAID_SPEND_SINCE, {"customer_id": customer_id, "since": since})
    return int(total.scalar_one())
