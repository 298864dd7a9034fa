"""/export for admins: customers, order lines and the ledger as CSV documents, in parts."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, Message
from aiogram.utils.i18n import gettext as _

from handlers.filters import IsAdmin
from handlers.flags import READS_ONLY
from locales.csv_export import EXPORT_KINDS, MAX_PART_BYTES, CsvPart, csv_parts
from locales.formatting import format_number
from scenarios.rules import Rules
from storage.export import SqlExport


def create_router(*, max_part_bytes: int = MAX_PART_BYTES) -> Router:
    router = Router(name="export")
    router.message.filter(F.chat.type == "private")

    async def export(message: Message, data_export: SqlExport, rules: Rules, locale: str) -> None:
        await message.answer(_("Preparing the export: three CSV files (UTF-8, for Excel)…"))
        for kind in EXPORT_KINDS:
            async for part in csv_parts(
                kind,
                data_export.rows(kind),
                currency=rules.shop.currency,
                max_bytes=max_part_bytes,
            ):
                await message.answer_document(
                    BufferedInputFile(part.data, filename=part.filename),
                    caption=caption(kind, part, locale),
                )

    router.message.register(export, Command("export"), IsAdmin(), flags=READS_ONLY)
    router.message.register(refuse, Command("export"), ~IsAdmin(), flags=READS_ONLY)
    return router


def caption(kind: str, part: CsvPart, locale: str) -> str:
    title = {
        "customers": _("Customers"),
        "orders": _("Orders, one row per item"),
        "ledger": _("Points ledger"),
    }[kind]
    shown = format_number(part.rows, locale)
    rows = _("%(count)s row", "%(count)s rows", part.rows) % {"count": shown}
    if part.number == 1 and part.last:
        return f"{title}: {rows}"
    return _("%(title)s, part %(number)s: %(rows)s") % {
        "title": title,
        "number": part.number,
        "rows": rows,
    }


async def refuse(message: Message) -> None:
    await message.answer(_("This command is for the shop's admins."))
