"""The Mini App's part of the OpenAPI document and what it serves never drift apart: schemathesis
sends what the document allows, signed in as a cashier, and every answer must be documented."""

from __future__ import annotations

import asyncio
import tomllib
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiohttp.test_utils import TestServer

from bot.api.openapi import openapi_document
from bot.webapp import create_webapp, create_webapp_server, webapp_services
from bot.webapp.app import STATIC_DIR
from bot.webapp.auth import FailedSignIns
from bot.webapp.openapi import webapp_openapi
from locales import CatalogI18n
from scenarios.clock import FixedClock
from storage.database import Database
from tests.support.schemathesis_run import schemathesis_failures
from tests.support.services import services_for
from tests.test_api_orders import add_customer
from tests.test_webapp_api import CASHIER, TOKEN, signed

ROOT = Path(__file__).resolve().parents[1]


def mini_app_document() -> dict[str, Any]:
    document = openapi_document(webapp_openapi())
    document["paths"] = {
        path: item for path, item in document["paths"].items() if path.startswith("/app/")
    }
    return document


def _failures(base_url: str, authorization: str) -> list[str]:
    return schemathesis_failures(
        mini_app_document(),
        {
            "seed": 13,
            "max-time": 40,
            "base-url": base_url,
            "headers": {"Authorization": authorization},
            "generation": {"max-examples": 8, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "401", "403", "404", "409", "422"]
                },
                # A body over the Mini App's 16 KiB is refused as too large before it is read
                # as JSON: the fuzzer's longest item lists get there.
                "negative_data_rejection": {
                    "expected-statuses": ["400", "401", "403", "404", "413", "422"]
                },
            },
        },
    )


async def test_schemathesis_finds_no_disagreement_in_the_mini_app_api(
    sqlite_db: Database, i18n: CatalogI18n
) -> None:
    # Real time: schemathesis takes seconds, and initData must stay fresh meanwhile.
    clock = FixedClock(datetime.now(UTC))
    bot = Bot(token=TOKEN)
    services = webapp_services(
        services_for(sqlite_db, clock=clock, i18n=i18n, admin_ids=(CASHIER,)),
        bot=bot,
        bot_token=TOKEN,
    )
    # schemathesis also tries forged sign-ins on purpose; here they must not lock the address.
    services.failures = FailedSignIns(10**6)
    await add_customer(sqlite_db, telegram_id=CASHIER)  # the cashier is a member too
    server = TestServer(create_webapp_server(create_webapp(services), services), host="127.0.0.1")
    await server.start_server()
    try:
        failures = await asyncio.to_thread(
            _failures, f"http://127.0.0.1:{server.port}", f"tma {signed(CASHIER, clock)}"
        )
    finally:
        await server.close()
        await bot.session.close()
    assert failures == [], "\n\n".join(failures)


def test_a_non_editable_install_ships_the_page() -> None:
    """pyproject's package-data takes every file of bot/webapp/static into the wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["bot"]
    shipped = [path.relative_to(ROOT / "bot").as_posix() for path in STATIC_DIR.iterdir()]
    assert {"webapp/static/index.html", "webapp/static/app.js", "webapp/static/app.css"} <= set(
        shipped
    )
    assert all(any(fnmatch(name, pattern) for pattern in patterns) for name in shipped)
