"""Periodic jobs: a few ticks that claim due rows from the database, never a job per customer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.account_jobs import AccountJobs
from bot.broadcast_progress import BroadcastProgress
from bot.rating_expiry import RatingExpiry
from bot.reminders import ReminderSweeper
from scenarios.birthdays import BirthdayGifts
from scenarios.clock import Clock
from scenarios.referrals import Referrals
from scenarios.rules import Rules
from storage.fsm import SqlFsmStates
from storage.outbox import SqlOutbox

log = logging.getLogger(__name__)

HOUSEKEEPING_EVERY = timedelta(hours=1)
# Birthdays are by the day (shop's zone); hourly catches the new day soon after midnight.
BIRTHDAY_GIFTS_EVERY = timedelta(hours=1)
LEARN_EVERY = timedelta(days=1)  # per-product intervals learned from purchases
RATING_EXPIRY_EVERY = timedelta(minutes=1)


def counted(job: Callable[[], Awaitable[int]], message: str) -> Callable[[], Awaitable[None]]:
    """A job that logs how much it did, and stays quiet when it did nothing."""

    async def run() -> None:
        done = await job()
        if done:
            log.info(message, done)

    return run


def create_scheduler(
    *,
    rules: Rules,
    clock: Clock,
    fsm_states: SqlFsmStates | None,
    outbox: SqlOutbox,
    broadcast_progress: BroadcastProgress,
    account_jobs: AccountJobs | None = None,
    referrals: Referrals | None = None,
    birthdays: BirthdayGifts | None = None,
    reminders: ReminderSweeper | None = None,
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
    if account_jobs is not None:
        # Expiries, expiry warnings, rolling-window tier checks and gift batches.
        scheduler.add_job(
            account_jobs.tick,
            "interval",
            seconds=rules.scheduler.tick_seconds,
            id="account",
        )
    if referrals is not None:
        scheduler.add_job(
            counted(referrals.reward_due, "rewarded %d referral(s)"),
            "interval",
            # Rewards wait out days of a return window; a few minutes late is on time.
            seconds=rules.referral.check_every_minutes * 60,
            id="referral-rewards",
        )
    if birthdays is not None:
        scheduler.add_job(
            counted(birthdays.tick, "gave %d birthday gift(s)"),
            "interval",
            seconds=BIRTHDAY_GIFTS_EVERY.total_seconds(),
            id="birthday-gifts",
            next_run_time=datetime.now(UTC),
        )
    if reminders is not None:
        scheduler.add_job(
            reminders.tick,
            "interval",
            seconds=rules.reminders.tick_seconds,
            id="reminder-sweep",
        )
        scheduler.add_job(
            reminders.learn,
            "interval",
            seconds=LEARN_EVERY.total_seconds(),
            id="reminder-learned-intervals",
            next_run_time=datetime.now(UTC),
        )
    if rating_expiry is not None:
        scheduler.add_job(
            rating_expiry.tick,
            "interval",
            seconds=max(RATING_EXPIRY_EVERY.total_seconds(), rules.scheduler.tick_seconds),
            id="rating-expiry",
        )
    return scheduler
