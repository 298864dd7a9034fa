"""GET /api/v1/stats: the /stats figures as one flat JSON object for dashboards."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from aiohttp import web
from babel.numbers import get_currency_precision
from pydantic import BaseModel, ConfigDict, Field

from bot.api.models import BodyProblem
from scenarios.analytics import Period, ShopAnalytics, ShopStats
from scenarios.clock import Clock

ANALYTICS = web.AppKey("analytics", ShopAnalytics)
STATS_CLOCK = web.AppKey("stats_clock", Clock)
CURRENCY = web.AppKey("currency", str)
PERIODS = [period.value for period in Period]
PERIOD_PARAMETER = {
    "name": "period",
    "in": "query",
    "required": False,
    "description": "The period the figures cover, ending now: 7d, 30d (the default), 90d, 12m",
    "schema": {"type": "string", "enum": PERIODS, "default": Period.MONTH.value},
}
# Money as a decimal string in major units of the shop's currency ("2833.33").
Money = Annotated[str, Field(pattern=r"^-?[0-9]+(\.[0-9]+)?$")]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CohortAnswer(_Answer):
    month: str = Field(
        description="The month of the cohort's first orders, YYYY-MM, in the shop's time zone"
    )
    customers: int = Field(description="Customers whose first order fell in that month")
    retention: list[float] = Field(
        description="Share (0..1) of the cohort ordering again in month 1, 2, 3, ... after it"
    )


class StatsAnswer(_Answer):
    """The shop's figures for a period that ends now."""

    period: str = Field(description="As asked: 7d, 30d, 90d or 12m")
    start: str = Field(description="The period's start, ISO 8601 UTC")
    end: str = Field(description="The period's end (now), ISO 8601 UTC")
    currency: str = Field(description="ISO 4217 code of every money figure")
    customers: int = Field(description="Members of the program")
    customers_joined: int = Field(description="Members who joined in the period")
    customers_opted_in: int = Field(description="Members who agreed to offers")
    customers_blocked: int = Field(description="Members who blocked the bot")
    customers_sleeping: int = Field(description="Members overdue for their next order")
    customers_lost: int = Field(description="Members without an order for lost_days")
    repeat_purchase_rate: float = Field(
        ge=0, le=1, description="Share of customers with two orders or more"
    )
    retention_rate: float = Field(
        ge=0,
        le=1,
        description="CRR: (customers at the end - new ones) / customers at the start",
    )
    purchase_frequency: float = Field(ge=0, description="Orders per ordering customer")
    aov: Money = Field(description="Average order value in the period")
    median_days_between_orders: float | None = Field(
        description="Median gap between a customer's consecutive orders; null without any"
    )
    revenue: Money = Field(description="Revenue in the period")
    revenue_returning: Money = Field(description="Of it, from customers' second orders and later")
    revenue_new: Money = Field(description="Of it, from first orders and guests")
    clv_historic: Money = Field(description="Revenue per customer over their history so far")
    clv_predicted: Money = Field(description="Expected revenue per customer in the next 12 months")
    clv_method: str = Field(description="bg_nbd_gamma_gamma (a fitted model) or simple")
    points_outstanding: int = Field(description="Points in customers' accounts")
    points_liability: Money = Field(description="What the outstanding points would pay for")
    points_earned: int = Field(description="Points earned in the period")
    points_spent: int = Field(description="Points spent in the period")
    points_expired: int = Field(description="Points expired in the period")
    redemption_rate: float = Field(ge=0, description="Points spent / points earned")
    cashback_share: float = Field(ge=0, description="Cashback earned as a share of revenue")
    csat: float | None = Field(
        ge=0, le=1, description="Share of 4 and 5 star ratings; null without ratings"
    )
    ratings: int = Field(description="Ratings given in the period")
    cohorts: list[CohortAnswer] = Field(description="Retention by month of the first order")


def money_text(minor_units: int, currency: str) -> str:
    digits = get_currency_precision(currency)
    return str(Decimal(minor_units).scaleb(-digits).quantize(Decimal(1).scaleb(-digits)))


def stats_json(stats: ShopStats, *, currency: str) -> StatsAnswer:
    def money(value: int) -> str:
        return money_text(value, currency)

    return StatsAnswer(
        period=stats.period.value,
        start=stats.start.isoformat(),
        end=stats.end.isoformat(),
        currency=currency,
        customers=stats.customers.members,
        customers_joined=stats.customers.joined,
        customers_opted_in=stats.customers.opted_in,
        customers_blocked=stats.customers.blocked,
        customers_sleeping=stats.customers.sleeping,
        customers_lost=stats.customers.lost,
        repeat_purchase_rate=stats.repeat_purchase_rate,
        retention_rate=stats.retention_rate,
        purchase_frequency=stats.purchase_frequency,
        aov=money(stats.aov),
        median_days_between_orders=stats.repeat.median_gap_days,
        revenue=money(stats.repeat.period_revenue),
        revenue_returning=money(stats.repeat.revenue_returning),
        revenue_new=money(stats.repeat.revenue_new),
        clv_historic=money(stats.clv_historic),
        clv_predicted=money(stats.clv_predicted),
        clv_method="bg_nbd_gamma_gamma" if stats.forecast.fitted else "simple",
        points_outstanding=stats.program.points_outstanding,
        points_liability=money(stats.points_liability),
        points_earned=stats.program.earned,
        points_spent=stats.program.spent,
        points_expired=stats.program.expired,
        redemption_rate=stats.redemption_rate,
        cashback_share=stats.cashback_share,
        csat=stats.csat,
        ratings=stats.rated,
        cohorts=[
            CohortAnswer(
                month=cohort.month.strftime("%Y-%m"),
                customers=cohort.size,
                retention=list(cohort.retention),
            )
            for cohort in stats.cohorts
        ],
    )


async def shop_stats(request: web.Request) -> web.Response:
    period = parse_period(request)
    now: datetime = request.app[STATS_CLOCK].now()
    stats = await request.app[ANALYTICS].collect(period, now=now)
    answer = stats_json(stats, currency=request.app[CURRENCY])
    return web.json_response(answer.model_dump(mode="json"))


def parse_period(request: web.Request) -> Period:
    raw = request.query.get("period", Period.MONTH.value)
    try:
        return Period(raw)
    except ValueError:
        raise BodyProblem(
            422, "invalid_period", f"period is one of {', '.join(PERIODS)}", "period"
        ) from None


def install_stats(
    app: web.Application, *, analytics: ShopAnalytics, clock: Clock, currency: str
) -> None:
    """Adds GET /api/v1/stats to the API app (documented in bot.api.openapi)."""
    app[ANALYTICS] = analytics
    app[STATS_CLOCK] = clock
    app[CURRENCY] = currency
    app.router.add_get("/api/v1/stats", shop_stats)
