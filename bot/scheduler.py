"""Periodic jobs: a few ticks that claim due rows from the database, never a job per customer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.account_jobs import AccountJobs
from bot.broadcast_progress import BroadcastProgress
from bot.rating_expiry import RatingExpiry
from bot.reminders import ReminderSweeper
from scenarios.birthdays import BirthdayGifts
from scenarios.clock import Clock
from scenarios.referrals import Referrals
from scenarios.rules import Rules
from storage.availability import Availability, Backoff, is_unavailable
from storage.fsm import SqlFsmStates
from storage.outbox import SqlOutbox
from storage.qr_tokens import SqlQrScans

log = logging.getLogger(__name__)

HOUSEKEEPING_EVERY = timedelta(hours=1)
# Birthdays are by the day (shop's zone); hourly catches the new day soon after midnight.
BIRTHDAY_GIFTS_EVERY = timedelta(hours=1)
LEARN_EVERY = timedelta(days=1)  # per-product intervals learned from purchases
RATING_EXPIRY_EVERY = timedelta(minutes=1)
# A till scan that spent nothing is kept this long after its visit window, then forgotten.
QR_SCANS_KEPT = timedelta(days=1)
# A job that meets the database away retries within its tick for at most this long.
RETRY_AT_MOST = timedelta(minutes=2)


def counted(job: Callable[[], Awaitable[int]], message: str) -> Callable[[], Awaitable[None]]:
    """A job that logs how much it did, and stays quiet when it did nothing."""

    async def run() -> None:
        done = await job()
        if done:
            log.info(message, done)

    return run


# How long a stopping bot lets the jobs under way finish before APScheduler cancels them.
JOBS_STOP_GRACE = 5.0


class Scheduler(AsyncIOScheduler):  # type: ignore[misc]  # APScheduler 3 ships no types
    """APScheduler's, stopping without cutting a job off in the middle of a run."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.runs: set[asyncio.Task[Any]] = set()  # job runs under way (``resilient`` adds)

    async def stop(self, *, grace: float = JOBS_STOP_GRACE) -> None:
        """No new runs; those under way finish (within ``grace``), then APScheduler stops.
        Cancelled mid-run, a job's CancelledError is logged by APScheduler as a failed job
        with its traceback, on an ordinary stop."""
        if not self.running:
            return
        self.pause()
        under_way = [run for run in self.runs if not run.done()]
        if under_way:
            await asyncio.wait(under_way, timeout=grace)
        self.shutdown(wait=False)
        await asyncio.sleep(0)  # APScheduler's asyncio shutdown runs at the loop's next turn


def resilient(
    job: Callable[[], Awaitable[Any]],
    name: str,
    availability: Availability,
    *,
    budget: float,
    runs: set[asyncio.Task[Any]] | None = None,
) -> Callable[[], Awaitable[None]]:
    """A job that meets the database away or locked waits and tries again within its tick
    instead of failing it. The outage is logged once for the process, not per job per tick;
    every step of a job is a bounded, idempotent batch, so running it again is safe."""
    who = f"job {name}"

    async def run() -> None:
        task = asyncio.current_task()
        if runs is not None and task is not None:
            runs.add(task)
            task.add_done_callback(runs.discard)
        backoff = Backoff()
        deadline = time.monotonic() + budget
        while True:
            try:
                await job()
            except Exception as error:
                if not is_unavailable(error):
                    # A real failure: APScheduler logs it with its traceback. If an earlier try
                    # met the database away, this job no longer retries: left "failing", it
                    # would keep the process "away" until its next tick, maybe hours off.
                    availability.gave_up(who)
                    raise
                availability.failed(who, error)
                wait = backoff.step()
                if time.monotonic() + wait > deadline:
                    availability.gave_up(who)  # its next tick tries again
                    return
                await asyncio.sleep(wait)
                continue
            availability.ok(who)
            return

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
    availability: Availability | None = None,
    qr_scans: SqlQrScans | None = None,
) -> Scheduler:
    scheduler = Scheduler(
        timezone=UTC,
        # A tick that overran or was missed while the process slept runs once, not N times.
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
    )
    health = availability or Availability()

    def add_job(job: Callable[[], Awaitable[Any]], *, seconds: float, id: str, **more: Any) -> None:
        # Retrying stops before the next tick is due (APScheduler would skip it and say so).
        budget = min(0.9 * seconds, RETRY_AT_MOST.total_seconds())
        scheduler.add_job(
            resilient(job, id, health, budget=budget, runs=scheduler.runs),
            "interval",
            seconds=seconds,
            id=id,
            **more,
        )

    def forget_hourly(id: str, forget: Callable[[], Awaitable[int]], message: str) -> None:
        """Housekeeping: each hour (and at start) forget what has outlived its use."""
        add_job(
            counted(forget, message),
            seconds=HOUSEKEEPING_EVERY.total_seconds(),
            id=id,
            next_run_time=datetime.now(UTC),
        )

    if fsm_states is not None:
        idle = timedelta(days=rules.conversations.wizard_idle_days)
        states = fsm_states
        forget_hourly(
            "forget-idle-wizards",
            lambda: states.purge_idle(idle_since=clock.now() - idle),
            f"forgot %d wizard(s) idle for {idle}",
        )

    if qr_scans is not None:
        kept = timedelta(minutes=rules.webapp.visit_minutes) + QR_SCANS_KEPT
        scans = qr_scans
        forget_hourly(
            "forget-old-qr-scans",
            lambda: scans.forget_unused(scanned_before=clock.now() - kept),
            f"forgot %d till scan(s) older than {kept}",
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

    add_job(
        recover_lapsed_claims,
        seconds=max(rules.delivery.lease_seconds / 2, rules.scheduler.tick_seconds),
        id="recover-lapsed-claims",
    )
    add_job(
        broadcast_progress.tick,
        seconds=rules.broadcasts.progress_every_seconds,
        id="broadcast-progress",
    )
    if account_jobs is not None:
        # Expiries, expiry warnings, rolling-window tier checks and gift batches.
        add_job(
            account_jobs.tick,
            seconds=rules.scheduler.tick_seconds,
            id="account",
        )
    if referrals is not None:
        add_job(
            counted(referrals.reward_due, "rewarded %d referral(s)"),
            # Rewards wait out days of a return window; a few minutes late is on time.
            seconds=rules.referral.check_every_minutes * 60,
            id="referral-rewards",
        )
    if birthdays is not None:
        add_job(
            counted(birthdays.tick, "gave %d birthday gift(s)"),
            seconds=BIRTHDAY_GIFTS_EVERY.total_seconds(),
            id="birthday-gifts",
            next_run_time=datetime.now(UTC),
        )
    if reminders is not None:
        add_job(
            reminders.tick,
            seconds=rules.reminders.tick_seconds,
            id="reminder-sweep",
        )
        add_job(
            reminders.learn,
            seconds=LEARN_EVERY.total_seconds(),
            id="reminder-learned-intervals",
            next_run_time=datetime.now(UTC),
        )
    if rating_expiry is not None:
        add_job(
            rating_expiry.tick,
            seconds=max(RATING_EXPIRY_EVERY.total_seconds(), rules.scheduler.tick_seconds),
            id="rating-expiry",
        )
    return scheduler
