"""Updates/second through the real Dispatcher with storage, against a bare aiogram echo bot.

Run: python -m bench.updates [--updates 3000] [--users 300] [--postgres]
Both sides get the same Update objects and a recording Bot session (no network), so the ratio
shows what our middlewares, database unit of work, i18n and rendering cost per update.

Run: python -m bench.updates --latency 0.1 [--users 200] [--postgres]
The fake Bot API in a child process answers every request that late; the real bot polls it over
HTTP, so the ratio shows what waits on Telegram costs us (bench/latency.py).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from functools import partial
from zoneinfo import ZoneInfo

from aiogram import Bot, Dispatcher, Router
from aiogram.types import Message, Update

from bench.common import backends, fresh_database, per_second
from locales import create_i18n
from locales.rendering import Renderer
from scenarios.clock import SystemClock
from tests.support.flow import BOT_TOKEN, build_flow
from tests.support.recording_session import RecordingSession
from tests.support.updates import TgUser, Updates

CONCURRENCY = 20  # like polling with handle_as_tasks: several updates in flight at once


def make_updates(count: int, users: int, text: str) -> list[Update]:
    factory = Updates()
    people = [TgUser(10_000 + n, first_name=f"U{n}", language_code="ru") for n in range(users)]
    return [factory.message(people[n % users], text) for n in range(count)]


async def measure(feed: Callable[[Update], Awaitable[object]], updates: list[Update]) -> float:
    """Updates per second, CONCURRENCY at a time."""
    return await per_second(feed, updates, concurrency=CONCURRENCY)


def bare_echo() -> tuple[Dispatcher, Bot]:
    router = Router()

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    return dispatcher, Bot(BOT_TOKEN, session=RecordingSession())


async def run(updates_count: int, users: int, with_postgres: bool) -> None:
    i18n = create_i18n("en")
    renderer = Renderer(i18n, currency="RUB", zone=ZoneInfo("UTC"))
    echo_dp, echo_bot = bare_echo()
    warmup = make_updates(200, 50, "/help")

    chosen = await backends(with_postgres=with_postgres)

    print(f"{updates_count} updates from {users} users, {CONCURRENCY} in flight")
    for backend in chosen:
        async with AsyncExitStack() as stack:
            db = await fresh_database(stack, backend)
            flow = build_flow(
                db=db,
                clock=SystemClock(),
                i18n=i18n,
                renderer=renderer,
            )
            for update in warmup:
                await flow.dispatcher.feed_update(flow.bot, update)
                await echo_dp.feed_update(echo_bot, update)
            for command in ("/help", "/start"):
                batch = make_updates(updates_count, users, command)
                echo_rate = await measure(partial(echo_dp.feed_update, echo_bot), batch)
                ours = await measure(partial(flow.dispatcher.feed_update, flow.bot), batch)
                print(
                    f"{backend:<10} {command:<6} ours {ours:8.0f} upd/s | bare echo "
                    f"{echo_rate:8.0f} upd/s | ratio ours/echo {ours / echo_rate:.3f}"
                )
    print(f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--postgres", action="store_true", help="also measure on PostgreSQL")
    parser.add_argument(
        "--latency",
        type=float,
        default=None,
        help="seconds the fake Bot API takes per request: the bot over HTTP long polling",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="with --latency: bursts per case, the best counts"
    )
    args = parser.parse_args()
    if args.latency is not None:
        from bench.latency import run_with_latency

        users = args.users if args.users != parser.get_default("users") else 200
        asyncio.run(run_with_latency(args.latency, users, args.postgres, args.rounds))
        return
    asyncio.run(run(args.updates, args.users, args.postgres))


if __name__ == "__main__":
    main()
