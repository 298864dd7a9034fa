"""A bot that stops lets a periodic job under way finish instead of cancelling it.

Found by CI on the end-to-end outage test: SIGTERM came while the broadcast-progress job was
checking a pooled connection; APScheduler's shutdown cancelled it and logged the
CancelledError as a failed job, with a traceback, on an ordinary stop.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from bot.scheduler import Scheduler, resilient
from storage.availability import Availability


async def test_a_job_under_way_finishes_and_nothing_is_logged_as_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    scheduler = Scheduler(timezone=UTC)
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow_job() -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.set()

    job = resilient(slow_job, "slow", Availability(), budget=1.0, runs=scheduler.runs)
    scheduler.add_job(job, "interval", seconds=60, id="slow", next_run_time=_now())
    scheduler.start()
    await asyncio.wait_for(started.wait(), timeout=5)

    await scheduler.stop()

    assert finished.is_set()
    assert not scheduler.running
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_job_that_outlasts_the_grace_is_cut_off_and_the_stop_ends() -> None:
    scheduler = Scheduler(timezone=UTC)
    started = asyncio.Event()

    async def stuck_job() -> None:
        started.set()
        await asyncio.sleep(3600)

    job = resilient(stuck_job, "stuck", Availability(), budget=1.0, runs=scheduler.runs)
    scheduler.add_job(job, "interval", seconds=60, id="stuck", next_run_time=_now())
    scheduler.start()
    await asyncio.wait_for(started.wait(), timeout=5)

    async with asyncio.timeout(5):
        await scheduler.stop(grace=0.2)
    assert not scheduler.running


def _now() -> datetime:
    return datetime.now(UTC)
