"""GET /api/v1/stats on SQLite and PostgreSQL: the small shop's figures as flat JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.api import create_api_app
from scenarios.clock import FixedClock
from scenarios.rules import Rules
from storage.database import Database
from tests.support.seed import NOW
from tests.support.services import services_for
from tests.support.small_shop import seed_small_shop

Client = TestClient[web.Request, web.Application]
AUTH = {"Authorization": "Bearer t0ken"}


@pytest.fixture
async def api(db: Database) -> AsyncIterator[Client]:
    await seed_small_shop(db)
    services = services_for(db, rules=Rules(), clock=FixedClock(NOW), followers=())
    app = create_api_app(services, api_token="t0ken")
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_the_figures_of_30_days(api: Client) -> None:
    response = await api.get("/api/v1/stats?period=30d", headers=AUTH)
    assert response.status == 200
    body = await response.json()
    assert body["repeat_purchase_rate"] == pytest.approx(4 / 7)
    assert {key: body[key] for key in body if key not in {"repeat_purchase_rate", "cohorts"}} == {
        "period": "30d",
        "start": "2026-10-21T12:00:00+00:00",
        "end": "2026-11-20T12:00:00+00:00",
        "currency": "RUB",
        "customers": 8,
        "customers_joined": 1,
        "customers_opted_in": 6,
        "customers_blocked": 1,
        "customers_sleeping": 2,
        "customers_lost": 2,
        "retention_rate": 0.75,
        "purchase_frequency": 1.25,
        "aov": "2833.33",
        "median_days_between_orders": 95.0,
        "revenue": "17000.00",
        "revenue_returning": "7000.00",
        "revenue_new": "10000.00",
        "clv_historic": "3000.00",
        "clv_predicted": "3400.00",
        "clv_method": "simple",
        "points_outstanding": 380,
        "points_liability": "380.00",
        "points_earned": 400,
        "points_spent": 80,
        "points_expired": 20,
        "redemption_rate": 0.2,
        "cashback_share": 40_000 / 1_700_000,
        "csat": 2 / 3,
        "ratings": 3,
    }
    assert body["cohorts"] == [
        {"month": "2026-08", "customers": 2, "retention": [0.5, 0.0, 0.5]},
        {"month": "2026-10", "customers": 1, "retention": [0.0]},
        {"month": "2026-11", "customers": 1, "retention": []},
    ]


async def test_the_default_period_is_30_days_and_a_year_sees_more(api: Client) -> None:
    default = await (await api.get("/api/v1/stats", headers=AUTH)).json()
    assert default["period"] == "30d"
    year = await (await api.get("/api/v1/stats?period=12m", headers=AUTH)).json()
    # The year: A twice, B twice, C, F twice, I twice and the guest = 10 orders, 22 000 ₽.
    assert (year["revenue"], year["aov"]) == ("22000.00", "2200.00")
    # Twelve cohort months, Dec 2025 .. Nov 2026: D's first order (Nov 2025) is just before.
    assert [cohort["month"] for cohort in year["cohorts"]] == ["2026-08", "2026-10", "2026-11"]


async def test_a_bad_period_is_a_json_422_and_no_token_a_401(api: Client) -> None:
    response = await api.get("/api/v1/stats?period=week", headers=AUTH)
    assert response.status == 422
    assert await response.json() == {
        "error": {
            "code": "invalid_period",
            "message": "period is one of 7d, 30d, 90d, 12m",
            "field": "period",
        }
    }
    assert (await api.get("/api/v1/stats")).status == 401
