"""Issue 15, items 14-16: quiet periodic jobs, one-line start-up errors, a fast --help."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.account_jobs import create_account_jobs
from scenarios.clock import FixedClock
from scenarios.rules import Rules
from storage.database import Database
from storage.ledger import EntryKind
from tests.support.seed import member
from tests.test_account_jobs import ledger_for

MOSCOW = ZoneInfo("Europe/Moscow")


async def test_i15_15_periodic_jobs_log_at_info_only_when_they_did_something(
    db: Database, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    rules = Rules()
    jobs = create_account_jobs(db=db, rules=rules, clock=clock, shop_zone=MOSCOW)
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            await jobs.tick()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == []

    anna = await member(db, 1001)
    await ledger_for(db, clock, rules).grant(
        customer_id=anna, kind=EntryKind.GIFT, source="g", points=10, reason="g"
    )
    caplog.clear()
    clock.advance(timedelta(days=rules.bonus.points_ttl_days + 1))
    with caplog.at_level(logging.INFO):
        await jobs.tick()
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert logged == ["account job expiry: ExpiryTick(expired=1, warned=0)"]


ROOT = Path(__file__).resolve().parent.parent
# Runs main.py --help as `python main.py --help` would, then lists the heavy packages loaded.
_HELP_PROBE = """
import runpy, sys
sys.argv = ["main.py", "--help"]
try:
    runpy.run_path("main.py", run_name="__main__")
except SystemExit as done:
    code = done.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"aiogram", "sqlalchemy", "alembic",
    "aiohttp", "apscheduler", "jinja2", "babel", "asyncpg", "aiosqlite", "redis"})
print("EXIT", code, "HEAVY", ",".join(heavy), file=sys.stderr)
"""


def test_i15_16_help_answers_without_importing_the_bot() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"BOT_TOKEN", "CONFIG_FILE"}}
    done = subprocess.run(
        [sys.executable, "-c", _HELP_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "usage: python main.py" in done.stdout
    assert "BOT_TOKEN" in done.stdout and "import-orders" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == "EXIT 0 HEAVY", done.stderr
