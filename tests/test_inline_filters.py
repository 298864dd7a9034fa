"""Filters run on the event loop: an update through the real Dispatcher takes no trip to a
worker thread (aiogram sends every synchronous filter, F.text included, through one)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from aiogram.methods import SendMessage

from bot.inline_filters import every_handler
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from storage.database import Database
from tests.support.flow import Flow, build_flow
from tests.support.updates import TgUser

ANNA = TgUser(1001, first_name="Anna", language_code="en")


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.submitted: list[str] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted.append(repr(args[0] if args else fn))
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def flow(sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    return build_flow(db=sqlite_db, clock=clock, i18n=i18n, renderer=renderer)


def test_every_filter_of_the_dispatcher_is_awaited_inline(flow: Flow) -> None:
    filters = [f for handler in every_handler(flow.dispatcher) for f in handler.filters or ()]
    assert len(filters) > 40  # the routers' F filters and wizard states are all there
    assert [f.callback for f in filters if not f.awaitable] == []


async def test_commands_and_the_fallback_reach_no_worker_thread(flow: Flow) -> None:
    executor = CountingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)

    async def text_of(text: str) -> str:
        [reply] = [c for c in await flow.send(ANNA, text) if isinstance(c, SendMessage)]
        return reply.text

    assert (await text_of("/start")).startswith("Hello, Anna!")
    assert "/balance" in await text_of("/help")
    assert await text_of("/balance") == "You are not in the bonus program yet. Send /start to join."
    assert await text_of("what is this?")  # the fallback, after every router's filters
    assert executor.submitted == []
