"""Group commit for send outcomes: many finished messages, one database transaction."""

from __future__ import annotations

import asyncio

from scenarios.clock import Clock
from storage.outbox import Outcome, SqlOutbox

# How long the first outcome waits for company before its group is written.
GROUP_WINDOW = 0.005


class OutcomeRecorder:
    """Collects outcomes for a few milliseconds and writes them together.

    ``record`` returns once the outcome is committed, so a sender that frees its in-flight slot
    afterwards never has more unrecorded messages than slots.
    """

    def __init__(self, outbox: SqlOutbox, clock: Clock, worker: str) -> None:
        self._outbox = outbox
        self._worker = worker
        self._clock = clock
        self._buffer: list[Outcome] = []
        self._flush: asyncio.Task[None] | None = None

    async def record(self, outcome: Outcome) -> None:
        await asyncio.shield(self._join(outcome))

    def add(self, outcome: Outcome) -> None:
        """Record without waiting (policy decisions made while dispatching)."""
        self._join(outcome)

    async def drain(self) -> None:
        """Wait until everything added so far is written."""
        while self._flush is not None:
            await asyncio.shield(self._flush)

    def _join(self, outcome: Outcome) -> asyncio.Task[None]:
        self._buffer.append(outcome)
        if self._flush is None:
            self._flush = asyncio.create_task(self._write_soon(), name="outbox-outcomes")
        return self._flush

    async def _write_soon(self) -> None:
        await asyncio.sleep(GROUP_WINDOW)
        batch, self._buffer = self._buffer, []
        self._flush = None  # outcomes arriving from now on form the next group
        await self._outbox.record(outcomes=batch, worker=self._worker, now=self._clock.now())
