"""Entry point: read settings, build the application, run it (or migrate and exit)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import NoReturn

from aiogram.exceptions import TelegramUnauthorizedError
from aiogram.utils.token import TokenValidationError
from pydantic import ValidationError

from bot.app import build_application, run_polling
from bot.cli import (
    describe_settings,
    export_customer,
    fail,
    load_settings_and_rules,
    migrate_only,
)
from bot.importer import IMPORT_COLUMNS, run_import
from bot.logs import configure_logging


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python main.py",
        description="Telegram bot that wins a shop repeat sales.",
        epilog=describe_settings(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="start the bot with long polling (the default)")
    commands.add_parser("migrate", help="apply database migrations and exit")
    export = commands.add_parser(
        "export-customer",
        help="print a customer's data as JSON (what /my_data sends them)",
        description="REF: a card number, a phone, @username, a Telegram id or tg:<id>.",
    )
    export.add_argument("ref", metavar="REF")
    for kind, columns in IMPORT_COLUMNS.items():
        command = commands.add_parser(
            f"import-{kind}",
            help=f"import {kind} from a CSV file (safe to repeat: known ones are skipped)",
            description=f"Columns (header line, any order): {', '.join(columns)}.",
        )
        command.add_argument("file", type=Path, metavar="FILE.csv")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> NoReturn:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings, rules = load_settings_and_rules()
    configure_logging(settings.log_level)
    if args.command == "migrate":
        sys.exit(asyncio.run(migrate_only(settings)))
    if args.command == "export-customer":
        sys.exit(asyncio.run(export_customer(settings, rules, args.ref)))
    if args.command == "import-orders":
        sys.exit(asyncio.run(run_import("orders", args.file, settings=settings, rules=rules)))
    if args.command == "import-products":
        sys.exit(asyncio.run(run_import("products", args.file, settings=settings, rules=rules)))
    if settings.bot_token is None:
        fail(
            "BOT_TOKEN is not set: get a token from @BotFather and run BOT_TOKEN=... python main.py"
        )
    try:
        app = build_application(settings, rules)
    except TokenValidationError:
        fail("BOT_TOKEN is not a valid bot token (expected the form 123456789:AAE...)")
    except ValidationError as error:
        fail(f"invalid setting: {error.errors()[0]['msg']}")
    try:
        asyncio.run(run_polling(app))
    except TelegramUnauthorizedError:
        fail("Telegram rejected BOT_TOKEN (Unauthorized): check the token with @BotFather")
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
