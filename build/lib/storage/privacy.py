"""Privacy rows: the bot's own secrets and the keyed hashes of erased customers' identities."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from storage.database import Database
from storage.schema import (
    app_secrets,
    customers,
    erased_identities,
    ledger_entries,
    notification_mutes,
    order_items,
    orders,
    outbox,
    ratings,
    reminders,
)
from storage.sql import insert


class SqlSecrets:
    """Secrets kept in the database; every method joins the caller's transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_or_create(self, *, name: str, make: Callable[[], str], now: datetime) -> str:
        """The secret called ``name``; the first caller stores ``make()`` (once: a concurrent
        first caller's value wins and both read it)."""
        async with self._db.transaction() as conn:
            found = (
                await conn.execute(select(app_secrets.c.value).where(app_secrets.c.name == name))
            ).scalar_one_or_none()
            if found is not None:
                return str(found)
            await conn.execute(
                insert(conn, app_secrets)
                .values(name=name, value=make(), created_at=now)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            return str(
                (
                    await conn.execute(
                        select(app_secrets.c.value).where(app_secrets.c.name == name)
                    )
                ).scalar_one()
            )


class SqlErasedIdentities:
    """Keyed hashes of erased customers' phones and Telegram ids (no personal data)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def remember(self, *, digests: Sequence[tuple[str, str]], now: datetime) -> None:
        """``digests``: (kind, hex digest) pairs; one already known stays as it was."""
        if not digests:
            return
        async with self._db.transaction() as conn:
            for kind, digest in digests:
                await conn.execute(
                    insert(conn, erased_identities)
                    .values(digest=digest, kind=kind, erased_at=now)
                    .on_conflict_do_nothing(index_elements=["digest"])
                )

    async def known(self, *, digests: Sequence[str]) -> bool:
        """Whether any of these digests belonged to an erased customer."""
        if not digests:
            return False
        async with self._db.read() as conn:
            found = (
                await conn.execute(
                    select(erased_identities.c.digest)
                    .where(erased_identities.c.digest.in_(list(digests)))
                    .limit(1)
                )
            ).first()
        return found is not None


def _plain(value: Any) -> Any:
    """A stored value as JSON can carry it (times in ISO 8601, UTC)."""
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _rows(result: Any) -> list[dict[str, Any]]:
    return [{key: _plain(value) for key, value in row._mapping.items()} for row in result.all()]


class SqlPersonalData:
    """Everything stored about one customer, for their copy of it (/my_data, export-customer)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def collect(self, *, customer_id: int) -> dict[str, Any]:
        c = customers.c
        async with self._db.read() as conn:
            profile = (
                await conn.execute(
                    select(
                        c.id,
                        c.card_number,
                        c.first_name,
                        c.username,
                        c.telegram_id,
                        c.phone,
                        c.language_code,
                        c.locale,
                        c.timezone,
                        c.birthday_day,
                        c.birthday_month,
                        c.birthday_year,
                        c.created_at,
                        c.joined_at,
                        c.blocked_at,
                    ).where(c.id == customer_id)
                )
            ).one_or_none()
            if profile is None:
                return {}
            consents = (
                await conn.execute(
                    select(c.terms_accepted_at, c.marketing_opt_in, c.marketing_changed_at).where(
                        c.id == customer_id
                    )
                )
            ).one()
            mutes = await conn.execute(
                select(notification_mutes.c.kind, notification_mutes.c.muted_at).where(
                    notification_mutes.c.customer_id == customer_id
                )
            )
            bought = await conn.execute(
                select(
                    orders.c.order_ref,
                    orders.c.status,
                    orders.c.total,
                    orders.c.currency,
                    orders.c.bonus_redeemed,
                    orders.c.ordered_at,
                    orders.c.phone,
                )
                .where(orders.c.customer_id == customer_id)
                .order_by(orders.c.ordered_at, orders.c.id)
            )
            order_list = _rows(bought)
            items = await conn.execute(
                select(
                    orders.c.order_ref,
                    order_items.c.sku,
                    order_items.c.name,
                    order_items.c.quantity,
                    order_items.c.price,
                )
                .select_from(order_items.join(orders, orders.c.id == order_items.c.order_id))
                .where(orders.c.customer_id == customer_id)
                .order_by(order_items.c.id)
            )
            by_order: dict[str, list[dict[str, Any]]] = {}
            for item in _rows(items):
                by_order.setdefault(item.pop("order_ref"), []).append(item)
            for placed in order_list:
                placed["items"] = by_order.get(placed["order_ref"], [])
            ledger = await conn.execute(
                select(
                    ledger_entries.c.occurred_at,
                    ledger_entries.c.kind,
                    ledger_entries.c.amount,
                    ledger_entries.c.reason,
                )
                .where(ledger_entries.c.customer_id == customer_id)
                .order_by(ledger_entries.c.id)
            )
            rated = await conn.execute(
                select(ratings.c.order_ref, ratings.c.score, ratings.c.comment, ratings.c.rated_at)
                .where(ratings.c.customer_id == customer_id)
                .order_by(ratings.c.id)
            )
            waiting = await conn.execute(
                select(
                    reminders.c.sku,
                    reminders.c.order_ref,
                    reminders.c.state,
                    reminders.c.remind_at,
                    reminders.c.sent_at,
                )
                .where(reminders.c.customer_id == customer_id)
                .order_by(reminders.c.id)
            )
            messages = await conn.execute(
                select(
                    outbox.c.kind,
                    outbox.c.category,
                    outbox.c.state,
                    outbox.c.created_at,
                    outbox.c.sent_at,
                    outbox.c.payload,
                )
                .where(outbox.c.customer_id == customer_id)
                .order_by(outbox.c.id)
            )
            kept = []
            for message in _rows(messages):
                payload = message.pop("payload") or {}
                message["text"] = payload.get("text") or payload.get("texts", {}).get("default")
                kept.append(message)
        return {
            "profile": {key: _plain(value) for key, value in profile._mapping.items()},
            "consents": {
                **{key: _plain(value) for key, value in consents._mapping.items()},
                "muted": _rows(mutes),
            },
            "orders": order_list,
            "ledger": _rows(ledger),
            "ratings": _rows(rated),
            "reminders": _rows(waiting),
            "messages": kept,
        }
