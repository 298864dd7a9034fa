"""CSV files of the shop's data for Excel: UTF-8 with a BOM, split into parts of bounded size."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from babel.numbers import get_currency_precision

BOM = "\ufeff"
# Telegram takes documents up to 50 MB from a bot; a part stays well below.
MAX_PART_BYTES = 45 * 1024 * 1024
EXPORT_KINDS = ("customers", "orders", "ledger")

# Column names as the importer reads them (python main.py import-orders), so an export of
# orders can be imported elsewhere; the ids of the bot's own tables where there is none.
HEADERS: dict[str, tuple[str, ...]] = {
    "customers": (
        "customer_id",
        "card_number",
        "first_name",
        "username",
        "telegram_id",
        "phone",
        "locale",
        "created_at",
        "joined_at",
        "marketing_opt_in",
        "blocked_at",
        "erased_at",
        "points_balance",
    ),
    "orders": (
        "line_id",
        "order_id",
        "created_at",
        "status",
        "customer_id",
        "phone",
        "telegram_id",
        "currency",
        "total",
        "bonus_redeemed",
        "sku",
        "item_name",
        "quantity",
        "price",
        "category",
    ),
    "ledger": (
        "entry_id",
        "customer_id",
        "kind",
        "source",
        "points",
        "paid_amount",
        "reason",
        "actor_id",
        "occurred_at",
    ),
}
# Columns in minor units, written as decimals of the currency ("2580.00") the importer reads.
MONEY_COLUMNS = {"total", "price", "paid_amount"}


@dataclass(frozen=True, slots=True)
class CsvPart:
    filename: str
    data: bytes
    rows: int
    number: int  # 1, 2, ...
    last: bool


def _cell(value: Any, *, money: bool, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        return value.isoformat()
    if money:
        return str(Decimal(int(value)).scaleb(-digits).quantize(Decimal(1).scaleb(-digits)))
    return str(value)


class _Part:
    def __init__(self, header: Sequence[str]) -> None:
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, lineterminator="\r\n")
        self.buffer.write(BOM)
        self.writer.writerow(header)
        self.rows = 0
        self.size = 0

    def add(self, cells: Sequence[str]) -> None:
        start = self.buffer.tell()
        self.writer.writerow(cells)
        # Characters, not bytes: Cyrillic takes two bytes in UTF-8, so twice the count bounds it.
        self.size += 2 * (self.buffer.tell() - start)
        self.rows += 1

    def data(self) -> bytes:
        return self.buffer.getvalue().encode("utf-8")


async def csv_parts(
    kind: str,
    rows: AsyncIterator[Sequence[Any]],
    *,
    currency: str,
    max_bytes: int = MAX_PART_BYTES,
) -> AsyncIterator[CsvPart]:
    """The rows as CSV files of at most about ``max_bytes`` each: ``orders.csv`` when one file
    holds them all, else ``orders-1.csv``, ``orders-2.csv``, ... A part goes out as soon as it
    is full, so a big export never sits in memory whole."""
    header = HEADERS[kind]
    money = [name in MONEY_COLUMNS for name in header]
    digits = get_currency_precision(currency)
    part = _Part(header)
    number = 1

    def named(last: bool) -> CsvPart:
        name = kind if last and number == 1 else f"{kind}-{number}"
        return CsvPart(f"{name}.csv", part.data(), part.rows, number, last)

    async for row in rows:
        if part.rows and part.size >= max_bytes:
            yield named(False)
            number += 1
            part = _Part(header)
        part.add([_cell(v, money=m, digits=digits) for v, m in zip(row, money, strict=True)])
    yield named(True)
