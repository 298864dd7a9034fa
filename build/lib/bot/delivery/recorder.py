"""Group commit for send outcomes: many finished messages, one database transaction."""

from __future__ import annotations

import asyncio
import logging
import time

from scenarios.clock import Clock
from storage.availability import Availability, Backoff
from storage.outbox import Outcome, SqlOutbox

log = logging.getLogger(__name__)

# How long the first outcome waits for company before its group is written.
GROUP_WINDOW = 0.005
_WHO = "outbox outcomes"


class OutcomeRecorder:
    """Collects outcomes and writes them together, one transaction at a time.

    While a group is being written the next one gathers, so the busier the database, the
    larger the groups (and the fewer the transactions competing with "sending" marks).
    ``record`` returns once the outcome is committed, so a sender that frees its in-flight slot
    afterwards never has more unrecorded messages than slots.

    A group the database refuses (it is away) is written again until it goes in: outcomes are
    idempotent, and one lost would leave a sent message "sending" and then "unknown".
    """

    def __init__(
        self,
        outbox: SqlOutbox,
        clock: Clock,
        worker: str,
        *,
        availability: Availability | None = None,
    ) -> None:
        self._outbox = outbox
        self._worker = worker
        self._clock = clock
        self._availability = availability or Availability()
        self._give_up_at: float | None = None
        self._buffer: list[Outcome] = []
        self._committed: asyncio.Future[None] | None = None  # resolves when the buffer is written
        self._writer: asyncio.Task[None] | None = None

    async def record(self, outcome: Outcome) -> None:
        await asyncio.shield(self._join(outcome))

    def add(self, outcome: Outcome) -> None:
        """Record without waiting (policy decisions made while dispatching)."""
        self._join(outcome)

    async def drain(self) -> None:
        """Wait until everything added so far is written."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    def give_up_after(self, seconds: float) -> None:
        """Stopping: a group the database still refuses after ``seconds`` is given up."""
        self._give_up_at = time.monotonic() + seconds

    def _join(self, outcome: Outcome) -> asyncio.Future[None]:
        self._buffer.append(outcome)
        if self._committed is None:
            self._committed = asyncio.get_running_loop().create_future()
            # Whoever waits sees a failure; for outcomes added without waiting it is logged.
            self._committed.add_done_callback(_retrieve)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_groups(), name="outbox-outcomes")
        return self._committed

    async def _write_groups(self) -> None:
        await asyncio.sleep(GROUP_WINDOW)
        while self._buffer:
            group, committed = self._buffer, self._committed
            self._buffer, self._committed = [], None
            assert committed is not None
            error = await self._write(group)
            if error is None:
                committed.set_result(None)
            else:
                log.error(
                    "writing %d send outcome(s) failed; those messages stay in flight and are "
                    "reported unknown: %s",
                    len(group),
                    error,
                )
                committed.set_exception(error)
        self._writer = None

    async def _write(self, group: list[Outcome]) -> Exception | None:
        """Write the group, again and again while the database refuses; None once written."""
        backoff = Backoff()
        while True:
            try:
                await self._outbox.record(
                    outcomes=group, worker=self._worker, now=self._clock.now()
                )
            except Exception as error:
                self._availability.failed(_WHO, error)
                if self._give_up_at is not None and time.monotonic() >= self._give_up_at:
                    return error
                await asyncio.sleep(backoff.step())
                continue
            self._availability.ok(_WHO)
            return None


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
