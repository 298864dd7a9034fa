"""Issue 15, items 14-16: quiet periodic jobs, one-line start-up errors, a fast --help."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from scenarios.clock import FixedClock
from scenarios.rules import Rules
from storage.database import Database
from storage.ledger import EntryKind
from tests.support.seed import member
from tests.support.services import services_for
from tests.test_account_jobs import ledger_for

MOSCOW = ZoneInfo("Europe/Moscow")


async def test_i15_15_periodic_jobs_log_at_info_only_when_they_did_something(
    db: Database, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    rules = Rules()
    jobs = services_for(db, rules=rules, clock=clock, zone=MOSCOW).account_jobs
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


def run_bot(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"BOT_TOKEN", "CONFIG_FILE", "DATABASE_URL", "TELEGRAM_API_BASE", "API_TOKEN"}
    }
    clean |= {"BOT_TOKEN": "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghi", "LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "main.py", *env.pop("ARGS", "").split()],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("refused", "error: cannot reach the database postgresql+asyncpg://postgres@127.0.0.1:"),
        ("no database", 'database "no_such_database_i15" does not exist'),
        ("telegram", "error: cannot reach the Telegram Bot API at http://127.0.0.1:"),
        ("migrate refused", "error: cannot reach the database postgresql+asyncpg://"),
    ],
)
def test_i15_14_an_unreachable_database_or_telegram_is_one_line_and_exit_2(
    tmp_path: Path, case: str, expected: str
) -> None:
    port = free_port()  # nothing listens there
    sqlite = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    env = {
        "refused": {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/test"},
        "no database": {
            "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/no_such_database_i15"
        },
        "telegram": {"DATABASE_URL": sqlite, "TELEGRAM_API_BASE": f"http://127.0.0.1:{port}"},
        "migrate refused": {
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/test",
            "ARGS": "migrate",
        },
    }[case]
    if case == "no database":
        try:
            socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
        except OSError:
            if os.environ.get("CI") == "true":
                raise
            pytest.skip("no PostgreSQL server at 127.0.0.1:5432 to refuse the database")
    done = run_bot(tmp_path, **env)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
