"""A stop signal always ends the process: a part that hangs is cancelled at the deadline and
the log shows where it waited; parts that finish in time are left alone."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.stopping import StopDeadline


async def waits_for_a_lock_nobody_releases(lock: asyncio.Lock, cancelled: list[bool]) -> None:
    try:
        async with lock:
            pass
    except asyncio.CancelledError:
        cancelled.append(True)
        raise


async def test_a_part_that_hangs_is_cancelled_at_the_deadline_and_the_log_says_where(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lock = asyncio.Lock()
    await lock.acquire()
    cancelled: list[bool] = []
    loop = asyncio.get_running_loop()
    started = loop.time()

    await StopDeadline(0.3).finish(
        "the outbox sender", waits_for_a_lock_nobody_releases(lock, cancelled)
    )

    assert cancelled == [True]
    assert 0.3 <= loop.time() - started < 1.0
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = record.getMessage()
    assert message.startswith("the outbox sender did not stop within 0.3 s of the stop signal")
    assert "waits_for_a_lock_nobody_releases" in message
    assert "Traceback" not in message


async def test_parts_that_finish_in_time_give_their_result_or_their_error() -> None:
    async def settles() -> int:
        await asyncio.sleep(0.01)
        return 7

    async def fails() -> None:
        raise RuntimeError("the database is away")

    deadline = StopDeadline(2.0)
    assert await deadline.finish("settles", settles()) == 7
    with pytest.raises(RuntimeError, match="away"):
        await deadline.finish("fails", fails())


async def test_the_deadline_is_shared_a_later_part_gets_only_what_is_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deadline = StopDeadline(0.3)
    await deadline.finish("first", asyncio.sleep(10))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await deadline.finish("second", asyncio.sleep(10))
    assert loop.time() - started < 0.2
    errors = [r.getMessage().split(" did not stop")[0] for r in caplog.records]
    assert errors == ["first", "second"]
