"""Group commit: concurrent calls coalesced into one batch call, each answered after it ends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# A batch call: the items in, each item's result or exception out, in the same order. When it
# raises, no item of the batch took effect (its transaction did not commit).
BatchCall = Callable[[Sequence[Item]], Awaitable[Sequence[Result | Exception]]]

MAX_BATCH = 64  # orders per transaction: a batch holds SQLite's writer for tens of ms at most


class GroupCommit(Generic[Item, Result]):
    """While one batch is being written, the calls that arrive meanwhile wait and then go
    together as the next one. No timer: a call that finds nothing running starts at once, so
    a lone caller waits no longer than before; under load the batches grow by themselves.

    Each caller gets its own item's result, only after the batch call has returned (its
    transaction committed), or the exception that ended the batch, so nothing is answered
    as done that was then rolled back.
    """

    def __init__(self, call: BatchCall[Item, Result], *, max_batch: int = MAX_BATCH) -> None:
        self._call = call
        self._max_batch = max_batch
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="group-commit")
        # A caller that gives up (its client went away) does not cancel the batch: the others
        # in it still get their answers, and its own order is written or not as a whole.
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_consume)
            raise

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                outcomes = await self._call([item for item, _ in batch])
            except Exception as error:  # the batch did not commit: nobody's item took effect
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            except BaseException:  # cancelled (shutdown): the waiting are cancelled too
                for _, future in [*batch, *self._queue]:
                    future.cancel()
                self._queue.clear()
                raise
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)


def _consume(future: asyncio.Future[Any]) -> None:
    """Nobody waits for this answer any more; retrieve it so asyncio does not log it."""
    if not future.cancelled():
        future.exception()
