"""The database handle: engine per backend, SQLite tuning, and one transaction per unit of work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import event, literal, make_url, select
from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from storage.availability import Availability

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/bot.sqlite3"

_SCHEMES = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


class DatabaseUrlError(ValueError):
    """The database URL names a backend or driver this product does not run on."""


def normalize_database_url(url: str) -> str:
    """Map the accepted spellings of a database URL onto the async drivers we ship."""
    scheme, sep, rest = url.strip().partition("://")
    driver = _SCHEMES.get(scheme.lower())
    if not sep or driver is None:
        raise DatabaseUrlError(
            "expected sqlite:///path/to/file.sqlite3 or postgresql://user@host:5432/dbname"
        )
    if driver.startswith("sqlite") and not rest.startswith("/"):
        raise DatabaseUrlError("a SQLite URL needs three slashes: sqlite:///./data/bot.sqlite3")
    return f"{driver}://{rest}"


@dataclass
class _Transaction:
    connection: AsyncConnection
    open: bool = True


Mode = Literal["write", "read"]


class Database:
    """An engine plus the unit-of-work rule: nested ``transaction()`` calls join the outer one.

    On SQLite every write transaction starts with ``BEGIN IMMEDIATE`` (a deferred one that later
    writes fails with "database is locked" under contention) and, within one process, waits on
    an asyncio lock instead of spinning in ``busy_timeout`` on a worker thread.
    """

    def __init__(
        self,
        url: str,
        *,
        busy_timeout_ms: int = 10_000,
        pool_size: int = 10,
        connect_args: dict[str, Any] | None = None,
        foreign_keys: bool = True,
    ) -> None:
        self.url = normalize_database_url(url)
        self.connect_args = connect_args or {}
        self.backend: Literal["sqlite", "postgresql"] = (
            "sqlite" if self.url.startswith("sqlite") else "postgresql"
        )
        options: dict[str, Any] = {"connect_args": connect_args or {}}
        if self.backend == "postgresql":
            options |= {"pool_size": pool_size, "max_overflow": pool_size, "pool_pre_ping": True}
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        self._ambient: ContextVar[_Transaction | None] = ContextVar("ambient_tx", default=None)
        self._sqlite_writer = asyncio.Lock()
        # Shared by everything on this handle, so an outage is reported once for the process.
        self.availability = Availability()
        if self.backend == "sqlite":
            _ensure_sqlite_directory(self.url)
            _tune_sqlite(self.engine, busy_timeout_ms, foreign_keys=foreign_keys)

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for logs."""
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    @asynccontextmanager
    async def transaction(self, mode: Mode = "write") -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back if it raises.

        Inside an open transaction of this database (same task or a task it spawned) the block
        joins it, so repositories compose into one unit of work without passing connections.
        """
        outer = self._ambient.get()
        if outer is not None and outer.open:
            yield outer.connection
            return
        writer = self._sqlite_writer if self.is_sqlite and mode == "write" else nullcontext()
        async with writer, self.engine.connect() as connection:
            if self.is_sqlite:
                await connection.execution_options(sqlite_begin=_SQLITE_BEGIN[mode])
            tx = _Transaction(connection)
            token = self._ambient.set(tx)
            try:
                async with connection.begin():
                    yield connection
            finally:
                tx.open = False
                self._ambient.reset(token)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[AsyncConnection]:
        """Inside a transaction, a block that can fail alone: its writes are undone, the
        transaction goes on (bulk imports commit many orders at once, rejecting a few)."""
        outer = self._ambient.get()
        if outer is None or not outer.open:
            async with self.transaction() as connection:
                yield connection
            return
        async with outer.connection.begin_nested():
            yield outer.connection

    def read(self) -> Any:
        """A read-only transaction; on SQLite it takes no write lock."""
        return self.transaction("read")

    def writers_waiting(self) -> bool:
        """Whether another task of this process waits for SQLite's write lock: a long writer
        (an import) commits its chunk early so that it waits one statement, not a chunk."""
        return self.is_sqlite and bool(getattr(self._sqlite_writer, "_waiters", None))

    @property
    def in_transaction(self) -> bool:
        current = self._ambient.get()
        return current is not None and current.open

    async def ping(self) -> None:
        """One trivial round trip, for health checks; raises if the database is unreachable."""
        async with self.read() as conn:
            await conn.execute(select(literal(1)))

    async def close(self) -> None:
        await self.engine.dispose()


_SQLITE_BEGIN: dict[Mode, str] = {"write": "BEGIN IMMEDIATE", "read": "BEGIN"}


def _ensure_sqlite_directory(url: str) -> None:
    """The default ./data/bot.sqlite3 must work on a fresh checkout: create the folder."""
    path = make_url(url).database
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _tune_sqlite(engine: AsyncEngine, busy_timeout_ms: int, *, foreign_keys: bool) -> None:
    """WAL for concurrent readers, a busy timeout for other processes, our own BEGIN."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Stop the driver from issuing its own deferred BEGIN; we emit the right one below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            f"PRAGMA busy_timeout={busy_timeout_ms}",
            "PRAGMA synchronous=NORMAL",
            f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        statement = connection.get_execution_options().get("sqlite_begin", "BEGIN IMMEDIATE")
        connection.exec_driver_sql(statement)
