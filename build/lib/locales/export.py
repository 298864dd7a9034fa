"""A customer's copy of their data as JSON, with the labels in their language."""

from __future__ import annotations

import json
from typing import Any

from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _


def _labels() -> dict[str, str]:
    """Every key of the export, in the current locale."""
    return {
        "export": _("My data"),
        "profile": _("Profile"),
        "consents": _("Consents"),
        "orders": _("Orders"),
        "ledger": _("Points history"),
        "ratings": _("Ratings and comments"),
        "reminders": _("Reminders"),
        "messages": _("Messages kept"),
        "id": _("Customer number"),
        "card_number": _("Card number"),
        "first_name": _("Name"),
        "username": _("Telegram username"),
        "telegram_id": _("Telegram id"),
        "phone": _("Phone"),
        "language_code": _("Telegram app language"),
        "locale": _("Chosen language"),
        "timezone": _("Time zone"),
        "birthday_day": _("Birthday: day"),
        "birthday_month": _("Birthday: month"),
        "birthday_year": _("Birthday: year"),
        "created_at": _("First contact"),
        "joined_at": _("Joined the program"),
        "blocked_at": _("Bot blocked since"),
        "terms_accepted_at": _("Program terms accepted"),
        "marketing_opt_in": _("Offers and news"),
        "marketing_changed_at": _("Offers choice changed"),
        "muted": _("Messages switched off"),
        "muted_at": _("Switched off"),
        "kind": _("Kind"),
        "order_ref": _("Order"),
        "status": _("Status"),
        "total": _("Total (minor units)"),
        "currency": _("Currency"),
        "bonus_redeemed": _("Points spent"),
        "ordered_at": _("Ordered"),
        "items": _("Items"),
        "sku": _("Product code"),
        "name": _("Product"),
        "quantity": _("Quantity"),
        "price": _("Price (minor units)"),
        "occurred_at": _("When"),
        "amount": _("Points"),
        "reason": _("Reason"),
        "score": _("Score"),
        "comment": _("Comment"),
        "rated_at": _("Rated"),
        "state": _("State"),
        "remind_at": _("Reminder due"),
        "sent_at": _("Sent"),
        "category": _("Category"),
        "text": _("Text"),
    }


def _relabel(value: Any, labels: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {labels.get(key, key): _relabel(item, labels) for key, item in value.items()}
    if isinstance(value, list):
        return [_relabel(item, labels) for item in value]
    return value


def export_json(data: dict[str, Any], *, i18n: I18n, locale: str) -> str:
    """The collected data (storage's English keys) as JSON labelled in ``locale``."""
    with i18n.context(), i18n.use_locale(locale):
        labels = _labels()
        document = {labels["export"]: _relabel(data, labels)}
    return json.dumps(document, ensure_ascii=False, indent=2)
