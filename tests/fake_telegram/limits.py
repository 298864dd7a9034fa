"""Telegram's flood limits for sending methods: counted as violations or enforced with 429."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .errors import too_many_requests

SENDING_METHODS = frozenset(
    {"sendMessage", "sendPhoto", "sendDocument", "copyMessage", "forwardMessage"}
)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Limits from Telegram's bot FAQ; mode="count" only records, "reject" answers 429."""

    global_per_second: int = 30
    private_min_interval: float = 1.0
    group_per_minute: int = 20
    group_window: float = 60.0  # seconds; tests shorten Telegram's minute to stay fast
    paid_global_per_second: int = 1000
    mode: Literal["count", "reject"] = "count"


def new_violations() -> dict[str, int]:
    return {"global": 0, "private": 0, "group": 0}


class RateLimiter:
    """Sliding-window bookkeeping; every operation is amortised O(1) per send."""

    def __init__(
        self,
        limits: RateLimits,
        violations: dict[str, int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.violations = violations
        self._clock = clock
        self._global: deque[float] = deque()
        self._private_last: dict[int, float] = {}
        self._groups: dict[int, deque[float]] = {}

    def admit(self, chat_id: int, private: bool, paid: bool) -> None:
        """Called right before a send succeeds; raises 429 in reject mode if over a limit."""
        now = self._clock()
        limits = self.limits
        waits: dict[str, float] = {}

        window = self._global
        while window and window[0] <= now - 1.0:
            window.popleft()
        cap = limits.paid_global_per_second if paid else limits.global_per_second
        if len(window) >= cap:
            waits["global"] = window[len(window) - cap] + 1.0 - now

        group_window: deque[float] | None = None
        if private:
            last = self._private_last.get(chat_id)
            if last is not None and now - last < limits.private_min_interval:
                waits["private"] = last + limits.private_min_interval - now
        else:
            group_window = self._groups.setdefault(chat_id, deque())
            while group_window and group_window[0] <= now - limits.group_window:
                group_window.popleft()
            cap = limits.group_per_minute
            if len(group_window) >= cap:
                waits["group"] = group_window[len(group_window) - cap] + limits.group_window - now

        if waits and limits.mode == "reject":
            # Rejected calls are not successful sends, so they do not enter the windows.
            raise too_many_requests(max(1, math.ceil(max(waits.values()))))
        for kind in waits:
            self.violations[kind] += 1
        window.append(now)
        if private:
            self._private_last[chat_id] = now
        elif group_window is not None:
            group_window.append(now)
