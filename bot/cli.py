"""What main.py needs besides the app: settings errors as one line, the settings help, migrate."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError

from bot.settings import Settings
from scenarios.rules import Rules, RulesError, load_rules

log = logging.getLogger(__name__)

EXIT_BAD_SETTING = 2


def fail(message: str) -> NoReturn:
    """One clear line for the operator, no traceback, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_SETTING)


def load_settings_and_rules() -> tuple[Settings, Rules]:
    try:
        settings = Settings()
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        reason = first["msg"].removeprefix("Value error, ")
        fail(f"invalid setting {name}: {reason}")
    try:
        rules = load_rules(
            settings.config_file, required="config_file" in settings.model_fields_set
        )
    except RulesError as error:
        fail(str(error))
    return settings, rules


def unreachable(error: BaseException, *, database: str, telegram: str) -> str | None:
    """One line for an operator when the database or Telegram cannot be reached at start-up
    (no such database, connection refused, no route, unknown host); None for anything else,
    which keeps its traceback because it is a bug, not a setting."""
    from aiogram.exceptions import TelegramNetworkError
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(error, TelegramNetworkError):
        return f"cannot reach the Telegram Bot API at {telegram} (TELEGRAM_API_BASE): {error}"
    if isinstance(error, DBAPIError | OperationalError | InterfaceError):
        reason = str(error.orig) if error.orig is not None else str(error)
        return f"cannot reach the database {database} (DATABASE_URL): {reason}"
    if isinstance(error, OSError):  # a driver's own connect error, before SQLAlchemy wraps it
        return f"cannot reach the database {database} (DATABASE_URL): {error}"
    return None


def describe_settings() -> str:
    """The settings section of --help, generated from the Settings model."""
    lines = ["settings (environment variables, or a .env file in the working directory):"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "" if default in (None, (), "") else f" [default: {default}]"
        lines.append(f"  {name.upper():<18} {field.description}{shown}")
    lines.append("business rules live in config.toml (CONFIG_FILE); see config.example.toml")
    return "\n".join(lines)


async def migrate_only(settings: Settings) -> int:
    # Imported here: --help and a bad setting answer without loading SQLAlchemy and Alembic.
    from storage.database import Database
    from storage.migrate import migrate

    db = Database(settings.database_url)
    try:
        revision = await migrate(db)
    except Exception as error:
        line = unreachable(error, database=db.safe_url, telegram=settings.telegram_api_base)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_SETTING
    finally:
        await db.close()
    log.info("database migrated to schema %s", revision)
    return 0


async def export_customer(settings: Settings, rules: Rules, ref: str) -> int:
    """``export-customer REF``: the customer's data as JSON on stdout, labelled in their
    language (what /my_data sends them). 1 when nobody matches, 2 for a malformed REF."""
    # Imported here, as in migrate_only: --help stays light.
    from bot.services import build_services
    from locales.export import export_json
    from scenarios.clock import SystemClock
    from scenarios.customers import parse_customer_ref, region_for, resolve_locale
    from scenarios.problems import InputProblem
    from storage.database import Database
    from storage.migrate import migrate

    try:
        parsed = parse_customer_ref(ref, region=region_for(rules.shop.currency))
    except InputProblem as problem:
        print(f"error: {problem.message}", file=sys.stderr)
        return EXIT_BAD_SETTING
    db = Database(settings.database_url)
    services = build_services(settings, rules, db, SystemClock())
    try:
        await migrate(db)
        match = await services.order_store.match_customer(
            telegram_id=parsed.telegram_id,
            phone=parsed.phone,
            customer_id=parsed.customer_id,
            username=parsed.username,
            card=parsed.card,
        )
        if match is None:
            print(f"error: no customer matches {ref}", file=sys.stderr)
            return 1
        data = await services.personal_data.collect(customer_id=match.id)
    finally:
        await db.close()
    profile = data["profile"]
    locale = resolve_locale(
        chosen=profile["locale"],
        language_code=profile["language_code"],
        default=settings.default_locale,
    )
    print(export_json(data, i18n=services.i18n, locale=locale))
    return 0


async def export_data(settings: Settings, rules: Rules, directory: Path) -> int:
    """``export DIR``: customers.csv, orders.csv and ledger.csv (what /export sends) in DIR."""
    from bot.services import build_services
    from locales.csv_export import EXPORT_KINDS, csv_parts
    from scenarios.clock import SystemClock
    from storage.database import Database
    from storage.migrate import migrate

    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    db = Database(settings.database_url)
    export = build_services(settings, rules, db, SystemClock()).data_export
    try:
        await migrate(db)
        for kind in EXPORT_KINDS:
            rows = 0
            # One file per kind: a disk takes what a Telegram upload does not.
            async for part in csv_parts(
                kind, export.rows(kind), currency=rules.shop.currency, max_bytes=2**62
            ):
                await asyncio.to_thread((directory / part.filename).write_bytes, part.data)
                rows += part.rows
            print(f"{directory / f'{kind}.csv'}: {rows} rows")
    finally:
        await db.close()
    return 0
