"""No personal data in the log at INFO: the API's access log and the delivery engine's lines."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime

import aiohttp
import pytest
from sqlalchemy import insert

from bot.api import create_api_app, start_api
from bot.api.access_log import mask_target
from scenarios.clock import FixedClock
from scenarios.reachability import chat_blocked
from scenarios.rules import Rules
from storage.customers import SqlCustomers
from storage.database import Database
from storage.outbox import SqlOutbox
from storage.schema import customers
from tests.support.services import services_for

TOKEN = "secret-api-token-123"
PHONE = "+79998881234"
TELEGRAM_ID = 918273645


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_i18_5_the_api_access_log_masks_phones_telegram_ids_and_tokens(
    sqlite_db: Database, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    at = datetime(2026, 10, 1, tzinfo=UTC)
    async with sqlite_db.transaction() as conn:
        await conn.execute(
            insert(customers).values(
                telegram_id=TELEGRAM_ID,
                phone=PHONE,
                username="anna_cat",
                created_at=at,
                last_seen_at=at,
                joined_at=at,
            )
        )
    port = free_port()
    app = create_api_app(
        services_for(sqlite_db, rules=Rules(), clock=clock, followers=()), api_token=TOKEN
    )
    caplog.set_level(logging.INFO)
    runner = await start_api(app, "127.0.0.1", port)
    base = f"http://127.0.0.1:{port}/api/v1"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with aiohttp.ClientSession() as http:
            for path in (
                f"/customers/{PHONE}?total=2580.00",
                "/customers/%2B7%20999%20888-12-34",
                f"/customers/tg:{TELEGRAM_ID}",
                f"/customers/{TELEGRAM_ID}",
                "/customers/@anna_cat",
                f"/customers/tg:{TELEGRAM_ID}?token={TOKEN}&phone=8%20999%20888%2012%2034",
            ):
                async with http.get(base + path, headers=auth) as response:
                    assert response.status in (200, 404), path
            async with http.get(f"{base}/customers/{PHONE}?api_token={TOKEN}") as response:
                assert response.status == 401
    finally:
        await runner.cleanup()
    log = caplog.text
    access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(access) == 7, log
    assert '"GET /api/v1/customers/***?total=2580.00" 200' in log
    assert '"GET /api/v1/customers/tg:***" 200' in log
    assert '"GET /api/v1/customers/@***" 200' in log
    digits = "".join(c for c in log if c.isdigit())
    for secret in ("9998881234", str(TELEGRAM_ID), "anna_cat", TOKEN):
        assert secret not in log and secret not in digits, secret


def test_i18_5_masking_keeps_what_is_not_personal() -> None:
    assert mask_target("/api/v1/orders/A-1001/status") == "/api/v1/orders/A-1001/status"
    assert mask_target("/api/v1/products/CAT-2KG") == "/api/v1/products/CAT-2KG"
    assert mask_target("/api/v1/customers/2900000000018") == "/api/v1/customers/***"
    assert mask_target("/x", "access_token=abc&page=2") == "/x?access_token=***&page=2"


async def test_i18_5_a_blocked_chat_is_logged_without_the_telegram_id(
    sqlite_db: Database, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await chat_blocked(
        SqlCustomers(sqlite_db), SqlOutbox(sqlite_db), telegram_id=TELEGRAM_ID, clock=clock
    )
    assert "a user blocked the bot" in caplog.text
    assert str(TELEGRAM_ID) not in caplog.text
