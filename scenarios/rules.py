"""Business rules from config.toml: what a shop tunes without touching code or secrets."""

from __future__ import annotations

import tomllib
from datetime import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError


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
    processes: int = Field(default=1, ge=1)
    marketing_per_week: int = Field(default=2, ge=0)
    marketing_per_day: int = Field(default=1, ge=0)
    service_per_day: int = Field(default=1, ge=0)


class Conversations(_Section):
    wizard_idle_days: int = Field(default=7, ge=1)


class Rules(_Section):
    shop: Shop = Shop()
    scheduler: Scheduler = Scheduler()
    quiet_hours: QuietHours = QuietHours()
    delivery: Delivery = Delivery()
    conversations: Conversations = Conversations()


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
        raise RulesError(f"{path}: {where}: {first['msg']}") from None
