"""The database handle: engine per backend, SQLite tuning, and one transaction per unit of work."""

from __future__ import annotations

import asyncio
import glob
import os
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

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/bot.sqlite3"
PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600

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
        self._maintenance: set[asyncio.Task[None]] = set()
        if self.backend == "sqlite":
            _ensure_sqlite_directory(self.url)
            _tune_sqlite(self.engine, busy_timeout_ms, foreign_keys=foreign_keys)
            _keep_sqlite_files_private(self.engine, _sqlite_path(self.url))

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

    @property
    def in_transaction(self) -> bool:
        current = self._ambient.get()
        return current is not None and current.open

    async def ping(self) -> None:
        """One trivial round trip, for health checks; raises if the database is unreachable."""
        async with self.read() as conn:
            await conn.execute(select(literal(1)))

    def checkpoint_soon(self) -> None:
        """Once the current write transaction has committed, fold SQLite's WAL into the main
        file and truncate it, so what was just overwritten (an erasure) leaves no old copy in
        the -wal file. Returns at once; ``settle()`` waits for it. No-op on PostgreSQL."""
        if not self.is_sqlite:
            return
        task = asyncio.get_running_loop().create_task(self._checkpoint(), name="wal-checkpoint")
        self._maintenance.add(task)
        task.add_done_callback(self._maintenance.discard)

    async def _checkpoint(self) -> None:
        # The writer lock is held by the transaction that asked for this until it commits;
        # waiting for it orders the checkpoint after that commit. A plain connection, not
        # transaction(): the task inherits the caller's context, whose transaction it must
        # not join.
        async with self._sqlite_writer, self.engine.connect() as connection:
            await connection.run_sync(_wal_checkpoint)

    async def settle(self) -> None:
        """Wait for the maintenance ``checkpoint_soon()`` started."""
        while self._maintenance:
            await asyncio.gather(*self._maintenance, return_exceptions=True)

    async def close(self) -> None:
        await self.settle()
        await self.engine.dispose()


_SQLITE_BEGIN: dict[Mode, str] = {"write": "BEGIN IMMEDIATE", "read": "BEGIN"}


def _sqlite_path(url: str) -> Path | None:
    path = make_url(url).database
    if path and path != ":memory:" and not path.startswith("file:"):
        return Path(path).expanduser()
    return None


def _ensure_sqlite_directory(url: str) -> None:
    """The default ./data/bot.sqlite3 must work on a fresh checkout: create the folder, for
    the bot's user only (0700), and the database file readable by that user alone (0600)."""
    path = _sqlite_path(url)
    if path is None:
        return
    if not path.parent.exists():
        path.parent.mkdir(mode=PRIVATE_DIRECTORY, parents=True, exist_ok=True)
        path.parent.chmod(PRIVATE_DIRECTORY)  # mkdir's mode passes through the umask
    if not path.exists():
        # Created here, not by SQLite, so it never exists with the umask's looser mode; SQLite
        # gives the -wal and -shm files the database file's own mode.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE))
    make_sqlite_files_private(path)


def make_sqlite_files_private(path: Path) -> None:
    """The database file and its -wal, -shm and -journal companions (and any copy named
    like them, e.g. a backup ``bot.sqlite3.bak``) readable and writable by the owner only."""
    for file in [path, *path.parent.glob(f"{glob.escape(path.name)}[-.]*")]:
        try:
            if file.is_file() and file.stat().st_mode & 0o777 != PRIVATE_FILE:
                file.chmod(PRIVATE_FILE)
        except OSError:  # not ours to change (a shared folder): SQLite still works
            continue


def _keep_sqlite_files_private(engine: AsyncEngine, path: Path | None) -> None:
    """After each new connection (the first one creates -wal and -shm): owner-only files."""
    if path is None:
        return

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        make_sqlite_files_private(path)


def _wal_checkpoint(connection: Connection) -> None:
    # On the driver's own cursor: a checkpoint cannot run inside the BEGIN our hook emits.
    cursor = connection.connection.cursor()
    try:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.fetchall()
    finally:
        cursor.close()


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
            # Deleted and overwritten content is zeroed on its page, so an erased phone or name
            # is not left readable in the file's free space.
            "PRAGMA secure_delete=ON",
            f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        statement = connection.get_execution_options().get("sqlite_begin", "BEGIN IMMEDIATE")
        connection.exec_driver_sql(statement)
