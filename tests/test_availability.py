"""An outage is said once even when the database flaps and a part goes quiet in between.

Found by CI on the end-to-end test that kills PostgreSQL's backends for 2 s: the outbox
outcomes failed, then succeeded, the sender spent over a second on Telegram without touching
the database, "back" was said, and the sender's next write met a killed backend: two outages
in the log for one.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy.exc import OperationalError

from bot.scheduler import resilient
from storage.availability import Availability

AWAY = "database unavailable"
BACK = "database is back"


def _killed() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionResetError("terminating connection"))


def _said(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)


async def test_a_part_quiet_for_a_second_and_a_half_between_failures_is_one_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="storage.database")
    health = Availability()
    health.failed("outbox outcomes", _killed())
    health.ok("outbox outcomes")
    await asyncio.sleep(1.5)  # the sender is busy with Telegram meanwhile
    health.failed("outbox sender", _killed())
    health.ok("outbox sender")
    assert (_said(caplog, AWAY), _said(caplog, BACK)) == (1, 0)
    await asyncio.sleep(3.2)
    assert (_said(caplog, AWAY), _said(caplog, BACK)) == (1, 1)


async def test_back_is_said_once_nothing_failed_for_the_settle_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="storage.database")
    health = Availability(settle=0.2)
    health.failed("reminders", _killed())
    assert health.away
    health.ok("reminders")
    await asyncio.sleep(0.4)
    assert not health.away
    assert (_said(caplog, AWAY), _said(caplog, BACK)) == (1, 1)


async def test_a_job_that_meets_another_error_after_an_outage_does_not_keep_the_process_away(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its first try met the database away, its retry a bug: it is not retrying any more (its
    next tick tries again, maybe in an hour), so the rest of the process finding the database
    again is enough for "back"."""
    caplog.set_level(logging.WARNING, logger="storage.database")
    health = Availability(settle=0.2)
    tries = 0

    async def job() -> None:
        nonlocal tries
        tries += 1
        if tries == 1:
            raise _killed()
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        await resilient(job, "birthdays", health, budget=5.0)()
    health.ok("outbox sender")
    await asyncio.sleep(0.4)
    assert not health.away
    assert (_said(caplog, AWAY), _said(caplog, BACK)) == (1, 1)
