"""Keeps each admin's broadcast progress message current and sends the final report."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.utils.i18n import I18n

from handlers.broadcast import control_keyboard
from handlers.editing import unless_unchanged
from locales.rendering import Renderer
from scenarios.broadcasts import Progress, broadcast_report, report_due_at
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
        now = self.clock.now()
        days = self.rules.broadcasts.conversion_days
        for broadcast in await self.broadcasts.unreported():
            try:
                if broadcast.progress_final_at is None:
                    await self._update(broadcast)
                    continue
                due = report_due_at(broadcast, days=days)
                if due is not None and now >= due:
                    await self._report(broadcast)
            except Exception as error:  # one broken report must not stop the others
                if is_unavailable(error):
                    raise  # the scheduler waits for the database and runs the tick again
                log.exception("progress of broadcast %s could not be updated", broadcast.id)

    async def _update(self, broadcast: BroadcastRecord) -> None:
        progress = Progress.from_counts(
            await self.broadcasts.counts(broadcast_id=broadcast.id), total=broadcast.total
        )
        if broadcast.state == "running" and progress.finished:
            if not await self.broadcasts.finish(broadcast_id=broadcast.id, now=self.clock.now()):
                # An admin paused or cancelled it since this tick read it: their word stands,
                # and the counts are those of that moment.
                fresh = await self.broadcasts.get(broadcast_id=broadcast.id)
                if fresh is None:
                    return
                broadcast = fresh
                progress = Progress.from_counts(
                    await self.broadcasts.counts(broadcast_id=broadcast.id),
                    total=broadcast.total,
                )
            else:
                fresh = await self.broadcasts.get(broadcast_id=broadcast.id)
                broadcast = fresh or broadcast
        state = broadcast.state
        final = state in {"done", "cancelled"}
        locale = await self._admin_locale(broadcast.created_by)
        text = self.progress_text(broadcast, progress, locale=locale)
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
            await self.broadcasts.mark_progress_final(
                broadcast_id=broadcast.id, now=self.clock.now()
            )
            self._shown.pop(broadcast.id, None)

    def progress_text(self, broadcast: BroadcastRecord, progress: Progress, *, locale: str) -> str:
        delivery = self.rules.delivery
        rate = (
            delivery.paid_rate_per_second
            if delivery.allow_paid_broadcast
            else (delivery.rate_per_second)
        )
        return self.renderer.render(
            "broadcast_progress.html",
            locale=locale,
            broadcast_id=broadcast.id,
            state=broadcast.state,
            progress=progress,
            eta_minutes=max(1, round(progress.eta(rate_per_second=rate).total_seconds() / 60)),
            report_on=report_due_at(broadcast, days=self.rules.broadcasts.conversion_days),
        )

    async def _report(self, broadcast: BroadcastRecord) -> None:
        """The final report, once the conversion window after the last delivery has closed."""
        report = await broadcast_report(
            self.broadcasts,
            broadcast_id=broadcast.id,
            days=self.rules.broadcasts.conversion_days,
            clock=self.clock,
        )
        if report is None:
            return
        locale = await self._admin_locale(broadcast.created_by)
        await self.bot.send_message(
            broadcast.progress_chat_id or broadcast.created_by,
            self.renderer.render("broadcast_report.html", locale=locale, report=report),
        )
        await self.broadcasts.mark_reported(broadcast_id=broadcast.id, now=self.clock.now())

    async def _admin_locale(self, telegram_id: int) -> str:
        admin = await self.customers.by_telegram_id(telegram_id=telegram_id)
        return resolve_locale(
            chosen=admin.locale if admin else None,
            language_code=admin.language_code if admin else None,
            default=self.i18n.default_locale,
        )
