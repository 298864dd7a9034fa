"""An in-memory ledger store for scenario tests, and checks that it keeps the same promises."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import pytest

from storage.ledger import (
    AccountRecord,
    Allocation,
    Appended,
    Debt,
    EntryKind,
    EntryRecord,
    ExpiringPoints,
    KindTotal,
    LedgerIntegrityError,
    LedgerSnapshot,
    LotRecord,
    LotSummary,
    LotUse,
    NewCredit,
    NewEntry,
    NewLot,
    Reconciliation,
    SpentLot,
    UnknownCustomerError,
    summarize_lots,
)


@dataclass
class _State:
    entries: dict[int, EntryRecord] = field(default_factory=dict)
    keys: dict[tuple[EntryKind, str], int] = field(default_factory=dict)  # the unique index
    lots: dict[int, LotRecord] = field(default_factory=dict)
    allocations: dict[tuple[int, int], int] = field(default_factory=dict)  # (entry, lot) -> n
    accounts: dict[int, AccountRecord] = field(default_factory=dict)

    def copy(self) -> _State:
        # The records are immutable: copying the dicts is a full snapshot.
        return _State(
            dict(self.entries),
            dict(self.keys),
            dict(self.lots),
            dict(self.allocations),
            dict(self.accounts),
        )


class MemoryLedger:
    """The storage ports of scenarios.ledger in memory, with the database's guarantees: one
    writer at a time, a unique (kind, source), all-or-nothing units of work."""

    def __init__(self, customer_ids: Iterable[int] = ()) -> None:
        self.customer_ids = set(customer_ids)
        self.state = _State()
        self._writer = asyncio.Lock()

    @asynccontextmanager
    async def book(self, *, customer_id: int) -> AsyncIterator[MemoryBook]:
        async with self._writer:
            if customer_id not in self.customer_ids:
                raise UnknownCustomerError(customer_id)
            saved = self.state.copy()
            try:
                yield MemoryBook(self.state, customer_id)
            except BaseException:
                self.state = saved
                raise

    async def append_credits(self, credits: Sequence[NewCredit]) -> list[Appended]:
        written = []
        for credit in credits:
            async with self.book(customer_id=credit.customer_id) as book:
                appended = await book.append(entry=credit.entry, lots=credit.lots)
            if appended is None:
                raise LedgerIntegrityError("a credit of the group was already written")
            written.append(appended)
        return written

    async def customers_with_due_lots(self, *, now: datetime, limit: int) -> list[int]:
        due = {
            lot.customer_id
            for lot in self.state.lots.values()
            if lot.remaining > 0 and lot.expires_at <= now
        }
        return sorted(due)[:limit]

    async def snapshot(self, *, customer_id: int) -> LedgerSnapshot:
        book = MemoryBook(self.state, customer_id)
        totals: dict[EntryKind, list[int]] = {}
        for entry in self.state.entries.values():
            if entry.customer_id == customer_id:
                sums = totals.setdefault(entry.kind, [0, 0])
                sums[0] += max(entry.amount, 0)
                sums[1] += max(-entry.amount, 0)
        return LedgerSnapshot(
            open_lots=tuple(await book.open_lots()),
            account=await book.account(),
            totals=tuple(
                KindTotal(kind=kind, credited=credited, debited=debited)
                for kind, (credited, debited) in sorted(totals.items())
            ),
        )

    async def history(
        self, *, customer_id: int, limit: int, before_id: int | None = None
    ) -> list[EntryRecord]:
        mine = [
            entry
            for entry in self.state.entries.values()
            if entry.customer_id == customer_id
            and entry.amount != 0  # as SqlLedger.history: a 0-point entry moved nothing
            and (before_id is None or entry.id < before_id)
        ]
        return sorted(mine, key=lambda entry: -entry.id)[:limit]

    async def paid_spend(self, *, customer_id: int, since: datetime | None) -> int:
        return await MemoryBook(self.state, customer_id).paid_spend(since=since)

    async def expiring_between(
        self, *, start: datetime, end: datetime, after_customer_id: int = 0, limit: int = 500
    ) -> list[ExpiringPoints]:
        found: dict[int, tuple[int, datetime]] = {}
        for lot in self.state.lots.values():
            if lot.remaining > 0 and start <= lot.expires_at < end:
                amount, earliest = found.get(lot.customer_id, (0, lot.expires_at))
                found[lot.customer_id] = (amount + lot.remaining, min(earliest, lot.expires_at))
        return [
            ExpiringPoints(customer_id=customer_id, amount=amount, earliest=earliest)
            for customer_id, (amount, earliest) in sorted(found.items())
            if customer_id > after_customer_id
        ][:limit]

    async def reconcile(self, *, customer_id: int) -> Reconciliation:
        state = self.state
        lots = [lot for lot in state.lots.values() if lot.customer_id == customer_id]
        taken: dict[int, int] = {}
        settled: dict[int, int] = {}
        for (entry_id, lot_id), amount in state.allocations.items():
            taken[lot_id] = taken.get(lot_id, 0) + amount
            settled[entry_id] = settled.get(entry_id, 0) + amount
        entries = [entry for entry in state.entries.values() if entry.customer_id == customer_id]
        account = await MemoryBook(state, customer_id).account()
        return Reconciliation(
            entries_sum=sum(entry.amount for entry in entries),
            cached_balance=account.balance,
            lots_remaining=sum(lot.remaining for lot in lots),
            cached_debt=account.debt,
            unsettled_debt=sum(
                -entry.amount - settled.get(entry.id, 0) for entry in entries if entry.amount < 0
            ),
            inconsistent_lots=tuple(
                lot.id
                for lot in lots
                if lot.remaining != lot.amount - taken.get(lot.id, 0)
                or taken.get(lot.id, 0) > lot.amount
            ),
        )


class MemoryBook:
    def __init__(self, state: _State, customer_id: int) -> None:
        self._state = state
        self.customer_id = customer_id

    async def entry(self, *, kind: EntryKind, source: str) -> EntryRecord | None:
        entry_id = self._state.keys.get((kind, source))
        return self._state.entries[entry_id] if entry_id is not None else None

    async def entries_for(self, *, source: str) -> list[EntryRecord]:
        return [entry for entry in self._state.entries.values() if entry.source == source]

    async def open_lots(self) -> list[LotRecord]:
        lots = [
            lot
            for lot in self._state.lots.values()
            if lot.customer_id == self.customer_id and lot.remaining > 0
        ]
        return sorted(lots, key=lambda lot: (lot.expires_at, lot.earned_at, lot.id))

    async def lot_summary(self, *, at: datetime) -> LotSummary:
        return summarize_lots(await self.open_lots(), at=at)

    async def lots_of(self, *, entry_id: int) -> list[LotRecord]:
        return [lot for lot in self._state.lots.values() if lot.entry_id == entry_id]

    async def lot_uses(self, *, lot_id: int) -> list[LotUse]:
        uses = []
        for (entry_id, used_lot), amount in sorted(self._state.allocations.items()):
            if used_lot == lot_id:
                entry = self._state.entries[entry_id]
                uses.append(
                    LotUse(entry_id=entry_id, kind=entry.kind, source=entry.source, amount=amount)
                )
        return uses

    async def spent_lots(self, *, entry_id: int) -> list[SpentLot]:
        return [
            SpentLot(lot=self._state.lots[lot_id], amount=amount)
            for (spender, lot_id), amount in sorted(self._state.allocations.items())
            if spender == entry_id
        ]

    async def account(self) -> AccountRecord:
        return self._state.accounts.get(
            self.customer_id, AccountRecord(customer_id=self.customer_id, balance=0, debt=0)
        )

    async def debts(self) -> list[Debt]:
        settled: dict[int, int] = {}
        for (entry_id, _lot), amount in self._state.allocations.items():
            settled[entry_id] = settled.get(entry_id, 0) + amount
        return [
            Debt(entry_id=entry.id, unsettled=-entry.amount - settled.get(entry.id, 0))
            for entry in self._state.entries.values()
            if entry.customer_id == self.customer_id
            and entry.kind is EntryKind.CORRECTION
            and -entry.amount - settled.get(entry.id, 0) > 0
        ]

    async def paid_spend(self, *, since: datetime | None) -> int:
        reversed_sources = {
            source for kind, source in self._state.keys if kind is EntryKind.REVERSAL
        }
        return sum(
            entry.paid_amount or 0
            for entry in self._state.entries.values()
            if entry.customer_id == self.customer_id
            and entry.kind is EntryKind.ACCRUAL
            and entry.source not in reversed_sources
            and (since is None or (entry.ordered_at or entry.occurred_at) >= since)
        )

    async def append(
        self,
        *,
        entry: NewEntry,
        lots: Sequence[NewLot] = (),
        spend: Sequence[Allocation] = (),
        owed: int = 0,
    ) -> Appended | None:
        if lots and spend:
            raise LedgerIntegrityError("an entry either creates lots or takes from them")
        if entry.amount >= 0 and (sum(lot.amount for lot in lots) != entry.amount or owed):
            raise LedgerIntegrityError("lots do not add up")
        if entry.amount < 0 and sum(part.amount for part in spend) + owed != -entry.amount:
            raise LedgerIntegrityError("allocations do not add up")
        state = self._state
        if (entry.kind, entry.source) in state.keys:
            return None
        written = EntryRecord(
            id=len(state.entries) + 1,
            customer_id=self.customer_id,
            kind=entry.kind,
            source=entry.source,
            amount=entry.amount,
            paid_amount=entry.paid_amount,
            reason=entry.reason,
            actor_id=entry.actor_id,
            occurred_at=entry.occurred_at.astimezone(UTC),
            ordered_at=entry.ordered_at.astimezone(UTC) if entry.ordered_at else None,
        )
        state.entries[written.id] = written
        state.keys[(entry.kind, entry.source)] = written.id
        created = []
        for lot in lots:
            record = LotRecord(
                id=len(state.lots) + 1,
                entry_id=written.id,
                customer_id=self.customer_id,
                amount=lot.amount,
                remaining=lot.amount,
                earned_at=lot.earned_at,
                available_at=lot.available_at,
                expires_at=lot.expires_at,
            )
            state.lots[record.id] = record
            created.append(record)
        for part in spend:
            self._take(written.id, part.lot_id, part.amount)
        self._change_account(entry.amount, owed)
        debt = self._state.accounts[self.customer_id].debt
        return Appended(entry=written, lots=tuple(created), debt_after=debt)

    async def settle(self, *, debt_entry_id: int, lot_id: int, amount: int, now: datetime) -> None:
        self._take(debt_entry_id, lot_id, amount)
        self._change_account(0, -amount)

    def _take(self, entry_id: int, lot_id: int, amount: int) -> None:
        lot = self._state.lots[lot_id]
        if amount <= 0 or lot.customer_id != self.customer_id or lot.remaining < amount:
            raise LedgerIntegrityError(f"lot {lot_id} cannot give {amount} points")
        self._state.lots[lot_id] = replace(lot, remaining=lot.remaining - amount)
        self._state.allocations[(entry_id, lot_id)] = amount

    def _change_account(self, balance: int, debt: int) -> None:
        now = self._state.accounts.get(
            self.customer_id, AccountRecord(customer_id=self.customer_id, balance=0, debt=0)
        )
        self._state.accounts[self.customer_id] = replace(
            now, balance=now.balance + balance, debt=now.debt + debt
        )


# The fake's own guarantees; the property tests compare it with the real storage step by step.

NOW = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def _gift(source: str, amount: int) -> NewEntry:
    return NewEntry(
        kind=EntryKind.WELCOME,
        source=source,
        amount=amount,
        reason="welcome",
        actor_id=None,
        occurred_at=NOW,
    )


def _lot(amount: int) -> NewLot:
    return NewLot(amount=amount, earned_at=NOW, available_at=NOW, expires_at=NOW.replace(year=2027))


async def test_a_failed_unit_of_work_leaves_the_fake_untouched() -> None:
    ledger = MemoryLedger([1])
    with pytest.raises(RuntimeError, match="boom"):
        async with ledger.book(customer_id=1) as book:
            await book.append(entry=_gift("customer:1", 10), lots=[_lot(10)])
            raise RuntimeError("boom")
    assert ledger.state == _State()


async def test_the_fake_refuses_a_second_entry_under_one_key_and_unknown_customers() -> None:
    ledger = MemoryLedger([1])
    async with ledger.book(customer_id=1) as book:
        assert await book.append(entry=_gift("customer:1", 10), lots=[_lot(10)]) is not None
        assert await book.append(entry=_gift("customer:1", 20), lots=[_lot(20)]) is None
    assert (await ledger.reconcile(customer_id=1)).entries_sum == 10
    with pytest.raises(UnknownCustomerError):
        async with ledger.book(customer_id=2):
            pass


async def test_the_fake_never_takes_more_from_a_lot_than_it_holds() -> None:
    ledger = MemoryLedger([1])
    async with ledger.book(customer_id=1) as book:
        appended = await book.append(entry=_gift("customer:1", 10), lots=[_lot(10)])
        assert appended is not None
        with pytest.raises(LedgerIntegrityError):
            await book.append(
                entry=replace(_gift("x", -11), kind=EntryKind.REDEMPTION),
                spend=[Allocation(lot_id=appended.lots[0].id, amount=11)],
            )
