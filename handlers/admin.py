"""Admin commands in a private chat: /status for now; bonus and broadcast commands join here."""

from __future__ import annotations

from datetime import datetime

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from handlers.filters import IsAdmin
from handlers.flags import READS_ONLY
from handlers.webapp import till_keyboard
from locales.rendering import Renderer
from scenarios.clock import Clock
from scenarios.status import collect_status
from storage.customers import SqlCustomers
from storage.database import Database
from storage.inbox import SqlInbox
from storage.migrate import current_revision
from storage.outbox import SqlOutbox


def create_router() -> Router:
    router = Router(name="admin")
    router.message.filter(F.chat.type == "private")
    router.message.register(show_status, Command("status"), IsAdmin(), flags=READS_ONLY)
    router.message.register(
        refuse_non_admin, Command("status", "broadcast", "broadcasts"), ~IsAdmin(), flags=READS_ONLY
    )
    return router


async def show_status(
    message: Message,
    renderer: Renderer,
    locale: str,
    customers: SqlCustomers,
    outbox: SqlOutbox,
    db: Database,
    version: str,
    started_at: datetime,
    clock: Clock,
    webapp_url: str | None = None,
    webhook_inbox: SqlInbox | None = None,
) -> None:
    status = await collect_status(
        customers=customers,
        outbox=outbox,
        version=version,
        backend=db.backend,
        schema_revision=await current_revision(db),
        started_at=started_at,
        clock=clock,
        inbox=webhook_inbox,
    )
    await message.answer(
        renderer.render("status.html", locale=locale, status=status),
        reply_markup=till_keyboard(webapp_url),
    )


async def refuse_non_admin(message: Message) -> None:
    await message.answer(_("This command is for the shop's admins."))
