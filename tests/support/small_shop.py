"""A small shop with known orders, ledger and ratings, whose figures are worked out by hand.

Now is 2026-11-20 12:00 UTC (a Friday); the 30-day period starts 2026-10-21 12:00.
Totals are kopecks. Customers (all members but H; days are days before now):

    A  400 (1 000 ₽, 2025-10-16), 200 (2 000 ₽, 2026-05-04), 10 (3 000 ₽, 2026-11-10)
    B  100 (1 000 ₽, 2026-08-12), 5 (1 000 ₽, 2026-11-15)          no offers
    C  20 (4 000 ₽, 2026-10-31)                                     no offers
    D  380 (2 000 ₽, 2025-11-05)
    E  500 (1 000 ₽, 2025-07-08)                                    blocked
    F  15 (1 000 ₽, 2026-11-05), 12 (3 000 ₽, 2026-11-08)
    G  a cancelled order 3 days ago only; joined 3 days ago
    I  105 (1 000 ₽, 2026-08-07), 75 (1 000 ₽, 2026-09-06)
    H  not a member, no orders
    a guest (no customer) 2 days ago: 5 000 ₽
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import insert

from storage.database import Database
from storage.orders import NewOrder, OrderLine, SqlOrders
from storage.schema import broadcasts, ledger_accounts, ledger_entries, ratings
from tests.support.seed import NOW, days_ago, member, order

RUB = 100_000  # 1 000 ₽ in kopecks


@dataclass(frozen=True)
class SmallShop:
    ids: dict[str, int]


async def guest_order(db: Database, ref: str, days: float, total: int) -> None:
    await SqlOrders(db).add(
        NewOrder(
            order_ref=ref,
            total=total,
            currency="RUB",
            status="paid",
            ordered_at=days_ago(days),
            lines=[OrderLine(sku="LITTER", name="Litter", quantity=1, price=total)],
        ),
        now=NOW,
    )


async def seed_small_shop(db: Database) -> SmallShop:
    ids = {
        "A": await member(db, 1, joined_days_ago=400),
        "B": await member(db, 2, joined_days_ago=400, opt_in=False),
        "C": await member(db, 3, joined_days_ago=400, opt_in=False),
        "D": await member(db, 4, joined_days_ago=400),
        "E": await member(db, 5, joined_days_ago=600, blocked=True),
        "F": await member(db, 6, joined_days_ago=400),
        "G": await member(db, 7, joined_days_ago=3),
        "I": await member(db, 9, joined_days_ago=400),
        "H": await member(db, 8, joined=False),
    }
    history = {
        "A": [(400, 1), (200, 2), (10, 3)],
        "B": [(100, 1), (5, 1)],
        "C": [(20, 4)],
        "D": [(380, 2)],
        "E": [(500, 1)],
        "F": [(15, 1), (12, 3)],
        "I": [(105, 1), (75, 1)],
    }
    for name, orders in history.items():
        for number, (days, thousands) in enumerate(orders, start=1):
            await order(db, f"{name}-{number}", ids[name], days, total=thousands * RUB)
    await order(db, "G-1", ids["G"], 3, total=9 * RUB, status="cancelled")
    await guest_order(db, "guest-1", 2, 5 * RUB)

    entries = [
        # (customer, kind, points, days ago)
        ("A", "accrual", 300, 10),
        ("A", "redemption", -100, 5),
        ("B", "welcome", 50, 40),  # before the period
        ("B", "accrual", 100, 5),
        ("C", "expiry", -20, 3),
        ("A", "restoration", 30, 2),
        ("C", "adjustment", -10, 1),
    ]
    async with db.transaction() as conn:
        for number, (name, kind, points, days) in enumerate(entries):
            await conn.execute(
                insert(ledger_entries).values(
                    customer_id=ids[name],
                    kind=kind,
                    source=f"test:{number}",
                    amount=points,
                    reason="test",
                    occurred_at=days_ago(days),
                )
            )
        for name, balance in (("A", 230), ("B", 150), ("C", 0)):
            await conn.execute(
                insert(ledger_accounts).values(
                    customer_id=ids[name], balance=balance, debt=0, updated_at=NOW
                )
            )
        for number, (name, score, days) in enumerate(
            [("A", 5, 9), ("B", 4, 4), ("F", 2, 11), ("A", 1, 40)]
        ):
            await conn.execute(
                insert(ratings).values(
                    order_ref=f"rated-{number}",
                    customer_id=ids[name],
                    requested_at=days_ago(days + 1),
                    expires_at=days_ago(days - 6),
                    score=score,
                    first_rated_at=days_ago(days),
                    rated_at=days_ago(days),
                )
            )
        await conn.execute(
            insert(broadcasts).values(
                created_by=1,
                segment={"kind": "all"},
                variants=[],
                state="finished",
                seed=1,
                created_at=days_ago(5),
                started_at=days_ago(5),
            )
        )
    return SmallShop(ids=ids)


PERIOD_START = NOW - timedelta(days=30)
