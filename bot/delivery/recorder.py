"""Group commit for send outcomes: many finished messages, one database transaction."""

from __future__ import annotations

import asyncio
import logging

from scenarios.clock import Clock
from storage.outbox import Outcome, SqlOutbox

log = logging.getLogger(__name__)

# How long the first outcome waits for company before its group is written.
GROUP_WINDOW = 0.005


class OutcomeRecorder:
    """Collects outcomes and writes them together, one transaction at a time.

    While a group is being written the next one gathers, so the busier the database, the
    larger the groups (and the fewer the transactions competing with "sending" marks).
    ``record`` returns once the outcome is committed, so a sender that frees its in-flight slot
    afterwards never has more unrecorded messages than slots.
    """

    def __init__(self, outbox: SqlOutbox, clock: Clock, worker: str) -> None:
        self._outbox = outbox
        self._worker = worker
        self._clock = clock
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
            try:
                await self._outbox.record(
                    outcomes=group, worker=self._worker, now=self._clock.now()
                )
            except Exception as error:
                log.exception("writing %d send outcome(s) failed", len(group))
                committed.set_exception(error)
            else:
                committed.set_result(None)
        self._writer = None


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
