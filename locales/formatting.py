"""Numbers, money, dates and points written the way each locale writes them (Babel, CLDR)."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from aiogram.utils.i18n import I18n
from babel import Locale
from babel.dates import format_date as babel_format_date
from babel.dates import format_datetime as babel_format_datetime
from babel.dates import format_skeleton
from babel.numbers import format_currency, format_decimal, get_currency_precision
from babel.numbers import format_percent as format_percent_babel
from markupsafe import Markup

# Babel parses the locale and the pattern again on every call, which was a third of rendering
# a /balance; the same few numbers (balances, prices) are written over and over, so the pure
# formatters below remember their recent answers.
_REMEMBERED = 4096


@lru_cache(maxsize=_REMEMBERED, typed=True)
def format_number(value: int | Decimal, locale: str) -> str:
    return format_decimal(value, locale=locale)


@lru_cache(maxsize=64)
def _percent_pattern(locale: str) -> str:
    """The locale's percent pattern with one optional decimal ("#,##0.#%")."""
    return str(Locale.parse(locale).percent_formats[None].pattern).replace("0", "0.#", 1)


@lru_cache(maxsize=_REMEMBERED, typed=True)
def format_percent(share: float, locale: str) -> str:
    """0.048 → "4,8 %" in ru, "4.8%" in en: the locale's own pattern, one optional decimal."""
    return format_percent_babel(share, format=_percent_pattern(locale), locale=locale)


@lru_cache(maxsize=_REMEMBERED)
def format_money(minor_units: int, currency: str, locale: str) -> str:
    """1234567 kopecks → "12 345,67 ₽" in ru, "RUB 12,345.67" in en."""
    amount = Decimal(minor_units).scaleb(-get_currency_precision(currency))
    text = format_currency(amount, currency, locale=locale)
    # Where the locale has no symbol of its own for the currency, Babel glues the ISO code to
    # the digits ("RUB10,000.00"); a code reads as a word and wants a (no-break) space.
    if text.startswith(currency) and text[len(currency) : len(currency) + 1].isdigit():
        text = f"{currency}\xa0{text[len(currency) :]}"
    elif text.startswith("-" + currency):
        text = f"-{currency}\xa0{text[len(currency) + 1 :]}"
    return text


def format_date(value: date | datetime, locale: str, *, style: str = "long") -> str:
    """A day as people read it: "1 марта 2027 г.", "1 березня 2027 р.", "March 1, 2027"."""
    if isinstance(value, datetime):
        value = value.date()
    return babel_format_date(value, format=style, locale=locale)


def format_datetime(value: datetime, locale: str, *, tz: Any, style: str = "medium") -> str:
    return babel_format_datetime(value, format=style, tzinfo=tz, locale=locale)


def format_points(count: int, i18n: I18n, locale: str) -> str:
    """ "5 бонусов", "2 бали", "1 point": the number in the locale's digits, the noun's plural."""
    with i18n.use_locale(locale):
        template = i18n.gettext("%(count)s point", "%(count)s points", count)
    return template % {"count": format_number(count, locale)}


# Russian and Ukrainian dates end in an abbreviation ("1 мая 1990 г.", "1 травня 1990 р."); a
# sentence that ends with one ends with its dot, not with a second one.
_DOUBLE_STOP = re.compile(r"(?<=\b[гр])\.\.(?!\.)")


def tidy_stops(text: str) -> str:
    """ "… 15 мая 1990 г.." → "… 15 мая 1990 г." (an ellipsis "..." stays)."""
    return _DOUBLE_STOP.sub(".", text)


def fill(template: str, **values: Any) -> str:
    """Put values into a translated HTML text; whatever a person typed gets escaped."""
    # The template is our own translated text (trusted); Markup escapes only the values.
    return str(Markup(template) % values)  # noqa: S704


def format_birthday(*, day: int, month: int, year: int | None, locale: str) -> str:
    """ "31 декабря", "December 31, 1990": a birthday with or without its year."""
    if year is None:
        # 2000 is a leap year, so 29 February is written too.
        return format_skeleton("MMMMd", date(2000, month, day), locale=locale)
    return format_date(date(year, month, day), locale)
