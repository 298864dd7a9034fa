"""The ledger's pure rules: rounding, the redemption cap, which lots pay, expiry, the view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.ledger import (
    balance_view,
    cashback_points,
    expiry_warning_window,
    lot_ttl,
    new_lot,
    plan_spend,
    redeem_limit,
    restored_expiry,
)
from scenarios.rules import Bonus
from storage.ledger import (
    AccountRecord,
    Allocation,
    EntryKind,
    KindTotal,
    LedgerSnapshot,
    LotRecord,
)

NOW = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def lot(
    lot_id: int,
    remaining: int,
    *,
    earned: int = 0,
    expires: int = 365,
    available: int = 0,
    amount: int | None = None,
) -> LotRecord:
    return LotRecord(
        id=lot_id,
        entry_id=lot_id,
        customer_id=1,
        amount=amount or remaining or 1,
        remaining=remaining,
        earned_at=NOW + earned * DAY,
        available_at=NOW + available * DAY,
        expires_at=NOW + expires * DAY,
    )


def test_cashback_is_rounded_down_to_whole_points() -> None:
    # 5 % of 19.99 ₽ is 0.9995 ₽: no point yet; 5 % of 20.00 ₽ is one point
    assert cashback_points(paid_amount=1999, cashback_bp=500, point_value=100) == 0
    assert cashback_points(paid_amount=2000, cashback_bp=500, point_value=100) == 1
    assert cashback_points(paid_amount=123_456, cashback_bp=750, point_value=100) == 92
    # a point worth one kopeck
    assert cashback_points(paid_amount=123_456, cashback_bp=750, point_value=1) == 9259


def test_the_redemption_cap_is_a_share_of_the_total_rounded_down() -> None:
    assert redeem_limit(order_total=100_000, share_bp=3000, point_value=100) == 300
    assert redeem_limit(order_total=99_999, share_bp=3000, point_value=100) == 299
    assert redeem_limit(order_total=100_000, share_bp=0, point_value=100) == 0


def test_lots_closest_to_expiry_pay_first_then_the_oldest() -> None:
    lots = [
        lot(1, 100, earned=0, expires=365),
        lot(2, 50, earned=10, expires=40),  # younger, expires sooner
        lot(3, 30, earned=-5, expires=365),  # same expiry as 1 but older... by earned time
    ]
    allocations, shortfall = plan_spend(lots, 120)
    assert shortfall == 0
    assert allocations == [Allocation(2, 50), Allocation(3, 30), Allocation(1, 40)]
    allocations, shortfall = plan_spend(lots, 500)
    assert shortfall == 320 and sum(a.amount for a in allocations) == 180


@settings(max_examples=200, deadline=None)
@given(
    remaining=st.lists(st.integers(0, 1000), max_size=8),
    expiries=st.lists(st.integers(1, 800), min_size=8, max_size=8),
    amount=st.integers(0, 5000),
)
def test_a_spend_plan_never_takes_more_than_a_lot_holds_or_than_asked(
    remaining: list[int], expiries: list[int], amount: int
) -> None:
    lots = [lot(n + 1, r, expires=expiries[n]) for n, r in enumerate(remaining)]
    allocations, shortfall = plan_spend(lots, amount)
    held = {item.id: item.remaining for item in lots}
    assert all(0 < a.amount <= held[a.lot_id] for a in allocations)
    assert len({a.lot_id for a in allocations}) == len(allocations)
    assert sum(a.amount for a in allocations) + shortfall == amount
    assert shortfall == max(0, amount - sum(remaining))


def test_order_points_wait_out_the_return_window_gifts_do_not() -> None:
    bonus = Bonus(welcome_ttl_days=30)
    earned = new_lot(EntryKind.ACCRUAL, 10, now=NOW, bonus=bonus)
    assert (earned.available_at, earned.expires_at) == (NOW + 14 * DAY, NOW + 365 * DAY)
    welcome = new_lot(EntryKind.WELCOME, 10, now=NOW, bonus=bonus)
    assert (welcome.available_at, welcome.expires_at) == (NOW, NOW + 30 * DAY)
    assert lot_ttl(EntryKind.COMPENSATION, bonus) == 365 * DAY
    assert lot_ttl(EntryKind.COMPENSATION, Bonus(compensation_ttl_days=90)) == 90 * DAY


def test_refunded_points_keep_their_expiry_unless_it_is_too_close() -> None:
    bonus = Bonus()
    assert restored_expiry(NOW + 100 * DAY, now=NOW, bonus=bonus) == NOW + 100 * DAY
    assert restored_expiry(NOW - 3 * DAY, now=NOW, bonus=bonus) == NOW + 14 * DAY
    no_warning = Bonus(expiry_warning_days=0)
    assert restored_expiry(NOW - 3 * DAY, now=NOW, bonus=no_warning) == NOW + DAY


def test_the_warning_window_starts_now() -> None:
    assert expiry_warning_window(NOW, Bonus()) == (NOW, NOW + 14 * DAY)


def test_the_balance_view_of_a_customer_in_debt() -> None:
    snapshot = LedgerSnapshot(
        open_lots=(),
        account=AccountRecord(customer_id=1, balance=-40, debt=40),
        totals=(
            KindTotal(EntryKind.ACCRUAL, credited=100, debited=0),
            KindTotal(EntryKind.REDEMPTION, credited=0, debited=100),
            KindTotal(EntryKind.REVERSAL, credited=0, debited=0),
            KindTotal(EntryKind.CORRECTION, credited=0, debited=100),
            KindTotal(EntryKind.ADJUSTMENT, credited=60, debited=0),
        ),
    )
    view = balance_view(snapshot, at=NOW)
    assert (view.available, view.pending, view.debt, view.total) == (0, 0, 40, -40)
    assert (view.lifetime_earned, view.lifetime_spent) == (60, 100)
    assert view.nearest_expiry is None and view.pending_release == ()


def test_the_balance_view_leaves_out_lots_past_expiry() -> None:
    snapshot = LedgerSnapshot(
        open_lots=(lot(1, 10, expires=5), lot(2, 20, expires=50, available=3)),
        account=AccountRecord(customer_id=1, balance=30, debt=0),
        totals=(),
    )
    assert balance_view(snapshot, at=NOW).total == 30
    later = balance_view(snapshot, at=NOW + 5 * DAY)
    assert (later.available, later.pending, later.total) == (20, 0, 20)
