"""Issue 15, items 10 and 13: /customer for every audit entry, texts that never mix languages."""

from __future__ import annotations

import ast
import re
from collections.abc import Set
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from aiogram.methods import SendMessage
from babel.messages.pofile import read_po
from sqlalchemy import update

from locales import LOCALES_DIR, CatalogI18n
from locales.formatting import (
    format_date,
    format_money,
    format_number,
    format_percent,
    format_points,
    tidy_stops,
)
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.customers import SUPPORTED_LOCALES
from storage.audit import AuditEntry, SqlAuditLog
from storage.database import Database
from storage.ledger import EntryKind
from storage.schema import customers
from tests.support.account_samples import ACCOUNT_SAMPLES, entry
from tests.support.flow import Flow, build_flow
from tests.support.seed import member
from tests.support.updates import TgUser

ROOT = Path(__file__).resolve().parent.parent
AT = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
ORDER_KINDS = {"accrual", "redemption", "reversal", "restoration", "correction"}
LATIN = re.compile(r"[A-Za-z]{2,}")
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
ADMIN = TgUser(9001, first_name="Olga", language_code="en")

# One entry of each action the code records, with the details the code gives it.
AUDIT_ENTRIES = {
    "bonus_adjustment": AuditEntry(
        AT, 900001, "bonus_adjustment", 42, {"points": 500, "reason": "sorry", "entry_id": 7}
    ),
    "compensation": AuditEntry(
        AT, 900002, "compensation", 42, {"alert_id": 3, "order_id": "A-1001", "points": 300}
    ),
    "erasure": AuditEntry(
        AT,
        None,
        "erasure",
        42,
        {
            "requested_by": "customer",
            "was_member": True,
            "orders_anonymised": 2,
            "messages_dropped": 1,
            "messages_scrubbed": 4,
            "ratings_scrubbed": 1,
            "alerts_scrubbed": 1,
        },
    ),
    "gift": AuditEntry(
        AT,
        900001,
        "gift",
        None,
        {"gift_id": 1, "amount": 100, "reason": "New Year", "tier": None, "recipients": 3},
    ),
    "till_purchase": AuditEntry(
        AT,
        900003,
        "till_purchase",
        42,
        {
            "order_id": "till-6f1c2a9e",
            "total": "1000.00",
            "points_redeemed": 20,
            "points_accrued": 4,
        },
    ),
}
EXPECTED = {
    "en": {
        "bonus_adjustment": "points adjusted by +500 points, reason: sorry (by Telegram id 900001)",
        "compensation": "compensation +300 points for the rating of order A-1001",
        "erasure": "personal data erased at the customer's request",
        "gift": "holiday gift: New Year",
        "till_purchase": (
            "purchase at the till, order till-6f1c2a9e: 4 points earned, 20 points spent"
        ),
    },
    "ru": {
        "bonus_adjustment": "бонусы изменены на +500 бонусов, причина: sorry",
        "compensation": "компенсация +300 бонусов за оценку заказа A-1001",
        "erasure": "персональные данные удалены по просьбе клиента",
        "gift": "праздничный подарок: New Year",
        "till_purchase": (
            "покупка на кассе, заказ till-6f1c2a9e: начислено 4 бонуса, списано 20 бонусов"
        ),
    },
    "uk": {
        "bonus_adjustment": "бали змінено на +500 балів, причина: sorry",
        "compensation": "компенсація +300 балів за оцінку замовлення A-1001",
        "erasure": "персональні дані видалено на прохання клієнта",
        "gift": "святковий подарунок: New Year",
        "till_purchase": (
            "покупка на касі, замовлення till-6f1c2a9e: нараховано 4 бали, списано 20 балів"
        ),
    },
}


def plain(text: str | None) -> str:
    return (text or "").replace("\xa0", " ").replace("\u202f", " ")


def recorded_actions() -> set[str]:
    """Every ``action=`` the scenarios pass to an AuditEntry, literal or module constant."""
    found: set[str] = set()
    for path in (ROOT / "scenarios").glob("*.py"):
        tree = ast.parse(path.read_text())
        constants = {
            target.id: str(node.value.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "AuditEntry":
                for keyword in node.keywords:
                    if keyword.arg != "action":
                        continue
                    value = keyword.value
                    if isinstance(value, ast.Constant):
                        found.add(str(value.value))
                    elif isinstance(value, ast.Name):
                        found.add(constants.get(value.id, value.id))
                    elif isinstance(value, ast.Attribute):
                        found.add(value.attr.lower())
    return found


def test_i15_10_the_samples_cover_every_audit_action_the_code_records() -> None:
    assert recorded_actions() <= set(AUDIT_ENTRIES), "add the new action to AUDIT_ENTRIES"


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("action", sorted(AUDIT_ENTRIES))
def test_i15_10_the_profile_renders_every_audit_action_in_words(
    renderer: Renderer, locale: str, action: str
) -> None:
    context = {**ACCOUNT_SAMPLES["customer_profile.html"], "audit": [AUDIT_ENTRIES[action]]}
    text = plain(renderer.render("customer_profile.html", locale=locale, **context))
    assert EXPECTED[locale][action] in text
    if locale != "en" or "_" in action:  # "compensation" is also a plain English word
        assert action not in text, "the raw action name is shown"


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_i15_10_an_unknown_action_or_missing_details_do_not_break_the_profile(
    renderer: Renderer, locale: str
) -> None:
    odd = [
        AuditEntry(AT, None, "something_new", 42, {}),
        AuditEntry(AT, None, "compensation", 42, {}),
        AuditEntry(AT, None, "bonus_adjustment", 42, {}),
    ]
    context = {**ACCOUNT_SAMPLES["customer_profile.html"], "audit": odd}
    text = renderer.render("customer_profile.html", locale=locale, **context)
    assert "something_new" not in text


@pytest.mark.parametrize("locale", ["ru", "uk"])
@pytest.mark.parametrize("kind", list(EntryKind))
def test_i15_10_history_renders_every_ledger_entry_kind_in_the_reader_s_language(
    renderer: Renderer, locale: str, kind: EntryKind
) -> None:
    # The ledger's own reason is an English note for the shop's books, never shown as is.
    source = "order:A-1001" if kind in ORDER_KINDS else f"{kind}:1"
    english_note = "compensation for a negative rating of order A-1001"
    # An adjustment's or a gift's reason is what the admin typed: shown as typed.
    typed = kind in {EntryKind.ADJUSTMENT, EntryKind.GIFT}
    note = "извините" if typed else english_note
    context = {"entries": [entry(1, kind, source, 120, note)], "newest": True}
    text = renderer.render("history.html", locale=locale, **context)
    line = text.split("\n")[-1]
    assert english_note not in line
    assert not LATIN.findall(line.replace("A-1001", "")), line


@pytest.fixture
def flow(sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    return build_flow(
        db=sqlite_db, clock=clock, i18n=i18n, renderer=renderer, admin_ids=(ADMIN.id,)
    )


async def test_i15_10_customer_with_an_erasure_and_a_compensation_in_the_audit_log(
    flow: Flow,
) -> None:
    customer_id = await member(flow.db, 1001)
    async with flow.db.transaction() as conn:
        await conn.execute(
            update(customers).where(customers.c.id == customer_id).values(first_name="Anna")
        )
    audit = SqlAuditLog(flow.db)
    for action in ("bonus_adjustment", "compensation", "erasure"):
        sample = AUDIT_ENTRIES[action]
        await audit.record(replace(sample, customer_id=customer_id))
    calls = await flow.send(ADMIN, "/customer tg:1001")
    [profile] = [call for call in calls if isinstance(call, SendMessage)]
    text = plain(profile.text)
    assert "Something went wrong" not in text
    assert "personal data erased at the customer's request" in text
    assert "compensation +300 points for the rating of order A-1001 (by Telegram id 900002)" in text
    assert "points adjusted by +500 points, reason: sorry (by Telegram id 900001)" in text
    assert "bonus_adjustment" not in text


# ---- item 13: no sentence mixes languages ------------------------------------------------

# Latin words a Russian or Ukrainian text may hold: product and protocol names, command syntax
# (tier:gold, language codes), HTML entities; order ids, currency codes, commands, @names and
# links are taken out before the check.
ALLOWED_LATIN = {
    "Telegram",
    "id",
    "username",
    "QR",
    "CSAT",
    "HTML",
    "Excel",
    # the names of the customer-value models, as the literature in every language spells them
    "BG",
    "NBD",
    "Gamma",
    "EAN",
    "tier",
    "gold",
    "silver",
    "bronze",
    "ru",
    "uk",
    "en",
    "lt",
    "gt",
    "amp",
    "quot",
    "href",
    "sqlite",
    "postgresql",
}
_NOT_WORDS = re.compile(
    r"<code>[^<]*</code>|<[^>]+>|&\w+;|https?://\S+|/\w+|@\w+|\b[A-Z]+-\w+\b|\b[A-Z]{3}\b|%\(\w+\)s|\{\w+\}"
)
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'’]+")  # single letters: variants A and B, <b>
_CYRILLIC = re.compile(r"[А-Яа-яЁёІіЇїЄєҐґ]")


def strings_in(value: object) -> set[str]:
    """Every text a sample context carries (what people typed or the shop configured)."""
    found: set[str] = set()
    if isinstance(value, str):
        found.add(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            found |= strings_in(key) | strings_in(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            found |= strings_in(item)
    elif hasattr(value, "model_dump"):  # aiogram's types (a BotCommand)
        found |= strings_in(value.model_dump())
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            found |= strings_in(getattr(value, name))
    return found


def foreign_words(text: str, locale: str, *, typed: Set[str] = frozenset()) -> list[str]:
    """Words of another language in ``text``; what a person typed is not the text's own."""
    for value in sorted(typed, key=len, reverse=True):
        if len(value) > 1:
            text = text.replace(value, " ").replace(escape(value), " ")
    text = _NOT_WORDS.sub(" ", text)
    if locale == "en":
        return _CYRILLIC.findall(text)
    return [word for word in _LATIN_WORD.findall(text) if word not in ALLOWED_LATIN]


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Keys of the config and the code that reach templates: a text shows them translated, never raw.
KEYS = {"bronze", "silver", "gold", "paid", "delivered", "cancelled", "refunded", "reminder"}
KEYS |= {"rating_request", "expiry_warning", "paused", "running", "taken", "resolved", "up"}
KEYS |= set(EntryKind) | set(AUDIT_ENTRIES)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_i15_13_every_template_speaks_one_language(renderer: Renderer, locale: str) -> None:
    from tests.test_texts import SAMPLE_CONTEXTS

    mixed = {}
    for name, context in sorted(SAMPLE_CONTEXTS.items()):
        typed = {text for text in strings_in(context) if text not in KEYS}
        text = renderer.render(name, locale=locale, **context)
        words = foreign_words(text, locale, typed=typed)
        if words:
            mixed[name] = words
    assert mixed == {}


def sample_value(name: str, locale: str, i18n: CatalogI18n) -> str:
    """A plausible value for a placeholder, formatted the way the code formats it."""
    if "point" in name or name in {"change", "available", "pending"}:
        return format_points(1129, i18n, locale)
    if name in {"total", "amount", "spend", "revenue", "min_order", "money"}:
        return format_money(1_000_000, "RUB", locale)
    if name in {"day", "date", "since"}:
        return format_date(date(1990, 5, 15), locale)
    if name in {"percent", "share"}:
        return format_percent(0.05, locale)
    return format_number(1129, locale)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_i15_13_every_gettext_string_with_numbers_speaks_one_language(
    i18n: CatalogI18n, locale: str
) -> None:
    path = LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as source:
        messages = [m for m in read_po(source, locale=locale) if m.id]
    mixed = {}
    for message in messages:
        raw = message.string
        strings = [str(s) for s in raw] if isinstance(raw, tuple | list) else [str(raw)]
        for string in strings:
            names = set(PLACEHOLDER.findall(string))
            text = string % {n: sample_value(n, locale, i18n) for n in names} if names else string
            text = tidy_stops(text)
            words = foreign_words(text, locale)
            if words:
                mixed[string] = words
            assert ".." not in text.replace("...", ""), text
    assert mixed == {}
