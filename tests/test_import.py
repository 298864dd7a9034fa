"""CSV import of order history and the catalog, on both databases, and the command around it."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import Table, func, insert, select

from bot.api import create_api_app, start_api
from bot.importer import ProgressBar
from scenarios.clock import FixedClock, SystemClock
from scenarios.importing import (
    ORDER_COLUMNS,
    PRODUCT_COLUMNS,
    REQUIRED_ORDER_COLUMNS,
    REQUIRED_PRODUCT_COLUMNS,
    CsvRow,
    ImportFileError,
    ImportSummary,
    OrderReporter,
    import_orders,
    import_products,
    read_rows,
)
from scenarios.ledger import balance
from scenarios.orders import (
    OrderEvent,
    OrderProblem,
    RawCustomer,
    RawItem,
    RawOrder,
    Reported,
)
from scenarios.rules import Rules
from storage.database import Database
from storage.ledger import SqlLedger
from storage.products import ProductRecord, SqlProducts
from storage.reminders import SqlReminders
from storage.schema import (
    customers,
    ledger_entries,
    order_items,
    orders,
    outbox,
    products,
    reminders,
)
from tests.support.services import services_for

ROOT = Path(__file__).resolve().parent.parent
MOSCOW = ZoneInfo("Europe/Moscow")
PHONE = "+79991234567"

HISTORY = """\
order_id,created_at,phone,customer_name,total,bonus_redeemed,sku,item_name,quantity,price
A-1,2026-10-20T10:00:00+03:00,+7 999 123-45-67,Anna,2580.00,,CAT-2KG,Cat food 2 kg,2,1290.00
A-2,2026-10-25 18:30,89991234567,Anna,3000.00,,CAT-2KG,Cat food 2 kg,1,1290.00
B-1,2026-10-26,+380 67 123 4567,Bohdan,500.00,,TOY,Mouse toy,1,500.00
A-2,2026-10-25 18:30,89991234567,Anna,3000.00,,LITTER,Litter 10 l,1,1710.00
"""


class Recorder:
    def __init__(self) -> None:
        self.events: list[OrderEvent] = []

    async def after_order(self, event: OrderEvent) -> None:
        self.events.append(event)


def rows_of(text: str) -> list[CsvRow]:
    return read_rows(io.StringIO(text), columns=ORDER_COLUMNS, required=REQUIRED_ORDER_COLUMNS)


async def add_member(db: Database, *, phone: str = PHONE) -> int:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    async with db.transaction() as conn:
        result = await conn.execute(
            insert(customers)
            .values(telegram_id=777, phone=phone, created_at=at, last_seen_at=at, joined_at=at)
            .returning(customers.c.id)
        )
        return int(result.scalar_one())


async def run(
    db: Database, clock: FixedClock, text: str, *, recorder: Recorder | None = None
) -> ImportSummary:
    # as bot/importer.py builds it: history needs no spend code
    desk = services_for(
        db, rules=Rules(), clock=clock, zone=MOSCOW, followers=[recorder] if recorder else []
    ).history_desk
    return await import_orders(rows_of(text), desk=desk, uow=db, zone=MOSCOW, currency="RUB")


async def count(db: Database, table: Table) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_history_is_imported_order_by_order_with_points_for_members(
    db: Database, clock: FixedClock
) -> None:
    member = await add_member(db)
    summary = await run(db, clock, HISTORY)
    assert (summary.imported, summary.duplicates, summary.rejected) == (3, 0, [])
    async with db.read() as conn:
        stored = (
            await conn.execute(
                select(
                    orders.c.order_ref, orders.c.customer_id, orders.c.total, orders.c.ordered_at
                ).order_by(orders.c.order_ref)
            )
        ).all()
        lines = (await conn.execute(select(func.count()).select_from(order_items))).scalar_one()
    assert [(ref, owner, total) for ref, owner, total, _ in stored] == [
        ("A-1", member, 258_000),
        ("A-2", member, 300_000),
        ("B-1", None, 50_000),
    ]
    # A time without an offset is the shop's; a bare date is its noon.
    assert stored[1][3] == datetime(2026, 10, 25, 15, 30, tzinfo=UTC)
    assert stored[2][3] == datetime(2026, 10, 26, 9, 0, tzinfo=UTC)
    assert lines == 4  # A-2's two lines were apart in the file and still one order
    points = await balance(SqlLedger(db), customer_id=member, clock=clock)
    assert points.pending == 129 + 150  # 5 % of 2580.00 and of 3000.00, in whole points


async def test_i16_6_cancelled_and_refunded_history_is_imported_with_that_status(
    db: Database, clock: FixedClock
) -> None:
    member = await add_member(db)
    desk = services_for(db, rules=Rules(), clock=clock, zone=MOSCOW).order_desk
    await SqlProducts(db).save(
        ProductRecord(
            sku="CAT-2KG",
            name="Cat food 2 kg",
            url=None,
            category="food",
            consumption_days=30,
            lead_days=None,
            related=(),
        ),
        now=clock.now(),
    )
    # A shop's normal export: one paid order, one cancelled, one refunded, all recent.
    text = (
        "order_id,created_at,status,phone,total,sku,quantity,price\n"
        "P-0,2026-09-01,delivered,+79991234567,1290.00,CAT-2KG,1,1290.00\n"
        "C-1,2026-09-11,cancelled,+79991234567,1290.00,CAT-2KG,1,1290.00\n"
        "P-1,2026-10-20,delivered,+79991234567,1290.00,CAT-2KG,1,1290.00\n"
        "R-1,2026-10-28,refunded,+79991234567,2580.00,CAT-2KG,2,1290.00\n"
    )
    summary = await import_orders(rows_of(text), desk=desk, uow=db, zone=MOSCOW, currency="RUB")
    assert (summary.imported, summary.duplicates, summary.rejected) == (4, 0, [])
    async with db.read() as conn:
        stored = dict((await conn.execute(select(orders.c.order_ref, orders.c.status))).all())
        keys = (await conn.execute(select(outbox.c.dedupe_key))).scalars().all()
        entries = (await conn.execute(select(ledger_entries.c.kind, ledger_entries.c.source))).all()
        planned = (await conn.execute(select(reminders.c.order_ref))).scalars().all()
    assert stored == {
        "P-0": "delivered",
        "C-1": "cancelled",
        "P-1": "delivered",
        "R-1": "refunded",
    }
    # Points for the paid orders only; no rating request or reminder for the closed ones.
    assert sorted(source for _kind, source in entries) == ["order:P-0", "order:P-1"]
    assert not any(key.endswith(("C-1", "R-1")) for key in keys)
    assert "C-1" not in planned and "R-1" not in planned
    # The cancelled order between the two teaches no interval: with one real interval (49
    # days) the customer has no rhythm of their own yet, and the catalog's 30 days hold.
    [reminder] = await SqlReminders(db).of_customer(customer_id=member)
    assert (reminder.order_ref, reminder.basis) == ("P-1", "catalog")
    # The same file again is a duplicate and writes nothing, not even points.
    again = await import_orders(rows_of(text), desk=desk, uow=db, zone=MOSCOW, currency="RUB")
    assert (again.imported, again.duplicates, again.rejected) == (0, 4, [])
    assert await count(db, ledger_entries) == 2
    # The API still takes only paid or delivered new orders.
    with pytest.raises(OrderProblem, match="paid, delivered"):
        await desk.report(
            RawOrder(
                order_id="C-2",
                customer=RawCustomer(phone=PHONE),
                items=[RawItem(sku="X", name="X", quantity=1, price="1.00")],
                total="1.00",
                currency="RUB",
                status="cancelled",
            )
        )


async def test_importing_the_same_file_again_changes_nothing(
    db: Database, clock: FixedClock
) -> None:
    await add_member(db)
    await run(db, clock, HISTORY)
    entries = await count(db, ledger_entries)
    again = await run(db, clock, HISTORY)
    assert (again.imported, again.duplicates, again.rejected) == (0, 3, [])
    assert await count(db, ledger_entries) == entries
    assert await count(db, order_items) == 4


async def test_bad_lines_are_refused_with_their_line_numbers_and_the_rest_goes_in(
    db: Database, clock: FixedClock
) -> None:
    await add_member(db)
    text = (
        "order_id,created_at,phone,total,bonus_redeemed,sku,quantity,price\n"
        "OK-1,2026-10-20,+79991234567,100.00,,X,1,100.00\n"
        "BAD-QTY,2026-10-20,+79991234567,100.00,,X,two,50.00\n"
        ",2026-10-20,+79991234567,100.00,,X,1,100.00\n"
        "NO-WHO,2026-10-20,,100.00,,X,1,100.00\n"
        "SPLIT,2026-10-20,+79991234567,100.00,,X,1,50.00\n"
        "SPLIT,2026-10-21,+79991234567,100.00,,Y,1,50.00\n"
        "GREEDY,2026-10-20,+79991234567,100.00,90,X,1,100.00\n"
        "WHEN,last week,+79991234567,100.00,,X,1,100.00\n"
        "OK-2,2026-10-20,+79991234567,200.00,,X,2,100.00\n"
    )
    summary = await run(db, clock, text)
    assert summary.imported == 2
    assert [(r.line, r.key) for r in summary.rejected] == [
        (3, "BAD-QTY"),
        (4, None),
        (5, "NO-WHO"),
        (6, "SPLIT"),
        (8, "GREEDY"),
        (9, "WHEN"),
    ]
    messages = {r.key: r.message for r in summary.rejected}
    assert "quantity 'two' is not a whole number" in messages["BAD-QTY"]
    assert "line 7 gives created_at '2026-10-21', line 6 gave '2026-10-20'" in messages["SPLIT"]
    assert messages["GREEDY"].startswith("bonus_redeemed:")
    assert "not an ISO date" in messages["WHEN"]
    async with db.read() as conn:
        refs = (
            await conn.execute(select(orders.c.order_ref).order_by(orders.c.order_ref))
        ).scalars()
        assert list(refs) == ["OK-1", "OK-2"]  # the refused redemption left nothing behind


async def test_a_different_body_under_a_known_order_id_is_refused(
    db: Database, clock: FixedClock
) -> None:
    await run(db, clock, HISTORY)
    changed = HISTORY.replace("500.00,,TOY,Mouse toy,1,500.00", "600.00,,TOY,Mouse toy,1,600.00")
    summary = await run(db, clock, changed)
    assert [(r.line, r.key) for r in summary.rejected] == [(4, "B-1")]
    assert "already reported with a different body" in summary.rejected[0].message
    async with db.read() as conn:
        total = (
            await conn.execute(select(orders.c.total).where(orders.c.order_ref == "B-1"))
        ).scalar_one()
    assert total == 50_000


async def test_old_orders_are_bookkeeping_only_for_what_follows_orders(
    db: Database, clock: FixedClock
) -> None:
    recorder = Recorder()
    text = (
        "order_id,created_at,phone,total,sku,quantity,price\n"
        "OLD,2025-01-10,+79991234567,100.00,X,1,100.00\n"
        "NEW,2026-10-30,+79991234567,100.00,X,1,100.00\n"
    )
    await run(db, clock, text, recorder=recorder)
    assert [(e.order_id, e.recent) for e in recorder.events] == [("OLD", False), ("NEW", True)]


async def test_recent_imported_orders_get_their_rating_request_and_old_ones_do_not(
    db: Database, clock: FixedClock
) -> None:
    await add_member(db)
    desk = services_for(db, rules=Rules(), clock=clock, zone=MOSCOW).history_desk
    text = (
        "order_id,created_at,status,phone,total,sku,quantity,price\n"
        "OLD,2025-06-10,delivered,+79991234567,100.00,X,1,100.00\n"
        "NEW,2026-10-30,delivered,+79991234567,100.00,X,1,100.00\n"
    )
    summary = await import_orders(rows_of(text), desk=desk, uow=db, zone=MOSCOW, currency="RUB")
    assert summary.imported == 2
    async with db.read() as conn:
        keys = (await conn.execute(select(outbox.c.dedupe_key))).scalars().all()
    assert [key for key in keys if key.startswith("rating-request:")] == ["rating-request:NEW"]


def test_spreadsheet_exports_with_semicolons_and_decimal_commas_are_read() -> None:
    rows = rows_of("Order_ID;Total;SKU;Quantity;Price\nA-1;2580,50;CAT;1;2580,50\n")
    assert rows[0].values == {
        "order_id": "A-1",
        "total": "2580,50",
        "sku": "CAT",
        "quantity": "1",
        "price": "2580,50",
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "the file is empty"),
        ("order_id,total,sku,quantity,price,colour\n", "unknown column(s) colour"),
        ("order_id,total,sku\n", "missing column(s): price, quantity"),
    ],
)
def test_a_file_without_the_right_header_is_refused_as_a_whole(text: str, problem: str) -> None:
    with pytest.raises(ImportFileError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        rows_of(text)


async def test_products_are_created_replaced_or_refused_per_line(
    db: Database, clock: FixedClock
) -> None:
    text = (
        "sku,name,url,category,consumption_days,lead_days,related\n"
        "CAT-2KG,Cat food 2 kg,https://shop.example/cat,food,30,3,CAT-5KG | CAT-10KG\n"
        "LITTER,Litter,,,45,,\n"
        "BAD URL,Thing,ftp://x,,,,\n"
        "DAYS,Thing,,,a month,,\n"
    )
    rows = read_rows(io.StringIO(text), columns=PRODUCT_COLUMNS, required=REQUIRED_PRODUCT_COLUMNS)
    store = SqlProducts(db)
    first = await import_products(rows, store=store, uow=db, clock=clock)
    assert (first.imported, first.duplicates) == (2, 0)
    assert [(r.line, r.key) for r in first.rejected] == [(4, "BAD URL"), (5, "DAYS")]
    again = await import_products(rows, store=store, uow=db, clock=clock)
    assert (again.imported, again.duplicates, len(again.rejected)) == (0, 2, 2)
    cat = await store.get(sku="CAT-2KG")
    assert cat is not None
    assert (cat.consumption_days, cat.lead_days, cat.related) == (30, 3, ("CAT-5KG", "CAT-10KG"))
    assert await count(db, products) == 2


def test_the_progress_bar_writes_plain_lines_when_not_on_a_terminal() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, "importing orders")
    for done in (200, 400, 600, 800, 1000):
        bar(done, 1000)
    assert stream.getvalue().splitlines() == [
        "importing orders: 200/1000",
        "importing orders: 400/1000",
        "importing orders: 600/1000",
        "importing orders: 800/1000",
        "importing orders: 1000/1000",
    ]


def run_command(*args: str, database: Path) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"BOT_TOKEN", "CONFIG_FILE", "DATABASE_URL", "TIMEZONE"}
    }
    env |= {"DATABASE_URL": f"sqlite+aiosqlite:///{database}", "TIMEZONE": "Europe/Moscow"}
    return subprocess.run(
        [sys.executable, "main.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_import_command_prints_a_summary_and_says_by_its_status_if_lines_were_refused(
    tmp_path: Path,
) -> None:
    database = tmp_path / "bot.sqlite3"
    good = tmp_path / "orders.csv"
    good.write_text(HISTORY, encoding="utf-8-sig")  # spreadsheets save a BOM
    first = run_command("import-orders", str(good), database=database)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("orders: 3 imported, 0 duplicates")
    assert "importing orders: 3/3" in first.stderr
    again = run_command("import-orders", str(good), database=database)
    assert again.stdout.startswith("orders: 0 imported, 3 duplicates")

    bad = tmp_path / "bad.csv"
    bad.write_text("order_id,total,sku,quantity,price\nX-1,10.00,X,1,10.00\n", encoding="utf-8")
    refused = run_command("import-orders", str(bad), database=database)
    assert refused.returncode == 1
    assert "line 2 (X-1): customer: the customer needs a phone or a telegram_id" in refused.stdout

    missing = run_command("import-products", str(tmp_path / "nope.csv"), database=database)
    assert missing.returncode == 2
    assert "nope.csv" in missing.stderr and "No such file" in missing.stderr


def many_orders(prefix: str, count: int) -> str:
    lines = ["order_id,phone,telegram_id,total,sku,item_name,quantity,price"]
    for n in range(count):
        who = f"+7999{n % 300:07d}," if n % 2 == 0 else f",{20_000_000 + n}"
        lines.append(f"{prefix}-{n},{who},3290.00,CAT-2KG,Cat food 2 kg,2,1290.00")
        lines.append(f"{prefix}-{n},{who},3290.00,LITTER,Litter 10 l,1,710.00")
    return "\n".join(lines) + "\n"


class CountingReporter:
    """The desk, counting the groups of orders the import has handed it."""

    def __init__(self, desk: OrderReporter) -> None:
        self._desk = desk
        self.started = 0

    async def report_many(
        self, raws: Sequence[RawOrder], *, history: bool = False
    ) -> list[Reported | Exception]:
        self.started += 1
        return await self._desk.report_many(raws, history=history)


async def test_i17_6_api_orders_wait_for_a_few_imported_orders_not_a_chunk_while_3000_are_imported(
    sqlite_db: Database,
) -> None:
    # SQLite, where one writer serves the whole process. An API order that comes while a CSV
    # import runs waits for the import's current group of orders, not for a whole chunk of 200.
    # Counted in groups of imported orders started while the API order was in flight, not in
    # seconds: a machine that stalls on fsync stalls the import too, so the count does not change.
    db = sqlite_db
    rules, clock = Rules(), SystemClock()
    runner = await start_api(
        create_api_app(services_for(db, rules=rules, clock=clock, followers=()), api_token="t"),
        "127.0.0.1",
        0,
    )
    port = runner.addresses[0][1]
    desk = services_for(db, rules=rules, clock=clock, followers=()).order_desk
    url = f"http://127.0.0.1:{port}/api/v1/orders"
    groups = CountingReporter(desk)
    overtaken: list[int] = []
    try:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer t"}) as http:

            async def order(n: int) -> int:
                body = {
                    "order_id": f"api-{n}",
                    "customer": {"telegram_id": 30_000_000 + n},
                    "items": [{"sku": "TOY", "name": "Toy", "quantity": 1, "price": "500.00"}],
                    "total": "500.00",
                    "currency": "RUB",
                }
                before = groups.started
                async with http.post(url, json=body) as answer:
                    assert answer.status == 201, await answer.text()
                return groups.started - before

            await order(-1)
            importing = asyncio.create_task(
                import_orders(
                    rows_of(many_orders("csv", 3000)),
                    desk=groups,
                    uow=db,
                    zone=MOSCOW,
                    currency="RUB",
                )
            )
            while not importing.done():
                overtaken.append(await order(len(overtaken)))
                await asyncio.sleep(0.01)
            summary = await importing
    finally:
        await runner.cleanup()
    assert (summary.imported, summary.rejected) == (3000, [])
    assert len(overtaken) >= 10, "the orders must come while the import runs"
    # Before, an API order waited for the rest of the chunk under way: up to 8 groups of 25 orders
    # (200), and often the next chunk too. Now the import commits after its current group and
    # lets it in: at most the group under way and one started as the order came.
    assert max(overtaken) <= 2, sorted(overtaken)[-5:]
    assert await count(db, orders) == 1 + 3000 + len(overtaken)
