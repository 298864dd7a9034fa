"""A customer's chat comes and goes: Telegram says they blocked us, or they are back."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

from scenarios.clock import Clock

log = logging.getLogger(__name__)


class Reachability(Protocol):
    async def mark_blocked(self, *, telegram_id: int, now: datetime) -> int | None: ...

    async def mark_reachable(self, *, telegram_id: int) -> bool: ...


class QueueDropper(Protocol):
    async def drop_queued_for_chat(self, *, chat_id: int, reason: str, now: datetime) -> int: ...


async def chat_blocked(
    customers: Reachability, outbox: QueueDropper, *, telegram_id: int, clock: Clock
) -> int:
    """They blocked the bot: stop writing and drop what was queued for them; returns dropped."""
    now = clock.now()
    await customers.mark_blocked(telegram_id=telegram_id, now=now)
    dropped = await outbox.drop_queued_for_chat(
        chat_id=telegram_id, reason="recipient blocked the bot", now=now
    )
    # A Telegram id is personal data: INFO says what happened, DEBUG says to whom.
    log.info("a user blocked the bot; %d queued message(s) dropped", dropped)
    log.debug("user %s blocked the bot", telegram_id)
    return dropped


async def chat_returned(customers: Reachability, *, telegram_id: int) -> bool:
    """They unblocked the bot or wrote to it: messages may go to them again."""
    returned = await customers.mark_reachable(telegram_id=telegram_id)
    if returned:
        log.info("a user who had blocked the bot is reachable again")
        log.debug("user %s is reachable again", telegram_id)
    return returned
