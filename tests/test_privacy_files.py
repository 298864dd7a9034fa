"""The bot's files: the data folder and the SQLite files only the bot's user can read."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storage.database import Database
from storage.migrate import migrate
from storage.schema import customers

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A umask that would leave files world-readable (0644) and folders open (0755)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def companions(folder: Path) -> dict[str, int]:
    return {p.name: mode(p) for p in folder.glob("bot.sqlite3-*")}


async def test_i18_4_the_data_folder_is_0700_and_the_database_files_0600(
    tmp_path: Path, loose_umask: None
) -> None:
    path = tmp_path / "data" / "bot.sqlite3"
    db = Database(f"sqlite:///{path}")
    try:
        await migrate(db)
        async with db.transaction() as conn:
            await conn.execute(
                customers.insert().values(
                    telegram_id=1, created_at=NOW, last_seen_at=NOW, first_name="Anna"
                )
            )
        files = sorted(p.name for p in path.parent.iterdir())
        assert files == ["bot.sqlite3", "bot.sqlite3-shm", "bot.sqlite3-wal"]
        assert mode(path.parent) == 0o700
        assert {name: mode(path.parent / name) for name in files} == dict.fromkeys(files, 0o600)
    finally:
        await db.close()


async def test_i18_4_files_left_readable_by_an_older_version_are_closed_on_start(
    tmp_path: Path, loose_umask: None
) -> None:
    path = tmp_path / "bot.sqlite3"
    db = Database(f"sqlite:///{path}")
    await migrate(db)
    await db.close()
    backup = tmp_path / "bot.sqlite3.bak"
    backup.write_bytes(path.read_bytes())
    for file in (path, backup):
        file.chmod(0o644)
    db = Database(f"sqlite:///{path}")
    try:
        await db.ping()
        assert mode(path) == 0o600
        assert mode(backup) == 0o600
        assert companions(tmp_path) == {"bot.sqlite3-shm": 0o600, "bot.sqlite3-wal": 0o600}
    finally:
        await db.close()
