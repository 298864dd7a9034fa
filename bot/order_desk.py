"""The order desk as the API and the CSV import share it, with what follows every order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from zoneinfo import ZoneInfo

from bot.account_jobs import create_account_jobs
from bot.reminders import replenishment_follower
from bot.signup import signup_services
from handlers.rating import rating_buttons
from scenarios.clock import Clock
from scenarios.ledger import PointsLedger
from scenarios.order_notices import OrderPointsNotices
from scenarios.orders import OrderDesk, OrderFollower, OrderLimits
from scenarios.ratings import RatingRequests
from scenarios.redeem_codes import RedeemCodes
from scenarios.rules import Rules
from scenarios.tiers import TierLadder, minor_units_per_major
from storage.account import SqlAccount
from storage.database import Database
from storage.ledger import SqlLedger
from storage.orders import SqlOrders
from storage.outbox import SqlOutbox
from storage.ratings import SqlRatings
from storage.redeem_codes import SqlRedeemCodes


def order_followers(
    *, db: Database, rules: Rules, clock: Clock, zone: ZoneInfo
) -> list[OrderFollower]:
    """What follows every new order and status change, in the order's own transaction: the
    customer told what their points did, tier announcements, referral rewards, replenishment
    reminders, the rating request."""
    return [
        OrderPointsNotices(
            customers=SqlAccount(db),
            reader=SqlLedger(db),
            outbox=SqlOutbox(db),
            clock=clock,
            zone=zone,
        ),
        create_account_jobs(db=db, rules=rules, clock=clock, shop_zone=zone).tiers,
        signup_services(db=db, rules=rules, clock=clock, zone=zone).referrals,
        replenishment_follower(db, rules=rules, clock=clock, shop_zone=zone),
        RatingRequests(
            store=SqlRatings(db),
            outbox=SqlOutbox(db),
            rules=rules.ratings,
            clock=clock,
            buttons=rating_buttons,
        ),
    ]


def create_order_desk(
    *,
    db: Database,
    rules: Rules,
    clock: Clock,
    followers: Sequence[OrderFollower] = (),
    history: bool = False,
    group_commit: bool | None = None,
) -> OrderDesk:
    """``history``: the CSV import, whose orders record points spent at the till long ago;
    they need no one-time code (the API's orders do, with ``bonus.redeem_requires_code``).
    ``group_commit`` (default: on SQLite): the API's concurrent orders share a transaction."""
    codes = (
        RedeemCodes(SqlRedeemCodes(db), bonus=rules.bonus, clock=clock)
        if rules.bonus.redeem_requires_code and not history
        else None
    )
    ladder = TierLadder.from_rules(rules.bonus, currency=rules.shop.currency)
    ledger = SqlLedger(db)
    return OrderDesk(
        uow=db,
        orders=SqlOrders(db),
        points=PointsLedger(ledger, bonus=rules.bonus, ladder=ladder, clock=clock),
        reader=ledger,
        bonus=rules.bonus,
        ladder=ladder,
        currency=rules.shop.currency,
        clock=clock,
        followers=followers,
        follow_up_horizon=timedelta(days=rules.orders.follow_up_horizon_days),
        redeem_codes=codes,
        limits=order_limits(rules),
        group_commit=db.is_sqlite if group_commit is None else group_commit,
    )


def order_limits(rules: Rules) -> OrderLimits:
    """orders.max_total (major units of the shop's currency) and orders.clock_skew_minutes."""
    per_major = minor_units_per_major(rules.shop.currency)
    return OrderLimits(
        max_total=int(rules.orders.max_total * per_major),
        clock_skew=timedelta(minutes=rules.orders.clock_skew_minutes),
    )
