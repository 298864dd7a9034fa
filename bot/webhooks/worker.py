"""The inbox worker: takes kept deliveries and maps them into the order desk, one at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from scenarios.clock import Clock
from scenarios.orders import OrderProblem
from scenarios.webhooks.model import MappingProblem, Shop
from scenarios.webhooks.platforms import read_delivery
from scenarios.webhooks.sync import NotYet, Result, StoreSync
from storage.availability import is_unavailable
from storage.database import Database
from storage.inbox import InboxRow, InboxState, SqlInbox

log = logging.getLogger(__name__)


class InboxWorker:
    """Runs beside the bot. Each delivery is taken, applied to the order desk and marked done
    in one transaction, so a crash anywhere (kill -9 after the 200) rolls all of it back and
    the delivery is still due when a worker starts again: it acts exactly once."""

    def __init__(
        self,
        *,
        db: Database,
        inbox: SqlInbox,
        sync: StoreSync,
        shop: Shop,
        clock: Clock,
        idle_poll: float = 2.0,
        max_attempts: int = 6,
        retry_after: timedelta = timedelta(seconds=30),
    ) -> None:
        self._db = db
        self._inbox = inbox
        self._sync = sync
        self._shop = shop
        self._clock = clock
        self._idle_poll = idle_poll
        self._max_attempts = max_attempts
        self._retry_after = retry_after
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """A delivery was kept: look at once instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        log.info("webhook inbox worker started")
        while not self._stopping:
            # Cleared before looking: a wake during the round makes the wait below return.
            self._wake.clear()
            try:
                done = await self.drain()
            except Exception as error:
                if is_unavailable(error):
                    self._db.availability.failed("webhooks", error)
                else:
                    log.exception("webhook inbox worker: a round failed")
                done = 0
            if done == 0 and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_poll)
        log.info("webhook inbox worker stopped")

    async def drain(self) -> int:
        """Process what is due now; returns how many deliveries were taken."""
        taken = 0
        while not self._stopping and await self.process_next():
            taken += 1
        # Also when nothing was due: a worker that failed during an outage and then finds an
        # empty inbox must not keep the process "away" (the operator would never read "back").
        self._db.availability.ok("webhooks")
        return taken

    async def process_next(self) -> bool:
        """Take the oldest due delivery and apply it; False when none is due."""
        now = self._clock.now()
        row: InboxRow | None = None
        try:
            # A unit of work, as an update's: on SQLite its write transaction takes turns with
            # the other writers instead of queueing ahead of them, so the routes' one-row
            # inserts (the 200 the platform waits for) never wait behind a run of deliveries.
            async with self._db.unit_of_work("write"):
                row = await self._inbox.next_due(now=now)
                if row is None:
                    return False
                mapped = read_delivery(
                    platform=row.platform, topic=row.topic, body=row.body.encode(), shop=self._shop
                )
                outcome = await self._sync.apply(mapped)
                state = InboxState.DONE if outcome.result is Result.DONE else InboxState.SKIPPED
                await self._inbox.finish(id=row.id, state=state, now=now, reason=outcome.note)
            log.info("%s delivery %s: %s", row.platform, row.id, outcome.note)
        except NotYet as wait:
            assert row is not None
            await self._again(row, str(wait))
        except (MappingProblem, OrderProblem) as problem:
            assert row is not None
            reason = (
                f"{problem.code}: {problem.message}"
                if isinstance(problem, OrderProblem)
                else str(problem)
            )
            log.warning("%s delivery %s failed: %s", row.platform, row.id, reason)
            await self._inbox.finish(id=row.id, state=InboxState.FAILED, now=now, reason=reason)
        except Exception as error:
            if row is None or is_unavailable(error):
                raise  # rolled back: the delivery is still due
            log.exception("%s delivery %s could not be processed", row.platform, row.id)
            await self._again(row, f"{type(error).__name__}: {error}")
        return True

    async def _again(self, row: InboxRow, reason: str) -> None:
        now = self._clock.now()
        tries = row.attempts + 1
        if tries >= self._max_attempts:
            await self._inbox.finish(
                id=row.id,
                state=InboxState.FAILED,
                now=now,
                reason=f"{reason} (after {tries} tries)",
            )
            return
        await self._inbox.later(
            id=row.id, not_before=now + self._retry_after * tries, reason=reason, now=now
        )
