"""A shop for reminder tests: catalog, members and orders through the real HTTP API."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert, select

from bot.api import create_api_app
from scenarios.clock import Clock, FixedClock
from scenarios.rules import Rules
from storage.database import Database
from storage.products import ProductRecord, SqlProducts
from storage.schema import customers, reminders
from tests.support.services import services_for

TOKEN = "shop-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = TestClient[web.Request, web.Application]


async def add_member(
    db: Database,
    telegram_id: int,
    *,
    at: datetime,
    timezone: str | None = None,
    joined: bool = True,
    first_name: str = "Anna",
    language_code: str = "en",
) -> int:
    async with db.transaction() as conn:
        result = await conn.execute(
            insert(customers)
            .values(
                telegram_id=telegram_id,
                first_name=first_name,
                language_code=language_code,
                created_at=at,
                last_seen_at=at,
                joined_at=at if joined else None,
                timezone=timezone,
            )
            .returning(customers.c.id)
        )
        return int(result.scalar_one())


async def add_product(
    db: Database,
    sku: str,
    *,
    name: str,
    at: datetime,
    days: int | None = None,
    lead: int | None = None,
    related: tuple[str, ...] = (),
    url: str | None = None,
) -> None:
    await SqlProducts(db).save(
        ProductRecord(
            sku=sku,
            name=name,
            url=url,
            category=None,
            consumption_days=days,
            lead_days=lead,
            related=related,
        ),
        now=at,
    )


async def reminder_rows(db: Database) -> list[Any]:
    async with db.read() as conn:
        return list(
            (await conn.execute(select(reminders).order_by(reminders.c.id))).mappings().all()
        )


@dataclass
class Shop:
    api: Client
    db: Database
    clock: Clock | None = None
    _refs: Any = None

    def __post_init__(self) -> None:
        self._refs = itertools.count(1001)

    async def order(
        self,
        telegram_id: int,
        items: list[tuple[str, int]],
        *,
        at: datetime,
        ref: str | None = None,
        price: str = "100.00",
    ) -> str:
        ref = ref or f"A-{next(self._refs)}"
        # The shop reports an order when it happens: an order dated ahead of the bot's clock
        # would be refused as one from the future.
        if isinstance(self.clock, FixedClock) and at > self.clock.now():
            self.clock.set(at)
        quantity_total = sum(quantity for _sku, quantity in items)
        body = {
            "order_id": ref,
            "customer": {"telegram_id": telegram_id},
            "items": [
                {"sku": sku, "name": sku, "quantity": quantity, "price": price}
                for sku, quantity in items
            ],
            "total": f"{int(float(price)) * quantity_total}.00",
            "currency": "RUB",
            "status": "paid",
            "created_at": at.isoformat(),
        }
        response = await self.api.post("/api/v1/orders", json=body, headers=AUTH)
        assert response.status == 201, await response.text()
        return ref

    async def set_status(self, ref: str, status: str) -> None:
        response = await self.api.post(
            f"/api/v1/orders/{ref}/status", json={"status": status}, headers=AUTH
        )
        assert response.status == 200, await response.text()


@asynccontextmanager
async def open_shop(
    db: Database, *, clock: Clock, rules: Rules | None = None, zone: str = "UTC"
) -> AsyncIterator[Shop]:
    rules = rules or Rules()
    services = services_for(
        db, rules=rules, clock=clock, zone=ZoneInfo(zone), followers=lambda s: [s.replenishment]
    )
    app = create_api_app(services, api_token=TOKEN)
    async with TestClient(TestServer(app)) as client:
        yield Shop(api=client, db=db, clock=clock)
