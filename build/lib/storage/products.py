"""Catalog rows: one per sku, replaced as a whole when the shop sends it again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from storage.database import Database
from storage.schema import products
from storage.sql import insert


@dataclass(frozen=True, slots=True)
class ProductRecord:
    sku: str
    name: str
    url: str | None
    category: str | None
    consumption_days: int | None
    lead_days: int | None
    related: tuple[str, ...]


class SqlProducts:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, *, sku: str) -> ProductRecord | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(products).where(products.c.sku == sku))).one_or_none()
        if row is None:
            return None
        return ProductRecord(
            sku=row.sku,
            name=row.name,
            url=row.url,
            category=row.category,
            consumption_days=row.consumption_days,
            lead_days=row.lead_days,
            related=tuple(row.related),
        )

    async def save(self, product: ProductRecord, *, now: datetime) -> bool:
        """Create or replace the product; True when it was new."""
        values = {
            "name": product.name,
            "url": product.url,
            "category": product.category,
            "consumption_days": product.consumption_days,
            "lead_days": product.lead_days,
            "related": list(product.related),
            "updated_at": now,
        }
        async with self._db.transaction() as conn:
            existed = await self.get(sku=product.sku) is not None
            await conn.execute(
                insert(conn, products)
                .values(sku=product.sku, **values)
                .on_conflict_do_update(index_elements=["sku"], set_=values)
            )
        return not existed
