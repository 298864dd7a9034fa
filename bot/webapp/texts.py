"""The Mini App page's own words, from the bot's catalogs (ru, uk, en); longer texts (balance,
history, reminders) are the bot's own templates, rendered by the API."""

from __future__ import annotations

import json

from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import lazy_gettext as __
from babel.support import LazyProxy

from scenarios.customers import SUPPORTED_LOCALES

# Placeholders in braces ({seconds}) are filled in by the page with values the API formatted.
PAGE_TEXTS: dict[str, LazyProxy] = {
    "loading": __("Loading…"),
    "unauthorized": __(
        "Could not sign you in. Close this page and open it again from the bot's menu."
    ),
    "too_many": __("Too many attempts. Wait a minute and try again."),
    "failed": __("Something went wrong. Try again."),
    "not_member": __("You are not in the bonus program yet. Send /start to the bot to join."),
    "card_title": __("My member card"),
    "card_number": __("Card number"),
    "qr_hint": __("Show this code at the till. It changes every minute and works once."),
    "qr_refresh": __("New code in {seconds} s"),
    "more": __("Show more"),
    "reminders_title": __("Reminders"),
    "cancel_reminder": __("Cancel: {name}"),
    "reminder_cancelled": __("Reminder cancelled."),
    "to_till": __("Open the till"),
    "to_card": __("My card"),
    "till_title": __("Till"),
    "scan": __("Scan the customer's QR code"),
    "or_type": __("or type the card number or phone"),
    "find": __("Find"),
    "member": __("Customer"),
    "name": __("Name"),
    "tier": __("Tier"),
    "available": __("Available"),
    "total": __("Purchase total"),
    "redeem": __("Points to spend"),
    "redeem_cap": __("At most {points} for this total."),
    "redeem_needs_qr": __("To spend points, scan the customer's QR code."),
    "record": __("Record the purchase"),
    "recorded": __("Recorded: +{earned}, spent {spent}. The customer now has {available}."),
    "next_customer": __("Next customer"),
    "qr_used": __("This QR code was already used. Ask the customer for the code on screen now."),
    "qr_expired": __("This QR code has expired. Ask the customer for the code on screen now."),
    "qr_invalid": __("This is not a member card's QR code."),
    "customer_not_found": __("No member with this card or phone."),
    "invalid_customer_ref": __("Type a card number (13 digits) or a phone number."),
    "invalid_card_number": __("This card number has a typo: check the digits."),
    "invalid_amount": __("Type the total like 1290.00."),
    "too_many_fraction_digits": __("Type the total like 1290.00."),
    "total_too_large": __("This total is larger than the shop allows."),
    "total_mismatch": __("The items do not add up to the total."),
    "redeem_code_required": __("To spend points, scan the customer's QR code."),
    "redeem_code_used": __("This scan was already used for another purchase. Scan again."),
    "redeem_code_expired": __("This scan is too old to spend points. Scan again."),
    "redeem_code_invalid": __("To spend points, scan the customer's QR code."),
    "not_enough_points": __("The customer does not have that many points."),
    "over_order_share": __("That is more points than may pay for this total."),
    "total_below_redeemed": __("That is more points than may pay for this total."),
    "forbidden": __("Only the shop's staff can use the till."),
    "own_card": __("This is your own card: ask another cashier to record your purchase."),
}
# What the page needs before it has signed in (and when it cannot): in every language.
BOOT_TEXTS = ("loading", "unauthorized", "too_many", "failed")


def page_texts(i18n: I18n, locale: str) -> dict[str, str]:
    with i18n.context(), i18n.use_locale(locale):
        return {key: str(text) for key, text in PAGE_TEXTS.items()}


def boot_texts_json(i18n: I18n) -> str:
    """The boot texts of every language as JSON, safe inside a <script> element."""
    texts = {
        locale: {key: page_texts(i18n, locale)[key] for key in BOOT_TEXTS}
        for locale in SUPPORTED_LOCALES
    }
    return json.dumps(texts, ensure_ascii=False).replace("<", "\\u003c")
