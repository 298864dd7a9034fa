"""Keeps each admin's broadcast progress message current and sends the final report."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.utils.i18n import I18n

from handlers.broadcast import control_keyboard
from handlers.editing import unless_unchanged
from locales.rendering import Renderer
from scenarios.broadcasts import Progress, VariantResult
from scenarios.clock import Clock
from scenarios.customers import resolve_locale
from scenarios.rules import Rules
from storage.availability import is_unavailable
from storage.broadcasts import BroadcastRecord, SqlBroadcasts
from storage.customers import SqlCustomers

log = logging.getLogger(__name__)


class BroadcastProgress:
    def __init__(
        self,
        *,
        broadcasts: SqlBroadcasts,
        customers: SqlCustomers,
        bot: Bot,
        renderer: Renderer,
        i18n: I18n,
        rules: Rules,
        clock: Clock,
    ) -> None:
        self.broadcasts = broadcasts
        self.customers = customers
        self.bot = bot
        self.renderer = renderer
        self.i18n = i18n
        self.rules = rules
        self.clock = clock
        self._shown: dict[int, str] = {}  # what each progress message says now

    async def tick(self) -> None:
        for broadcast in await self.broadcasts.unreported():
            try:
                await self._update(broadcast)
            except Exception as error:  # one broken report must not stop the others
                if is_unavailable(error):
                    raise  # the scheduler waits for the database and runs the tick again
                log.exception("progress of broadcast %s could not be updated", broadcast.id)

    async def _update(self, broadcast: BroadcastRecord) -> None:
        progress = Progress.from_counts(
            await self.broadcasts.counts(broadcast_id=broadcast.id), total=broadcast.total
        )
        state = broadcast.state
        if state == "running" and progress.finished:
            await self.broadcasts.finish(broadcast_id=broadcast.id, now=self.clock.now())
            state = "done"
        locale = await self._admin_locale(broadcast.created_by)
        delivery = self.rules.delivery
        rate = (
            delivery.paid_rate_per_second
            if delivery.allow_paid_broadcast
            else (delivery.rate_per_second)
        )
        text = self.renderer.render(
            "broadcast_progress.html",
            locale=locale,
            broadcast_id=broadcast.id,
            state=state,
            progress=progress,
            eta_minutes=max(1, round(progress.eta(rate_per_second=rate).total_seconds() / 60)),
        )
        final = state in {"done", "cancelled"}
        if self._shown.get(broadcast.id) != text and broadcast.progress_message_id:
            with self.i18n.context(), self.i18n.use_locale(locale):
                markup = (
                    None if final else control_keyboard(broadcast.id, running=state == "running")
                )
            with unless_unchanged():
                await self.bot.edit_message_text(
                    text=text,
                    chat_id=broadcast.progress_chat_id,
                    message_id=broadcast.progress_message_id,
                    reply_markup=markup,
                )
            self._shown[broadcast.id] = text
        if final:
            await self._report(broadcast, locale)

    async def _report(self, broadcast: BroadcastRecord, locale: str) -> None:
        days = self.rules.broadcasts.conversion_days
        results = [
            VariantResult(*row)
            for row in await self.broadcasts.results(
                broadcast_id=broadcast.id, conversion_days=days
            )
        ]
        await self.bot.send_message(
            broadcast.progress_chat_id or broadcast.created_by,
            self.renderer.render(
                "broadcast_report.html",
                locale=locale,
                broadcast_id=broadcast.id,
                results=results,
                days=days,
            ),
        )
        await self.broadcasts.mark_reported(broadcast_id=broadcast.id, now=self.clock.now())
        self._shown.pop(broadcast.id, None)

    async def _admin_locale(self, telegram_id: int) -> str:
        admin = await self.customers.by_telegram_id(telegram_id=telegram_id)
        return resolve_locale(
            chosen=admin.locale if admin else None,
            language_code=admin.language_code if admin else None,
            default=self.i18n.default_locale,
        )
