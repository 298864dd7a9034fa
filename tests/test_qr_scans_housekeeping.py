"""Till scans that spent nothing are forgotten a day after their visit window; those that paid
for a purchase stay with it (both databases)."""

from __future__ import annotations

from datetime import timedelta

from aiogram import Bot
from sqlalchemy import select

from bot.services import build_runtime
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.rules import Rules
from storage.database import Database
from storage.schema import qr_scans
from tests.support.recording_session import RecordingSession
from tests.support.services import services_for
from tests.test_api_orders import add_customer


async def test_old_unused_till_scans_are_forgotten_by_the_hourly_job(
    db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    # visit_minutes 15: a scan is forgotten 1 day 15 minutes after it was made.
    services = services_for(db, rules=Rules(), clock=clock, i18n=i18n, renderer=renderer)
    member = await add_customer(db)
    now = clock.now()
    for nonce, age in (("old-unused", 25), ("old-paid", 25), ("recent", 24)):
        await services.qr_scans.claim(
            nonce=nonce, customer_id=member, cashier_id=9001, now=now - timedelta(hours=age)
        )
    assert await services.qr_scans.bind_order(nonce="old-paid", order_ref="till-1")

    bot = Bot(token="42:HOUSEKEEPING", session=RecordingSession())
    job = build_runtime(services, bot, fsm_states=None).scheduler.get_job("forget-old-qr-scans")
    assert job is not None
    await job.func()
    async with db.read() as conn:
        left = (await conn.execute(select(qr_scans.c.nonce).order_by(qr_scans.c.nonce))).scalars()
        assert list(left) == ["old-paid", "recent"]
    await bot.session.close()
