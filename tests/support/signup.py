"""Helpers for sign-up tests: contact updates, reading what the bot sent, the ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiogram.methods import SendMessage, SendPhoto, TelegramMethod
from aiogram.types import Update
from sqlalchemy import func, select

from storage.database import Database
from storage.schema import customers, ledger_entries
from tests.support.updates import TgUser, Updates


def contact(updates: Updates, user: TgUser, phone: str, *, owner: int | None = None) -> Update:
    """A shared contact; ``owner`` None means the sender's own (what request_contact sends)."""
    update = updates.message(user, "x")
    message = update.message
    assert message is not None
    payload = message.model_dump(mode="json", by_alias=True, exclude_none=True)
    payload.pop("text")
    payload["contact"] = {
        "phone_number": phone,
        "first_name": user.first_name,
        "user_id": user.id if owner is None else owner,
    }
    return Update.model_validate({"update_id": update.update_id, "message": payload})


def texts(calls: list[TelegramMethod[Any]]) -> list[str]:
    return [call.text for call in calls if isinstance(call, SendMessage)]


def photos(calls: list[TelegramMethod[Any]]) -> list[SendPhoto]:
    return [call for call in calls if isinstance(call, SendPhoto)]


def inline_labels(method: Any) -> list[str]:
    markup = method.reply_markup
    assert markup is not None
    return [button.text for row in markup.inline_keyboard for button in row]


async def customer_count(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(customers))).scalar_one())


async def entries(db: Database, customer_id: int) -> list[tuple[str, str, int]]:
    """(kind, source, amount) of a customer's ledger, oldest first."""
    async with db.read() as conn:
        rows = await conn.execute(
            select(ledger_entries.c.kind, ledger_entries.c.source, ledger_entries.c.amount)
            .where(ledger_entries.c.customer_id == customer_id)
            .order_by(ledger_entries.c.id)
        )
        return [(kind, source, int(amount)) for kind, source, amount in rows.all()]


def at(year: int, month: int, day: int, hour: int = 12) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)
