"""Card QR codes scanned at the till: a row per code makes a second scan of it fail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update

from storage.database import Database
from storage.schema import qr_scans
from storage.sql import insert


@dataclass(frozen=True, slots=True)
class QrScan:
    nonce: str
    customer_id: int
    cashier_id: int
    scanned_at: datetime
    order_ref: str | None  # the purchase that spent the member's points with this scan


class SqlQrScans:
    """Every method joins the caller's transaction if there is one."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(self, *, nonce: str, customer_id: int, cashier_id: int, now: datetime) -> bool:
        """Record the scan of a code; False when the code was scanned before (by anyone)."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                insert(conn, qr_scans)
                .values(nonce=nonce, customer_id=customer_id, cashier_id=cashier_id, scanned_at=now)
                .on_conflict_do_nothing(index_elements=["nonce"])
            )
            return bool(result.rowcount)

    async def get(self, *, nonce: str, lock: bool = False) -> QrScan | None:
        query = select(qr_scans).where(qr_scans.c.nonce == nonce)
        async with self._db.transaction("write" if lock else "read") as conn:
            if lock and conn.dialect.name == "postgresql":
                query = query.with_for_update()
            row = (await conn.execute(query)).one_or_none()
        return QrScan(**row._mapping) if row is not None else None

    async def bind_order(self, *, nonce: str, order_ref: str) -> bool:
        """The purchase that spends points with this scan; False if another one already did."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(qr_scans)
                .where(qr_scans.c.nonce == nonce, qr_scans.c.order_ref.is_(None))
                .values(order_ref=order_ref)
            )
            return bool(result.rowcount)

    async def forget_unused(self, *, scanned_before: datetime) -> int:
        """Scans that paid for nothing, from before ``scanned_before``: their code expired long
        ago, so the row no longer guards anything. Scans that spent points stay with their
        purchase."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                delete(qr_scans).where(
                    qr_scans.c.order_ref.is_(None), qr_scans.c.scanned_at < scanned_before
                )
            )
            return int(result.rowcount or 0)
