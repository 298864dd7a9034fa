"""The order desk as the API and the CSV import share it (built in bot/services.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from scenarios.clock import Clock
from scenarios.ledger import PointsLedger
from scenarios.orders import OrderDesk, OrderFollower, OrderLimits, RedeemProof
from scenarios.rules import Rules
from scenarios.tiers import TierLadder, minor_units_per_major
from scenarios.transactions import SavepointUnitOfWork
from storage.ledger import SqlLedger
from storage.orders import SqlOrders
from storage.preferences import SqlPreferences
from storage.refunds import SqlRefunds


def create_order_desk(
    *,
    uow: SavepointUnitOfWork,
    orders: SqlOrders,
    points: PointsLedger,
    reader: SqlLedger,
    ladder: TierLadder,
    redeem_codes: RedeemProof,
    zones: SqlPreferences,
    rules: Rules,
    clock: Clock,
    followers: Sequence[OrderFollower] = (),
    history: bool = False,
    refunds: SqlRefunds | None = None,
    group_commit: bool = False,
) -> OrderDesk:
    """``history``: the CSV import, whose orders record points spent at the till long ago;
    they need no one-time code (the API's orders do, with ``bonus.redeem_requires_code``).
    ``redeem_codes``: the proof of presence spending points needs (/code's one-time codes;
    the Mini App's till takes the member's scanned QR code instead).
    ``group_commit``: ``submit`` writes concurrent orders in one transaction (for SQLite)."""
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
        refunds=refunds,
        group_commit=group_commit,
    )


def order_limits(rules: Rules) -> OrderLimits:
    """orders.max_total (major units of the shop's currency) and orders.clock_skew_minutes."""
    per_major = minor_units_per_major(rules.shop.currency)
    return OrderLimits(
        max_total=int(rules.orders.max_total * per_major),
        clock_skew=timedelta(minutes=rules.orders.clock_skew_minutes),
    )
