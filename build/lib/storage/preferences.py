"""What a customer wants to hear about: marketing consent and switched-off service kinds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update

from storage.database import Database
from storage.schema import customers, notification_mutes
from storage.sql import insert


class SqlPreferences:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def muted_kinds(self, *, customer_id: int) -> frozenset[str]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(notification_mutes.c.kind).where(
                    notification_mutes.c.customer_id == customer_id
                )
            )
            return frozenset(rows.scalars())

    async def set_muted(self, *, customer_id: int, kind: str, muted: bool, now: datetime) -> None:
        async with self._db.transaction() as conn:
            if muted:
                await conn.execute(
                    insert(conn, notification_mutes)
                    .values(customer_id=customer_id, kind=kind, muted_at=now)
                    .on_conflict_do_nothing(index_elements=["customer_id", "kind"])
                )
            else:
                await conn.execute(
                    delete(notification_mutes).where(
                        notification_mutes.c.customer_id == customer_id,
                        notification_mutes.c.kind == kind,
                    )
                )

    async def set_time_zone(self, *, customer_id: int, zone: str | None) -> None:
        """The customer's IANA zone for quiet hours and daily caps; None: the shop's."""
        async with self._db.transaction() as conn:
            await conn.execute(
                update(customers).where(customers.c.id == customer_id).values(timezone=zone)
            )
