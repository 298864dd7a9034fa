"""Builds the shop-figures service (/stats, GET /api/v1/stats) from the rules; the composition
root (bot/services.py) calls it once."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from scenarios.analytics import ShopAnalytics, StatsRules
from scenarios.rules import Rules
from storage.analytics import Calendar, SqlAnalytics
from storage.broadcasts import SqlBroadcasts
from storage.database import Database
from storage.reminders import SqlReminders


def shop_analytics(
    db: Database,
    rules: Rules,
    *,
    reminders: SqlReminders,
    broadcasts: SqlBroadcasts,
    zone: ZoneInfo,
) -> ShopAnalytics:
    # Months and weeks are the shop's: a cohort is the month the shop's calendar showed.
    calendar = Calendar(zone)
    return ShopAnalytics(
        SqlAnalytics(db, calendar=calendar),
        reminders=reminders,
        broadcasts=broadcasts,
        rules=StatsRules(
            sleeping_days=rules.segments.sleeping_days,
            lost_days=rules.segments.lost_days,
            point_value=rules.bonus.point_value,
            conversion_days=rules.broadcasts.conversion_days,
        ),
        calendar=calendar,
    )
