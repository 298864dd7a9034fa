"""aiosqlite under SQLAlchemy in one trip to its thread per statement instead of four."""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT

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


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """SQLAlchemy's buffered aiosqlite cursor, but each statement is one hand-off.

    The stock adapter awaits aiosqlite four times per statement (open a cursor, execute, fetch,
    close), and each await is a round trip through a queue, the worker thread and the event
    loop's self-pipe: on a busy bot that costs more than running the statement. Buffered
    results are fetched whole anyway, so doing the four steps in one call on the thread changes
    nothing else. Server-side (streamed) cursors keep the stock class: they fetch in parts.
    """

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

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
        async with adapt._execute_mutex:
            begin, adapt.begin_with_next = adapt.begin_with_next, None
            try:
                # aiosqlite's own way onto its thread (its cursors use it); untyped there.
                outcome: _Outcome = await connection._execute(  # type: ignore[no-untyped-call]
                    _run, connection, operation, parameters, many=many, begin=begin
                )
            except BaseException:
                # The BEGIN may have run before the statement failed: let the rollback go.
                adapt.in_transaction = True
                raise
        self._description, self._rowcount, self._lastrowid, rows, adapt.in_transaction = outcome
        self._rows = collections.deque(rows)

    async def _async_soft_close(self) -> None:
        """Nothing to close: the thread closed the cursor with the statement."""


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """Also saves trips per transaction: its BEGIN goes with its first statement
    (``begin_with_next``), and a commit or rollback with no transaction open on SQLite's side
    (none ran a statement yet, or it is over) does not go to the thread at all. The pool rolls
    back every connection it gets back, even one whose transaction just committed: that was a
    trip per checkout for nothing."""

    __slots__ = ("begin_with_next", "in_transaction")
    _cursor_cls = OneTripCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.begin_with_next: str | None = None
        # As SQLite reported it after our last statement (read on its thread).
        self.in_transaction = False

    def cursor(self, server_side: bool = False) -> Any:
        if server_side:
            # A streamed result runs on the stock cursor, which knows nothing of the BEGIN
            # and does not report whether a transaction is open: assume it is.
            if self.begin_with_next is not None:
                begin, self.begin_with_next = self.begin_with_next, None
                super().cursor().execute(begin)
            self.in_transaction = True
        return super().cursor(server_side)

    def commit(self) -> None:
        self.begin_with_next = None  # if still set, nothing ran: nothing to commit
        if self.in_transaction:
            super().commit()
            self.in_transaction = False

    def rollback(self) -> None:
        self.begin_with_next = None
        if self.in_transaction:
            super().rollback()
            self.in_transaction = False


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """Passed as ``module=`` to the engine: aiosqlite, with OneTripCursor for every statement."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        stock = super().connect(*arg, **kw)
        return OneTripConnection(self, stock._connection)
