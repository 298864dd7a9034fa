"""Builds the shop-figures services (/stats, /export, GET /api/v1/stats) from the rules."""

from __future__ import annotations

from typing import Any

from bot.charts import StatsCharts
from scenarios.analytics import ShopAnalytics, StatsRules
from scenarios.rules import Rules
from storage.analytics import SqlAnalytics
from storage.broadcasts import SqlBroadcasts
from storage.database import Database
from storage.export import SqlExport
from storage.reminders import SqlReminders


def shop_analytics(db: Database, rules: Rules) -> ShopAnalytics:
    return ShopAnalytics(
        SqlAnalytics(db),
        reminders=SqlReminders(db),
        broadcasts=SqlBroadcasts(db),
        rules=StatsRules(
            sleeping_days=rules.segments.sleeping_days,
            lost_days=rules.segments.lost_days,
            point_value=rules.bonus.point_value,
            conversion_days=rules.broadcasts.conversion_days,
        ),
    )


def analytics_services(db: Database, rules: Rules) -> dict[str, Any]:
    """What the stats and export handlers receive by name."""
    return {
        "analytics": shop_analytics(db, rules),
        "charts": StatsCharts(),
        "data_export": SqlExport(db),
    }
