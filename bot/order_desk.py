"""The order desk as the API and the CSV import share it (built in bot/services.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from scenarios.clock import Clock
from scenarios.ledger import PointsLedger
from scenarios.orders import OrderDesk, OrderFollower, OrderLimits, UnitOfWork
from scenarios.redeem_codes import RedeemCodes
from scenarios.rules import Rules
from scenarios.tiers import TierLadder, minor_units_per_major
from storage.ledger import SqlLedger
from storage.orders import SqlOrders
from storage.preferences import SqlPreferences


def create_order_desk(
    *,
    uow: UnitOfWork,
    orders: SqlOrders,
    points: PointsLedger,
    reader: SqlLedger,
    ladder: TierLadder,
    redeem_codes: RedeemCodes,
    zones: SqlPreferences,
    rules: Rules,
    clock: Clock,
    followers: Sequence[OrderFollower] = (),
    history: bool = False,
) -> OrderDesk:
    """``history``: the CSV import, whose orders record points spent at the till long ago;
    they need no one-time code (the API's orders do, with ``bonus.redeem_requires_code``)."""
    codes = redeem_codes if rules.bonus.redeem_requires_code and not history else None
    return OrderDesk(
        uow=uow,
        orders=orders,
        points=points,
        reader=reader,
        bonus=rules.bonus,
        ladder=ladder,
        currency=rules.shop.currency,
        clock=clock,
        followers=followers,
        follow_up_horizon=timedelta(days=rules.orders.follow_up_horizon_days),
        redeem_codes=codes,
        limits=order_limits(rules),
        zones=zones,
    )


def order_limits(rules: Rules) -> OrderLimits:
    """orders.max_total (major units of the shop's currency) and orders.clock_skew_minutes."""
    per_major = minor_units_per_major(rules.shop.currency)
    return OrderLimits(
        max_total=int(rules.orders.max_total * per_major),
        clock_skew=timedelta(minutes=rules.orders.clock_skew_minutes),
    )
