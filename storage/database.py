"""The database handle: engine per backend, SQLite tuning, and one transaction per unit of work."""

from __future__ import annotations

import asyncio
import glob
import logging
import os
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, nullcontext
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
from storage.short_writes import SHORT_BATCH, mark_short_writes
from storage.sqlite_driver import OneTripConnection, OneTripDBAPI
from storage.urls import DEFAULT_DATABASE_URL, DatabaseUrlError, normalize_database_url

# After a write commits on SQLite, the WAL is folded into the main file this much later, once
# for every commit meanwhile (a busy bot commits hundreds of times a second).
WAL_FOLD_DELAY = 0.5

# Below both pools: PostgreSQL's 10 + 10 overflow, SQLAlchemy's 5 + 10 for an SQLite file.
UNIT_CONNECTIONS = 8

PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_DATABASE_URL", "Database", "DatabaseUrlError", "normalize_database_url"]


@dataclass
class _Transaction:
    connection: AsyncConnection
    mode: Mode = "write"
    open: bool = True


Mode = Literal["write", "read"]
# "auto" until the handler is known: reads take no writer, the first write begins a write
# transaction. "write": every transaction the unit begins is a write one (read-then-write stays
# atomic). "read": only read transactions; a write is a defect (ReadOnlyUnitError under strict).
UnitMode = Literal["auto", "write", "read"]


class ReadOnlyUnitError(RuntimeError):
    """A write was asked for inside a read-only unit of work or a read transaction."""


class TransactionInUseError(RuntimeError):
    """Something is about to leave the process while a transaction block is still open."""


class _Unit:
    """One update's unit of work: transactions begin lazily and end at each outgoing request.

    Repositories keep calling ``transaction()``/``read()``; inside a unit those calls join the
    unit's current transaction, or begin one (a read one on SQLite takes no writer).
    ``release()`` commits it before anything leaves the process; the next database use in the
    same unit begins a new one. What was committed stays committed if the update fails later.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self.mode: UnitMode = "auto"
        self.current: _Transaction | None = None
        self.closed = False
        self.depth = 0  # transaction blocks open on the current transaction right now
        self.commits = 0  # write transactions committed so far (tests and logs read it)
        self._stack: AsyncExitStack | None = None
        self._switching = asyncio.Lock()
        # Rows this update read or wrote, for repositories that may reuse them within the
        # update (the FSM row: storage/fsm.py says when that is safe). Written through by
        # their owners; forgotten when anything rolls back.
        self.cache: dict[Any, Any] = {}
        self.failed_commit: BaseException | None = None

    async def enter(self, wanted: Mode) -> AsyncConnection:
        async with self._switching:
            current = self.current
            if current is not None and (current.mode == "write" or wanted == "read"):
                self.depth += 1
                return current.connection
            if wanted == "write" and self.mode == "read":
                self._db.refuse_write("a write inside a read-only unit of work")
            if current is not None:  # a write while a read is open
                if self.depth:
                    # A block still reads on it: upgrade in place (on SQLite, a deferred write).
                    self._db.refuse_write("a write inside an open read transaction block")
                    self.depth += 1
                    return current.connection
                if not self._db.is_sqlite:
                    # PostgreSQL's read and write transactions are the same kind: this one
                    # goes on as a write, without a commit, a checkout and a BEGIN between.
                    current.mode = "write"
                    self.depth += 1
                    return current.connection
                await self._end(commit=True)
            mode: Mode = "write" if "write" in (self.mode, wanted) else "read"
            await self._begin(mode)
            assert self.current is not None
            self.depth += 1
            return self.current.connection

    async def leave(self) -> None:
        """A block is done with the connection. The transaction, read or write, stays open
        for the next block until a request leaves, a write needs a write transaction, or the
        unit ends: the middlewares' and the handler's reads share one BEGIN and one pooled
        connection (one snapshot), instead of one transaction per repository call. A unit
        never waits on Telegram with it: ``release()`` ends it first."""
        async with self._switching:
            self.depth -= 1

    async def set_mode(self, mode: UnitMode) -> None:
        """The handler is known: a read-only one ends a write begun so far (a new customer is
        committed), a writing one ends the reads so that its first use begins a write (on
        PostgreSQL the open read transaction goes on as that write)."""
        async with self._switching:
            self.mode = mode
            current = self.current
            if current is None or self.depth:
                return
            if mode == "write" and current.mode == "read" and not self._db.is_sqlite:
                current.mode = "write"  # on PostgreSQL the same transaction goes on (enter)
            elif (mode == "read" and current.mode == "write") or (
                mode == "write" and current.mode == "read"
            ):
                await self._end(commit=True)

    async def release(self) -> bool:
        """Commit what is open, before something leaves the process; True if it wrote."""
        async with self._switching:
            if self.failed_commit is not None:
                # Requests sent together (asyncio.gather): the first one's commit failed, so
                # none of them may tell the user anything.
                raise self.failed_commit
            current = self.current
            if current is None:
                return False
            if self.depth:
                raise TransactionInUseError(
                    "a Bot API call inside a database transaction block; await it after the block"
                )
            wrote = current.mode == "write"
            await self._end(commit=True)
            return wrote

    async def finish(self, error: BaseException | None) -> None:
        async with self._switching:
            self.closed = True
            self.cache.clear()
            if self.current is not None:
                await self._end(commit=error is None, error=error)

    async def _begin(self, mode: Mode) -> None:
        db = self._db
        stack = AsyncExitStack()
        try:
            await db._unit_slots.acquire()
            stack.callback(db._unit_slots.release)
            if db.is_sqlite and mode == "write":
                await db._sqlite_writer.acquire(behind_others=True)
                stack.callback(db._sqlite_writer.release)
            connection = await stack.enter_async_context(db.engine.connect())
            if db.is_sqlite:
                await connection.execution_options(sqlite_begin=_SQLITE_BEGIN[mode])
            await stack.enter_async_context(connection.begin())
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self.current = _Transaction(connection, mode)

    async def _end(self, *, commit: bool, error: BaseException | None = None) -> None:
        stack, current = self._stack, self.current
        self._stack, self.current = None, None
        assert stack is not None
        assert current is not None
        current.open = False
        if commit:
            try:
                await stack.aclose()  # commits, returns the connection, frees the SQLite writer
            except BaseException as error:
                self.cache.clear()
                self.failed_commit = error
                raise
            if current.mode == "write":
                self.commits += 1
        else:
            self.cache.clear()
            failure = error or RuntimeError("unit of work rolled back")
            await stack.__aexit__(type(failure), failure, failure.__traceback__)


class WriterLock:
    """SQLite's single writer within the process: an asyncio lock, first come first served,
    except that updates' units of work (``behind_others``) take turns with everyone else (an
    API order, the outbox's marks, a job): when both wait, the lock alternates between them,
    so a burst of button presses cannot make a shop's order webhook wait behind all of it.
    """

    def __init__(self) -> None:
        self._held = False
        self._first: deque[asyncio.Future[None]] = deque()
        self._behind: deque[asyncio.Future[None]] = deque()
        self._behind_turn = False

    def locked(self) -> bool:
        return self._held

    def waiting(self) -> int:
        """How many tasks wait for the lock now."""
        return sum(not waiter.done() for waiter in (*self._first, *self._behind))

    async def acquire(self, *, behind_others: bool = False) -> bool:
        queue = self._behind if behind_others else self._first
        if not self._held and not self._first and not self._behind:
            self._held = True
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed the lock just as it was cancelled: pass it on
            elif waiter in queue:
                queue.remove(waiter)
            raise
        return True

    def release(self) -> None:
        if not self._held:
            raise RuntimeError("WriterLock released while not held")
        while self._first or self._behind:
            take_behind = bool(self._behind) and (self._behind_turn or not self._first)
            self._behind_turn = not take_behind
            waiter = (self._behind if take_behind else self._first).popleft()
            if not waiter.done():
                waiter.set_result(None)  # the lock passes on, still held
                return
        self._held = False

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *_: object) -> None:
        self.release()


class Database:
    """An engine plus the unit-of-work rule: nested ``transaction()`` calls join the outer one.

    On SQLite every write transaction starts with ``BEGIN IMMEDIATE`` (a deferred one that later
    writes fails with "database is locked" under contention) and, within one process, waits on
    an asyncio lock instead of spinning in ``busy_timeout`` on a worker thread.

    ``unit_of_work()`` (one per update) begins transactions lazily and lets ``release()`` commit
    them before a request leaves the process. ``strict`` (tests) turns defects such as a write
    in a read-only unit into exceptions instead of log warnings.
    """

    def __init__(
        self,
        url: str,
        *,
        busy_timeout_ms: int = 10_000,
        pool_size: int = 10,
        connect_args: dict[str, Any] | None = None,
        foreign_keys: bool = True,
        strict: bool = False,
        unit_connections: int = UNIT_CONNECTIONS,
    ) -> None:
        self.url = normalize_database_url(url)
        self.connect_args = connect_args or {}
        self.strict = strict
        self.backend: Literal["sqlite", "postgresql"] = (
            "sqlite" if self.url.startswith("sqlite") else "postgresql"
        )
        options: dict[str, Any] = {"connect_args": connect_args or {}}
        if self.backend == "postgresql":
            options |= {"pool_size": pool_size, "max_overflow": pool_size, "pool_pre_ping": True}
        else:
            options["module"] = OneTripDBAPI(after_write=self._fold_wal_soon)
            # A multi-row INSERT's statements stay short enough to run in place.
            options["insertmanyvalues_page_size"] = SHORT_BATCH
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        self._ambient: ContextVar[_Transaction | None] = ContextVar("ambient_tx", default=None)
        self._unit: ContextVar[_Unit | None] = ContextVar("unit_of_work", default=None)
        self._sqlite_writer = WriterLock()
        # Updates' units of work hold at most this many pooled connections at once (each holds
        # one only between its first database use and its next Bot API call), so many updates
        # can wait on Telegram at once while the API, the outbox and the jobs still find a
        # free connection in the pool.
        self._unit_slots = asyncio.Semaphore(unit_connections)
        self._maintenance: set[asyncio.Task[None]] = set()
        self._folding: asyncio.Task[None] | None = None
        # Shared by everything on this handle, so an outage is reported once for the process.
        self.availability = Availability()
        if self.backend == "sqlite":
            _ensure_sqlite_directory(self.url)
            _tune_sqlite(self.engine, busy_timeout_ms, foreign_keys=foreign_keys)
            mark_short_writes(self.engine)
            _keep_sqlite_files_private(self.engine, _sqlite_path(self.url))

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for logs."""
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file (None on PostgreSQL and for an in-memory database)."""
        return _sqlite_path(self.url) if self.is_sqlite else None

    def refuse_write(self, what: str) -> None:
        """A write where only reads belong: an error under ``strict``, else a warning."""
        if self.strict:
            raise ReadOnlyUnitError(what)
        log.warning("%s; it goes on in a write transaction", what)

    @asynccontextmanager
    async def transaction(self, mode: Mode = "write") -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back if it raises.

        Inside an open transaction of this database (same task or a task it spawned) the block
        joins it, so repositories compose into one unit of work without passing connections.
        Inside a unit of work the block joins the unit's current transaction or begins one;
        the unit commits it when it ends or when a request is about to leave (``release``).
        """
        outer = self._ambient.get()
        if outer is not None and outer.open:
            if mode == "write" and outer.mode == "read":
                self.refuse_write("a write inside a read transaction")
            yield outer.connection
            return
        unit = self._unit.get()
        if unit is not None and not unit.closed:
            connection = await unit.enter(mode)
            try:
                yield connection
            finally:
                await unit.leave()
            return
        async with self._own_transaction(mode) as connection:
            yield connection

    @asynccontextmanager
    async def report(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction of its own, even inside a unit of work or another
        transaction: a long report (/stats) reads its sections in several at once, each on its
        own pooled connection (on PostgreSQL, its own server process)."""
        async with self._own_transaction("read") as connection:
            yield connection

    @asynccontextmanager
    async def _own_transaction(self, mode: Mode) -> AsyncIterator[AsyncConnection]:
        writer = self._sqlite_writer if self.is_sqlite and mode == "write" else nullcontext()
        async with writer, self.engine.connect() as connection:
            if self.is_sqlite:
                await connection.execution_options(sqlite_begin=_SQLITE_BEGIN[mode])
            tx = _Transaction(connection, mode)
            token = self._ambient.set(tx)
            try:
                async with connection.begin():
                    yield connection
            finally:
                tx.open = False
                self._ambient.reset(token)

    @asynccontextmanager
    async def unit_of_work(self, mode: UnitMode = "auto") -> AsyncIterator[_Unit]:
        """An update's unit of work: committed at each ``release()`` and at its end, what is
        still open rolled back if the block raises."""
        unit = _Unit(self)
        unit.mode = mode
        token = self._unit.set(unit)
        try:
            yield unit
        except BaseException as error:
            await unit.finish(error)
            raise
        else:
            await unit.finish(None)
        finally:
            self._unit.reset(token)

    @property
    def unit(self) -> _Unit | None:
        """The open unit of work of this context, if any."""
        unit = self._unit.get()
        return unit if unit is not None and not unit.closed else None

    def unit_cache(self) -> dict[Any, Any] | None:
        """The open unit of work's cache of rows (see ``_Unit.cache``), if there is a unit."""
        unit = self.unit
        return unit.cache if unit is not None else None

    async def set_unit_mode(self, mode: UnitMode) -> None:
        if (unit := self.unit) is not None:
            await unit.set_mode(mode)

    async def release(self) -> bool:
        """Before a request leaves the process: commit the unit's open transaction (the next
        database use begins a new one). True if it wrote. Outside a unit, an open write
        transaction block is a defect: an error under ``strict``, else a warning."""
        if (unit := self.unit) is not None:
            return await unit.release()
        outer = self._ambient.get()
        if outer is not None and outer.open and outer.mode == "write":
            message = "a request leaves while a write transaction is open"
            if self.strict:
                raise TransactionInUseError(message)
            log.warning(message)
        return False

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[AsyncConnection]:
        """Inside a transaction, a block that can fail alone: its writes are undone, the
        transaction goes on (bulk imports commit many orders at once, rejecting a few)."""
        outer = self._ambient.get()
        if (outer is None or not outer.open) and self.unit is None:
            async with self.transaction() as connection:
                yield connection
            return
        async with self.transaction() as connection:
            try:
                async with connection.begin_nested():
                    yield connection
            except BaseException:
                if (unit := self.unit) is not None:
                    unit.cache.clear()  # what it cached may be what the savepoint undid
                raise

    def read(self) -> Any:
        """A read-only transaction; on SQLite it takes no write lock."""
        return self.transaction("read")

    def writers_waiting(self) -> bool:
        """Whether another task of this process waits for SQLite's write lock: a long writer
        (an import) commits its chunk early so that it waits one statement, not a chunk."""
        return self.is_sqlite and self._sqlite_writer.waiting() > 0

    @property
    def in_transaction(self) -> bool:
        current = self._ambient.get()
        if current is not None and current.open:
            return True
        unit = self.unit
        return unit is not None and unit.current is not None

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

    def _fold_wal_soon(self) -> None:
        """A write committed (SQLite; the driver calls this): fold the WAL into the main file
        a little later, on aiosqlite's thread, once for all the commits meanwhile. SQLite's
        own autocheckpoint is off because it would run in the commit, which may run on the
        event loop's thread."""
        if self._folding is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (the engine torn down at exit): closing folds it
            return
        self._folding = loop.create_task(self._fold_wal(), name="wal-fold")

    async def _fold_wal(self) -> None:
        try:
            await asyncio.sleep(WAL_FOLD_DELAY)
        finally:
            self._folding = None  # commits from now on ask for the next fold
        try:
            async with self.engine.connect() as connection:
                await connection.run_sync(_wal_checkpoint, "PASSIVE")
        except Exception as error:  # the next commit asks again; the WAL is durable meanwhile
            log.debug("WAL checkpoint failed: %s", error)

    async def settle(self) -> None:
        """Wait for the maintenance ``checkpoint_soon()`` started."""
        while self._maintenance:
            await asyncio.gather(*self._maintenance, return_exceptions=True)

    async def close(self) -> None:
        await self.settle()
        if (folding := self._folding) is not None:
            folding.cancel()  # the last connection to close folds the WAL anyway
            await asyncio.gather(folding, return_exceptions=True)
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


def _wal_checkpoint(connection: Connection, mode: str = "TRUNCATE") -> None:
    # On the driver's own cursor: a checkpoint cannot run inside the BEGIN our hook emits.
    cursor = connection.connection.cursor()
    try:
        cursor.execute(f"PRAGMA wal_checkpoint({mode})")
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
            # Database._fold_wal checkpoints on aiosqlite's thread instead of the commit.
            "PRAGMA wal_autocheckpoint=0",
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
        adapted = connection.connection.dbapi_connection
        if isinstance(adapted, OneTripConnection):
            adapted.begin_with_next = statement  # sent with the first statement, one trip
        else:
            connection.exec_driver_sql(statement)
