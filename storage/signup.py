"""Program membership rows: joining with a phone, birthdays, invite codes, erasure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update

from storage.database import Database
from storage.orders import ERASED_FINGERPRINT
from storage.schema import (
    audit_log,
    customers,
    ledger_entries,
    orders,
    rating_alerts,
    ratings,
    reminders,
)


@dataclass(frozen=True, slots=True)
class UnclaimedOrder:
    """An order the shop reported for a phone before anyone with that phone joined."""

    order_ref: str
    total: int
    bonus_redeemed: int
    status: str
    ordered_at: datetime


@dataclass(frozen=True, slots=True)
class BirthdayMember:
    customer_id: int
    telegram_id: int | None
    first_name: str | None
    birthday_set_at: datetime | None


@dataclass(frozen=True, slots=True)
class Erased:
    orders_anonymised: int
    ratings_scrubbed: int = 0  # comments cleared (the scores stay, for the statistics)
    alert_ids: tuple[int, ...] = ()  # staff alerts whose snapshot was cleared
    reminder_ids: tuple[int, ...] = ()  # their reminders (a reorder request names them)
    texts_scrubbed: int = 0  # ledger reasons and audit details that named them


class SqlMembership:
    """Every method joins the caller's transaction if there is one."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def phone_owner(self, *, phone: str) -> int | None:
        async with self._db.read() as conn:
            owner = (
                await conn.execute(select(customers.c.id).where(customers.c.phone == phone))
            ).scalar_one_or_none()
        return int(owner) if owner is not None else None

    async def orders_for_phone(self, *, phone: str) -> int:
        """How many orders the shop ever reported with this phone, whoever they belong to."""
        async with self._db.read() as conn:
            rows = await conn.execute(select(orders.c.id).where(orders.c.phone == phone))
            return len(rows.all())

    async def join(
        self,
        *,
        customer_id: int,
        phone: str,
        terms_accepted_at: datetime,
        marketing_opt_in: bool,
        now: datetime,
        make_card: Callable[[], str] | None = None,
    ) -> None:
        """``make_card`` proposes card numbers; the first nobody has becomes the member's
        (a member who already has one keeps it)."""
        async with self._db.transaction() as conn:
            card = (
                await conn.execute(
                    select(customers.c.card_number).where(customers.c.id == customer_id)
                )
            ).scalar_one_or_none()
            while card is None and make_card is not None:
                candidate = make_card()
                taken = await conn.execute(
                    select(customers.c.id).where(customers.c.card_number == candidate)
                )
                if taken.first() is None:
                    card = candidate
            await conn.execute(
                update(customers)
                .where(customers.c.id == customer_id)
                .values(
                    card_number=card,
                    phone=phone,
                    joined_at=now,
                    terms_accepted_at=terms_accepted_at,
                    marketing_opt_in=marketing_opt_in,
                    marketing_changed_at=terms_accepted_at,
                )
            )

    async def claim_orders(self, *, phone: str, customer_id: int) -> list[UnclaimedOrder]:
        """Orders reported for ``phone`` that belong to no customer become this customer's;
        returns them, oldest first."""
        async with self._db.transaction() as conn:
            rows = (
                await conn.execute(
                    select(
                        orders.c.order_ref,
                        orders.c.total,
                        orders.c.bonus_redeemed,
                        orders.c.status,
                        orders.c.ordered_at,
                    )
                    .where(orders.c.phone == phone, orders.c.customer_id.is_(None))
                    .order_by(orders.c.ordered_at, orders.c.id)
                )
            ).all()
            if rows:
                await conn.execute(
                    update(orders)
                    .where(orders.c.phone == phone, orders.c.customer_id.is_(None))
                    .values(customer_id=customer_id)
                )
        return [UnclaimedOrder(**row._mapping) for row in rows]

    async def set_birthday(
        self, *, customer_id: int, day: int, month: int, year: int | None, now: datetime
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                update(customers)
                .where(customers.c.id == customer_id)
                .values(
                    birthday_day=day, birthday_month=month, birthday_year=year, birthday_set_at=now
                )
            )

    async def set_invite_code(self, *, customer_id: int, code: str) -> str:
        """The member's invite code: ``code`` unless they already have one."""
        async with self._db.transaction() as conn:
            await conn.execute(
                update(customers)
                .where(customers.c.id == customer_id, customers.c.invite_code.is_(None))
                .values(invite_code=code)
            )
            current = (
                await conn.execute(
                    select(customers.c.invite_code).where(customers.c.id == customer_id)
                )
            ).scalar_one()
        return str(current)

    async def by_invite_code(self, *, code: str) -> int | None:
        """The member whose link carries this code (erased members' codes are gone)."""
        async with self._db.read() as conn:
            owner = (
                await conn.execute(
                    select(customers.c.id).where(
                        customers.c.invite_code == code, customers.c.joined_at.is_not(None)
                    )
                )
            ).scalar_one_or_none()
        return int(owner) if owner is not None else None

    async def telegram_id_of(self, *, customer_id: int) -> int | None:
        async with self._db.read() as conn:
            value = (
                await conn.execute(
                    select(customers.c.telegram_id).where(customers.c.id == customer_id)
                )
            ).scalar_one_or_none()
        return int(value) if value is not None else None

    async def is_member(self, *, customer_id: int) -> bool:
        """Joined and not erased (erasure ends the membership)."""
        async with self._db.read() as conn:
            joined = (
                await conn.execute(
                    select(customers.c.joined_at).where(customers.c.id == customer_id)
                )
            ).scalar_one_or_none()
        return joined is not None

    async def erase(
        self,
        *,
        customer_id: int,
        now: datetime,
        scrub: Callable[[str], str] = lambda text: text,
        scrub_json: Callable[[Any], Any] = lambda value: value,
    ) -> Erased:
        """Forget who the customer is: personal data and the Telegram link go, the anonymous
        row stays for the ledger and the orders (which lose their phone and Telegram id too).
        Free text about them that admins typed (ledger reasons, audit details) keeps its words
        but passes through ``scrub`` (``scrub_json`` for JSON), which removes their name, phone
        and username."""
        async with self._db.transaction() as conn:
            texts = await _scrub_free_text(conn, customer_id, scrub, scrub_json)
            await conn.execute(
                update(customers)
                .where(customers.c.id == customer_id)
                .values(
                    telegram_id=None,
                    phone=None,
                    first_name=None,
                    username=None,
                    language_code=None,
                    locale=None,
                    timezone=None,
                    birthday_day=None,
                    birthday_month=None,
                    birthday_year=None,
                    birthday_set_at=None,
                    invite_code=None,
                    card_number=None,
                    # No longer a member: the card number stops working at the till and the API.
                    joined_at=None,
                    marketing_opt_in=False,
                    marketing_changed_at=now,
                    erased_at=now,
                )
            )
            result = await conn.execute(
                update(orders)
                .where(orders.c.customer_id == customer_id)
                .values(phone=None, telegram_id=None, fingerprint=ERASED_FINGERPRINT)
            )
            # What they wrote about an order is theirs; the score alone says nothing about them.
            commented = await conn.execute(
                update(ratings)
                .where(ratings.c.customer_id == customer_id, ratings.c.comment.is_not(None))
                .values(comment=None)
            )
            # Staff saw name, phone and Telegram id in the alert; without them no reply or
            # compensation message can reach the erased chat either.
            alert_ids = tuple(
                int(alert_id)
                for alert_id in (
                    await conn.execute(
                        select(rating_alerts.c.id)
                        .where(rating_alerts.c.customer_id == customer_id)
                        .order_by(rating_alerts.c.id)
                    )
                ).scalars()
            )
            if alert_ids:
                await conn.execute(
                    update(rating_alerts)
                    .where(rating_alerts.c.id.in_(alert_ids))
                    .values(snapshot={})
                )
            # A request nobody answered is closed: its message sits in a chat that is no
            # longer theirs, so the expiry sweep has nothing to edit.
            await conn.execute(
                update(ratings)
                .where(
                    ratings.c.customer_id == customer_id,
                    ratings.c.score.is_(None),
                    ratings.c.closed_at.is_(None),
                )
                .values(closed_at=now)
            )
            reminder_ids = tuple(
                int(reminder_id)
                for reminder_id in (
                    await conn.execute(
                        select(reminders.c.id)
                        .where(reminders.c.customer_id == customer_id)
                        .order_by(reminders.c.id)
                    )
                ).scalars()
            )
        return Erased(
            orders_anonymised=int(result.rowcount),
            ratings_scrubbed=int(commented.rowcount),
            alert_ids=alert_ids,
            reminder_ids=reminder_ids,
            texts_scrubbed=texts,
        )

    async def birthdays_on(
        self, *, month: int, day: int, year: int, limit: int
    ) -> list[BirthdayMember]:
        """Members with this birthday whose gift for ``year`` is not settled yet."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(
                    customers.c.id.label("customer_id"),
                    customers.c.telegram_id,
                    customers.c.first_name,
                    customers.c.birthday_set_at,
                )
                .where(
                    customers.c.birthday_month == month,
                    customers.c.birthday_day == day,
                    customers.c.joined_at.is_not(None),
                    customers.c.erased_at.is_(None),
                    or_(
                        customers.c.birthday_gift_year.is_(None),
                        customers.c.birthday_gift_year < year,
                    ),
                )
                .order_by(customers.c.id)
                .limit(limit)
            )
            return [BirthdayMember(**row._mapping) for row in rows.all()]

    async def settle_birthday(self, *, customer_id: int, year: int) -> None:
        """This year's birthday is dealt with (gift given, or refused): not looked at again."""
        async with self._db.transaction() as conn:
            await conn.execute(
                update(customers)
                .where(customers.c.id == customer_id)
                .values(birthday_gift_year=year)
            )


async def _scrub_free_text(
    conn: Any,
    customer_id: int,
    scrub: Callable[[str], str],
    scrub_json: Callable[[Any], Any],
) -> int:
    """Rewrite the customer's ledger reasons and audit details that mention them; returns how
    many rows changed. Reads the rows once: a customer has few of them."""
    changed = 0
    entries = await conn.execute(
        select(ledger_entries.c.id, ledger_entries.c.reason).where(
            ledger_entries.c.customer_id == customer_id
        )
    )
    for entry_id, reason in entries.all():
        clean = scrub(reason)
        if clean != reason:
            await conn.execute(
                update(ledger_entries).where(ledger_entries.c.id == entry_id).values(reason=clean)
            )
            changed += 1
    trail = await conn.execute(
        select(audit_log.c.id, audit_log.c.details).where(audit_log.c.customer_id == customer_id)
    )
    for row_id, details in trail.all():
        clean = scrub_json(details)
        if clean != details:
            await conn.execute(
                update(audit_log).where(audit_log.c.id == row_id).values(details=clean)
            )
            changed += 1
    return changed
