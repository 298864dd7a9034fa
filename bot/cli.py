"""What main.py needs besides the app: settings errors as one line, the settings help, migrate."""

from __future__ import annotations

import logging
import sys
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
    except OSError as error:
        print(f"error: cannot reach the database: {error}", file=sys.stderr)
        return 1
    finally:
        await db.close()
    log.info("database migrated to schema %s", revision)
    return 0
