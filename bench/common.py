"""Shared by the benchmarks: which backends to measure, and a fresh database on each."""

from __future__ import annotations

import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

from storage.database import Database
from tests.support.databases import postgres_database, postgres_problem, sqlite_database


async def backends(*, with_postgres: bool) -> list[str]:
    """SQLite always; PostgreSQL when asked for and reachable (else say why it is left out)."""
    chosen = ["sqlite"]
    if with_postgres:
        problem = await postgres_problem()
        if problem:
            print(f"postgresql: skipped ({problem})")
        else:
            chosen.append("postgresql")
    return chosen


async def fresh_database(stack: AsyncExitStack, backend: str) -> Database:
    """A migrated, empty database that lives as long as ``stack``."""
    if backend == "sqlite":
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        return await stack.enter_async_context(sqlite_database(folder / "bench.sqlite3"))
    return await stack.enter_async_context(postgres_database())
