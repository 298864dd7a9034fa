"""The Mini App in a real browser: Debian's Chromium (Playwright) loads /app/ from the bot's own
server (python main.py against the fake Telegram), with window.Telegram.WebApp stubbed as
Telegram's client would give it: initData signed with the bot's token, showScanQrPopup
answering with the QR text the member's screen shows."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from playwright import async_api as playwright_api

from bot.webapp.auth import sign
from tests.fake_telegram import FakeTelegram
from tests.support.bot_process import BotProcess
from tests.test_e2e_bot import free_port

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
TOKEN = "123456:WEBAPP-TOKEN"
CASHIER = 9001
ANNA = 3101
ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# WEBAPP_SCREENSHOTS=1 renews the README's screenshots in docs/; otherwise they go to tmp_path.
RENEW_SCREENSHOTS = os.environ.get("WEBAPP_SCREENSHOTS") == "1"
CONFIG = """
[shop]
name = "Lapki"
[signup]
welcome_points = 50
[bonus]
hold_days = 0
[quiet_hours]
start = "00:00"
end = "00:00"
"""


def init_data(user: dict[str, Any], *, token: str = TOKEN, auth_date: int | None = None) -> str:
    fields = {
        "auth_date": str(auth_date if auth_date is not None else int(time.time())),
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": json.dumps(user, separators=(",", ":"), ensure_ascii=False),
    }
    fields["hash"] = sign(fields, token)
    return urlencode(fields)


def telegram_stub(user: dict[str, Any], raw_init_data: str) -> str:
    """What Telegram's telegram-web-app.js gives the page, as far as the page uses it."""
    return f"""
    window.__scans = [];
    window.Telegram = {{ WebApp: {{
      initData: {json.dumps(raw_init_data)},
      initDataUnsafe: {{ user: {json.dumps(user)} }},
      themeParams: {{ bg_color: "#ffffff", text_color: "#222222", button_color: "#3a8fd9",
                      button_text_color: "#ffffff", secondary_bg_color: "#eef2f6",
                      hint_color: "#8a8f98", link_color: "#2678b6" }},
      ready() {{}}, expand() {{}},
      HapticFeedback: {{ notificationOccurred() {{}} }},
      showScanQrPopup(params, callback) {{
        window.__scans.push(params);
        setTimeout(() => callback(window.__qrAnswer), 0);
      }},
    }} }};
    """


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN, bot_username="lapki_bot") as fake:
        yield fake


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - once per test, before any I/O
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run)")
    async with playwright_api.async_playwright() as driver:
        chromium = await driver.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def open_app(browser: Any, base: str, user: dict[str, Any], raw: str) -> Any:
    context = await browser.new_context(
        viewport={"width": 400, "height": 900}, locale=user.get("language_code", "en")
    )
    page = await context.new_page()
    # Telegram's script never leaves the machine in tests: the stub stands in for it.
    await page.route(
        "https://telegram.org/js/telegram-web-app.js",
        lambda route: route.fulfill(status=200, content_type="text/javascript", body=""),
    )
    await page.add_init_script(telegram_stub(user, raw))
    await page.goto(f"{base}/app/")
    await page.wait_for_selector("body[data-state]")
    return page


def points_of(workdir: Path, telegram_id: int) -> int:
    """What the ledger holds for the member (sum of their entries)."""
    with sqlite3.connect(workdir / "data" / "bot.sqlite3") as conn:
        [(total,)] = conn.execute(
            "SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e "
            "JOIN customers c ON c.id = e.customer_id WHERE c.telegram_id = ?",
            (telegram_id,),
        ).fetchall()
    return int(total)


async def join(tg: FakeTelegram, user_id: int) -> None:
    anna = tg.user(user_id, "Anna", language_code="en")
    await anna.command("start")
    [welcome] = await tg.wait_for(anna)
    await tg.wait_callback_answer(
        await anna.press_button(welcome, text="✅ Accept the terms and join")
    )
    ask = (await tg.wait_for(anna, count=2))[-1]
    await anna.press_button(ask, text="📱 Share my phone number")
    question = (await tg.wait_for(anna, count=4))[-1]
    await anna.press_button(question, text="Skip")
    await tg.wait_for(anna, count=5)


async def test_the_card_and_the_till_in_a_browser(
    tg: FakeTelegram, browser: Any, tmp_path: Path
) -> None:
    (tmp_path / "config.toml").write_text(CONFIG, encoding="utf-8")
    port = free_port()
    bot = BotProcess(
        workdir=tmp_path,
        env={
            "BOT_TOKEN": tg.token,
            "TELEGRAM_API_BASE": tg.base_url,
            "ADMIN_IDS": str(CASHIER),
            "DATABASE_URL": f"sqlite:///{tmp_path}/data/bot.sqlite3",
            "API_PORT": str(port),
            "WEBAPP_URL": "https://shop.example/app/",
        },
    )
    base = f"http://127.0.0.1:{port}"
    await bot.start()
    try:
        await bot.wait_for_log("is polling")
        # The menu button opens the Mini App; without API_TOKEN only /app/ and /healthz answer.
        [menu] = tg.calls_to("setChatMenuButton")
        assert menu.params["menu_button"]["web_app"]["url"] == "https://shop.example/app/"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as health:
                assert health.status == 200
            async with http.get(f"{base}/api/v1/customers/tg:1") as shop_api:
                assert shop_api.status == 404
        await join(tg, ANNA)
        anna_user = {"id": ANNA, "first_name": "Anna", "language_code": "en"}
        anna_page = await open_app(browser, base, anna_user, init_data(anna_user))
        assert await anna_page.get_attribute("body", "data-state") == "ready"
        # The balance the ledger holds: the welcome bonus.
        assert points_of(tmp_path, ANNA) == 50
        assert await anna_page.text_content("#available") == "50 points"
        assert "Available: 50 points" in (await anna_page.text_content("#balance") or "")
        assert "welcome bonus" in (await anna_page.text_content("#history") or "")
        assert await anna_page.is_hidden("#more")  # one page of history
        assert await anna_page.is_hidden("#to-till")  # a customer has no till
        await anna_page.wait_for_selector("#qr[data-code]")
        qr = await anna_page.get_attribute("#qr", "data-code")
        assert qr is not None and qr.startswith("QR1.")
        shots = DOCS if RENEW_SCREENSHOTS else tmp_path
        await anna_page.screenshot(path=str(shots / "webapp-card.png"), full_page=True)

        cashier_user = {"id": CASHIER, "first_name": "Olga", "language_code": "en"}
        till = await open_app(browser, base, cashier_user, init_data(cashier_user))
        assert await till.is_visible("#till")
        assert await till.is_hidden("#to-card")  # the cashier is no member
        await till.evaluate("code => { window.__qrAnswer = code; }", qr)
        await till.click("#scan")
        await till.wait_for_selector("#member:not([hidden])")
        assert await till.text_content("#m-name") == "Anna"
        assert await till.text_content("#m-available") == "50 points"
        await till.fill("#total", "100.00")
        await till.wait_for_function(
            "document.querySelector('#cap').textContent.includes('At most 30 points')"
        )
        await till.fill("#redeem", "20")
        await till.click("#record")
        await till.wait_for_function("document.querySelector('#receipt').textContent !== ''")
        receipt = await till.text_content("#receipt")
        # 100.00 paid 20.00 with points; 5 % cashback on the 80.00 paid in money: 4 points.
        assert receipt == "Recorded: +4 points, spent 20 points. The customer now has 34 points."
        await till.screenshot(path=str(shots / "webapp-till.png"), full_page=True)
        # A second tap on the same purchase records nothing more.
        await till.click("#record", force=True)

        # The member hears it in the bot, and the ledger, the bot and the page agree.
        anna = tg.user(ANNA)
        message = (await tg.wait_for(anna, count=6))[-1]
        assert message.text is not None
        assert "20 points paid for order till-" in message.text
        assert message.text.endswith("Available now: 34 points")
        assert points_of(tmp_path, ANNA) == 34
        await anna_page.reload()
        await anna_page.wait_for_selector("body[data-state=ready]")
        assert await anna_page.text_content("#available") == "34 points"

        # The same QR code again: refused, nothing changes.
        await till.click("#next")
        await till.click("#scan")
        await till.wait_for_function("document.querySelector('#till-error').textContent !== ''")
        assert await till.text_content("#till-error") == (
            "This QR code was already used. Ask the customer for the code on screen now."
        )
        assert await till.is_hidden("#member")
        assert points_of(tmp_path, ANNA) == 34

        # Forged initData: the page says so, and the API answers 401 to a direct call.
        forged = init_data(anna_user, token="123456:SOMEONE-ELSE")
        forged_page = await open_app(browser, base, anna_user, forged)
        assert await forged_page.get_attribute("body", "data-state") == "unauthorized"
        assert await forged_page.text_content("#status") == (
            "Could not sign you in. Close this page and open it again from the bot's menu."
        )
        assert await forged_page.is_hidden("#customer")
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{base}/app/api/me", headers={"Authorization": f"tma {forged}"}) as answer,
        ):
            assert answer.status == 401
            body = await answer.json()
            assert body["error"]["code"] == "unauthorized"
            assert set(body["error"]) == {"code", "message", "field"}
    finally:
        status = await bot.stop()
    assert status == 0, bot.output()
    assert re.search(r"Mini App at https://shop\.example/app/", bot.output())
    await asyncio.sleep(0)
