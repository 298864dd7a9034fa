"""Business rules from config.toml: what a shop tunes without touching code or secrets."""

from __future__ import annotations

import itertools
import tomllib
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, model_validator


class RulesError(ValueError):
    """config.toml cannot be read or breaks a rule; the message names the file and key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Shop(_Section):
    name: str = "Our shop"
    currency: str = Field(default="RUB", pattern=r"^[A-Z]{3}$")
    terms_url: HttpUrl | None = None


class Scheduler(_Section):
    tick_seconds: float = Field(default=5.0, gt=0, le=3600)


class QuietHours(_Section):
    start: time = time(21, 0)
    end: time = time(9, 0)


class Delivery(_Section):
    rate_per_second: float = Field(default=25.0, gt=0, le=1000)
    allow_paid_broadcast: bool = False
    paid_rate_per_second: float = Field(default=1000.0, gt=0, le=1000)
    private_interval_seconds: float = Field(default=1.0, ge=0)
    group_per_minute: int = Field(default=20, ge=1)
    concurrency: int = Field(default=8, ge=1, le=256)
    batch_size: int = Field(default=200, ge=1, le=10_000)
    max_attempts: int = Field(default=5, ge=1)
    backoff_seconds: float = Field(default=5.0, gt=0)
    lease_seconds: float = Field(default=120.0, gt=0)
    idle_poll_seconds: float = Field(default=1.0, gt=0)
    # A send unanswered this long counts as possibly delivered ("unknown"), never resent.
    request_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    processes: int = Field(default=1, ge=1)
    marketing_per_week: int = Field(default=2, ge=0)
    marketing_per_day: int = Field(default=1, ge=0)
    service_per_day: int = Field(default=1, ge=0)


class Segments(_Section):
    # A customer with one order is "sleeping" after this many days without another; one with
    # several orders already after twice their own usual interval.
    sleeping_days: int = Field(default=90, ge=1)
    lost_days: int = Field(default=365, ge=1)
    # "New": the first order came within this many days (whenever the member joined).
    new_days: int = Field(default=30, ge=1)


class Broadcasts(_Section):
    # Orders within this many days after a broadcast message count as its conversions.
    conversion_days: int = Field(default=14, ge=1)
    # The admin's progress message is edited at most this often (seconds).
    progress_every_seconds: float = Field(default=5.0, ge=1)


class Orders(_Section):
    # Orders older than this when they reach the bot (imported history, late reports) get no
    # rating request and no replenishment reminder: the moment for those has passed.
    follow_up_horizon_days: int = Field(default=30, ge=0)
    # The largest order total (major units) the API and the import accept: a typo of a few
    # extra digits must not accrue billions of points.
    max_total: Decimal = Field(default=Decimal("1000000"), gt=0, le=Decimal("10000000000"))
    # How far in the future an order's created_at may lie: the shop's clock may run ahead.
    clock_skew_minutes: int = Field(default=5, ge=0, le=24 * 60)


class Reminders(_Section):
    # How often (seconds) the sweep looks for due reminders, and how many it claims per round.
    tick_seconds: float = Field(default=60.0, gt=0, le=3600)
    batch_size: int = Field(default=200, ge=1, le=10_000)
    # The reminder comes this many days before the product runs out (a product may override it).
    lead_days: int = Field(default=3, ge=0, le=365)
    # Products due within this many days of each other go into one message.
    group_window_days: int = Field(default=3, ge=0, le=60)
    # An order of the product within this many days after the reminder counts as its conversion.
    conversion_days: int = Field(default=14, ge=1, le=365)
    # Orders of the same product within this many days of each other are one purchase of the
    # summed quantity (a split basket, a bag added later): they teach no interval of their own.
    same_purchase_days: int = Field(default=2, ge=0, le=30)
    # A product without a catalog figure learns one from customers with this many purchases.
    min_purchases: int = Field(default=3, ge=2, le=100)
    # "Remind me in N days" buttons.
    snooze_days: tuple[int, ...] = Field(default=(3, 7), min_length=1, max_length=3)

    @model_validator(mode="after")
    def _positive_snoozes(self) -> Reminders:
        if any(not 1 <= days <= 90 for days in self.snooze_days):
            raise ValueError("snooze_days are between 1 and 90")
        return self


class Ratings(_Section):
    """The rating after every order and the escalation of negative answers to staff."""

    # The status that starts the request: "delivered" (default) or "paid" for shops that
    # never report delivery.
    rate_on: Literal["delivered", "paid"] = "delivered"
    rating_delay_minutes: int = Field(default=60, ge=0, le=60 * 24 * 30)
    rating_ttl_days: int = Field(default=7, ge=1, le=365)
    # Scores up to this one are negative: the customer is asked what went wrong, staff alerted.
    negative_threshold: int = Field(default=3, ge=1, le=4)
    review_url: HttpUrl | None = None
    # Points staff may grant with the alert's Compensate button.
    compensation_points: tuple[int, ...] = Field(default=(100, 300, 500), min_length=1)

    @model_validator(mode="after")
    def _positive_presets(self) -> Ratings:
        if any(points <= 0 for points in self.compensation_points):
            raise ValueError("compensation_points must be positive")
        if len(set(self.compensation_points)) != len(self.compensation_points):
            raise ValueError("compensation_points must not repeat")
        return self


class Staff(_Section):
    """The staff chat (STAFF_CHAT_ID): one team, one language, whatever each customer speaks."""

    # How long the bot trusts Telegram's word that someone is (or is not) in the staff chat
    # before asking again when they press an alert button; 0 asks on every press.
    membership_cache_seconds: float = Field(default=60, ge=0, le=3600)
    # Alerts, their buttons and the bot's answers in the staff chat; unset: DEFAULT_LOCALE.
    locale: Literal["ru", "uk", "en"] | None = None

    def locale_or(self, default: str) -> str:
        return self.locale or default


class Conversations(_Section):
    wizard_idle_days: int = Field(default=7, ge=1)


class TierRule(_Section):
    """One rung of the tier ladder: from this paid spend (major units) on, this cashback."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    from_spend: int = Field(ge=0)
    cashback_percent: Decimal = Field(ge=0, le=100, decimal_places=2)


DEFAULT_TIERS = (
    TierRule(name="bronze", from_spend=0, cashback_percent=Decimal(5)),
    TierRule(name="silver", from_spend=10_000, cashback_percent=Decimal(7)),
    TierRule(name="gold", from_spend=30_000, cashback_percent=Decimal(10)),
    TierRule(name="platinum", from_spend=60_000, cashback_percent=Decimal(15)),
    TierRule(name="diamond", from_spend=100_000, cashback_percent=Decimal(20)),
)


class Bonus(_Section):
    """The points program: what a point is worth, how long points wait and live, the tiers."""

    point_value: int = Field(default=100, ge=1)
    hold_days: int = Field(default=14, ge=0)
    points_ttl_days: int = Field(default=365, ge=1)
    welcome_ttl_days: int | None = Field(default=None, ge=1)
    compensation_ttl_days: int | None = Field(default=None, ge=1)
    expiry_warning_days: int = Field(default=14, ge=0)
    max_redeem_share: Decimal = Field(default=Decimal(30), ge=0, le=100, decimal_places=2)
    tier_window: Literal["lifetime", "12 months"] = "lifetime"
    # Spending points needs the one-time code the member gets in the bot (/code), sent by the
    # shop's system as redeem_code; a phone number alone only earns. Off only where the shop's
    # own system signs the customer in (an online account).
    redeem_requires_code: bool = True
    redeem_code_minutes: int = Field(default=10, ge=1, le=60)
    # Six digits are a million codes: this many wrong ones tried for a member lock their code
    # (a new one from /code works), so nobody spends a member's points by guessing.
    redeem_code_wrong_tries: int = Field(default=5, ge=1, le=50)
    tiers: tuple[TierRule, ...] = Field(default=DEFAULT_TIERS, min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Bonus:
        if self.points_ttl_days <= self.hold_days:
            raise ValueError("points_ttl_days must be longer than hold_days")
        if self.tiers[0].from_spend != 0:
            raise ValueError("the first tier must start at from_spend = 0")
        thresholds = [tier.from_spend for tier in self.tiers]
        if any(low >= high for low, high in itertools.pairwise(thresholds)):
            raise ValueError("tiers must be listed by strictly increasing from_spend")
        if len({tier.name for tier in self.tiers}) != len(self.tiers):
            raise ValueError("tier names must be unique")
        return self


class Gifts(_Section):
    """Admins' holiday gifts (/gift): a higher tier gets a bigger share of the same gift."""

    # Tier name -> multiplier of the gift's amount (rounded down); unlisted tiers get 1.
    tier_multipliers: dict[str, Decimal] = Field(
        default_factory=lambda: {
            "silver": Decimal("1.5"),
            "gold": Decimal(2),
            "platinum": Decimal("2.5"),
            "diamond": Decimal(3),
        }
    )
    # Members granted per scheduler tick, so a gift to 100 000 members never blocks the bot.
    batch_size: int = Field(default=500, ge=1, le=10_000)

    @model_validator(mode="after")
    def _sensible(self) -> Gifts:
        for name, multiplier in self.tier_multipliers.items():
            if not 0 < multiplier <= 100:
                raise ValueError(f"tier_multipliers.{name} must be more than 0 and at most 100")
        return self


class Signup(_Section):
    # Points a new member gets on joining; 0: none.
    welcome_points: int = Field(default=100, ge=0)
    # Orders the shop reported for a phone before it joined become the member's; those placed
    # within this many days before joining earn their points (from their own date); 0: none.
    claim_orders_days: int = Field(default=30, ge=0, le=36_500)


class Referral(_Section):
    # Both sides are rewarded when the friend's first paid order (at least referral_min_order,
    # whole units of the shop's currency) leaves the return window (bonus.hold_days).
    friend_points: int = Field(default=200, ge=0)
    referrer_points: int = Field(default=200, ge=0)
    referral_min_order: int = Field(default=1000, ge=0)
    # Rewards per referrer per calendar month (shop's time zone); more are refused.
    referral_monthly_cap: int = Field(default=10, ge=0)
    # How often the job pays the rewards whose return window has ended (the /invite text says so).
    check_every_minutes: int = Field(default=10, ge=1, le=1440)


DEFAULT_BIRTHDAY_POINTS = {
    "bronze": 100,
    "silver": 200,
    "gold": 300,
    "platinum": 500,
    "diamond": 1000,
}


class Birthday(_Section):
    # The gift comes this many days before the birthday (0: on the day), once a year.
    birthday_days_before: int = Field(default=0, ge=0, le=30)
    # Points per tier name; a tier not listed gets no gift.
    points: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_BIRTHDAY_POINTS))

    @model_validator(mode="after")
    def _non_negative(self) -> Birthday:
        if any(value < 0 for value in self.points.values()):
            raise ValueError("birthday points cannot be negative")
        return self


class Rules(_Section):
    shop: Shop = Shop()
    scheduler: Scheduler = Scheduler()
    quiet_hours: QuietHours = QuietHours()
    delivery: Delivery = Delivery()
    conversations: Conversations = Conversations()
    segments: Segments = Segments()
    broadcasts: Broadcasts = Broadcasts()
    bonus: Bonus = Bonus()
    orders: Orders = Orders()
    gifts: Gifts = Gifts()
    signup: Signup = Signup()
    referral: Referral = Referral()
    birthday: Birthday = Birthday()
    reminders: Reminders = Reminders()
    ratings: Ratings = Ratings()
    staff: Staff = Staff()

    @model_validator(mode="after")
    def _known_tiers(self) -> Rules:
        """Tier names in birthday.points and gifts.tier_multipliers must be on the ladder: a
        misspelt one would quietly leave that tier without its gift. Only tables the config
        sets are checked; the defaults name the default ladder."""
        ladder = [tier.name for tier in self.bonus.tiers]
        tables = (
            ("birthday.points", "points" in self.birthday.model_fields_set, self.birthday.points),
            (
                "gifts.tier_multipliers",
                "tier_multipliers" in self.gifts.model_fields_set,
                self.gifts.tier_multipliers,
            ),
        )
        for key, configured, names in tables:
            unknown = [name for name in names if name not in ladder] if configured else []
            if unknown:
                raise ValueError(
                    f"{key}: unknown tier {unknown[0]!r} (bonus.tiers are {', '.join(ladder)})"
                )
        return self


def load_rules(path: Path, *, required: bool) -> Rules:
    """Rules from ``path``; a missing optional file means every default."""
    if not path.exists():
        if required:
            raise RulesError(f"{path}: file not found (copy config.example.toml to start)")
        return Rules()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise RulesError(f"{path}: not valid TOML: {error}") from None
    try:
        return Rules.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        if not where:  # a check across sections names its keys itself
            raise RulesError(f"{path}: {first['msg'].removeprefix('Value error, ')}") from None
        raise RulesError(f"{path}: {where}: {first['msg']}") from None
