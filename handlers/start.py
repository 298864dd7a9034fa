"""/start: greet the customer in their language and explain the program."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import CommandStart
from aiogram.types import Message

from locales.rendering import Renderer
from scenarios.rules import Rules
from storage.customers import CustomerRecord


def create_router() -> Router:
    router = Router(name="start")
    router.message.filter(F.chat.type == "private")
    router.message.register(greet, CommandStart())
    return router


async def greet(
    message: Message, renderer: Renderer, locale: str, customer: CustomerRecord, rules: Rules
) -> None:
    await message.answer(
        renderer.render(
            "welcome.html", locale=locale, name=customer.first_name or "", shop=rules.shop.name
        )
    )
