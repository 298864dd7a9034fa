"""Entry point: read settings, build the application, run it (or migrate and exit)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Literal, NoReturn

from bot.cli import (
    describe_settings,
    export_customer,
    export_data,
    fail,
    load_settings_and_rules,
    migrate_only,
    unreachable,
)
from bot.logs import configure_logging

# The bot itself (aiogram, SQLAlchemy, the handlers) is imported only by the commands that run
# it, so --help and a setting's error answer at once.
IMPORT_KINDS: tuple[Literal["orders", "products"], ...] = ("orders", "products")


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
    hooks = commands.add_parser(
        "webhooks",
        help="list store webhook deliveries that failed (--failed), or retry them (--retry)",
    )
    hooks.add_argument("--failed", action="store_true", help="list them (the default)")
    hooks.add_argument(
        "--retry", nargs="*", type=int, metavar="ID", help="retry these (none given: all failed)"
    )
    dump = commands.add_parser(
        "export", help="write customers.csv, orders.csv and ledger.csv (UTF-8 with BOM) to DIR"
    )
    dump.add_argument("directory", type=Path, metavar="DIR")
    for kind in IMPORT_KINDS:
        description = None
        if f"import-{kind}" in argv:  # its own --help lists the columns
            from bot.importer import IMPORT_COLUMNS

            description = f"Columns (header line, any order): {', '.join(IMPORT_COLUMNS[kind])}."
        command = commands.add_parser(
            f"import-{kind}",
            help=f"import {kind} from a CSV file (safe to repeat: known ones are skipped)",
            description=description,
        )
        command.add_argument("file", type=Path, metavar="FILE.csv")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> NoReturn:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings, rules = load_settings_and_rules()
    configure_logging(settings.log_level)
    if args.command == "migrate":
        sys.exit(asyncio.run(migrate_only(settings)))
    if args.command == "webhooks":
        from bot.webhooks.cli import webhooks_command

        sys.exit(asyncio.run(webhooks_command(settings, retry=args.retry)))
    if args.command == "export":
        sys.exit(asyncio.run(export_data(settings, rules, args.directory)))
    if args.command == "export-customer":
        sys.exit(asyncio.run(export_customer(settings, rules, args.ref)))
    if args.command in ("import-orders", "import-products"):
        from bot.importer import run_import

        kind: Literal["orders", "products"] = (
            "orders" if args.command == "import-orders" else "products"
        )
        try:
            sys.exit(asyncio.run(run_import(kind, args.file, settings=settings, rules=rules)))
        except Exception as error:
            from sqlalchemy import make_url

            shown = make_url(settings.database_url).render_as_string(hide_password=True)
            line = unreachable(error, database=shown, telegram=settings.telegram_api_base)
            if line is None:
                raise
            fail(line)
    if settings.bot_token is None:
        fail(
            "BOT_TOKEN is not set: get a token from @BotFather and run BOT_TOKEN=... python main.py"
        )
    from aiogram.exceptions import TelegramUnauthorizedError
    from aiogram.utils.token import TokenValidationError
    from pydantic import ValidationError

    from bot.app import build_application, run_polling

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
    except Exception as error:
        line = unreachable(error, database=app.db.safe_url, telegram=settings.telegram_api_base)
        if line is None:
            raise
        fail(line)
    sys.exit(0)


if __name__ == "__main__":
    main()
