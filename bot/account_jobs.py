"""The periodic work of the points program: expiries and their warnings, tiers, gift batches
(built in bot/services.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from scenarios.expiry_watch import ExpiryWatch
from scenarios.gifts import GiftRunner
from scenarios.tier_watch import TierWatch
from storage.availability import is_unavailable

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
