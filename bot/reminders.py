"""The reminder sweep as the scheduler runs it: messages composed in each customer's language."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiogram.utils.i18n import I18n

from handlers.reminders import reminder_content
from scenarios.clock import Clock
from scenarios.customers import resolve_locale
from scenarios.orders import UnitOfWork
from scenarios.reminders import refresh_learned_intervals, sweep
from scenarios.rules import Rules
from storage.outbox import SqlOutbox
from storage.reminders import DueReminder, SqlReminders

log = logging.getLogger(__name__)


class ReminderComposer:
    """Buttons are fixed text in the outbox, so they are written in the customer's language
    here; the message text is a template the sender renders in that language."""

    def __init__(self, i18n: I18n, *, snooze_days: Sequence[int]) -> None:
        self._i18n = i18n
        self._snooze_days = tuple(snooze_days)

    def compose(self, items: Sequence[DueReminder]) -> dict[str, Any]:
        first = items[0]
        locale = resolve_locale(
            chosen=first.locale,
            language_code=first.language_code,
            default=self._i18n.default_locale,
        )
        with self._i18n.context(), self._i18n.use_locale(locale):
            return reminder_content(items, snooze_days=self._snooze_days)


class ReminderSweeper:
    """One tick: due reminders into the outbox, in bounded batches until none is due."""

    def __init__(
        self,
        *,
        uow: UnitOfWork,
        store: SqlReminders,
        outbox: SqlOutbox,
        composer: ReminderComposer,
        rules: Rules,
        clock: Clock,
        shop_zone: ZoneInfo,
    ) -> None:
        self._uow = uow
        self._store = store
        self._outbox = outbox
        self._composer = composer
        self._rules = rules
        self._clock = clock
        self._zone = shop_zone

    async def tick(self, *, max_rounds: int = 50) -> int:
        """Rounds of ``batch_size`` until nothing is due (or ``max_rounds``, so one tick never
        holds the loop for long); returns the due reminders handled."""
        total = 0
        for _round in range(max_rounds):
            handled = await self.sweep_once()
            total += handled
            if handled < self._rules.reminders.batch_size:
                break
        if total:
            log.info("reminders: %d due reminder(s) handled", total)
        return total

    async def sweep_once(self) -> int:
        return await sweep(
            uow=self._uow,
            queue=self._store,
            outbox=self._outbox,
            composer=self._composer,
            rules=self._rules.reminders,
            quiet=self._rules.quiet_hours,
            shop_zone=self._zone,
            clock=self._clock,
        )

    async def learn(self) -> None:
        rules = self._rules.reminders
        learned = await refresh_learned_intervals(
            self._store,
            min_purchases=rules.min_purchases,
            clock=self._clock,
            same_purchase=timedelta(days=rules.same_purchase_days),
        )
        if learned:
            log.info("reminders: learned intervals of %d product(s)", learned)
