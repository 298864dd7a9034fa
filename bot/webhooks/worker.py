"""The inbox worker: takes kept deliveries in batches and maps them into the order desk."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from scenarios.clock import Clock
from scenarios.group_commit import MAX_BATCH
from scenarios.orders import OrderProblem
from scenarios.webhooks.model import Mapped, MappingProblem, Shop
from scenarios.webhooks.platforms import read_delivery
from scenarios.webhooks.sync import NotYet, Outcome, Result, StoreSync
from storage.availability import is_unavailable
from storage.database import Database
from storage.inbox import InboxRow, InboxState, Settled, SqlInbox

log = logging.getLogger(__name__)

# Deliveries per transaction, as many as the API's group commit writes at once: the new orders
# among them go together in a few statements, so a batch holds SQLite's writer about as long.
BATCH = MAX_BATCH


class InboxWorker:
    """Runs beside the bot. A crash anywhere (kill -9 after the 200) leaves every delivery
    not yet marked due when a worker starts again, and each acts exactly once: see
    ``process_batch``."""

    def __init__(
        self,
        *,
        db: Database,
        inbox: SqlInbox,
        sync: StoreSync,
        shop: Shop,
        clock: Clock,
        idle_poll: float = 2.0,
        batch: int = BATCH,
        max_attempts: int = 6,
        retry_after: timedelta = timedelta(seconds=30),
    ) -> None:
        self._db = db
        self._inbox = inbox
        self._sync = sync
        self._shop = shop
        self._clock = clock
        self._idle_poll = idle_poll
        self._batch = batch
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
        """Process what is due now; returns how many deliveries were settled."""
        taken = 0
        while not self._stopping and (settled := await self.process_batch()):
            taken += settled
        # Also when nothing was due: a worker that failed during an outage and then finds an
        # empty inbox must not keep the process "away" (the operator would never read "back").
        self._db.availability.ok("webhooks")
        return taken

    async def process_batch(self) -> int:
        """Take the oldest due deliveries and apply them in one transaction of the main
        database; returns how many were settled (0: none was due).

        Where the inbox shares that database (PostgreSQL), the deliveries are taken and
        marked in the same transaction, so a crash rolls all of it back. In its own SQLite
        file they are marked once the main file has committed: a crash in between leaves
        them due, and applying one again is a no-op (StoreSync is replay-safe)."""
        now = self._clock.now()
        shared = self._inbox.db is self._db
        async with self._db.transaction():
            rows = await self._inbox.due(now=now, limit=self._batch)
            if not rows:
                return 0
            settled = await self._apply(rows, now=now)
            if shared:
                await self._inbox.settle([done for _, done in settled], now=now)
        if not shared:
            await self._inbox.settle([done for _, done in settled], now=now)
        for row, done in settled:
            if done.state in (InboxState.DONE, InboxState.SKIPPED):
                log.info("%s delivery %s: %s", row.platform, row.id, done.reason)
        return len(settled)

    async def _apply(
        self, rows: list[InboxRow], *, now: datetime
    ) -> list[tuple[InboxRow, Settled]]:
        """What became of each delivery applied; those left for the next round are not there."""
        settled: list[tuple[InboxRow, Settled]] = []
        mapped: list[tuple[InboxRow, Mapped]] = []
        for row in rows:
            try:
                delivery = read_delivery(
                    platform=row.platform, topic=row.topic, body=row.body.encode(), shop=self._shop
                )
            except MappingProblem as problem:
                settled.append((row, self._settled(row, problem, now=now)))
                continue
            mapped.append((row, delivery))
        together = await self._together([delivery for _, delivery in mapped])
        for position, recorded in together.items():
            row = mapped[position][0]
            settled.append((row, self._settled(row, recorded, now=now)))
        alone = 0
        for position, (row, delivery) in enumerate(mapped):
            if position in together:
                continue
            if alone and self._db.writers_waiting():
                break  # others wait for SQLite's writer; the rest stay due for the next round
            alone += 1
            result: Outcome | Exception
            try:
                async with self._db.savepoint():
                    result = await self._sync.apply(delivery)
            except Exception as error:
                if is_unavailable(error):
                    raise  # rolled back: every delivery of the batch is still due
                result = error
            settled.append((row, self._settled(row, result, now=now)))
        return settled

    async def _together(self, batch: list[Mapped]) -> dict[int, Outcome | Exception]:
        """The new orders of the batch at once; if that fails as a whole, none of them (the
        worker then applies each on its own)."""
        try:
            async with self._db.savepoint():
                return await self._sync.new_orders_together(batch)
        except Exception as error:
            if is_unavailable(error):
                raise
            log.exception("webhook inbox worker: new orders together failed; one at a time")
            return {}

    def _settled(self, row: InboxRow, result: Outcome | Exception, *, now: datetime) -> Settled:
        if isinstance(result, Outcome):
            state = InboxState.DONE if result.result is Result.DONE else InboxState.SKIPPED
            return Settled(row.id, state, result.note)
        if isinstance(result, NotYet):
            return self._again(row, str(result), now=now)
        if isinstance(result, MappingProblem | OrderProblem):
            reason = (
                f"{result.code}: {result.message}"
                if isinstance(result, OrderProblem)
                else str(result)
            )
            log.warning("%s delivery %s failed: %s", row.platform, row.id, reason)
            return Settled(row.id, InboxState.FAILED, reason)
        log.error(
            "%s delivery %s could not be processed",
            row.platform,
            row.id,
            exc_info=(type(result), result, result.__traceback__),
        )
        return self._again(row, f"{type(result).__name__}: {result}", now=now)

    def _again(self, row: InboxRow, reason: str, *, now: datetime) -> Settled:
        tries = row.attempts + 1
        if tries >= self._max_attempts:
            return Settled(row.id, InboxState.FAILED, f"{reason} (after {tries} tries)")
        return Settled(
            row.id, InboxState.PENDING, reason, not_before=now + self._retry_after * tries
        )
