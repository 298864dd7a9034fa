"""Small helpers for statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Float, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


def insert(connection: AsyncConnection, table: Table) -> Any:
    """An INSERT that knows ``ON CONFLICT`` for the connection's backend (same API on both)."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class epoch_seconds(FunctionElement[float]):
    """Seconds since 1970 of a timestamp column, spelled per backend."""

    type = Float()
    inherit_cache = True


@compiles(epoch_seconds, "postgresql")
def _epoch_postgresql(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})"


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # julianday() counts days from noon, 24 November 4714 BC; 2440587.5 is 1970-01-01.
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


class share_of(FunctionElement[int]):
    """``share_of(amount, part, whole)``: floor(amount × part ÷ whole) in whole numbers, for
    non-negative arguments, spelled per backend."""

    type = BigInteger()
    inherit_cache = True


@compiles(share_of, "postgresql")
def _share_postgresql(element: share_of, compiler: SQLCompiler, **kw: Any) -> str:
    amount, part, whole = (compiler.process(clause, **kw) for clause in element.clauses)
    # NUMERIC: amount × part of two large orders overflows BIGINT; the share itself fits.
    return f"CAST(FLOOR(CAST({amount} AS NUMERIC) * {part} / {whole}) AS BIGINT)"


@compiles(share_of, "sqlite")
def _share_sqlite(element: share_of, compiler: SQLCompiler, **kw: Any) -> str:
    amount, part, whole = (compiler.process(clause, **kw) for clause in element.clauses)
    # Integer division of integers floors, exactly while amount × part stays below 2**63
    # (orders and refunds of up to 30 million in major units each). Beyond, SQLite computes
    # the product as a REAL: the cast keeps the share whole (off by a minor unit at worst).
    return f"CAST(({amount}) * ({part}) / ({whole}) AS INTEGER)"
