"""Bulk history from CSV: orders (one row per item) and products, each line imported or refused.

Orders go through the same order desk as the HTTP API, so an import is exactly as idempotent:
the same order again is a duplicate, a different body under a known order id is refused.
Orders are committed in chunks (one savepoint each), so a refused order undoes only itself. A
chunk ends after BATCH orders or CHUNK_SECONDS of work, whichever comes first: on SQLite a chunk
holds the one write lock, and an API order or a job beside the import waits no longer than that.
"""

from __future__ import annotations

import asyncio
import csv
import re
import time as timer
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Protocol
from zoneinfo import ZoneInfo

from scenarios.clock import Clock
from scenarios.orders import RawCustomer, RawItem, RawOrder, Reported
from scenarios.problems import InputProblem, is_ascii_number
from scenarios.products import ProductStore, checked_product, save_product
from scenarios.transactions import SavepointUnitOfWork

ORDER_COLUMNS = (
    "order_id",
    "created_at",
    "status",
    "phone",
    "telegram_id",
    "customer_name",
    "currency",
    "total",
    "discount",
    "shipping",
    "bonus_redeemed",
    "sku",
    "item_name",
    "quantity",
    "price",
    "category",
)
REQUIRED_ORDER_COLUMNS = frozenset({"order_id", "total", "sku", "quantity", "price"})
# Columns that describe the order, not the line: every line of one order must agree on them.
ORDER_LEVEL = (
    "created_at",
    "status",
    "phone",
    "telegram_id",
    "customer_name",
    "currency",
    "total",
    "discount",
    "shipping",
    "bonus_redeemed",
)
PRODUCT_COLUMNS = (
    "sku",
    "name",
    "url",
    "category",
    "consumption_days",
    "lead_days",
    "related",
)
REQUIRED_PRODUCT_COLUMNS = frozenset({"sku", "name"})
BATCH = 200
# How long one chunk may hold the write lock (on SQLite, the whole database's) before it commits.
CHUNK_SECONDS = 0.05
# Orders handed to the desk at once inside a chunk (its batch of statements).
GROUP = 25
_COMMA_DECIMAL = re.compile(r"^\s*\d+,\d{1,2}\s*$")
_LIST_SEPARATORS = re.compile(r"[\s|;,]+")


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (no header, missing columns); nothing was written."""


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    key: str | None  # the order id or sku, when the line has one
    message: str


@dataclass(slots=True)
class ImportSummary:
    imported: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.imported + self.duplicates + len(self.rejected)


Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True, slots=True)
class CsvRow:
    line: int
    values: dict[str, str]


def read_rows(
    lines: Iterable[str], *, columns: Sequence[str], required: frozenset[str]
) -> list[CsvRow]:
    """The data rows under a header naming some of ``columns`` (any order, any case).

    Comma, semicolon (Excel in many locales) and tab separators are recognised from the header.
    """
    iterator = iter(lines)
    header_line = next(iterator, "")
    delimiter = max(",;\t", key=header_line.count)
    reader = csv.reader(_chain(header_line, iterator), delimiter=delimiter)
    header = [name.strip().lower() for name in next(reader, [])]
    if not any(header):
        raise ImportFileError("the file is empty: the first line must name the columns")
    unknown = [name for name in header if name not in columns]
    if unknown:
        raise ImportFileError(
            f"unknown column(s) {', '.join(unknown)}; known: {', '.join(columns)}"
        )
    missing = sorted(required - set(header))
    if missing:
        raise ImportFileError(f"missing column(s): {', '.join(missing)}")
    rows = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        values = {name: cell.strip() for name, cell in zip(header, cells, strict=False)}
        rows.append(CsvRow(line=reader.line_num, values=values))
    return rows


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def money_text(value: str) -> str:
    """ "1290,00" (a decimal comma, as spreadsheets in ru/uk write it) as "1290.00"."""
    return value.replace(",", ".") if _COMMA_DECIMAL.match(value) else value


def parse_created_at(value: str, *, zone: ZoneInfo) -> datetime | None:
    """ISO date-time with or without offset (without: the shop's zone), or a date (its noon)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"created_at {value!r} is not an ISO date or date-time") from None
    if len(value) <= len("2026-01-31"):
        moment = datetime.combine(date.fromisoformat(value), time(12, 0))
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=zone)
    return moment


@dataclass(frozen=True, slots=True)
class ParsedOrder:
    line: int  # its first line in the file
    order: RawOrder


def group_orders(
    rows: Sequence[CsvRow], *, zone: ZoneInfo, default_currency: str
) -> tuple[list[ParsedOrder], list[Rejection]]:
    """Lines grouped into orders by order_id (lines need not be adjacent), in file order."""
    by_id: dict[str, list[CsvRow]] = {}
    rejected: list[Rejection] = []
    for row in rows:
        order_id = row.values.get("order_id", "")
        if not order_id:
            rejected.append(Rejection(row.line, None, "order_id is empty"))
            continue
        by_id.setdefault(order_id, []).append(row)
    parsed = []
    for order_id, lines in by_id.items():
        try:
            parsed.append(
                ParsedOrder(
                    lines[0].line, _order(order_id, lines, zone=zone, currency=default_currency)
                )
            )
        except ValueError as error:
            rejected.append(Rejection(lines[0].line, order_id, str(error)))
    return parsed, rejected


def _order(order_id: str, lines: list[CsvRow], *, zone: ZoneInfo, currency: str) -> RawOrder:
    first = lines[0].values
    for row in lines[1:]:
        for column in ORDER_LEVEL:
            if row.values.get(column, "") != first.get(column, ""):
                raise ValueError(
                    f"line {row.line} gives {column} {row.values.get(column, '')!r}, "
                    f"line {lines[0].line} gave {first.get(column, '')!r}"
                )
    telegram_id = first.get("telegram_id", "")
    if telegram_id and not is_ascii_number(telegram_id):
        raise ValueError(f"telegram_id {telegram_id!r} is not a number")
    items = []
    for row in lines:
        quantity = row.values["quantity"]
        if not is_ascii_number(quantity):
            raise ValueError(f"line {row.line}: quantity {quantity!r} is not a whole number")
        items.append(
            RawItem(
                sku=row.values["sku"],
                name=row.values.get("item_name") or row.values["sku"],
                quantity=int(quantity),
                price=money_text(row.values["price"]),
                category=row.values.get("category") or None,
            )
        )
    return RawOrder(
        order_id=order_id,
        customer=RawCustomer(
            phone=first.get("phone") or None,
            telegram_id=int(telegram_id) if telegram_id else None,
            name=first.get("customer_name") or None,
        ),
        items=items,
        total=money_text(first["total"]),
        currency=first.get("currency") or currency,
        status=first.get("status") or "paid",
        created_at=parse_created_at(first.get("created_at", ""), zone=zone),
        bonus_redeemed=money_text(first.get("bonus_redeemed") or "0"),
        discount=money_text(first.get("discount") or "0"),
        shipping=money_text(first.get("shipping") or "0"),
    )


class BatchUnitOfWork(SavepointUnitOfWork, Protocol):
    def writers_waiting(self) -> bool: ...


class OrderReporter(Protocol):
    async def report_many(
        self, raws: Sequence[RawOrder], *, history: bool = False
    ) -> list[Reported | Exception]: ...


def describe(problem: InputProblem) -> str:
    return f"{problem.field}: {problem.message}" if problem.field else problem.message


async def import_orders(
    rows: Sequence[CsvRow],
    *,
    desk: OrderReporter,
    uow: BatchUnitOfWork,
    zone: ZoneInfo,
    currency: str,
    progress: Progress | None = None,
    pause: float = 0.0,
) -> ImportSummary:
    """Report every order of the file to the desk, in short chunks, one commit each.

    ``pause``: seconds to wait after each chunk, so that writers of another process (the bot
    beside a command-line import on SQLite) get the lock between chunks.
    """
    orders, rejected = group_orders(rows, zone=zone, default_currency=currency)
    summary = ImportSummary(rejected=rejected)
    done = 0
    while done < len(orders):
        async with uow.transaction():
            chunk = _Chunk(done, uow)
            while done < len(orders) and chunk.has_room(done):
                # A few orders at a time: the desk writes those of distinct customers in a few
                # statements for all of them, each refused one alone (history: a shop's export
                # has cancelled and refunded orders too).
                group = orders[done : done + GROUP]
                done += len(group)
                outcomes = await desk.report_many([parsed.order for parsed in group], history=True)
                for parsed, outcome in zip(group, outcomes, strict=True):
                    if isinstance(outcome, InputProblem):
                        summary.rejected.append(
                            Rejection(parsed.line, parsed.order.order_id, describe(outcome))
                        )
                    elif isinstance(outcome, Exception):
                        raise outcome
                    elif outcome.created:
                        summary.imported += 1
                    else:
                        summary.duplicates += 1
        if progress is not None:
            progress(done, len(orders))
        # Committed: whoever waits for the write lock goes before the next chunk.
        await asyncio.sleep(pause)
    summary.rejected.sort(key=lambda rejection: rejection.line)
    return summary


class _Chunk:
    """Room for more in the open transaction: fewer than BATCH items, under CHUNK_SECONDS, and
    nobody else of this process waiting to write (then it commits at once and lets them in)."""

    def __init__(self, first: int, uow: BatchUnitOfWork) -> None:
        self._first = first
        self._uow = uow
        self._started = timer.monotonic()

    def has_room(self, position: int) -> bool:
        if position == self._first:
            return True
        if position - self._first >= BATCH or self._uow.writers_waiting():
            return False
        return timer.monotonic() - self._started < CHUNK_SECONDS


async def import_products(
    rows: Sequence[CsvRow],
    *,
    store: ProductStore,
    uow: BatchUnitOfWork,
    clock: Clock,
    progress: Progress | None = None,
) -> ImportSummary:
    """Create or replace every product of the file; a product is "duplicate" when it existed."""
    summary = ImportSummary()
    done = 0
    while done < len(rows):
        async with uow.transaction():
            chunk = _Chunk(done, uow)
            while done < len(rows) and chunk.has_room(done):
                row = rows[done]
                done += 1
                values = row.values
                try:
                    product = checked_product(
                        sku=values["sku"],
                        name=values["name"],
                        url=values.get("url") or None,
                        category=values.get("category") or None,
                        consumption_days=_days(values, "consumption_days"),
                        lead_days=_days(values, "lead_days"),
                        related=[s for s in _LIST_SEPARATORS.split(values.get("related", "")) if s],
                    )
                except (InputProblem, ValueError) as problem:
                    message = (
                        describe(problem) if isinstance(problem, InputProblem) else str(problem)
                    )
                    summary.rejected.append(Rejection(row.line, values["sku"] or None, message))
                    continue
                if await save_product(store, product, clock=clock):
                    summary.imported += 1
                else:
                    summary.duplicates += 1
        if progress is not None:
            progress(done, len(rows))
        await asyncio.sleep(0)  # committed: a waiting writer goes first
    return summary


def _days(values: dict[str, str], column: str) -> int | None:
    text = values.get(column, "")
    if not text:
        return None
    if not is_ascii_number(text):
        raise ValueError(f"{column}: {text!r} is not a whole number of days")
    return int(text)
