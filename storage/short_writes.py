"""Which statements write at most one row, by their shape: SQLite runs those in place.

An INSERT of one row, or an UPDATE or DELETE whose WHERE pins the table's primary key or a
unique key to values, touches one row (plus its indexes and the foreign keys it checks), so
SQLite runs it in microseconds: storage/sqlite_driver.py runs such a statement on the event
loop's thread once its transaction holds the writer. A write cannot be interrupted as a read
can (SQLite would roll back the whole transaction), so anything that might run long stays on
aiosqlite's thread: a subquery anywhere, an INSERT from a SELECT, more than SHORT_BATCH rows
at once, a DELETE whose row other tables' rows cascade from. (The one trigger, on orders,
recounts the order's customer through an index: one customer's orders, not the table.)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Delete, Index, Insert, Table, UniqueConstraint, Update, event
from sqlalchemy.engine import Connection, ExecutionContext
from sqlalchemy.engine.interfaces import ExecuteStyle
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    ClauseElement,
    ReleaseSavepointClause,
    RollbackToSavepointClause,
    SavepointClause,
)
from sqlalchemy.sql.selectable import Exists, ScalarSelect, SelectBase

_SAVEPOINTS = (SavepointClause, ReleaseSavepointClause, RollbackToSavepointClause)

# An executemany of a one-row write, or a multi-row INSERT, with at most this many rows is
# still short: a row costs SQLite a few microseconds, indexes included.
SHORT_BATCH = 100

# Decisions by SQL text: the text fixes what SQLite does, and the bot runs a few hundred kinds.
_DECISIONS_KEPT = 4_096


def writes_one_row(statement: ClauseElement) -> bool:
    """True for an INSERT of one row, or an UPDATE/DELETE pinned to one row by a unique key;
    never when a subquery appears anywhere in it."""
    if isinstance(statement, Insert):
        return (
            statement.select is None
            and not statement._multi_values
            and not _has_subquery(statement)
            and not _has_subquery(getattr(statement, "_post_values_clause", None))
        )
    if isinstance(statement, Update | Delete):
        table = statement.table
        if (
            not isinstance(table, Table)
            or _has_subquery(statement)
            or _names_other_tables(statement, table)
        ):
            return False
        if isinstance(statement, Delete) and _rows_cascade_from(table):
            return False
        pinned = _columns_pinned(statement.whereclause, table)
        return any(key <= pinned for key in _unique_keys(table))
    return False


def is_short(statement: ClauseElement) -> bool:
    """A one-row write, or a savepoint's begin, release or rollback: SQLite keeps a
    savepoint in memory, and a rollback to one undoes only what its block wrote (an import
    rejecting one order)."""
    return isinstance(statement, _SAVEPOINTS) or writes_one_row(statement)


def _has_subquery(element: ClauseElement | None) -> bool:
    if element is None:
        return False
    return any(
        isinstance(part, SelectBase | ScalarSelect | Exists) for part in visitors.iterate(element)
    )


def _names_other_tables(statement: ClauseElement, table: Table) -> bool:
    """An UPDATE ... FROM or a DELETE using another table's columns: a join, not one row."""
    return any(
        isinstance(part, Column) and part.table is not table for part in visitors.iterate(statement)
    )


def _columns_pinned(where: ClauseElement | None, table: Table) -> set[str]:
    """Names of the table's columns that the WHERE's top-level AND sets equal to a value."""
    if where is None:
        return set()
    terms = (
        list(where.clauses)
        if isinstance(where, BooleanClauseList) and where.operator is operators.and_
        else [where]
    )
    pinned = set()
    for term in terms:
        if not isinstance(term, BinaryExpression) or term.operator is not operators.eq:
            continue
        for column, value in ((term.left, term.right), (term.right, term.left)):
            if (
                isinstance(column, Column)
                and column.table is table
                and isinstance(value, BindParameter)
            ):
                pinned.add(column.name)
    return pinned


def _unique_keys(table: Table) -> list[set[str]]:
    keys = [{column.name for column in table.primary_key.columns}]
    keys += [
        {column.name for column in constraint.columns}
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
    ]
    keys += [
        {column.name for column in index.columns if isinstance(column, Column)}
        for index in table.indexes
        if index.unique and not _is_partial(index)
    ]
    return [key for key in keys if key]


def _is_partial(index: Index) -> bool:
    """A unique index with a WHERE holds only for the rows it covers."""
    options = index.dialect_kwargs
    return any(options.get(f"{dialect}_where") is not None for dialect in ("sqlite", "postgresql"))


def _rows_cascade_from(table: Table) -> bool:
    """Whether deleting a row of the table may delete or change rows of other tables."""
    return any(
        foreign_key.column.table is table and foreign_key.ondelete is not None
        for other in table.metadata.tables.values()
        for foreign_key in other.foreign_keys
    )


def mark_short_writes(engine: AsyncEngine) -> None:
    """Before each statement, tell the driver's cursor whether it is short: a one-row write,
    or an executemany of one at most SHORT_BATCH times (``cursor.short_write``). The engine's
    "insertmanyvalues" batches hold at most SHORT_BATCH rows (``insertmanyvalues_page_size``),
    so a batch of a one-row INSERT is short too."""
    decisions: dict[str, bool] = {}

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _mark(
        _connection: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        if not hasattr(cursor, "short_write"):
            return
        decision = decisions.get(statement)
        if decision is None:
            compiled = getattr(context, "compiled", None)
            decision = compiled is not None and is_short(compiled.statement)
            if len(decisions) >= _DECISIONS_KEPT:
                decisions.clear()
            decisions[statement] = decision
        cursor.short_write = decision and (
            not executemany
            or context is None
            or context.execute_style is ExecuteStyle.INSERTMANYVALUES
            or len(parameters) <= SHORT_BATCH
        )
