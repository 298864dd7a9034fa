"""Real databases for tests: a fresh SQLite file, or a fresh schema on the PostgreSQL server.

Locally a missing PostgreSQL skips its cases with the reason shown; on CI (CI=true) it fails.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.database import Database
from storage.migrate import migrate

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
ON_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

_checked: dict[str, str | None] = {}  # url -> why it cannot be used (None: it can)


async def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it can (checked once per run)."""
    if POSTGRES_URL not in _checked:
        probe = Database(POSTGRES_URL)
        try:
            async with asyncio.timeout(5):
                async with probe.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
            _checked[POSTGRES_URL] = None
        except Exception as error:  # any failure to connect means "not here"
            _checked[POSTGRES_URL] = f"PostgreSQL at {POSTGRES_URL} is not reachable: {error!r}"
        finally:
            await probe.close()
    return _checked[POSTGRES_URL]


async def require_postgres() -> None:
    problem = await postgres_problem()
    if problem is None:
        return
    if ON_CI:
        pytest.fail(f"CI=true but {problem}")
    pytest.skip(problem)


@asynccontextmanager
async def postgres_database(*, migrated: bool = True) -> AsyncIterator[Database]:
    """A database in a schema of its own, dropped afterwards, so tests never see each other."""
    await require_postgres()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = Database(POSTGRES_URL)
    async with admin.engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    # strict: a write in a read-only handler, or a request sent inside a transaction block,
    # fails the test instead of logging a warning.
    db = Database(
        POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}}, strict=True
    )
    try:
        if migrated:
            await migrate(db)
        yield db
    finally:
        await db.close()
        async with admin.engine.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.close()


@asynccontextmanager
async def sqlite_database(path: Path, *, migrated: bool = True) -> AsyncIterator[Database]:
    db = Database(f"sqlite:///{path}", strict=True)
    try:
        if migrated:
            await migrate(db)
        yield db
    finally:
        await db.close()
