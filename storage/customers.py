"""Customers as Telegram users: recognise them, remember their language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, literal, select, update

from storage.database import Database
from storage.fsm import SqlFsmStates
from storage.schema import customers, fsm_states
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

    async def by_telegram_id(
        self, *, telegram_id: int, fsm_key: str | None = None
    ) -> CustomerRecord | None:
        """The customer row; with ``fsm_key``, the same statement reads that FSM row too and
        leaves it with the update's unit of work (storage/fsm.py), so the wizard's state
        costs no statement of its own."""
        if fsm_key is None:
            async with self._db.read() as conn:
                row = (await conn.execute(_BY_TELEGRAM_ID, {"telegram_id": telegram_id})).first()
            return CustomerRecord(**row._mapping) if row else None
        async with self._db.read() as conn:
            row = (
                await conn.execute(_WITH_FSM_ROW, {"telegram_id": telegram_id, "fsm_key": fsm_key})
            ).one()
        fields = dict(row._mapping)
        state, data = fields.pop("fsm_state"), fields.pop("fsm_data")
        present = fields.pop("fsm_present") is not None
        SqlFsmStates(self._db).remember(
            key=fsm_key, row=(state, dict(data)) if present else (None, {})
        )
        return CustomerRecord(**fields) if fields["id"] is not None else None

    async def seen(
        self,
        *,
        telegram_id: int,
        first_name: str | None,
        username: str | None,
        language_code: str | None,
        now: datetime,
        refresh_after: timedelta,
        fsm_key: str | None = None,
    ) -> CustomerRecord:
        """The customer behind a Telegram user, created on first contact, never twice.

        Profile fields and ``last_seen_at`` are rewritten only when they changed or went stale;
        otherwise this is one indexed read that takes no write lock (and, with ``fsm_key``,
        also reads the update's FSM row).
        """
        known = await self.by_telegram_id(telegram_id=telegram_id, fsm_key=fsm_key)
        if known is not None and not _outdated(
            known, first_name, username, language_code, now=now, refresh_after=refresh_after
        ):
            return known
        async with self._db.transaction() as conn:
            if known is None:
                written = await conn.execute(
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
                    .returning(*customers.c)
                )
            else:
                written = await conn.execute(
                    update(customers)
                    .where(customers.c.id == known.id)
                    .values(
                        first_name=first_name,
                        username=username,
                        language_code=language_code,
                        last_seen_at=now,
                    )
                    .returning(*customers.c)
                )
            row = written.first()
            if row is not None:
                return CustomerRecord(**row._mapping)
            # Another process created them first: theirs is the row.
            current = await self.by_telegram_id(telegram_id=telegram_id, fsm_key=fsm_key)
        assert current is not None, "the row was inserted by someone else meanwhile"
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


# Built once: the compiled form is then found in SQLAlchemy's cache by identity, not rebuilt
# and looked up by structure on every update.
_BY_TELEGRAM_ID = select(customers).where(customers.c.telegram_id == bindparam("telegram_id"))
# One row whether or not the customer exists (a one-row probe, outer-joined to both), so a
# first contact learns the FSM row too and the sign-up that follows reads nothing again.
_PROBE = select(literal(1).label("one")).subquery("probe")
_WITH_FSM_ROW = select(
    customers,
    fsm_states.c.state.label("fsm_state"),
    fsm_states.c.data.label("fsm_data"),
    fsm_states.c.key.label("fsm_present"),
).select_from(
    _PROBE.outerjoin(customers, customers.c.telegram_id == bindparam("telegram_id")).outerjoin(
        fsm_states, fsm_states.c.key == bindparam("fsm_key")
    )
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
