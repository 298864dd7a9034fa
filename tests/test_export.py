"""CSV exports: UTF-8 with a BOM for Excel, parts of bounded size, /export for admins and
``python main.py export DIR``, on the small shop (tests/support/small_shop.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import SendDocument, SendMessage
from aiogram.types import BufferedInputFile

from bot.cli import export_data
from bot.settings import Settings
from locales import CatalogI18n
from locales.csv_export import BOM, csv_parts
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.rules import Rules
from storage.database import Database
from storage.export import SqlExport
from tests.support.flow import build_flow
from tests.support.seed import NOW
from tests.support.small_shop import seed_small_shop
from tests.support.updates import TgUser

ADMIN = TgUser(9001, first_name="Макс", language_code="ru")
ANNA = TgUser(1001, first_name="Anna", language_code="en")


def table(data: bytes) -> list[list[str]]:
    text = data.decode("utf-8")
    assert text.startswith(BOM)
    return list(csv.reader(io.StringIO(text[len(BOM) :])))


async def rows_of(items: Sequence[Sequence[Any]]) -> AsyncIterator[Sequence[Any]]:
    for item in items:
        yield item


async def test_orders_come_one_row_per_line_with_money_in_the_currency(db: Database) -> None:
    await seed_small_shop(db)
    [part] = [p async for p in csv_parts("orders", SqlExport(db).rows("orders"), currency="RUB")]
    assert (part.filename, part.number, part.last, part.rows) == ("orders.csv", 1, True, 14)
    header, *lines = table(part.data)
    assert header[:4] == ["line_id", "order_id", "created_at", "status"]
    first = dict(zip(header, lines[0], strict=True))
    assert (first["order_id"], first["total"], first["price"], first["currency"]) == (
        "A-1",
        "1000.00",
        "1000.00",
        "RUB",
    )
    guest = next(dict(zip(header, line, strict=True)) for line in lines if line[1] == "guest-1")
    assert (guest["customer_id"], guest["status"], guest["item_name"]) == ("", "paid", "Litter")


async def test_customers_and_the_ledger(db: Database) -> None:
    shop = await seed_small_shop(db)
    export = SqlExport(db)
    rows = export.rows("customers")
    [customers] = [p async for p in csv_parts("customers", rows, currency="RUB")]
    header, *lines = table(customers.data)
    by_id = {line[0]: dict(zip(header, line, strict=True)) for line in lines}
    assert len(by_id) == 9
    anna = by_id[str(shop.ids["A"])]
    assert (anna["points_balance"], anna["marketing_opt_in"]) == ("230", "1")
    assert by_id[str(shop.ids["H"])]["joined_at"] == ""
    [ledger] = [p async for p in csv_parts("ledger", export.rows("ledger"), currency="RUB")]
    header, *entries = table(ledger.data)
    assert [(e[2], e[4]) for e in entries][:2] == [("accrual", "300"), ("redemption", "-100")]


async def test_a_big_export_comes_in_numbered_parts_each_with_bom_and_header() -> None:
    names = [(n, f"Покупатель {n}") for n in range(1, 101)]
    parts = [
        part
        async for part in csv_parts(
            "ledger",
            rows_of([(n, n, "gift", f"g:{n}", 5, None, name, None, NOW) for n, name in names]),
            currency="RUB",
            max_bytes=2_000,
        )
    ]
    assert len(parts) > 2
    assert [p.filename for p in parts] == [f"ledger-{k}.csv" for k in range(1, len(parts) + 1)]
    assert [p.last for p in parts] == [False] * (len(parts) - 1) + [True]
    assert all(len(p.data) <= 2_000 + 200 for p in parts), "a part stops near the bound"
    rows = [line for p in parts for line in table(p.data)[1:]]
    assert [line[6] for line in rows] == [name for _n, name in names]
    assert sum(p.rows for p in parts) == 100
    assert all(table(p.data)[0][0] == "entry_id" for p in parts)


async def test_export_command_sends_three_documents_to_admins_only(
    sqlite_db: Database, i18n: CatalogI18n, renderer: Renderer
) -> None:
    await seed_small_shop(sqlite_db)
    flow = build_flow(
        db=sqlite_db, clock=FixedClock(NOW), i18n=i18n, renderer=renderer, admin_ids=(ADMIN.id,)
    )
    calls = await flow.send(ADMIN, "/export")
    [note] = [c for c in calls if isinstance(c, SendMessage)]
    assert note.text == "Готовлю выгрузку: три файла CSV (UTF-8, для Excel)…"
    documents = [c for c in calls if isinstance(c, SendDocument)]
    assert [(d.chat_id, d.caption) for d in documents] == [
        (ADMIN.id, "Клиенты: 10 строк"),  # the nine, and the admin who just wrote
        (ADMIN.id, "Заказы, строка на каждый товар: 14 строк"),
        (ADMIN.id, "Журнал бонусов: 7 строк"),
    ]
    files = [d.document for d in documents]
    assert all(isinstance(f, BufferedInputFile) for f in files)
    assert [f.filename for f in files] == ["customers.csv", "orders.csv", "ledger.csv"]  # type: ignore[union-attr]
    assert all(f.data.startswith(BOM.encode()) for f in files)  # type: ignore[union-attr]

    refused = await flow.send(ANNA, "/export")
    assert [c.text for c in refused if isinstance(c, SendMessage)] == [
        "This command is for the shop's admins."
    ]
    assert not [c for c in refused if isinstance(c, SendDocument)]


async def test_main_export_writes_the_three_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "shop.sqlite3"
    settings = Settings(_env_file=None, database_url=f"sqlite:///{path}")
    db = Database(settings.database_url)
    try:
        from storage.migrate import migrate

        await migrate(db)
        await seed_small_shop(db)
    finally:
        await db.close()
    assert await export_data(settings, Rules(), tmp_path / "out") == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["customers.csv", "ledger.csv", "orders.csv"]
    assert len(table((out / "orders.csv").read_bytes())) == 15
    assert f"{out / 'orders.csv'}: 14 rows" in capsys.readouterr().out
