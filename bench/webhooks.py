"""Store webhooks while customers press buttons: acknowledgement time, deliveries/s.

Run: python -m bench.webhooks [--users 200] [--postgres]
The fake Bot API (a child process) answers every request after 100 ms; the real dispatcher
polls it while every customer changes their rating three times. Meanwhile, first the shop's
API clients post orders (the baseline: the API's own orders/s), then Shopify deliveries,
signed, are posted to /webhooks/shopify and the inbox worker maps them into the same desk.
Printed per backend: deliveries acknowledged/s and processed/s, p50/p99 acknowledgement time,
and processed/s as a ratio of the API's orders/s (targets: p99 <= 200 ms, ratio >= 0.5), over
the whole backlog and over the time the customers pressed alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiogram import Bot, Dispatcher
from sqlalchemy import update

from bench.common import backends, fresh_database
from bench.latency import (
    API_TOKEN,
    FIRST_KNOWN,
    RULES,
    FakeApi,
    Polling,
    _bot,
    burst,
    free_port,
    order_times,
    seed_customers,
)
from bot.api import create_api_app, start_api
from bot.app import UPDATES_IN_FLIGHT, settle_heap
from bot.dispatcher import create_dispatcher
from bot.fsm_storage import DatabaseFsmStorage
from bot.webhooks import create_webhooks
from bot.webhooks.routes import WebhookSecrets
from handlers.rating import rating_buttons
from locales import create_i18n
from locales.rendering import Renderer
from scenarios.clock import SystemClock
from storage.database import Database
from storage.fsm import SqlFsmStates
from storage.inbox import SqlInbox
from storage.inbox_file import inbox_database, prepare_inbox
from storage.schema import customers
from tests.support.services import services_for
from tests.support.webhooks import SHOPIFY_SECRET, body_of, shopify_headers, shopify_order

LATENCY = 0.1
HOOK_CLIENTS = 4  # Shopify sends deliveries concurrently


def phone(n: int) -> str:
    return f"+7999200{n:04d}"


async def give_phones(db: Database, users: int) -> None:
    async with db.transaction() as conn:
        for n in range(users):
            await conn.execute(
                update(customers)
                .where(customers.c.telegram_id == FIRST_KNOWN + n)
                .values(phone=phone(n))
            )


async def delivery_times(
    base: str, stop: asyncio.Event, users: int, started: Callable[[], Awaitable[None]]
) -> list[float]:
    """Signed orders/paid deliveries from HOOK_CLIENTS clients until ``stop``; seconds each."""
    times: list[float] = []
    counter = iter(range(10**9))
    placed = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()

    async def client(http: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            n = next(counter)
            body = body_of(
                shopify_order(
                    id=7_000_000 + n,
                    name=f"#H{n}",
                    processed_at=placed,
                    customer={"first_name": "Anna", "phone": phone(n % users)},
                )
            )
            headers = shopify_headers(body, topic="orders/paid", webhook_id=f"bench-{n}")
            begun = time.perf_counter()
            async with http.post(f"{base}/webhooks/shopify", data=body, headers=headers) as answer:
                await answer.read()
                assert answer.status == 200, answer.status
            times.append(time.perf_counter() - begun)

    async with aiohttp.ClientSession() as http:
        await started()
        await asyncio.gather(*(client(http) for _ in range(HOOK_CLIENTS)))
    return times


async def while_pressing(
    polling: Polling,
    fake: FakeApi,
    press: Callable[[int], list[Any]],
    clients: Callable[
        [asyncio.Event, Callable[[], Awaitable[None]]], Coroutine[Any, Any, list[float]]
    ],
) -> tuple[list[float], float]:
    """Run ``clients`` while every customer presses three times; their times and the span."""
    stop, ready = asyncio.Event(), asyncio.Event()

    async def started() -> None:
        ready.set()

    task = asyncio.create_task(clients(stop, started))
    await ready.wait()
    begun = time.perf_counter()
    for score in (4, 5, 4):
        await burst(polling, fake, "press", press(score))
    span = time.perf_counter() - begun
    stop.set()
    return sorted(await task), span


def percentile(times: list[float], share: float) -> float:
    return times[min(len(times) - 1, int(len(times) * share))]


async def measure(backend: str, db: Database, fake: FakeApi, users: int) -> None:
    clock = SystemClock()
    i18n = create_i18n("en")
    renderer = Renderer(i18n, currency="RUB", zone=ZoneInfo("UTC"))
    ratings = await seed_customers(db, users)
    await give_phones(db, users)
    known = [FIRST_KNOWN + n for n in range(users)]
    posted = await fake.ask(
        "post",
        [(uid, f"Rate order B-{uid - FIRST_KNOWN}", rating_buttons(ratings[uid])) for uid in known],
    )
    message_of = dict(zip(known, posted, strict=True))

    def press(score: int) -> list[Any]:
        return [(uid, message_of[uid], f"rate:{ratings[uid]}:{score}") for uid in known]

    inbox_db = inbox_database(db)  # as the bot keeps it: on SQLite, a file of its own
    await prepare_inbox(inbox_db, db)
    services = services_for(
        db, rules=RULES, clock=clock, i18n=i18n, renderer=renderer, inbox_db=inbox_db
    )
    dispatcher: Dispatcher = create_dispatcher(
        services=services,
        fsm_storage=DatabaseFsmStorage(SqlFsmStates(db), clock),
        version="bench",
        started_at=clock.now(),
    )
    # The services' own inbox and order desk (its followers), with a Shopify secret set.
    hooks = create_webhooks(
        db=db,
        inbox=services.webhook_inbox,
        desk=services.order_desk,
        orders=services.order_store,
        rules=RULES,
        clock=clock,
        secrets=WebhookSecrets(shopify=SHOPIFY_SECRET),
    )
    app = create_api_app(services, api_token=API_TOKEN)
    hooks.mount(app, clock=clock)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    runner = await start_api(app, "127.0.0.1", port)
    bot: Bot = _bot(fake.base_url)
    worker = asyncio.create_task(hooks.worker.run())
    inbox = SqlInbox(inbox_db)
    try:
        async with Polling(dispatcher, bot, limit=UPDATES_IN_FLIGHT) as polling:
            await burst(polling, fake, "send", [(uid, "/help") for uid in known])  # warm-up
            settle_heap()  # as the bot does once it is up (bot.app.run_polling)
            api, api_span = await while_pressing(
                polling, fake, press, lambda stop, go: order_times(base, stop, users, go)
            )
            api_rate = len(api) / api_span
            begun = time.perf_counter()
            acks, ack_span = await while_pressing(
                polling, fake, press, lambda stop, go: delivery_times(base, stop, users, go)
            )
            done_while_pressing = (await inbox.counts()).get("done", 0)
            async with asyncio.timeout(1200):
                while (await inbox.counts()).get("pending", 0):  # noqa: ASYNC110 (another task's DB work)
                    await asyncio.sleep(0.05)
            processed_span = time.perf_counter() - begun
            states = await inbox.counts()
    finally:
        hooks.worker.stop()
        await worker
        await runner.cleanup()
        await bot.session.close()
        if inbox_db is not db:
            await inbox_db.close()
    processed_rate = states.get("done", 0) / processed_span
    pressing_rate = done_while_pressing / ack_span
    print(
        f"{backend:<10} API orders while {users} customers press: {api_rate:6.1f} orders/s "
        f"({len(api)} orders, p99 {percentile(api, 0.99) * 1000:.0f} ms)"
    )
    ack_rate = len(acks) / ack_span
    p50, p99 = statistics.median(acks) * 1000, percentile(acks, 0.99) * 1000
    print(
        f"{backend:<10} Shopify deliveries while pressing: acknowledged {ack_rate:6.1f}/s "
        f"(p50 {p50:.0f} ms, p99 {p99:.0f} ms), processed {processed_rate:6.1f}/s "
        f"({states}); ratio to the API {processed_rate / api_rate:.2f}"
    )
    print(
        f"{backend:<10} of which processed while the customers pressed: {pressing_rate:6.1f}/s "
        f"({done_while_pressing} deliveries); ratio to the API {pressing_rate / api_rate:.2f}"
    )


async def main(users: int, with_postgres: bool) -> None:
    fake = FakeApi(LATENCY)
    print(f"fake Bot API answers after {LATENCY * 1000:.0f} ms; {users} customers press buttons")
    try:
        for backend in await backends(with_postgres=with_postgres):
            async with AsyncExitStack() as stack:
                db = await fresh_database(stack, backend)
                await measure(backend, db, fake, users)
    finally:
        await fake.stop()
    print(f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--postgres", action="store_true")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.users, arguments.postgres))
