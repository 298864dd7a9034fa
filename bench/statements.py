"""Database work per update: statements, transactions and driver round trips for each case.

Run: python -m bench.statements [--postgres] [--users 50] [--profile CASE]
The cases of bench.updates (/help, /balance, a rating press, a sign-up /start) go through the
real Dispatcher with a recording Bot session (no network); per update it prints the SQL
statements run, the transactions begun, the connections checked out, the compiled-cache misses
and, on SQLite, the aiosqlite thread hand-offs; the Bot API calls; and the wall and CPU
milliseconds of one update handled alone (the process's CPU, the driver's threads included).
``--profile CASE`` prints a cProfile of one case (BENCH_SORT=tottime for its own time;
BENCH_DUMP=FILE also saves it for pstats).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiosqlite
from aiogram.types import Message, Update
from sqlalchemy import event
from sqlalchemy.engine.interfaces import CacheStats

from bench.common import backends, fresh_database
from bench.latency import FIRST_KNOWN, FIRST_NEW, RULES, seed_customers
from handlers.rating import rating_buttons
from locales import create_i18n
from locales.rendering import Renderer
from scenarios.clock import SystemClock
from storage.database import Database
from tests.support.flow import Flow, build_flow
from tests.support.updates import TgUser, Updates

SORT = os.environ.get("BENCH_SORT", "cumulative")  # the profile's order; or "tottime"


class Counts:
    """What the database saw while a case ran."""

    def __init__(self) -> None:
        self.tally: Counter[str] = Counter()
        self.statements: Counter[str] = Counter()
        self.active = False

    def add(self, what: str, amount: int = 1) -> None:
        if self.active:
            self.tally[what] += amount


def listen(db: Database, counts: Counts) -> None:
    engine = db.engine.sync_engine

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(_c: Any, _cur: Any, statement: str, _p: Any, context: Any, _m: bool) -> None:
        counts.add("statements")
        if counts.active:
            counts.statements[" ".join(statement.split())[:110]] += 1
        if context is not None and context.cache_hit is CacheStats.CACHE_MISS:
            counts.add("compiled-cache misses")

    @event.listens_for(engine, "begin")
    def _begin(_c: Any) -> None:
        counts.add("transactions")

    @event.listens_for(engine, "commit")
    def _commit(_c: Any) -> None:
        counts.add("commits")

    @event.listens_for(engine, "rollback")
    def _rollback(_c: Any) -> None:
        counts.add("rollbacks")

    @event.listens_for(engine.pool, "checkout")
    def _checkout(*_: Any) -> None:
        counts.add("checkouts")


@contextmanager
def sqlite_handoffs(counts: Counts) -> Iterator[None]:
    """Count every function aiosqlite queues for its worker thread (one round trip each)."""
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        counts.add("aiosqlite hand-offs")
        return await original(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    aiosqlite.Connection._execute = counted  # type: ignore[method-assign]
    try:
        yield
    finally:
        aiosqlite.Connection._execute = original  # type: ignore[method-assign]


def rating_message(chat_id: int, rating_id: int, message_id: int) -> Message:
    markup = {"inline_keyboard": rating_buttons(rating_id)}
    return Message.model_validate(
        {
            "message_id": message_id,
            "date": int(datetime.now(UTC).timestamp()),
            "chat": {"id": chat_id, "type": "private", "first_name": "U"},
            "from": {"id": 123456, "is_bot": True, "first_name": "Shop"},
            "text": "Rate your order",
            "reply_markup": markup,
        }
    )


async def run(with_postgres: bool, users: int, profile: str | None) -> None:
    i18n = create_i18n("en")
    renderer = Renderer(i18n, currency="RUB", zone=ZoneInfo("UTC"))
    for backend in await backends(with_postgres=with_postgres):
        async with AsyncExitStack() as stack:
            db = await fresh_database(stack, backend)
            counts = Counts()
            listen(db, counts)
            stack.enter_context(sqlite_handoffs(counts))
            ratings = await seed_customers(db, users)
            flow = build_flow(db=db, clock=SystemClock(), i18n=i18n, renderer=renderer, rules=RULES)
            print(f"{backend}: per update, mean over {users} updates")
            for name, batch in await cases(flow, ratings, users):
                await measure(flow, counts, name, batch, profile=profile == name)


async def cases(flow: Flow, ratings: dict[int, int], users: int) -> list[tuple[str, list[Update]]]:
    """The updates of each case, one per known customer (each first seen once)."""
    factory = Updates()
    people = [TgUser(FIRST_KNOWN + n, first_name=f"U{FIRST_KNOWN + n}") for n in range(users)]
    for person in people:  # the first contact stores each name (a write, once)
        await flow.dispatcher.feed_update(flow.bot, factory.message(person, "/help"))

    def press(score: int) -> list[Update]:
        return [
            factory.callback(
                p,
                f"rate:{ratings[p.id]}:{score}",
                message=rating_message(p.id, ratings[p.id], 9),
            )
            for p in people
        ]

    return [
        ("/help", [factory.message(p, "/help") for p in people]),
        ("/balance", [factory.message(p, "/balance") for p in people]),
        ("rating press", press(5)),
        ("rating press again", press(4)),
        (
            "sign-up /start",
            [
                factory.message(TgUser(FIRST_NEW + n, first_name="N"), "/start")
                for n in range(users)
            ],
        ),
    ]


async def measure(
    flow: Flow, counts: Counts, name: str, batch: list[Update], *, profile: bool
) -> None:
    counts.tally.clear()
    counts.statements.clear()
    counts.active = True
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    wall, cpu = time.perf_counter(), time.process_time()
    sent = len(flow.session.requests)
    for update in batch:
        await flow.dispatcher.feed_update(flow.bot, update)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if profiler:
        profiler.disable()
    counts.active = False
    count = len(batch)
    counts.tally["Bot API calls"] = len(flow.session.requests) - sent
    methods = Counter(type(r).__name__ for r in flow.session.requests[sent:])
    figures = ", ".join(
        f"{what} {amount / count:.1f}" for what, amount in sorted(counts.tally.items())
    )
    times = f"ms wall {wall * 1000 / count:.1f}, ms cpu {cpu * 1000 / count:.1f}"
    print(f"  {name:<20} {figures}, {times}")
    print(f"  {'':<20} calls: {dict(methods)}")
    if profiler:
        for statement, amount in counts.statements.most_common():
            print(f"      {amount / count:5.1f}  {statement}")
        pstats.Stats(profiler).sort_stats(SORT).print_stats(45)
        if os.environ.get("BENCH_DUMP"):
            profiler.dump_stats(os.environ["BENCH_DUMP"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", action="store_true", help="also measure on PostgreSQL")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--profile", default=None, help="a case's name, e.g. '/balance'")
    args = parser.parse_args()
    asyncio.run(run(args.postgres, args.users, args.profile))


if __name__ == "__main__":
    main()
