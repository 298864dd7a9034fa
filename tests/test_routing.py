"""The feature routers merged into one, and their handlers indexed by command and button
prefix, answer every update as the separate routers did."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.dispatcher.event.handler import FilterObject, HandlerObject
from aiogram.filters import Command, CommandStart
from aiogram.filters.callback_data import CallbackData

from bot.handler_index import index_handlers
from bot.routing import one_router
from tests.support.flow import BOT_TOKEN
from tests.support.recording_session import RecordingSession
from tests.support.updates import TgUser, Updates

ANNA = TgUser(1001, first_name="Anna", language_code="en")


def features(seen: list[str]) -> list[Router]:
    """Three routers whose handlers overlap the way ours do: a private-only router, a
    catch-all text handler in an earlier router, and a fallback that takes the rest."""
    private = Router(name="private")
    private.message.filter(F.chat.type == "private")

    @private.message(Command("balance"))
    async def balance(_: Any) -> None:
        seen.append("private balance")

    wizard = Router(name="wizard")

    @wizard.message(F.text == "42")
    async def answer(_: Any) -> None:
        seen.append("wizard answer")

    @wizard.message(Command("balance"))
    async def shadowed(_: Any) -> None:
        seen.append("wizard balance")

    fallback = Router(name="fallback")

    @fallback.message()
    async def rest(_: Any) -> None:
        seen.append("fallback")

    @fallback.callback_query()
    async def pressed(_: Any) -> None:
        seen.append("press")

    return [private, wizard, fallback]


async def answers(dispatcher: Dispatcher) -> None:
    """A private /balance, a group's /balance, the wizard's answer, any text, any press."""
    bot = Bot(BOT_TOKEN, session=RecordingSession())
    updates = Updates()
    for update in (
        updates.message(ANNA, "/balance"),
        updates.message(ANNA, "/balance", chat_id=-100),  # a group: the private router is out
        updates.message(ANNA, "42"),
        updates.message(ANNA, "hello"),
        updates.callback(ANNA, "anything"),
    ):
        await dispatcher.feed_update(bot, update)


async def test_the_same_handler_wins_as_with_separate_routers() -> None:
    merged: list[str] = []
    one = Dispatcher()
    one.include_router(one_router(features(merged)))
    await answers(one)
    separate: list[str] = []
    several = Dispatcher()
    several.include_routers(*features(separate))
    await answers(several)
    assert (
        merged
        == separate
        == [
            "private balance",
            "wizard balance",
            "wizard answer",
            "fallback",
            "press",
        ]
    )


def test_a_router_with_middlewares_or_sub_routers_is_refused() -> None:
    with_middleware = Router(name="audited")

    async def middleware(handler: Any, event: Any, data: dict[str, Any]) -> Any:
        return await handler(event, data)

    with_middleware.message.middleware(middleware)
    with pytest.raises(ValueError, match="audited"):
        one_router([with_middleware])
    parent = Router(name="parent")
    parent.include_router(Router(name="child"))
    with pytest.raises(ValueError, match="parent"):
        one_router([parent])


class Stars(CallbackData, prefix="stars"):
    score: int


class Other(CallbackData, prefix="other"):
    n: int


def indexed_features(seen: list[str]) -> Router:
    """Keyed and unkeyed handlers interleaved: an unkeyed one registered before a keyed one
    must still win when its filters pass."""
    router = Router(name="indexed")

    @router.message(F.text.startswith("/balance now"))
    async def magic_first(_: Any) -> None:
        seen.append("magic /balance now")

    @router.message(Command("balance"))
    async def balance(_: Any) -> None:
        seen.append("balance")

    @router.message(Command("HELP", ignore_case=True))
    async def help_any_case(_: Any) -> None:
        seen.append("help")

    @router.message(CommandStart())
    async def start(_: Any) -> None:
        seen.append("start")

    @router.message(F.caption)
    async def captioned(_: Any) -> None:
        seen.append("caption")

    @router.message()
    async def rest(_: Any) -> None:
        seen.append("rest")

    @router.callback_query(Other.filter())
    async def other(_: Any) -> None:
        seen.append("other")

    @router.callback_query(F.data == "stars:9")
    async def magic_star(_: Any) -> None:
        seen.append("magic stars:9")

    @router.callback_query(Stars.filter())
    async def stars(_: Any) -> None:
        seen.append("stars")

    @router.callback_query()
    async def pressed(_: Any) -> None:
        seen.append("press")

    return router


async def test_the_index_picks_the_handler_every_handler_in_order_would() -> None:
    bot = Bot(BOT_TOKEN, session=RecordingSession())
    updates = Updates()
    sent = [
        updates.message(ANNA, "/balance"),
        updates.message(ANNA, "/balance now please"),
        updates.message(ANNA, "/balance@other_bot 5"),
        updates.message(ANNA, "/balance@shop_test_bot 5"),
        updates.message(ANNA, "  /help"),
        updates.message(ANNA, "/Help"),
        updates.message(ANNA, "/start ref-123"),
        updates.message(ANNA, "/unknown"),
        updates.message(ANNA, "just text"),
        updates.callback(ANNA, "stars:4"),
        updates.callback(ANNA, "stars:9"),
        updates.callback(ANNA, "stars:1:2"),  # the wrong shape for Stars
        updates.callback(ANNA, "other:1"),
        updates.callback(ANNA, "nothing"),
    ]
    chosen: dict[str, list[str]] = {"plain": [], "indexed": []}
    checked: list[HandlerObject] = []
    for way, seen in chosen.items():
        router = indexed_features(seen)
        if way == "indexed":
            index_handlers(router)
            for observer in (router.message, router.callback_query):
                for handler in observer.handlers:
                    handler.filters = [counted(checked, handler), *(handler.filters or ())]
        dispatcher = Dispatcher()
        dispatcher.include_router(router)
        for update in sent:
            await dispatcher.feed_update(bot, update)
    assert (
        chosen["indexed"]
        == chosen["plain"]
        == [
            "balance",
            "magic /balance now",
            "rest",  # addressed to another bot
            "balance",
            "help",
            "help",
            "start",
            "rest",
            "rest",
            "stars",
            "magic stars:9",
            "press",
            "other",
            "press",
        ]
    )
    # A press on a Stars button never got as far as checking the handler of Other buttons.
    assert "other" not in names_checked_before(checked, "stars")


def counted(checked: list[HandlerObject], handler: HandlerObject) -> FilterObject:
    """A first filter that passes and notes that the handler was checked."""

    async def note(_event: Any) -> bool:
        checked.append(handler)
        return True

    return FilterObject(note)


def names_checked_before(checked: list[HandlerObject], name: str) -> list[str]:
    names = [handler.callback.__name__ for handler in checked]
    return names[: names.index(name)]
