"""Seed members and orders straight into the database, for segment and broadcast tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from storage.database import Database
from storage.orders import NewOrder, OrderLine, SqlOrders
from storage.schema import customers, rating_alerts, ratings

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


async def member(
    db: Database,
    telegram_id: int,
    *,
    joined_days_ago: float = 400,
    opt_in: bool = True,
    blocked: bool = False,
    joined: bool = True,
) -> int:
    async with db.transaction() as conn:
        result = await conn.execute(
            insert(customers)
            .values(
                telegram_id=telegram_id,
                created_at=days_ago(joined_days_ago),
                last_seen_at=NOW,
                joined_at=days_ago(joined_days_ago) if joined else None,
                marketing_opt_in=opt_in,
                blocked_at=NOW if blocked else None,
            )
            .returning(customers.c.id)
        )
        return int(result.scalar_one())


async def order(
    db: Database,
    ref: str,
    customer_id: int,
    days: float,
    *,
    total: int = 100_000,
    sku: str = "CAT-2KG",
    category: str | None = "food",
    status: str = "delivered",
    redeemed: int = 0,
) -> None:
    await SqlOrders(db).add(
        NewOrder(
            order_ref=ref,
            total=total,
            currency="RUB",
            status=status,
            ordered_at=days_ago(days),
            customer_id=customer_id,
            bonus_redeemed=redeemed,
            lines=[OrderLine(sku=sku, name=sku, quantity=1, price=total, category=category)],
        ),
        now=NOW,
    )


async def complaint(db: Database, customer_id: int, *, state: str = "open") -> None:
    """A ★1 rating of an order with its staff alert in ``state`` (open, taken, resolved)."""
    async with db.transaction() as conn:
        rating_id = (
            await conn.execute(
                insert(ratings)
                .values(
                    order_ref=f"rated-{customer_id}-{state}",
                    customer_id=customer_id,
                    requested_at=days_ago(2),
                    expires_at=days_ago(-5),
                    score=1,
                    first_rated_at=days_ago(1),
                    rated_at=days_ago(1),
                )
                .returning(ratings.c.id)
            )
        ).scalar_one()
        await conn.execute(
            insert(rating_alerts).values(
                rating_id=rating_id,
                customer_id=customer_id,
                state=state,
                snapshot={},
                created_at=days_ago(1),
            )
        )
