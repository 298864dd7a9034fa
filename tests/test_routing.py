"""The feature routers merged into one answer every update as the separate routers did."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.filters import Command

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
