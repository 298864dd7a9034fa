"""Periodic jobs: a few ticks that claim due rows from the database, never a job per customer."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.broadcast_progress import BroadcastProgress
from bot.rating_expiry import RatingExpiry
from scenarios.clock import Clock
from scenarios.rules import Rules
from storage.fsm import SqlFsmStates
from storage.outbox import SqlOutbox

log = logging.getLogger(__name__)

HOUSEKEEPING_EVERY = timedelta(hours=1)
RATING_EXPIRY_EVERY = timedelta(minutes=1)


def create_scheduler(
    *,
    rules: Rules,
    clock: Clock,
    fsm_states: SqlFsmStates | None,
    outbox: SqlOutbox,
    broadcast_progress: BroadcastProgress,
    rating_expiry: RatingExpiry | None = None,
) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(
        timezone=UTC,
        # A tick that overran or was missed while the process slept runs once, not N times.
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
    )
    if fsm_states is not None:
        idle = timedelta(days=rules.conversations.wizard_idle_days)

        async def forget_idle_wizards() -> None:
            forgotten = await fsm_states.purge_idle(idle_since=clock.now() - idle)
            if forgotten:
                log.info("forgot %d wizard(s) idle for %s", forgotten, idle)

        scheduler.add_job(
            forget_idle_wizards,
            "interval",
            seconds=HOUSEKEEPING_EVERY.total_seconds(),
            id="forget-idle-wizards",
            next_run_time=datetime.now(UTC),
        )

    async def recover_lapsed_claims() -> None:
        # With several processes, one that died leaves claims only others can settle.
        requeued, unknown = await outbox.recover(now=clock.now())
        if requeued or unknown:
            log.warning(
                "outbox: %d lapsed claim(s) requeued, %d in-flight message(s) marked unknown",
                requeued,
                unknown,
            )

    scheduler.add_job(
        recover_lapsed_claims,
        "interval",
        seconds=max(rules.delivery.lease_seconds / 2, rules.scheduler.tick_seconds),
        id="recover-lapsed-claims",
    )
    scheduler.add_job(
        broadcast_progress.tick,
        "interval",
        seconds=rules.broadcasts.progress_every_seconds,
        id="broadcast-progress",
    )
    if rating_expiry is not None:
        scheduler.add_job(
            rating_expiry.tick,
            "interval",
            seconds=max(RATING_EXPIRY_EVERY.total_seconds(), rules.scheduler.tick_seconds),
            id="rating-expiry",
        )
    return scheduler
