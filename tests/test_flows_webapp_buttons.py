"""The Mini App's buttons in the bot (real Dispatcher): under /card and an admin's /status, in
the user's language, and none at all without WEBAPP_URL."""

from __future__ import annotations

from aiogram.methods import SendMessage, SendPhoto
from aiogram.types import InlineKeyboardMarkup

from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from storage.database import Database
from tests.support.flow import build_flow
from tests.support.seed import member
from tests.support.updates import TgUser

URL = "https://shop.example/app/"
ADMIN = TgUser(9001, "Olga", language_code="uk")
ANNA = TgUser(5001, "Anna", language_code="ru")


def buttons(markup: object) -> list[tuple[str, str | None]]:
    assert isinstance(markup, InlineKeyboardMarkup)
    return [
        (button.text, button.web_app.url if button.web_app else None)
        for row in markup.inline_keyboard
        for button in row
    ]


async def test_card_and_status_open_the_mini_app_when_the_shop_runs_one(
    sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    flow = build_flow(
        db=sqlite_db, clock=clock, i18n=i18n, renderer=renderer, admin_ids=(ADMIN.id,)
    )
    flow.dispatcher["webapp_url"] = URL
    await member(sqlite_db, ANNA.id)
    [card] = [c for c in await flow.send(ANNA, "/card") if isinstance(c, SendPhoto)]
    assert buttons(card.reply_markup) == [
        ("Код для оплаты бонусами", None),
        ("📱 Открыть мою карту", URL),
    ]
    [status] = [c for c in await flow.send(ADMIN, "/status") if isinstance(c, SendMessage)]
    assert buttons(status.reply_markup) == [("🧾 Відкрити касу", URL)]


async def test_without_webapp_url_the_bot_shows_no_mini_app_buttons(
    sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    flow = build_flow(
        db=sqlite_db, clock=clock, i18n=i18n, renderer=renderer, admin_ids=(ADMIN.id,)
    )
    await member(sqlite_db, ANNA.id)
    [card] = [c for c in await flow.send(ANNA, "/card") if isinstance(c, SendPhoto)]
    assert buttons(card.reply_markup) == [("Код для оплаты бонусами", None)]
    [status] = [c for c in await flow.send(ADMIN, "/status") if isinstance(c, SendMessage)]
    assert status.reply_markup is None
