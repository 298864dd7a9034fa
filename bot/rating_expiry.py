"""A periodic sweep: rating requests nobody answered in time lose their stars and say so."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramRetryAfter
from aiogram.utils.i18n import I18n

from handlers.rating import request_text
from locales.rendering import Renderer
from scenarios.clock import Clock
from scenarios.customers import resolve_locale
from storage.outbox import SqlOutbox
from storage.ratings import ExpiredRequest, SqlRatings

log = logging.getLogger(__name__)

# Edits per tick: a handful a second at most, well inside the bot-wide limit.
BATCH = 20


class RatingExpiry:
    def __init__(
        self,
        *,
        ratings: SqlRatings,
        outbox: SqlOutbox,
        bot: Bot,
        renderer: Renderer,
        i18n: I18n,
        clock: Clock,
    ) -> None:
        self.ratings = ratings
        self.outbox = outbox
        self.bot = bot
        self.renderer = renderer
        self.i18n = i18n
        self.clock = clock

    async def tick(self) -> int:
        """Close up to BATCH expired requests; returns how many were closed."""
        now = self.clock.now()
        due = await self.ratings.expired_open(now=now, limit=BATCH)
        closed: list[int] = []
        try:
            for request in due:
                # Still queued (held back by a complaint, say): too late to ask now.
                await self.outbox.cancel(
                    dedupe_key=request.dedupe_key, reason="rating request expired", now=now
                )
                if request.chat_id is not None and request.message_id is not None:
                    await self._edit(request)
                closed.append(request.rating_id)
        except TelegramRetryAfter as error:
            log.info("rating expiry waits %s s for Telegram", error.retry_after)
        finally:
            await self.ratings.close(rating_ids=closed, now=now)
        return len(closed)

    async def _edit(self, request: ExpiredRequest) -> None:
        summary = await self.ratings.order_summary(order_ref=request.order_ref)
        if summary is None:
            return
        locale = resolve_locale(
            chosen=request.locale,
            language_code=request.language_code,
            default=self.i18n.default_locale,
        )
        text = request_text(self.renderer, locale, summary, None, expired=True)
        try:
            await self.bot.edit_message_text(
                text=text, chat_id=request.chat_id, message_id=request.message_id, reply_markup=None
            )
        except TelegramRetryAfter:
            raise
        except TelegramAPIError as error:
            # Deleted by the user, too old to edit, chat blocked: nothing left to tidy up.
            log.info("expired rating request %s not edited: %s", request.order_ref, error.message)
