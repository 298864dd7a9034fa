"""/stats through the real Dispatcher: the summary, periods and sections edited in place, charts
sent as photos, and nothing for customers. The figures are the small shop's (support/small_shop)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage, SendPhoto
from aiogram.types import BufferedInputFile

from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from storage.database import Database
from tests.support.flow import Flow, build_flow
from tests.support.seed import NOW
from tests.support.small_shop import seed_small_shop
from tests.support.updates import TgUser

ADMIN = TgUser(9001, first_name="Max", language_code="en")
ADMIN_RU = TgUser(9002, first_name="Макс", language_code="ru")
ANNA = TgUser(1001, first_name="Anna", language_code="en")


@pytest.fixture
async def flow(sqlite_db: Database, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    await seed_small_shop(sqlite_db)
    return build_flow(
        db=sqlite_db,
        clock=FixedClock(NOW),
        i18n=i18n,
        renderer=renderer,
        admin_ids=(ADMIN.id, ADMIN_RU.id),
    )


def of(kind: type, calls: Sequence[object]) -> list[Any]:
    return [call for call in calls if isinstance(call, kind)]


def labels(method: Any) -> list[list[str]]:
    return [[button.text for button in row] for row in method.reply_markup.inline_keyboard]


def data_of(method: Any, text: str) -> str:
    return str(
        next(
            button.callback_data
            for row in method.reply_markup.inline_keyboard
            for button in row
            if button.text == text
        )
    )


async def test_the_summary_with_period_and_section_buttons(flow: Flow) -> None:
    [summary] = of(SendMessage, await flow.send(ADMIN, "/stats"))
    assert summary.text.splitlines() == [
        "<b>Statistics for the last 30 days</b>",
        "",
        "Members: 8 (+1 in the period)",
        "Repeat purchase rate: 57.1%",
        "Retention rate: 75%",
        "Average order: RUB\xa02,833.33",
        "Customer value: RUB\xa03,000.00 so far, RUB\xa03,400.00 expected in the next 12 months",
        "Points outstanding: 380 points (RUB\xa0380.00)",
        "CSAT: 66.7%",
    ]
    assert labels(summary) == [
        ["7 days", "• 30 days •", "90 days", "12 months"],
        ["Customers", "Repeat sales", "Value"],
        ["Cohorts", "Program cost", "Satisfaction"],
        ["Engagement", "📈 Charts"],
    ]


async def test_a_period_button_edits_the_message_in_place(flow: Flow) -> None:
    [summary] = of(SendMessage, await flow.send(ADMIN, "/stats"))
    message = flow.message_from(summary)
    calls = await flow.press(ADMIN, data_of(summary, "12 months"), message=message)
    [edited] = of(EditMessageText, calls)
    assert of(SendMessage, calls) == []
    assert edited.message_id == message.message_id
    assert edited.text.startswith("<b>Statistics for the last 12 months</b>")
    # Within a year only G joined (the others 400 days ago or earlier).
    assert "Members: 8 (+1 in the period)" in edited.text
    assert labels(edited)[0] == ["7 days", "30 days", "90 days", "• 12 months •"]


async def test_sections_show_the_hand_computed_figures(flow: Flow) -> None:
    [summary] = of(SendMessage, await flow.send(ADMIN, "/stats"))
    message = flow.message_from(summary)

    [repeat] = of(
        EditMessageText, await flow.press(ADMIN, data_of(summary, "Repeat sales"), message=message)
    )
    assert repeat.text.splitlines() == [
        "<b>Repeat sales: the last 30 days</b>",
        "",
        "Repeat purchase rate (RPR): 57.1% (4 of 7 customers ordered twice or more)",
        "Retention rate (CRR): 75% (3 of 4 active customers stayed)",
        "Purchase frequency (orders per customer): 1.25",
        "Average order value (AOV): RUB\xa02,833.33 over 6 orders",
        "Median time between orders: 95 days",
        "Revenue from returning customers: RUB\xa07,000.00 (41.2%)",
        "Revenue from new customers and guests: RUB\xa010,000.00",
    ]
    assert labels(repeat)[1] == ["Summary", "Customers", "Value"]

    [customers] = of(
        EditMessageText, await flow.press(ADMIN, data_of(repeat, "Customers"), message=message)
    )
    assert "Sleeping (overdue for an order): 2" in customers.text
    assert "Lost (no order for a long time): 2" in customers.text
    assert "Agreed to offers: 6" in customers.text

    [cohorts] = of(
        EditMessageText, await flow.press(ADMIN, data_of(repeat, "Cohorts"), message=message)
    )
    assert "August 2026, 2 customers: 50% · 0% · 50%" in cohorts.text
    assert "October 2026, 1 customer: 0%" in cohorts.text

    [value] = of(
        EditMessageText, await flow.press(ADMIN, data_of(repeat, "Value"), message=message)
    )
    assert "Predicted CLV for the next 12 months: RUB\xa03,400.00" in value.text
    assert "too little history yet to fit a model" in value.text

    [program] = of(
        EditMessageText, await flow.press(ADMIN, data_of(repeat, "Program cost"), message=message)
    )
    assert "Points outstanding: 380 points, worth RUB\xa0380.00" in program.text
    assert "Redemption rate: 20%" in program.text

    [satisfaction] = of(
        EditMessageText, await flow.press(ADMIN, data_of(repeat, "Satisfaction"), message=message)
    )
    assert "CSAT 66.7% of 3 ratings" in satisfaction.text
    assert "Last 7 days: 1 rating, average 4, CSAT 100%" in satisfaction.text

    [engagement] = of(
        EditMessageText, await flow.press(ADMIN, data_of(repeat, "Engagement"), message=message)
    )
    assert "Replenishment reminders" in engagement.text
    assert "1 broadcast started" in engagement.text


async def test_the_admins_own_language_with_plurals(flow: Flow) -> None:
    [summary] = of(SendMessage, await flow.send(ADMIN_RU, "/stats"))
    assert summary.text.startswith("<b>Статистика за последние 30 дней</b>")
    assert "Бонусы на счетах: 380 бонусов (380,00\xa0₽)" in summary.text
    message = flow.message_from(summary)
    [repeat] = of(
        EditMessageText,
        await flow.press(ADMIN_RU, data_of(summary, "Повторные продажи"), message=message),
    )
    assert "Медианный интервал между заказами: 95 дней" in repeat.text
    assert "Средний чек (AOV): 2\xa0833,33\xa0₽ по 6 заказам" in repeat.text


async def test_charts_arrive_as_three_png_photos(flow: Flow) -> None:
    [summary] = of(SendMessage, await flow.send(ADMIN_RU, "/stats"))
    calls = await flow.press(
        ADMIN_RU, data_of(summary, "📈 Графики"), message=flow.message_from(summary)
    )
    [answer] = of(AnswerCallbackQuery, calls)
    assert answer.text == "Рисую графики…"
    photos = of(SendPhoto, calls)
    assert [photo.chat_id for photo in photos] == [ADMIN_RU.id] * 3
    files = [photo.photo for photo in photos]
    assert all(isinstance(file, BufferedInputFile) for file in files)
    assert [file.filename for file in files] == ["orders.png", "cohorts.png", "ratings.png"]
    assert all(file.data.startswith(b"\x89PNG\r\n\x1a\n") for file in files)
    assert all(len(file.data) > 10_000 for file in files), "a real picture, not an empty canvas"
    assert {photo.caption for photo in photos} == {"Период: 30 дней"}


async def test_customers_get_neither_the_figures_nor_the_buttons(flow: Flow) -> None:
    [refused] = of(SendMessage, await flow.send(ANNA, "/stats"))
    assert refused.text == "This command is for the shop's admins."
    [summary] = of(SendMessage, await flow.send(ADMIN, "/stats"))
    calls = await flow.press(ANNA, data_of(summary, "Repeat sales"))
    [answer] = of(AnswerCallbackQuery, calls)
    assert (answer.text, answer.show_alert) == ("This command is for the shop's admins.", True)
    assert of(EditMessageText, calls) == []
    assert of(SendPhoto, await flow.press(ANNA, data_of(summary, "📈 Charts"))) == []
