"""The points ledger as a customer and a shop meet it: earning, spending, expiry, refunds, views.

Each behaviour runs on the in-memory fake, on SQLite and on PostgreSQL, with a fixed clock.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from scenarios.clock import FixedClock
from scenarios.ledger import (
    BalanceView,
    LedgerRefusal,
    PendingPoints,
    PointsLedger,
    RefusalCode,
    balance,
    birthday_source,
    expiring_soon,
    history,
    referral_source,
    tier_status,
    welcome_source,
)
from scenarios.rules import Bonus
from scenarios.tiers import Downgrade, TierLadder, Upgrade
from storage.customers import SqlCustomers
from storage.database import Database
from storage.ledger import EntryKind, EntryRecord, Reconciliation, SqlLedger
from storage.schema import ledger_entries
from tests.support.databases import postgres_database, sqlite_database
from tests.test_ledger_fake import MemoryLedger

STORES = ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
DAY = timedelta(days=1)
RUB = 100  # kopecks


@dataclass
class Shop:
    """One ledger store with the use cases over it, and the clock they share."""

    store: MemoryLedger | SqlLedger
    db: Database | None
    clock: FixedClock
    bonus: Bonus
    _telegram_ids: itertools.count[int]

    @property
    def ladder(self) -> TierLadder:
        return TierLadder.from_rules(self.bonus, currency="RUB")

    @property
    def ledger(self) -> PointsLedger:
        return PointsLedger(self.store, bonus=self.bonus, ladder=self.ladder, clock=self.clock)

    def with_rules(self, **changes: Any) -> Shop:
        bonus = Bonus.model_validate({**self.bonus.model_dump(), **changes})
        return Shop(self.store, self.db, self.clock, bonus, self._telegram_ids)

    async def customer(self) -> int:
        telegram_id = next(self._telegram_ids)
        if isinstance(self.store, MemoryLedger):
            self.store.customer_ids.add(telegram_id)
            return telegram_id
        assert self.db is not None
        record = await SqlCustomers(self.db).seen(
            telegram_id=telegram_id,
            first_name=None,
            username=None,
            language_code=None,
            now=self.clock.now(),
            refresh_after=timedelta(minutes=10),
        )
        return record.id

    async def balance(self, customer_id: int, **kwargs: Any) -> BalanceView:
        return await balance(self.store, customer_id=customer_id, clock=self.clock, **kwargs)

    async def entries(self, customer_id: int) -> list[EntryRecord]:
        page = await history(self.store, customer_id=customer_id, limit=1000)
        return list(reversed(page.entries))

    async def entry_count(self) -> int:
        if isinstance(self.store, MemoryLedger):
            return len(self.store.state.entries)
        assert self.db is not None
        async with self.db.read() as conn:
            count = await conn.execute(select(func.count()).select_from(ledger_entries))
            return int(count.scalar_one())

    async def reconcile(self, customer_id: int) -> Reconciliation:
        return await self.store.reconcile(customer_id=customer_id)

    async def refused(self, code: RefusalCode, call: Any) -> str:
        """Assert a refusal with this code that wrote nothing; returns the message."""
        before = await self.entry_count()
        with pytest.raises(LedgerRefusal) as refusal:
            await call
        assert refusal.value.code is code, refusal.value.message
        assert await self.entry_count() == before
        return refusal.value.message


@pytest.fixture(params=STORES)
async def shop(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock
) -> AsyncIterator[Shop]:
    ids = itertools.count(1001)
    if request.param == "memory":
        yield Shop(MemoryLedger(), None, clock, Bonus(), ids)
    elif request.param == "sqlite":
        async with sqlite_database(tmp_path / "ledger.sqlite3") as db:
            yield Shop(SqlLedger(db), db, clock, Bonus(), ids)
    else:
        async with postgres_database() as db:
            yield Shop(SqlLedger(db), db, clock, Bonus(), ids)


async def spendable(shop: Shop, customer_id: int, points: int, *, source: str = "") -> None:
    """Give a customer points they can spend at once (a compensation)."""
    await shop.ledger.grant(
        customer_id=customer_id,
        kind=EntryKind.COMPENSATION,
        source=source or f"test:{customer_id}:{points}:{shop.clock.now().isoformat()}",
        points=points,
        reason="test points",
    )


# ---- earning -----------------------------------------------------------------------------


async def test_an_order_earns_the_tiers_cashback_on_its_total_rounded_down_after_the_hold(
    shop: Shop,
) -> None:
    anna = await shop.customer()
    accrual = await shop.ledger.accrue(customer_id=anna, order_id="A-1001", total=123_456)
    # 5 % of 1 234.56 ₽ is 61.73 ₽: 61 whole points
    assert (accrual.points, accrual.paid_amount, accrual.replayed) == (61, 123_456, False)
    released = shop.clock.now() + 14 * DAY
    assert accrual.available_at == released
    view = await shop.balance(anna)
    assert (view.available, view.pending, view.total) == (0, 61, 61)
    assert view.pending_release == (PendingPoints(amount=61, available_at=released),)
    shop.clock.advance(14 * DAY)
    view = await shop.balance(anna)
    assert (view.available, view.pending, view.lifetime_earned) == (61, 0, 61)
    assert (await shop.reconcile(anna)).consistent


async def test_with_no_hold_points_can_be_spent_at_once(shop: Shop) -> None:
    anna = await shop.customer()
    await shop.with_rules(hold_days=0).ledger.accrue(
        customer_id=anna, order_id="A-1", total=10_000 * RUB
    )
    assert (await shop.balance(anna)).available == 500


async def test_points_that_paid_for_an_order_earn_no_cashback(shop: Shop) -> None:
    anna = await shop.customer()
    await spendable(shop, anna, 300)
    await shop.ledger.redeem(customer_id=anna, order_id="A-1", order_total=1000 * RUB, points=300)
    accrual = await shop.ledger.accrue(customer_id=anna, order_id="A-1", total=1000 * RUB)
    assert accrual.paid_amount == 700 * RUB
    assert accrual.points == 35  # 5 % of the 700 ₽ paid in money


async def test_an_accrual_sent_twice_is_recorded_once_and_returns_the_original(
    shop: Shop,
) -> None:
    anna = await shop.customer()
    first = await shop.ledger.accrue(customer_id=anna, order_id="A-1", total=1000 * RUB)
    again = await shop.ledger.accrue(customer_id=anna, order_id="A-1", total=5000 * RUB)
    assert again.replayed and again.entry == first.entry and again.points == 50
    assert again.available_at == first.available_at and again.tier_change is None
    assert await shop.entry_count() == 1
    assert (await shop.balance(anna)).total == 50


async def test_the_order_that_reaches_a_tier_announces_it_and_the_next_earns_more(
    shop: Shop,
) -> None:
    anna = await shop.customer()
    first = await shop.ledger.accrue(customer_id=anna, order_id="A-1", total=9_000 * RUB)
    assert first.tier_change is None
    crossing = await shop.ledger.accrue(customer_id=anna, order_id="A-2", total=1_000 * RUB)
    assert crossing.points == 50  # earned at the bronze rate it was placed at
    assert isinstance(crossing.tier_change, Upgrade)
    assert (crossing.tier_change.before.name, crossing.tier_change.after.name) == (
        "bronze",
        "silver",
    )
    after = await shop.ledger.accrue(customer_id=anna, order_id="A-3", total=1_000 * RUB)
    assert after.points == 70


async def test_spending_points_never_lowers_the_tier(shop: Shop) -> None:
    anna = await shop.customer()
    shop = shop.with_rules(hold_days=0)
    await shop.ledger.accrue(customer_id=anna, order_id="A-1", total=10_000 * RUB)
    assert (
        await tier_status(shop.store, customer_id=anna, ladder=shop.ladder, clock=shop.clock)
    ).tier.name == "silver"
    await shop.ledger.redeem(customer_id=anna, order_id="A-2", order_total=2000 * RUB, points=500)
    status = await tier_status(shop.store, customer_id=anna, ladder=shop.ladder, clock=shop.clock)
    assert (status.tier.name, status.spend) == ("silver", 10_000 * RUB)
    assert status.gap is not None
    assert (status.gap.next_tier.name, status.gap.missing) == ("gold", 20_000 * RUB)


async def test_in_a_rolling_window_old_spend_stops_counting(shop: Shop) -> None:
    anna = await shop.customer()
    rolling = shop.with_rules(tier_window="12 months")
    await rolling.ledger.accrue(customer_id=anna, order_id="A-1", total=10_000 * RUB)
    shop.clock.advance(366 * DAY)
    status = await tier_status(
        rolling.store, customer_id=anna, ladder=rolling.ladder, clock=shop.clock
    )
    assert (status.tier.name, status.spend) == ("bronze", 0)
    next_order = await rolling.ledger.accrue(customer_id=anna, order_id="A-2", total=100 * RUB)
    assert next_order.points == 5  # bronze again
    lifetime = await tier_status(shop.store, customer_id=anna, ladder=shop.ladder, clock=shop.clock)
    assert lifetime.tier.name == "silver"


@pytest.mark.parametrize(
    ("total", "order_id", "code"),
    [
        (0, "A-1", RefusalCode.INVALID_AMOUNT),
        (-500, "A-1", RefusalCode.INVALID_AMOUNT),
        (10.5, "A-1", RefusalCode.INVALID_AMOUNT),
        (True, "A-1", RefusalCode.INVALID_AMOUNT),
        (1000, "", RefusalCode.INVALID_KEY),
        (1000, "A 1", RefusalCode.INVALID_KEY),
        (1000, "A" * 101, RefusalCode.INVALID_KEY),
    ],
)
async def test_malformed_accruals_are_refused(
    shop: Shop, total: Any, order_id: str, code: RefusalCode
) -> None:
    anna = await shop.customer()
    await shop.refused(code, shop.ledger.accrue(customer_id=anna, order_id=order_id, total=total))


async def test_points_for_someone_who_is_not_a_customer_are_refused(shop: Shop) -> None:
    message = await shop.refused(
        RefusalCode.UNKNOWN_CUSTOMER,
        shop.ledger.accrue(customer_id=999_999, order_id="A-1", total=1000),
    )
    assert message == "there is no customer 999999"


# ---- spending ----------------------------------------------------------------------------


async def test_points_pay_at_most_the_configured_share_of_an_order(shop: Shop) -> None:
    anna = await shop.customer()
    await spendable(shop, anna, 1000)
    message = await shop.refused(
        RefusalCode.OVER_ORDER_SHARE,
        shop.ledger.redeem(customer_id=anna, order_id="A-1", order_total=1000 * RUB, points=301),
    )
    assert message == "at most 300 points can pay for this order (30 % of its total)"
    paid = await shop.ledger.redeem(
        customer_id=anna, order_id="A-1", order_total=1000 * RUB, points=300
    )
    assert (paid.points, paid.entry.amount) == (300, -300)
    assert (await shop.balance(anna)).available == 700


async def test_pending_points_cannot_be_spent(shop: Shop) -> None:
    anna = await shop.customer()
    await shop.ledger.accrue(customer_id=anna, order_id="A-1", total=10_000 * RUB)
    await spendable(shop, anna, 40)
    message = await shop.refused(
        RefusalCode.NOT_ENOUGH_POINTS,
        shop.ledger.redeem(customer_id=anna, order_id="A-2", order_total=1000 * RUB, points=41),
    )
    assert message == "only 40 points can be spent now"
    view = await shop.balance(anna)
    assert (view.available, view.pending) == (40, 500)


async def test_points_closest_to_expiry_are_spent_first(shop: Shop) -> None:
    anna = await shop.customer()
    quick = shop.with_rules(hold_days=0, welcome_ttl_days=30)
    await quick.ledger.accrue(customer_id=anna, order_id="A-1", total=2000 * RUB)  # 100, a year
    shop.clock.advance(DAY)
    await quick.ledger.grant(  # younger, but it expires first
        customer_id=anna,
        kind=EntryKind.WELCOME,
        source=welcome_source(anna),
        points=50,
        reason="welcome",
    )
    redemption = await quick.ledger.redeem(
        customer_id=anna, order_id="A-2", order_total=1000 * RUB, points=70
    )
    assert redemption.points == 70
    view = await shop.balance(anna)
    assert view.available == 80
    assert view.nearest_expiry is not None
    assert view.nearest_expiry.day == date(2027, 11, 1)  # the welcome lot is gone
    assert view.nearest_expiry.amount == 80


async def test_an_order_already_paid_cannot_be_paid_with_points_any_more(shop: Shop) -> None:
    anna = await shop.customer()
    await spendable(shop, anna, 100)
    await shop.ledger.accrue(customer_id=anna, order_id="A-1", total=1000 * RUB)
    await shop.refused(
        RefusalCode.ORDER_ALREADY_PAID,
        shop.ledger.redeem(customer_id=anna, order_id="A-1", order_total=1000 * RUB, points=10),
    )


async def test_a_redemption_sent_twice_spends_once(shop: Shop) -> None:
    anna = await shop.customer()
    await spendable(shop, anna, 100)
    first = await shop.ledger.redeem(
        customer_id=anna, order_id="A-1", order_total=1000 * RUB, points=60
    )
    again = await shop.ledger.redeem(
        customer_id=anna, order_id="A-1", order_total=1000 * RUB, points=60
    )
    assert again.replayed and again.entry == first.entry
    assert (await shop.balance(anna)).available == 40


async def test_accrual_with_a_total_below_the_points_redeemed_is_refused(shop: Shop) -> None:
    anna = await shop.customer()
    await spendable(shop, anna, 300)
    await shop.ledger.redeem(customer_id=anna, order_id="A-1", order_total=1000 * RUB, points=300)
    await shop.refused(
        RefusalCode.TOTAL_BELOW_REDEEMED,
        shop.ledger.accrue(customer_id=anna, order_id="A-1", total=299 * RUB),
    )


# ---- expiry ------------------------------------------------------------------------------


async def test_the_unspent_rest_of_expired_points_is_written_off_once(shop: Shop) -> None:
    anna = await shop.customer()
    quick = shop.with_rules(hold_days=0)
    await quick.ledger.accrue(customer_id=anna, order_id="A-1", total=2000 * RUB)
    await quick.ledger.redeem(customer_id=anna, order_id="A-2", order_total=1000 * RUB, points=30)
    shop.clock.advance(365 * DAY)
    assert await quick.ledger.expire_due() == 1
    assert await quick.ledger.expire_due() == 0
    expiry = (await shop.entries(anna))[-1]
    assert (expiry.kind, expiry.amount) == (EntryKind.EXPIRY, -70)
    assert expiry.source.startswith("lot:")
    view = await shop.balance(anna)
    assert (view.total, view.lifetime_earned, view.lifetime_spent) == (0, 100, 30)
    assert (await shop.reconcile(anna)).consistent


async def test_points_past_expiry_count_as_gone_before_the_expiry_run(shop: Shop) -> None:
    anna = await shop.customer()
    await spendable(shop, anna, 100)
    shop.clock.advance(365 * DAY)
    view = await shop.balance(anna)
    assert (view.available, view.total, view.nearest_expiry) == (0, 0, None)
    await shop.refused(
        RefusalCode.NOT_ENOUGH_POINTS,
        shop.ledger.redeem(customer_id=anna, order_id="A-1", order_total=1000 * RUB, points=1),
    )


async def test_any_change_to_a_customer_first_writes_off_their_expired_points(shop: Shop) -> None:
    anna = await shop.customer()
    await spendable(shop, anna, 100)
    shop.clock.advance(400 * DAY)
    await shop.ledger.accrue(customer_id=anna, order_id="A-1", total=100 * RUB)
    kinds = [entry.kind for entry in await shop.entries(anna)]
    assert kinds == [EntryKind.COMPENSATION, EntryKind.EXPIRY, EntryKind.ACCRUAL]
    assert await shop.ledger.expire_due() == 0


async def test_welcome_points_can_live_shorter(shop: Shop) -> None:
    anna = await shop.customer()
    short = shop.with_rules(welcome_ttl_days=30)
    await short.ledger.grant(
        customer_id=anna,
        kind=EntryKind.WELCOME,
        source=welcome_source(anna),
        points=200,
        reason="welcome",
    )
    shop.clock.advance(30 * DAY)
    assert await short.ledger.expire_due() == 1
    assert (await shop.balance(anna)).total == 0


async def test_customers_to_warn_about_expiring_points(shop: Shop) -> None:
    anna, boris, vera = await shop.customer(), await shop.customer(), await shop.customer()
    await spendable(shop, anna, 100)
    shop.clock.advance(5 * DAY)
    await spendable(shop, anna, 20)
    await spendable(shop, boris, 7)
    shop.clock.advance(60 * DAY)
    await spendable(shop, vera, 1)  # expires well after the window
    shop.clock.set(datetime(2027, 10, 25, 10, 0, tzinfo=UTC))
    due = await expiring_soon(shop.store, bonus=shop.bonus, clock=shop.clock)
    assert [(d.customer_id, d.amount, d.earliest) for d in due] == [
        (anna, 120, datetime(2027, 11, 1, 10, 0, tzinfo=UTC)),
        (boris, 7, datetime(2027, 11, 6, 10, 0, tzinfo=UTC)),
    ]
    rest = await expiring_soon(
        shop.store, bonus=shop.bonus, clock=shop.clock, after_customer_id=anna, limit=1
    )
    assert [d.customer_id for d in rest] == [boris]


# ---- cancellations and refunds -----------------------------------------------------------


async def test_a_refund_gives_back_the_points_spent_and_takes_back_those_earned(
    shop: Shop,
) -> None:
    anna = await shop.customer()
    await spendable(shop, anna, 300)
    first_expiry = shop.clock.now() + 365 * DAY
    shop.clock.advance(10 * DAY)
    await shop.ledger.redeem(customer_id=anna, order_id="A-1", order_total=1000 * RUB, points=300)
    await shop.ledger.accrue(customer_id=anna, order_id="A-1", total=1000 * RUB)
    assert (await shop.balance(anna)).total == 35
    shop.clock.advance(3 * DAY)
    cancelled = await shop.ledger.cancel_order(customer_id=anna, order_id="A-1", reason="refunded")
    assert (cancelled.restored_points, cancelled.reversed_points) == (300, 35)
    assert (cancelled.corrected_points, cancelled.owed_points) == (0, 0)
    assert [e.kind for e in cancelled.entries] == [EntryKind.RESTORATION, EntryKind.REVERSAL]
    view = await shop.balance(anna)
    assert (view.available, view.pending, view.lifetime_earned, view.lifetime_spent) == (
        300,
        0,
        300,
        0,
    )
    assert view.nearest_expiry is not None
    assert view.nearest_expiry.first_at == first_expiry  # the restored points keep their expiry
    assert (await shop.reconcile(anna)).consistent


async def test_earned_points_spent_elsewhere_are_charged_back_then_owed(shop: Shop) -> None:
    anna = await shop.customer()
    quick = shop.with_rules(hold_days=0)
    await quick.ledger.accrue(customer_id=anna, order_id="A-1", total=4000 * RUB)  # 200
    await quick.ledger.redeem(customer_id=anna, order_id="B-1", order_total=500 * RUB, points=150)
    await spendable(shop, anna, 100)
    cancelled = await quick.ledger.cancel_order(
        customer_id=anna, order_id="A-1", reason="cancelled"
    )
    assert (cancelled.reversed_points, cancelled.corrected_points, cancelled.owed_points) == (
        50,
        150,
        50,
    )
    correction = cancelled.entries[-1]
    assert correction.kind is EntryKind.CORRECTION and correction.amount == -150
    assert "150 by redemption order:B-1" in correction.reason
    assert "100 taken from other points, 50 owed" in correction.reason
    view = await shop.balance(anna)
    assert (view.available, view.debt, view.total) == (0, 50, -50)
    assert (view.lifetime_earned, view.lifetime_spent) == (100, 150)
    # the next points pay the debt first
    await quick.ledger.accrue(customer_id=anna, order_id="A-2", total=2000 * RUB)  # 100
    view = await shop.balance(anna)
    assert (view.available, view.debt, view.total) == (50, 0, 50)
    assert (await shop.reconcile(anna)).consistent


async def test_refunded_points_whose_expiry_passed_get_the_warning_period(shop: Shop) -> None:
    anna = await shop.customer()
    await spendable(shop, anna, 100)
    shop.clock.advance(360 * DAY)
    await shop.ledger.redeem(customer_id=anna, order_id="A-1", order_total=1000 * RUB, points=100)
    shop.clock.advance(10 * DAY)  # the points would have expired 5 days ago
    await shop.ledger.cancel_order(customer_id=anna, order_id="A-1", reason="refunded")
    view = await shop.balance(anna)
    assert view.available == 100
    assert view.nearest_expiry is not None
    assert view.nearest_expiry.first_at == shop.clock.now() + 14 * DAY


async def test_a_cancellation_sent_twice_changes_nothing_the_second_time(shop: Shop) -> None:
    anna = await shop.customer()
    quick = shop.with_rules(hold_days=0)
    await quick.ledger.accrue(customer_id=anna, order_id="A-1", total=2000 * RUB)
    await quick.ledger.redeem(customer_id=anna, order_id="B-1", order_total=1000 * RUB, points=80)
    first = await quick.ledger.cancel_order(customer_id=anna, order_id="A-1", reason="cancelled")
    count = await shop.entry_count()
    again = await quick.ledger.cancel_order(customer_id=anna, order_id="A-1", reason="again")
    assert again.replayed and again.entries == first.entries
    assert (again.reversed_points, again.corrected_points, again.owed_points) == (20, 80, 80)
    assert await shop.entry_count() == count


async def test_an_order_cancelled_before_it_earned_cannot_earn_later(shop: Shop) -> None:
    anna = await shop.customer()
    cancelled = await shop.ledger.cancel_order(customer_id=anna, order_id="A-1", reason="cancelled")
    assert [(e.kind, e.amount) for e in cancelled.entries] == [(EntryKind.REVERSAL, 0)]
    message = await shop.refused(
        RefusalCode.ORDER_CANCELLED,
        shop.ledger.accrue(customer_id=anna, order_id="A-1", total=1000 * RUB),
    )
    assert message == "order A-1 was cancelled; nothing to earn"
    await shop.refused(
        RefusalCode.ORDER_CANCELLED,
        shop.ledger.redeem(customer_id=anna, order_id="A-1", order_total=1000 * RUB, points=1),
    )


async def test_a_refund_that_drops_the_spend_below_a_tier_announces_a_downgrade(
    shop: Shop,
) -> None:
    anna = await shop.customer()
    await shop.ledger.accrue(customer_id=anna, order_id="A-1", total=8_000 * RUB)
    await shop.ledger.accrue(customer_id=anna, order_id="A-2", total=3_000 * RUB)
    cancelled = await shop.ledger.cancel_order(customer_id=anna, order_id="A-2", reason="refunded")
    assert isinstance(cancelled.tier_change, Downgrade)
    assert (cancelled.tier_change.before.name, cancelled.tier_change.after.name) == (
        "silver",
        "bronze",
    )


async def test_one_customer_cannot_touch_another_customers_order(shop: Shop) -> None:
    anna, boris = await shop.customer(), await shop.customer()
    await shop.ledger.accrue(customer_id=anna, order_id="A-1", total=1000 * RUB)
    message = await shop.refused(
        RefusalCode.KEY_OF_ANOTHER_CUSTOMER,
        shop.ledger.cancel_order(customer_id=boris, order_id="A-1", reason="cancelled"),
    )
    assert message == "order:A-1 is already recorded for another customer"
    await shop.refused(
        RefusalCode.KEY_OF_ANOTHER_CUSTOMER,
        shop.ledger.accrue(customer_id=boris, order_id="A-1", total=1000 * RUB),
    )


# ---- gifts and admin adjustments ---------------------------------------------------------


async def test_gifts_are_given_once_per_key_and_spendable_at_once(shop: Shop) -> None:
    anna, boris = await shop.customer(), await shop.customer()
    welcome = await shop.ledger.grant(
        customer_id=anna,
        kind=EntryKind.WELCOME,
        source=welcome_source(anna),
        points=100,
        reason="welcome",
    )
    again = await shop.ledger.grant(
        customer_id=anna,
        kind=EntryKind.WELCOME,
        source=welcome_source(anna),
        points=100,
        reason="welcome",
    )
    assert again.replayed and again.entry == welcome.entry
    await shop.ledger.grant(
        customer_id=anna,
        kind=EntryKind.REFERRAL,
        source=referral_source(boris),
        points=50,
        reason="brought Boris",
    )
    await shop.ledger.grant(
        customer_id=anna,
        kind=EntryKind.BIRTHDAY,
        source=birthday_source(anna, 2026),
        points=30,
        reason="happy birthday",
    )
    assert (await shop.balance(anna)).available == 180
    await shop.refused(
        RefusalCode.NOT_A_GIFT,
        shop.ledger.grant(
            customer_id=anna, kind=EntryKind.ACCRUAL, source="x", points=1, reason="sneaky"
        ),
    )


async def test_an_admin_adds_and_removes_points_with_a_reason(shop: Shop) -> None:
    anna = await shop.customer()
    added = await shop.ledger.adjust(
        customer_id=anna, key="req-1", points=100, reason="goodwill", admin_id=77
    )
    assert (added.entry.actor_id, added.entry.reason, added.entry.source) == (
        77,
        "goodwill",
        "adjustment:req-1",
    )
    removed = await shop.ledger.adjust(
        customer_id=anna, key="req-2", points=-40, reason="duplicate order", admin_id=77
    )
    assert removed.entry.amount == -40
    message = await shop.refused(
        RefusalCode.NOT_ENOUGH_POINTS,
        shop.ledger.adjust(customer_id=anna, key="req-3", points=-61, reason="x", admin_id=77),
    )
    assert message == "the customer has only 60 points"
    await shop.refused(
        RefusalCode.INVALID_REASON,
        shop.ledger.adjust(customer_id=anna, key="req-4", points=5, reason="  ", admin_id=77),
    )
    await shop.refused(
        RefusalCode.INVALID_AMOUNT,
        shop.ledger.adjust(customer_id=anna, key="req-5", points=0, reason="x", admin_id=77),
    )
    replay = await shop.ledger.adjust(
        customer_id=anna, key="req-2", points=-40, reason="duplicate order", admin_id=77
    )
    assert replay.replayed
    assert (await shop.balance(anna)).total == 60


# ---- views -------------------------------------------------------------------------------


async def test_the_balance_view_shows_when_pending_points_arrive_and_what_expires_first(
    shop: Shop,
) -> None:
    anna = await shop.customer()
    await shop.ledger.accrue(customer_id=anna, order_id="A-1", total=1000 * RUB)  # 50
    shop.clock.advance(2 * DAY)
    await shop.ledger.accrue(customer_id=anna, order_id="A-2", total=600 * RUB)  # 30
    await spendable(shop, anna, 10)
    view = await shop.balance(anna)
    start = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    assert view.pending_release == (
        PendingPoints(amount=50, available_at=start + 14 * DAY),
        PendingPoints(amount=30, available_at=start + 16 * DAY),
    )
    assert (view.available, view.pending, view.total) == (10, 80, 90)
    assert view.nearest_expiry is not None
    assert (view.nearest_expiry.amount, view.nearest_expiry.day) == (50, date(2027, 11, 1))
    later = await shop.balance(anna, at=start + 15 * DAY)
    assert (later.available, later.pending) == (60, 30)


async def test_the_nearest_expiry_groups_points_by_the_customers_day(shop: Shop) -> None:
    anna = await shop.customer()
    shop.clock.set(datetime(2026, 11, 1, 20, 0, tzinfo=UTC))  # 23:00 in Moscow
    await spendable(shop, anna, 10)
    shop.clock.advance(timedelta(hours=2))  # 01:00 next day in Moscow, same UTC day
    await spendable(shop, anna, 5)
    utc = await shop.balance(anna)
    moscow = await shop.balance(anna, zone=ZoneInfo("Europe/Moscow"))
    assert utc.nearest_expiry is not None and moscow.nearest_expiry is not None
    assert (utc.nearest_expiry.amount, utc.nearest_expiry.day) == (15, date(2027, 11, 1))
    assert (moscow.nearest_expiry.amount, moscow.nearest_expiry.day) == (10, date(2027, 11, 1))


async def test_history_pages_go_from_the_newest_back(shop: Shop) -> None:
    anna, boris = await shop.customer(), await shop.customer()
    for n in range(5):
        shop.clock.advance(timedelta(hours=1))
        await shop.ledger.accrue(customer_id=anna, order_id=f"A-{n}", total=(n + 1) * 100 * RUB)
    await shop.ledger.accrue(customer_id=boris, order_id="B-1", total=100 * RUB)
    first = await history(shop.store, customer_id=anna, limit=2)
    assert [e.source for e in first.entries] == ["order:A-4", "order:A-3"]
    assert [(e.kind, e.amount) for e in first.entries] == [
        (EntryKind.ACCRUAL, 25),
        (EntryKind.ACCRUAL, 20),
    ]
    assert first.entries[0].occurred_at > first.entries[1].occurred_at
    second = await history(shop.store, customer_id=anna, limit=2, before_id=first.next_before_id)
    assert [e.source for e in second.entries] == ["order:A-2", "order:A-1"]
    last = await history(shop.store, customer_id=anna, limit=2, before_id=second.next_before_id)
    assert [e.source for e in last.entries] == ["order:A-0"]
    assert last.next_before_id is None
    assert (
        last.entries[0].reason == "bronze cashback 5.00 % of 10000 paid (minor units) on order A-0"
    )


async def test_the_cached_balance_matches_the_ledger_after_every_kind_of_change(
    shop: Shop,
) -> None:
    anna = await shop.customer()
    quick = shop.with_rules(hold_days=1)
    steps = [
        quick.ledger.accrue(customer_id=anna, order_id="A-1", total=5000 * RUB),
        quick.ledger.grant(
            customer_id=anna,
            kind=EntryKind.WELCOME,
            source=welcome_source(anna),
            points=50,
            reason="welcome",
        ),
        quick.ledger.redeem(customer_id=anna, order_id="A-2", order_total=100 * RUB, points=30),
        quick.ledger.adjust(customer_id=anna, key="k", points=-10, reason="typo", admin_id=1),
        quick.ledger.cancel_order(customer_id=anna, order_id="A-2", reason="cancelled"),
        quick.ledger.cancel_order(customer_id=anna, order_id="A-1", reason="refunded"),
    ]
    for step in steps:
        await step
        shop.clock.advance(DAY)
        check = await shop.reconcile(anna)
        assert check.consistent, check
    assert (await shop.balance(anna)).total == 40
