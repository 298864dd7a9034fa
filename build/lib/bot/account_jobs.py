"""The periodic work of the points program: expiries and their warnings, tiers, gift batches."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from scenarios.clock import Clock
from scenarios.expiry_watch import ExpiryWatch
from scenarios.gifts import GiftRunner
from scenarios.ledger import PointsLedger
from scenarios.rules import Rules
from scenarios.tier_watch import TierWatch
from scenarios.tiers import TierLadder
from storage.account import SqlAccount
from storage.availability import is_unavailable
from storage.database import Database
from storage.gifts import SqlGifts
from storage.ledger import SqlLedger
from storage.outbox import SqlOutbox

log = logging.getLogger(__name__)


@dataclass
class AccountJobs:
    expiry: ExpiryWatch
    tiers: TierWatch  # also the order follower that announces tier changes
    gifts: GiftRunner

    async def tick(self) -> None:
        """One bounded step of each; a failure in one does not starve the others."""
        for name, step in (
            ("expiry", self.expiry.tick),
            ("tier sweep", self.tiers.sweep_page),
            ("gift batch", self.gifts.tick),
        ):
            try:
                done = await step()
            except Exception as error:
                if is_unavailable(error):
                    raise  # the scheduler waits for the database and runs the tick again
                log.exception("account job %s failed; it runs again on the next tick", name)
                continue
            if done:
                log.info("account job %s: %s", name, done)


def create_account_jobs(
    *, db: Database, rules: Rules, clock: Clock, shop_zone: ZoneInfo
) -> AccountJobs:
    ledger = SqlLedger(db)
    ladder = TierLadder.from_rules(rules.bonus, currency=rules.shop.currency)
    points = PointsLedger(ledger, bonus=rules.bonus, ladder=ladder, clock=clock)
    account = SqlAccount(db)
    outbox = SqlOutbox(db)
    return AccountJobs(
        expiry=ExpiryWatch(
            ledger=points,
            lots=account,
            outbox=outbox,
            bonus=rules.bonus,
            clock=clock,
            shop_zone=shop_zone,
        ),
        tiers=TierWatch(
            uow=db, store=account, reader=ledger, ladder=ladder, outbox=outbox, clock=clock
        ),
        gifts=GiftRunner(
            uow=db,
            store=SqlGifts(db),
            ledger=points,
            ladder=ladder,
            outbox=outbox,
            clock=clock,
            batch=rules.gifts.batch_size,
        ),
    )
