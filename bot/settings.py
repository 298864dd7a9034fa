"""Deployment settings and secrets from the environment (and an optional .env file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from storage.urls import DEFAULT_DATABASE_URL, normalize_database_url

TELEGRAM_API_BASE = "https://api.telegram.org"


class Settings(BaseSettings):
    """Every field is read from the environment variable of the same name in upper case."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    bot_token: SecretStr | None = Field(
        default=None, description="the bot's token from @BotFather (required to run)"
    )
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="sqlite:///path.sqlite3 (default ./data/bot.sqlite3) or postgresql://...",
    )
    redis_url: str | None = Field(
        default=None, description="redis://host:6379/0 keeps FSM state in Redis instead"
    )
    admin_ids: Annotated[tuple[int, ...], NoDecode] = Field(
        default=(), description="comma-separated Telegram user ids of the shop's admins"
    )
    staff_chat_id: int | None = Field(
        default=None, description="the staff group chat's id (negative number)"
    )
    telegram_api_base: str = Field(
        default=TELEGRAM_API_BASE,
        description="Bot API server: Telegram's, a self-hosted one or a test fake",
    )
    api_token: SecretStr | None = Field(
        default=None, description="bearer token of the shop-facing HTTP API (unset: API off)"
    )
    fraud_hash_secret: SecretStr | None = Field(
        default=None,
        description=(
            "key of the fraud-check hashes of erased customers' phones and Telegram ids "
            "(unset: a random key kept in the database)"
        ),
    )
    webapp_url: str | None = Field(
        default=None,
        description=(
            "public https:// address of the Mini App (a proxy to API_HOST:API_PORT/app/); "
            "unset: no Mini App"
        ),
    )
    cashier_ids: Annotated[tuple[int, ...], NoDecode] = Field(
        default=(), description="comma-separated Telegram user ids who may use the Mini App's till"
    )
    shopify_webhook_secret: SecretStr | None = Field(
        default=None,
        description="Shopify's webhook signing secret (unset: POST /webhooks/shopify is off)",
    )
    woocommerce_webhook_secret: SecretStr | None = Field(
        default=None,
        description="the WooCommerce webhook's secret (unset: POST /webhooks/woocommerce is off)",
    )
    tilda_webhook_key: SecretStr | None = Field(
        default=None,
        description="long random key in the Tilda webhook's URL (unset: /webhooks/tilda is off)",
    )
    api_host: str = Field(default="127.0.0.1", description="address the HTTP API listens on")
    api_port: int = Field(default=8080, ge=1, le=65535, description="port of the HTTP API")
    timezone: str = Field(default="UTC", description="the shop's IANA time zone, e.g. Europe/Kyiv")
    default_locale: Literal["ru", "uk", "en"] = Field(
        default="en", description="language for users whose Telegram language is not ru/uk/en"
    )
    config_file: Path = Field(
        default=Path("config.toml"), description="business rules (see config.example.toml)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="DEBUG, INFO, WARNING or ERROR"
    )

    @field_validator("admin_ids", "cashier_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [part.strip() for part in value.replace(";", ",").split(",")]
            return tuple(part for part in parts if part)
        if isinstance(value, int):
            return (value,)
        return value

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (try Europe/Moscow)") from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("telegram_api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("webapp_url")
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        # Telegram opens Mini Apps over HTTPS only.
        if not value.startswith("https://"):
            raise ValueError("expected an https:// URL (Telegram opens Mini Apps over HTTPS)")
        return value.strip()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.admin_ids
