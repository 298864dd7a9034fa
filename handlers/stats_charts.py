"""The charts of /stats as plain specs in the admin's language; bot.charts paints them as PNG."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aiogram.utils.i18n import gettext as _
from babel.dates import format_date

from locales.formatting import format_percent
from scenarios.analytics import ChartData


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: tuple[int, ...]
    color: str


@dataclass(frozen=True, slots=True)
class StackedBars:
    """Bars stacked from the series, one bar per tick."""

    title: str
    x_label: str
    y_label: str
    ticks: tuple[str, ...]
    series: tuple[Series, ...]
    empty: str  # written across the chart when there is nothing to show


@dataclass(frozen=True, slots=True)
class Heatmap:
    """Shares 0..1 per row and column; None where the month has not come yet."""

    title: str
    x_label: str
    y_label: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    cells: tuple[tuple[float | None, ...], ...]
    texts: tuple[tuple[str, ...], ...]  # each cell's share as the locale writes it
    empty: str


Chart = StackedBars | Heatmap


class ChartPainter(Protocol):
    async def paint(self, chart: Chart) -> bytes: ...


# Red to green, a score's colour: what a glance reads without the legend.
SCORE_COLORS = ("#d73027", "#fc8d59", "#fee08b", "#91cf60", "#1a9850")


def _day(moment: datetime, locale: str) -> str:
    return format_date(moment.date(), "d MMM", locale=locale)


def _month(moment: datetime, locale: str) -> str:
    return format_date(moment.date(), "LLL yyyy", locale=locale)


def stats_charts(data: ChartData, *, locale: str) -> list[tuple[str, Chart]]:
    """(file name, chart) for each picture /stats sends, labelled in the current locale."""
    nothing = _("No data for this period yet")
    weekly = StackedBars(
        title=_("Orders per week: new and returning customers"),
        x_label=_("Week starting"),
        y_label=_("Orders"),
        ticks=tuple(_day(week, locale) for week, _first, _again in data.weeks),
        series=(
            Series(_("First order"), tuple(first for _w, first, _a in data.weeks), "#4c72b0"),
            Series(_("Repeat order"), tuple(again for _w, _f, again in data.weeks), "#dd8452"),
        ),
        empty=nothing,
    )
    longest = max((len(cohort.retention) for cohort in data.cohorts), default=0)
    cohorts = Heatmap(
        title=_("Cohort retention: share ordering again"),
        x_label=_("Months after the first order"),
        y_label=_("Month of the first order"),
        rows=tuple(f"{_month(cohort.month, locale)} ({cohort.size})" for cohort in data.cohorts),
        columns=tuple(str(month) for month in range(1, longest + 1)),
        cells=tuple(
            tuple(
                cohort.retention[k] if k < len(cohort.retention) else None for k in range(longest)
            )
            for cohort in data.cohorts
        ),
        texts=tuple(
            tuple(format_percent(share, locale) for share in cohort.retention)
            for cohort in data.cohorts
        ),
        empty=nothing,
    )
    tick = _month if data.ratings_by_month else _day
    ratings = StackedBars(
        title=_("Ratings over time"),
        x_label=_("Month") if data.ratings_by_month else _("Week starting"),
        y_label=_("Ratings"),
        ticks=tuple(tick(bucket, locale) for bucket, _counts in data.ratings),
        series=tuple(
            Series(
                "★" * score,
                tuple(counts[score - 1] for _bucket, counts in data.ratings),
                SCORE_COLORS[score - 1],
            )
            for score in range(1, 6)
        ),
        empty=nothing,
    )
    return [("orders.png", weekly), ("cohorts.png", cohorts), ("ratings.png", ratings)]
