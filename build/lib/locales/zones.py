"""Time zones as a customer reads them: the city in their language and the time there now."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_time, get_timezone_location


def zone_city(zone: str, locale: str) -> str:
    """ "Екатеринбург" for Asia/Yekaterinburg in ru (CLDR's exemplar city)."""
    return str(get_timezone_location(zone, locale=locale, return_city=True))


def zone_time(zone: str, locale: str, now: datetime) -> str:
    """The time there now, as the locale writes it ("14:05", "2:05 PM")."""
    return str(format_time(now, format="short", tzinfo=ZoneInfo(zone), locale=locale))


def zone_label(zone: str, locale: str, now: datetime) -> str:
    """A button: the time there now and the city, so the customer picks what their clock shows."""
    return f"{zone_time(zone, locale, now)} · {zone_city(zone, locale)}"
