"""Stopping within a deadline: a part that does not finish in time is cancelled, and the log
says where it was waiting, so a stop signal always ends the process."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# What a part gets to notice it was cancelled once its time is up: a part that ignores even
# that is left behind (asyncio.run cancels it again on its way out).
_AFTER_CANCEL_SECONDS = 1.0


class StopDeadline:
    """One deadline for every part of an orderly stop (the sender settling its last sends, the
    store-webhook worker, the HTTP server, closing connections). A service manager kills a
    process that does not stop (systemd after 90 s by default); stopping ourselves first keeps
    the log's last word ours and the exit status 0."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._at = self._loop.time() + seconds

    def left(self) -> float:
        return max(0.0, self._at - self._loop.time())

    async def finish(self, part: str, awaitable: Awaitable[T]) -> T | None:
        """What ``awaitable`` returns (or raises), if it ends in time; else None, after it was
        cancelled and the log showed where it waited."""
        task = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait({task}, timeout=self.left())
        if task in done:
            return task.result()
        log.error(
            "%s did not stop within %g s of the stop signal; cancelling it where it waits:\n%s",
            part,
            self.seconds,
            where_it_waits(task),
        )
        task.cancel()
        await asyncio.wait({task}, timeout=_AFTER_CANCEL_SECONDS)
        return None


def where_it_waits(task: asyncio.Task[object]) -> str:
    """The chain of awaits the task is suspended in, innermost last."""
    out = io.StringIO()
    task.print_stack(file=out)
    return out.getvalue().rstrip()
