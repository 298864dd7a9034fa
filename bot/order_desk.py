"""The order desk as the API and the CSV import share it: one place wires its parts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from scenarios.clock import Clock
from scenarios.ledger import PointsLedger
from scenarios.orders import OrderDesk, OrderFollower
from scenarios.rules import Rules
from scenarios.tiers import TierLadder
from storage.database import Database
from storage.ledger import SqlLedger
from storage.orders import SqlOrders


def create_order_desk(
    *, db: Database, rules: Rules, clock: Clock, followers: Sequence[OrderFollower] = ()
) -> OrderDesk:
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
    )
