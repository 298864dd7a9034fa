"""Customers as Telegram users: recognise them, remember their language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from storage.database import Database
from storage.schema import customers
from storage.sql import insert


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    id: int
    telegram_id: int | None
    first_name: str | None
    username: str | None
    language_code: str | None
    locale: str | None
    created_at: datetime
    last_seen_at: datetime
    marketing_opt_in: bool = False
    marketing_changed_at: datetime | None = None
    blocked_at: datetime | None = None
    timezone: str | None = None
    phone: str | None = None
    joined_at: datetime | None = None
    terms_accepted_at: datetime | None = None
    birthday_day: int | None = None
    birthday_month: int | None = None
    birthday_year: int | None = None
    birthday_set_at: datetime | None = None
    birthday_gift_year: int | None = None
    invite_code: str | None = None
    erased_at: datetime | None = None
    card_number: str | None = None


class SqlCustomers:
    """Customer rows; every method joins the caller's transaction if there is one."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def by_telegram_id(self, *, telegram_id: int) -> CustomerRecord | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(customers).where(customers.c.telegram_id == telegram_id))
            ).one_or_none()
        return CustomerRecord(**row._mapping) if row else None

    async def seen(
        self,
        *,
        telegram_id: int,
        first_name: str | None,
        username: str | None,
        language_code: str | None,
        now: datetime,
        refresh_after: timedelta,
    ) -> CustomerRecord:
        """The customer behind a Telegram user, created on first contact, never twice.

        Profile fields and ``last_seen_at`` are rewritten only when they changed or went stale;
        otherwise this is one indexed read that takes no write lock.
        """
        known = await self.by_telegram_id(telegram_id=telegram_id)
        if known is not None and not _outdated(
            known, first_name, username, language_code, now=now, refresh_after=refresh_after
        ):
            return known
        async with self._db.transaction() as conn:
            if known is None:
                await conn.execute(
                    insert(conn, customers)
                    .values(
                        telegram_id=telegram_id,
                        first_name=first_name,
                        username=username,
                        language_code=language_code,
                        created_at=now,
                        last_seen_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["telegram_id"])
                )
            else:
                await conn.execute(
                    update(customers)
                    .where(customers.c.id == known.id)
                    .values(
                        first_name=first_name,
                        username=username,
                        language_code=language_code,
                        last_seen_at=now,
                    )
                )
            current = await self.by_telegram_id(telegram_id=telegram_id)
        assert current is not None, "the row was inserted or updated in this transaction"
        return current

    async def set_locale(self, *, customer_id: int, locale: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                update(customers).where(customers.c.id == customer_id).values(locale=locale)
            )

    async def set_marketing_opt_in(self, *, customer_id: int, opt_in: bool, now: datetime) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                update(customers)
                .where(customers.c.id == customer_id)
                .values(marketing_opt_in=opt_in, marketing_changed_at=now)
            )

    async def mark_blocked(self, *, telegram_id: int, now: datetime) -> int | None:
        """Telegram says this user's chat is gone; returns the customer id, if we know them."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(customers)
                .where(customers.c.telegram_id == telegram_id, customers.c.blocked_at.is_(None))
                .values(blocked_at=now)
                .returning(customers.c.id)
            )
            customer_id: int | None = result.scalar_one_or_none()
        return customer_id

    async def mark_reachable(self, *, telegram_id: int) -> bool:
        """The user is back (wrote to us, or unblocked the bot); True if they were blocked."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(customers)
                .where(customers.c.telegram_id == telegram_id, customers.c.blocked_at.is_not(None))
                .values(blocked_at=None)
            )
        return bool(result.rowcount)

    async def count(self) -> int:
        async with self._db.read() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(customers))).scalar_one()
            )


def _outdated(
    known: CustomerRecord,
    first_name: str | None,
    username: str | None,
    language_code: str | None,
    *,
    now: datetime,
    refresh_after: timedelta,
) -> bool:
    """The stored profile differs from what Telegram says now, or was last seen long ago."""
    profile = (known.first_name, known.username, known.language_code)
    return profile != (first_name, username, language_code) or (
        now - known.last_seen_at >= refresh_after
    )
