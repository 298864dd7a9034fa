"""Pending updates shared by getUpdates and webhook delivery, with long-poll wakeups."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .models.updates import update_type

# Telegram's default when allowed_updates is not specified or empty.
_EXCLUDED_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


@dataclass(frozen=True, slots=True)
class PendingUpdate:
    update_id: int
    kind: str
    payload: dict[str, Any]


class UpdateQueue:
    """FIFO of unconfirmed updates; a getUpdates offset confirms everything before it."""

    def __init__(self) -> None:
        self._items: deque[PendingUpdate] = deque()
        self._waiters: set[asyncio.Future[None]] = set()
        self._allowed: frozenset[str] | None = None
        self.poll_generation = 0
        self.closing = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def allowed_updates(self) -> list[str] | None:
        return sorted(self._allowed) if self._allowed is not None else None

    def set_allowed(self, allowed: Iterable[str] | None) -> None:
        """Telegram remembers allowed_updates; an empty list restores the default set."""
        if allowed is None:
            return
        chosen = frozenset(allowed)
        self._allowed = chosen or None

    def is_allowed(self, kind: str) -> bool:
        if self._allowed is None:
            return kind not in _EXCLUDED_BY_DEFAULT
        return kind in self._allowed

    def push(self, update: dict[str, Any]) -> bool:
        """Queues an update unless its type is filtered out; False if it was dropped."""
        kind = update_type(update)
        if not self.is_allowed(kind):
            return False
        self._items.append(PendingUpdate(update["update_id"], kind, update))
        if self._waiters:
            self.wake_all()
        return True

    def confirm(self, offset: int) -> None:
        """Positive offsets confirm older updates; negative ones keep only the last -offset."""
        items = self._items
        if offset > 0:
            while items and items[0].update_id < offset:
                items.popleft()
        elif offset < 0:
            while len(items) > -offset:
                items.popleft()

    def peek(self, limit: int) -> list[dict[str, Any]]:
        """Up to limit updates, oldest first, skipping types filtered out after queuing."""
        result: list[dict[str, Any]] = []
        for item in self._items:
            if self.is_allowed(item.kind):
                result.append(item.payload)
                if len(result) >= limit:
                    break
        return result

    def popleft(self) -> PendingUpdate | None:
        return self._items.popleft() if self._items else None

    def requeue(self, items: Iterable[PendingUpdate]) -> None:
        """Puts undelivered webhook updates back at the front, preserving their order."""
        self._items.extendleft(reversed(list(items)))

    def clear(self) -> None:
        self._items.clear()

    async def wait(self, timeout: float) -> None:
        """Sleeps until something is pushed, wake_all() is called or the timeout passes."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(future)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, timeout)
        finally:
            self._waiters.discard(future)

    def wake_all(self) -> None:
        for future in self._waiters:
            if not future.done():
                future.set_result(None)
