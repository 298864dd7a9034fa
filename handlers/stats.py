"""/stats for admins: a summary with period and section buttons (edited in place) and charts."""

from __future__ import annotations

from datetime import timedelta

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.i18n import gettext as _
from babel.dates import format_timedelta

from handlers.editing import unless_unchanged
from handlers.filters import IsAdmin
from handlers.flags import READS_ONLY
from handlers.stats_charts import ChartPainter, stats_charts
from locales.rendering import Renderer
from scenarios.analytics import Period, ShopAnalytics
from scenarios.clock import Clock
from storage.ratings import SqlRatings

SECTIONS = (
    "summary",
    "customers",
    "repeat",
    "value",
    "cohorts",
    "program",
    "satisfaction",
    "engagement",
)
DEFAULT_PERIOD = Period.MONTH


class StatsView(CallbackData, prefix="stats"):
    period: Period
    section: str  # one of SECTIONS, or "charts"


def create_router() -> Router:
    router = Router(name="stats")
    router.message.filter(F.chat.type == "private")
    router.message.register(show_stats, Command("stats"), IsAdmin(), flags=READS_ONLY)
    router.message.register(refuse, Command("stats"), ~IsAdmin(), flags=READS_ONLY)
    router.callback_query.register(
        send_charts,
        StatsView.filter(F.section == "charts"),
        IsAdmin(),
        flags=READS_ONLY,
    )
    router.callback_query.register(
        switch_view,
        StatsView.filter(F.section.in_(SECTIONS)),
        IsAdmin(),
        flags=READS_ONLY,
    )
    router.callback_query.register(refuse_button, StatsView.filter(), ~IsAdmin(), flags=READS_ONLY)
    return router


def _period_label(period: Period) -> str:
    return {
        Period.WEEK: _("7 days"),
        Period.MONTH: _("30 days"),
        Period.QUARTER: _("90 days"),
        Period.YEAR: _("12 months"),
    }[period]


def _section_label(section: str) -> str:
    return {
        "summary": _("Summary"),
        "customers": _("Customers"),
        "repeat": _("Repeat sales"),
        "value": _("Value"),
        "cohorts": _("Cohorts"),
        "program": _("Program cost"),
        "satisfaction": _("Satisfaction"),
        "engagement": _("Engagement"),
        "charts": _("📈 Charts"),
    }[section]


def stats_keyboard(period: Period, section: str) -> InlineKeyboardMarkup:
    """Periods on top (the current one marked), the sections below; a press edits the message."""

    def button(text: str, to_period: Period, to_section: str) -> InlineKeyboardButton:
        data = StatsView(period=to_period, section=to_section).pack()
        return InlineKeyboardButton(text=text, callback_data=data)

    periods = [
        button(
            f"• {_period_label(choice)} •" if choice is period else _period_label(choice),
            choice,
            section,
        )
        for choice in Period
    ]
    others = [name for name in SECTIONS if name != section] + ["charts"]
    sections = [button(_section_label(name), period, name) for name in others]
    rows = [periods] + [sections[i : i + 3] for i in range(0, len(sections), 3)]
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def render_view(
    *,
    period: Period,
    section: str,
    renderer: Renderer,
    locale: str,
    analytics: ShopAnalytics,
    ratings: SqlRatings,
    clock: Clock,
) -> str:
    now = clock.now()
    stats = await analytics.collect(period, now=now)
    context: dict[str, object] = {"stats": stats, "period_label": _period_label(period)}
    if section == "satisfaction":
        rated = await ratings.stats(now=now)
        context["ratings"] = rated
        context["median"] = (
            format_timedelta(
                timedelta(seconds=rated.median_resolve_seconds), threshold=1.5, locale=locale
            )
            if rated.median_resolve_seconds is not None
            else None
        )
    if section == "engagement":
        context["reminders"] = stats.engagement.reminders
    template = "stats.html" if section == "summary" else f"stats_{section}.html"
    return renderer.render(template, locale=locale, **context)


async def show_stats(
    message: Message,
    renderer: Renderer,
    locale: str,
    ratings: SqlRatings,
    clock: Clock,
    analytics: ShopAnalytics,
) -> None:
    text = await render_view(
        period=DEFAULT_PERIOD,
        section="summary",
        renderer=renderer,
        locale=locale,
        analytics=analytics,
        ratings=ratings,
        clock=clock,
    )
    await message.answer(text, reply_markup=stats_keyboard(DEFAULT_PERIOD, "summary"))


async def switch_view(
    callback: CallbackQuery,
    callback_data: StatsView,
    renderer: Renderer,
    locale: str,
    ratings: SqlRatings,
    clock: Clock,
    analytics: ShopAnalytics,
) -> None:
    text = await render_view(
        period=callback_data.period,
        section=callback_data.section,
        renderer=renderer,
        locale=locale,
        analytics=analytics,
        ratings=ratings,
        clock=clock,
    )
    markup = stats_keyboard(callback_data.period, callback_data.section)
    await callback.answer()
    if isinstance(callback.message, Message):
        with unless_unchanged():
            await callback.message.edit_text(text, reply_markup=markup)
    else:  # too old to edit: a fresh message
        await callback.bot.send_message(callback.from_user.id, text, reply_markup=markup)  # type: ignore[union-attr]


async def send_charts(
    callback: CallbackQuery,
    callback_data: StatsView,
    locale: str,
    clock: Clock,
    analytics: ShopAnalytics,
    charts: ChartPainter,
) -> None:
    await callback.answer(_("Drawing the charts…"))
    data = await analytics.chart_data(callback_data.period, now=clock.now())
    caption = _("Period: {period}").format(period=_period_label(callback_data.period))
    for name, chart in stats_charts(data, locale=locale):
        picture = await charts.paint(chart)
        await callback.bot.send_photo(  # type: ignore[union-attr]
            callback.from_user.id,
            BufferedInputFile(picture, filename=name),
            caption=caption,
        )


async def refuse(message: Message) -> None:
    await message.answer(_("This command is for the shop's admins."))


async def refuse_button(callback: CallbackQuery) -> None:
    await callback.answer(_("This command is for the shop's admins."), show_alert=True)
