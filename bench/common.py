"""Shared by the benchmarks: which backends to measure, and a fresh database on each."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TypeVar

from storage.database import Database
from tests.support.databases import postgres_database, postgres_problem, sqlite_database

T = TypeVar("T")


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


async def per_second(
    work: Callable[[T], Awaitable[object]], items: Sequence[T], *, concurrency: int
) -> float:
    """Items handled per second, ``concurrency`` at a time (like several requests in flight)."""
    queue = list(items)
    started = time.perf_counter()

    async def worker() -> None:
        while queue:
            await work(queue.pop())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(items) / (time.perf_counter() - started)
