"""Every /stats figure on a big shop: 100 000 customers, 1 000 000 orders, without and with charts.

Run: python -m bench.stats [--customers 100000] [--orders 1000000] [--postgres] [--rounds 3]
The data is generated with numpy and loaded with multi-row INSERTs (literal numbers and
timestamps only, made here), then ANALYZEd. Figures are medians of --rounds; the baseline is
one full scan of the orders (count and sum) in the same process, so the ratio says what the
figures cost over the cheapest question about every order. The machine's load (uptime) is
printed next to them: two cores shared by others make absolute seconds move.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from aiogram.utils.i18n import I18n
from sqlalchemy import text

from bench.common import backends, fresh_database
from bot.analytics import shop_analytics
from bot.app import settle_heap
from bot.charts import StatsCharts
from handlers.stats_charts import stats_charts
from locales import create_i18n
from scenarios.analytics import FORECAST_DAYS, Period
from scenarios.clv import fitted_forecast
from scenarios.rules import Rules
from storage.analytics import Calendar, SqlAnalytics
from storage.broadcasts import SqlBroadcasts
from storage.database import Database
from storage.reminders import SqlReminders

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HISTORY_DAYS = 730
ROWS_PER_INSERT = 2_000
SKUS = [f"SKU-{n:03d}" for n in range(50)]


def _stamp(seconds: np.ndarray, *, postgres: bool) -> list[str]:
    """Epoch seconds as the backend's timestamp literal (SQLite: SQLAlchemy's text format)."""
    moments = seconds.astype("datetime64[s]").astype(str)
    if postgres:
        return [f"'{m.replace('T', ' ')}+00'" for m in moments]
    return [f"'{m.replace('T', ' ')}.000000'" for m in moments]


async def _insert(db: Database, table: str, columns: str, rows: Iterable[str]) -> None:
    batch: list[str] = []

    async def flush() -> None:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql(f"INSERT INTO {table} ({columns}) VALUES {','.join(batch)}")
        batch.clear()

    for row in rows:
        batch.append(row)
        if len(batch) >= ROWS_PER_INSERT:
            await flush()
    if batch:
        await flush()


async def generate(db: Database, *, customers: int, orders: int, seed: int = 14) -> None:
    """A shop whose customers buy at their own rate and drop out at their own time (the story
    BG/NBD tells), with 5 % guest orders, cancellations, cashback, spending and ratings."""
    rng = np.random.default_rng(seed)
    postgres = db.backend == "postgresql"
    now = NOW.timestamp()
    day = 86_400.0

    ids = np.arange(1, customers + 1)
    first = now - rng.uniform(0, HISTORY_DAYS, customers) * day
    # Orders per customer: 1 + a negative binomial, then nudged so they add up exactly.
    known_orders = orders - orders // 20
    counts = 1 + rng.negative_binomial(1.2, 1.2 / (1.2 + known_orders / customers - 1), customers)
    surplus = int(counts.sum()) - known_orders
    while surplus != 0:
        pick = rng.integers(0, customers, abs(surplus))
        if surplus > 0:
            np.subtract.at(counts, pick, 1)
            counts = np.maximum(counts, 1)
        else:
            np.add.at(counts, pick, 1)
        surplus = int(counts.sum()) - known_orders
    # Each customer stays active a part of their history, then is gone.
    active = (now - first) * rng.beta(2.0, 1.5, customers)
    owner = np.repeat(ids, counts)
    offset = rng.uniform(0, 1, known_orders) * np.repeat(active, counts)
    firsts = np.zeros(known_orders, dtype=bool)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    firsts[starts] = True
    offset[firsts] = 0.0  # everybody's first order is at their first moment
    at = np.repeat(first, counts) + offset
    guests = orders - known_orders
    owner = np.concatenate((owner, np.zeros(guests, dtype=np.int64)))
    at = np.concatenate((at, now - rng.uniform(0, HISTORY_DAYS, guests) * day))
    total = np.round(rng.lognormal(np.log(250_000), 0.6, orders)).astype(np.int64)
    status = rng.choice(
        np.array(["delivered", "paid", "cancelled", "refunded"]), orders, p=[0.9, 0.05, 0.03, 0.02]
    )

    member = rng.uniform(0, 1, customers) < 0.9
    joined = first - rng.uniform(0, 30, customers) * day
    stamps_joined = _stamp(joined, postgres=postgres)
    opt_in = rng.uniform(0, 1, customers) < 0.6
    blocked = rng.uniform(0, 1, customers) < 0.05
    true, false = ("TRUE", "FALSE") if postgres else ("1", "0")
    now_stamp = _stamp(np.array([now]), postgres=postgres)[0]
    await _insert(
        db,
        "customers",
        "id, telegram_id, created_at, last_seen_at, joined_at, marketing_opt_in, blocked_at",
        (
            f"({i},{1_000_000 + i},{stamps_joined[i - 1]},{now_stamp},"
            f"{stamps_joined[i - 1] if member[i - 1] else 'NULL'},"
            f"{true if opt_in[i - 1] else false},{now_stamp if blocked[i - 1] else 'NULL'})"
            for i in ids.tolist()
        ),
    )
    ordered = _stamp(at, postgres=postgres)
    owners = owner.tolist()
    totals = total.tolist()
    statuses = status.tolist()
    await _insert(
        db,
        "orders",
        "id, order_ref, customer_id, total, bonus_redeemed, currency, status, ordered_at,"
        " received_at, updated_at",
        (
            f"({n + 1},'B-{n + 1}',{owners[n] or 'NULL'},{totals[n]},0,'RUB','{statuses[n]}',"
            f"{ordered[n]},{ordered[n]},{ordered[n]})"
            for n in range(orders)
        ),
    )
    skus = rng.integers(0, len(SKUS), orders).tolist()
    await _insert(
        db,
        "order_items",
        "id, order_id, sku, name, quantity, price",
        (
            f"({n + 1},{n + 1},'{SKUS[skus[n]]}','{SKUS[skus[n]]}',1,{totals[n]})"
            for n in range(orders)
        ),
    )
    # Cashback of 5 % on members' counted orders; a tenth of them spend 100 points later.
    counted = (owner > 0) & np.isin(status, ["delivered", "paid"])
    counted &= np.concatenate((member, [False]))[np.where(owner > 0, owner - 1, customers)]
    earners = np.flatnonzero(counted)
    points = (total[earners] // 2_000).tolist()
    spenders = earners[rng.uniform(0, 1, len(earners)) < 0.1]
    entries = [
        (int(owner[n]), "accrual", f"order:B-{n + 1}", p, at[n])
        for n, p in zip(earners.tolist(), points, strict=True)
    ] + [
        (int(owner[n]), "redemption", f"spend:B-{n + 1}", -100, at[n] + 7 * day)
        for n in spenders.tolist()
        if at[n] + 7 * day < now
    ]
    when = _stamp(np.array([entry[4] for entry in entries]), postgres=postgres)
    await _insert(
        db,
        "ledger_entries",
        "id, customer_id, kind, source, amount, reason, occurred_at",
        (
            f"({n + 1},{c},'{k}','{s}',{a},'bench',{when[n]})"
            for n, (c, k, s, a, _at) in enumerate(entries)
        ),
    )
    balance = np.zeros(customers + 1, dtype=np.int64)
    np.add.at(balance, [e[0] for e in entries], [e[3] for e in entries])
    await _insert(
        db,
        "ledger_accounts",
        "customer_id, balance, debt, updated_at",
        (f"({c},{int(balance[c])},0,{now_stamp})" for c in np.flatnonzero(balance).tolist()),
    )
    # A fifth of members' orders rated three days later (when that has come).
    rated = earners[(rng.uniform(0, 1, len(earners)) < 0.2) & (at[earners] + 3 * day < now)]
    scores = rng.choice(np.arange(1, 6), len(rated), p=[0.05, 0.05, 0.1, 0.3, 0.5]).tolist()
    rated_at = _stamp(at[rated] + 3 * day, postgres=postgres)
    await _insert(
        db,
        "ratings",
        "id, order_ref, customer_id, requested_at, expires_at, score, first_rated_at, rated_at",
        (
            f"({k + 1},'B-{n + 1}',{int(owner[n])},{rated_at[k]},{rated_at[k]},{scores[k]},"
            f"{rated_at[k]},{rated_at[k]})"
            for k, n in enumerate(rated.tolist())
        ),
    )
    async with db.engine.begin() as conn:
        if postgres:  # the sequences follow the explicit ids
            for table in ("customers", "orders", "order_items", "ledger_entries", "ratings"):
                await conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT MAX(id) FROM {table}))"
                )
        await conn.exec_driver_sql("ANALYZE")


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


async def timed(work: Callable[[], Awaitable[Any]], rounds: int) -> float:
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        await work()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


async def measure(db: Database, *, rounds: int) -> None:
    rules = Rules()
    zone = ZoneInfo("Europe/Moscow")
    analytics = shop_analytics(
        db, rules, reminders=SqlReminders(db), broadcasts=SqlBroadcasts(db), zone=zone
    )
    calendar = Calendar(zone)
    store = SqlAnalytics(db, calendar=calendar)
    painter = StatsCharts()
    i18n = create_i18n("en")
    I18n.set_current(i18n)  # the handler's gettext, as the middleware sets it for an update
    window = analytics.window(Period.MONTH, now=NOW)
    settle_heap()  # as the bot does once it is up (bot.app.run_polling)

    async def baseline() -> None:
        async with db.read() as conn:
            await conn.execute(
                text(
                    "SELECT COUNT(*), SUM(total) FROM orders WHERE status NOT IN "
                    "('cancelled', 'refunded')"
                )
            )

    first_month = calendar.month_of(NOW) - Period.MONTH.cohort_months + 1
    groups = (await store.overview(window)).histories

    async def fit() -> None:
        fitted_forecast(groups, weeks=FORECAST_DAYS / 7)

    async def summary() -> None:
        await analytics.collect(Period.MONTH, now=NOW)

    async def with_charts() -> None:
        await analytics.collect(Period.MONTH, now=NOW)
        data = await analytics.chart_data(Period.MONTH, now=NOW)
        with i18n.use_locale("ru"):
            for _name, chart in stats_charts(data, locale="ru"):
                await painter.paint(chart)

    parts: dict[str, Callable[[], Awaitable[Any]]] = {
        # Customers, repeat sales, the fit's input and the cohorts: one pass, one statement.
        "overview (4 sections)": lambda: store.overview(window, first_month=first_month),
        "fit (BG/NBD, Gamma-Gamma)": fit,
        "cohorts alone (charts)": lambda: store.cohorts(first_month=first_month, end=NOW),
        "program cost": lambda: store.program(window),
        "satisfaction": lambda: store.satisfaction(window),
        "chart series": lambda: analytics.chart_data(Period.MONTH, now=NOW),
    }
    base = await timed(baseline, rounds)
    print(f"  load: {load()}")
    print(f"  baseline (one scan of the orders): {base:.3f} s")
    for name, work in parts.items():
        print(f"    {name:<22} {await timed(work, rounds):.3f} s")
    stats = await analytics.collect(Period.MONTH, now=NOW)
    print(
        f"    (predicted CLV by {'BG/NBD + Gamma-Gamma' if stats.forecast.fitted else 'formula'})"
    )
    plain = await timed(summary, rounds)
    charts = await timed(with_charts, rounds)
    print(f"  summary, every figure:  {plain:.3f} s  ({plain / base:.1f}x baseline; target 2 s)")
    print(f"  with the three charts:  {charts:.3f} s  ({charts / base:.1f}x baseline; target 5 s)")
    print(f"  load: {load()}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    for backend in await backends(with_postgres=args.postgres):
        async with AsyncExitStack() as stack:
            db = await fresh_database(stack, backend)
            started = time.perf_counter()
            await generate(db, customers=args.customers, orders=args.orders)
            print(
                f"{backend}: {args.customers:,} customers, {args.orders:,} orders "
                f"generated in {time.perf_counter() - started:.0f} s"
            )
            await measure(db, rounds=args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
