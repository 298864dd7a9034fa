"""aiosqlite under SQLAlchemy: one trip to its thread per statement, short statements on none."""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT

# A read runs on the event loop's thread for at most this long; one that takes longer is
# interrupted there and run again on aiosqlite's thread (``_Inline``).
INLINE_BUDGET = 0.002
# How many SQLite VM instructions pass between two looks at the clock while a read runs inline.
_INLINE_CHECK_EVERY = 1_000

# What one statement leaves behind: description, rowcount, lastrowid, rows, and whether a
# transaction is open on the connection after it.
_Outcome = tuple[Any, int, int | None, list[Any], bool]


def _run(
    connection: aiosqlite.Connection,
    operation: str,
    parameters: Any,
    *,
    many: bool,
    begin: str | None = None,
) -> _Outcome:
    """On aiosqlite's thread: begin (if the transaction waits for its first statement), open a
    cursor, execute, fetch everything, close."""
    cursor = connection._conn.cursor()  # the sqlite3 connection, used on its own thread
    try:
        if begin is not None:
            cursor.execute(begin)
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else []
        in_transaction = connection._conn.in_transaction
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows, in_transaction
    finally:
        cursor.close()


class _Overran(Exception):
    """An inline read ran past its budget; it goes to the thread instead."""


class _Inline:
    """A read run on the event loop's thread, interrupted once it overruns its budget.

    An indexed lookup takes SQLite tens of microseconds; the trip to aiosqlite's thread and
    back costs more than that in CPU, and on a busy bot the result then waits for the GIL,
    which the event loop holds (Python hands it over every 5 ms). A read never waits for a
    lock in WAL mode, so running it in place blocks the loop only for its own run.

    Writes run in place too when their shape bounds them (one row, a savepoint, a short
    batch: storage/short_writes.py) and their transaction holds the writer: BEGIN IMMEDIATE
    is tried here with no busy timeout. What may wait (that BEGIN behind another process's
    writer) and whatever may run long (reports, exports, writes of many rows) stays on the
    thread. A commit in place never checkpoints: the WAL is folded on the thread
    (``OneTripDBAPI``).
    """

    __slots__ = ("deadline",)

    def __init__(self) -> None:
        self.deadline = 0.0

    def __call__(self) -> bool:
        return time.perf_counter() > self.deadline  # True interrupts the statement

    def run(self, connection: aiosqlite.Connection, operation: str, parameters: Any) -> _Outcome:
        raw: sqlite3.Connection = connection._conn
        self.deadline = time.perf_counter() + INLINE_BUDGET
        raw.set_progress_handler(self, _INLINE_CHECK_EVERY)
        try:
            return _run(connection, operation, parameters, many=False)
        except sqlite3.OperationalError as error:
            if time.perf_counter() > self.deadline and "interrupt" in str(error):
                raise _Overran from error
            raise
        finally:
            # The handler needs the GIL at each call: never leave it on for the thread.
            raw.set_progress_handler(None, 0)


_BEGIN_WRITE = "BEGIN IMMEDIATE"


def is_select(operation: str) -> bool:
    return operation.startswith("SELECT")


def inline_read(operation: str, begin: str | None) -> bool:
    """A SELECT whose transaction is open or begins deferred: it cannot wait for a lock.
    (An interrupted SELECT leaves its transaction as it was; a write would be rolled back.)"""
    return is_select(operation) and begin in (None, "BEGIN")


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """SQLAlchemy's buffered aiosqlite cursor, but each statement is one hand-off.

    The stock adapter awaits aiosqlite four times per statement (open a cursor, execute, fetch,
    close), and each await is a round trip through a queue, the worker thread and the event
    loop's self-pipe: on a busy bot that costs more than running the statement. Buffered
    results are fetched whole anyway, so doing the four steps in one call on the thread changes
    nothing else. Server-side (streamed) cursors keep the stock class: they fetch in parts.
    """

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount", "short_write")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]  # opened on the thread, per statement
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1
        # Set before each statement by storage/short_writes.py: a write short enough to run
        # in place (one row, a savepoint, a batch of at most SHORT_BATCH rows).
        self.short_write = False

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._one_trip(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._one_trip(operation, seq_of_parameters, many=True)

    async def _one_trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        adapt: OneTripConnection = self._adapt_connection  # type: ignore[assignment]
        short_write, self.short_write = self.short_write, False
        async with adapt._execute_mutex:
            begin, adapt.begin_with_next = adapt.begin_with_next, None
            outcome: _Outcome | None = None
            if begin == _BEGIN_WRITE and (short_write or (is_select(operation) and not many)):
                begin = self._begin_writing(adapt, begin)
            if not many and inline_read(operation, begin):
                outcome, begin = self._inline(adapt, operation, parameters, begin)
            elif short_write and begin is None and adapt.holds_writer:
                outcome = self._inline_write(adapt, operation, parameters, many=many)
            ran_here = outcome is not None
            if outcome is None:
                adapt.wrote = True  # what ran on the thread is committed there too
                try:
                    # aiosqlite's own way onto its thread (its cursors use it); untyped there.
                    outcome = await connection._execute(  # type: ignore[no-untyped-call]
                        _run, connection, operation, parameters, many=many, begin=begin
                    )
                except BaseException:
                    # The BEGIN may have run before the statement failed: let the rollback go.
                    adapt.in_transaction = True
                    raise
                adapt.holds_writer = adapt.holds_writer or begin == _BEGIN_WRITE
        assert outcome is not None
        self._description, self._rowcount, self._lastrowid, rows, adapt.in_transaction = outcome
        self._rows = collections.deque(rows)
        if ran_here and adapt.holds_writer:
            # A statement in place of a write transaction gives the loop its turn, as a trip
            # to the thread did: a long writer (an import's chunk) commits early once someone
            # waits for the writer, and the others must get to the lock to wait there. (A
            # read holds nothing anyone waits for; its run is bounded by INLINE_BUDGET.)
            await asyncio.sleep(0)

    def _inline(
        self, adapt: OneTripConnection, operation: str, parameters: Any, begin: str | None
    ) -> tuple[_Outcome | None, str | None]:
        """The read run here (its outcome), or None and the BEGIN still to send when it
        overran its budget and goes to the thread."""
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        try:
            if begin is not None:
                connection._conn.execute(begin)
                begin = None
            return adapt.inline_run.run(connection, operation, parameters), None
        except _Overran:
            return None, begin
        except BaseException:
            adapt.in_transaction = connection._conn.in_transaction
            raise

    def _begin_writing(self, adapt: OneTripConnection, begin: str) -> str | None:
        """BEGIN IMMEDIATE here (None: nothing left to send), or the BEGIN back when another
        process holds the writer: it waits on the thread, with the statement."""
        raw: sqlite3.Connection = self._connection._conn
        try:
            return None if adapt.begin_writing_in_place(raw) else begin
        except BaseException:
            adapt.in_transaction = raw.in_transaction
            raise

    def _inline_write(
        self, adapt: OneTripConnection, operation: str, parameters: Any, *, many: bool
    ) -> _Outcome:
        """A short write, run here: the transaction holds the writer, so it waits for
        nothing, and its shape bounds how long it runs (storage/short_writes.py)."""
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        try:
            return _run(connection, operation, parameters, many=many)
        except BaseException:
            adapt.in_transaction = connection._conn.in_transaction
            raise

    async def _async_soft_close(self) -> None:
        """Nothing to close: the thread closed the cursor with the statement."""


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """Also saves trips per transaction: its BEGIN goes with its first statement
    (``begin_with_next``), and a commit or rollback with no transaction open on SQLite's side
    (none ran a statement yet, or it is over) does not go to the thread at all. The pool rolls
    back every connection it gets back, even one whose transaction just committed: that was a
    trip per checkout for nothing."""

    __slots__ = (
        "begin_with_next",
        "busy_timeout_ms",
        "holds_writer",
        "in_transaction",
        "inline_run",
        "wrote",
    )
    _cursor_cls = OneTripCursor  # type: ignore[assignment]

    def __init__(self, dbapi: OneTripDBAPI, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.begin_with_next: str | None = None
        # As SQLite reported it after our last statement.
        self.in_transaction = False
        # Short reads run on the event loop's thread (_Inline); ``wrote`` says the open
        # transaction ran something on aiosqlite's thread, so it commits there too.
        self.inline_run = _Inline()
        self.wrote = False
        # The open transaction began with BEGIN IMMEDIATE: its short writes cannot wait for a
        # lock, so they run in place (storage/short_writes.py says which those are).
        self.holds_writer = False
        self.busy_timeout_ms: int | None = None

    def begin_writing_in_place(self, raw: sqlite3.Connection) -> bool:
        """BEGIN IMMEDIATE on this thread, unless another process holds the writer: then
        False at once (no busy wait here), and the BEGIN waits on aiosqlite's thread."""
        if self.busy_timeout_ms is None:
            self.busy_timeout_ms = int(raw.execute("PRAGMA busy_timeout").fetchone()[0])
        raw.execute("PRAGMA busy_timeout = 0")
        try:
            raw.execute(_BEGIN_WRITE)
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                return False
            raise
        finally:
            raw.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
        self.holds_writer = True
        return True

    def cursor(self, server_side: bool = False) -> Any:
        if server_side:
            # A streamed result runs on the stock cursor, which knows nothing of the BEGIN
            # and does not report whether a transaction is open: assume it is.
            if self.begin_with_next is not None:
                begin, self.begin_with_next = self.begin_with_next, None
                super().cursor().execute(begin)
            self.in_transaction = True
            self.wrote = True
        return super().cursor(server_side)

    def commit(self) -> None:
        self.begin_with_next = None  # if still set, nothing ran: nothing to commit
        if self.in_transaction:
            wrote = self.wrote or self.holds_writer
            if self.wrote:
                super().commit()
            else:
                # A read's end releases its snapshot; a write's appends its pages to the WAL
                # (no fsync with synchronous=NORMAL, no checkpoint: the WAL is folded on the
                # thread, see OneTripDBAPI.after_write).
                self._end_inline(self._connection._conn.commit)
            self.in_transaction = False
            if wrote:
                self.dbapi.after_write()
        self.wrote = self.holds_writer = False

    def rollback(self) -> None:
        self.begin_with_next = None
        if self.in_transaction:
            if self.wrote:
                super().rollback()
            else:
                self._end_inline(self._connection._conn.rollback)
            self.in_transaction = False
        self.wrote = self.holds_writer = False

    def _end_inline(self, end: Any) -> None:
        try:
            end()
        except Exception as error:
            self._handle_exception(error)


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """Passed as ``module=`` to the engine: aiosqlite, with OneTripCursor for every statement.

    ``after_write`` is called once a transaction that wrote has committed. The connections
    run with ``wal_autocheckpoint=0`` (a commit in place must not fold the WAL into the main
    file on the event loop's thread, with its fsyncs), so the database checkpoints from there.
    """

    def __init__(self, after_write: Callable[[], None] | None = None) -> None:
        super().__init__(aiosqlite, sqlite3)
        self.after_write: Callable[[], None] = after_write or (lambda: None)

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        # Opened on aiosqlite's thread and also used on the event loop's (inline reads, never
        # both at once); SQLite's own mutex guards the connection either way.
        kw["check_same_thread"] = False
        stock = super().connect(*arg, **kw)
        return OneTripConnection(self, stock._connection)
