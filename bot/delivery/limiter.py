"""Telegram's sending limits for one process: global rate, per-chat spacing, per-group window."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    rate_per_second: float = 25.0
    paid_rate_per_second: float = 1000.0
    private_interval: float = 1.0
    group_per_minute: int = 20
    # Telegram's group window is a minute; tests shorten it to run a burst in seconds.
    group_window: float = 60.0


# Telegram measures on arrival; margins keep jitter between our decision and the request's
# arrival (grouped database writes, network) from turning "exactly on the limit" into "over".
_MARGIN = 0.05
_RATE_HEADROOM = 0.975
_CATCH_UP = 0.05
# Requests that left late (a busy event loop, a slow "sending" mark) leave together; whatever
# the slot grid said, no one-second window of departures holds more than this share of the rate.
_WINDOW_SHARE = 0.98
# While a chat's previous request is in flight, look at it again this often.
_IN_FLIGHT_POLL = 0.02


class RateLimiter:
    """Decides when the next message may go; the caller does the waiting.

    Times are monotonic seconds (``time.monotonic``), not the business clock: limits are about
    real elapsed time even when tests move the business clock.
    """

    def __init__(self, limits: Limits, now: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._now = now
        # Free and paid (allow_paid_broadcast) sends are paced by separate clocks.
        self._next_global = {False: 0.0, True: 0.0}
        self._paused_until = 0.0
        self._slowdown = 1.0  # 1.0: full configured rate; lowered after a 429, regained slowly
        self._next_chat: dict[int, float] = {}
        self._in_flight: dict[int, int] = {}
        self._in_flight_poll: dict[int, float] = {}  # chat -> when to look at it again
        self._group_sends: dict[int, deque[float]] = {}
        self._departures = {False: deque[float](), True: deque[float]()}

    def chat_ready_at(self, chat_id: int) -> float:
        """The earliest moment this chat may receive the next message.

        Spacing counts from when the previous request to the chat came back (its arrival at
        Telegram was no later), so a slow request can never squeeze two arrivals together;
        while one is in flight the chat waits.
        """
        moment = self._now()
        ready = self._next_chat.get(chat_id, 0.0)
        if self._in_flight.get(chat_id):
            # A fixed moment per poll period, not "now + poll": asked again before it passes,
            # the answer must not move, or a caller waiting for the answer to settle spins.
            poll = self._in_flight_poll.get(chat_id, 0.0)
            if poll <= moment:
                poll = self._in_flight_poll[chat_id] = moment + _IN_FLIGHT_POLL
            ready = max(ready, poll)
        if chat_id < 0:
            sends = self._group_sends.get(chat_id)
            if sends is not None:
                window = self.limits.group_window
                while sends and sends[0] <= moment - window:
                    sends.popleft()
                if len(sends) >= self.limits.group_per_minute:
                    oldest = sends[len(sends) - self.limits.group_per_minute]
                    ready = max(ready, oldest + window + _MARGIN)
        return ready

    def reserve_chat(self, chat_id: int, *, leaving_at: float | None = None) -> None:
        """A message to this chat is about to leave (now, or at the global slot ``leaving_at``)."""
        moment = self._now()
        leaves = moment if leaving_at is None else max(moment, leaving_at)
        self._in_flight[chat_id] = self._in_flight.get(chat_id, 0) + 1
        self._next_chat[chat_id] = leaves + self.limits.private_interval + _MARGIN
        if len(self._next_chat) > 50_000:  # forget chats whose spacing has long passed
            self._next_chat = {c: t for c, t in self._next_chat.items() if t > moment}

    def chat_done(self, chat_id: int, *, sent: bool = True) -> None:
        """The request to this chat came back (``sent``: Telegram took the message)."""
        moment = self._now()
        left = self._in_flight.get(chat_id, 1) - 1
        if left:
            self._in_flight[chat_id] = left
        else:
            self._in_flight.pop(chat_id, None)
            self._in_flight_poll.pop(chat_id, None)
        if not sent:
            return
        interval = self.limits.private_interval + _MARGIN
        self._next_chat[chat_id] = max(self._next_chat.get(chat_id, 0.0), moment + interval)
        if chat_id < 0:
            self._group_sends.setdefault(chat_id, deque()).append(moment)

    def global_delay(self, *, paid: bool = False) -> float:
        """Seconds until the next slot of the bot-wide (or paid-broadcast) rate is free."""
        return max(0.0, max(self._next_global[paid], self._paused_until) - self._now())

    def take_global(self, *, paid: bool = False) -> float:
        """Use the next global slot and return its moment.

        Called when ``global_delay`` is zero, or a little ahead of the slot by a caller that
        waits for the returned moment before sending.
        """
        rate = self.limits.paid_rate_per_second if paid else self.limits.rate_per_second
        interval = 1.0 / (rate * self._slowdown * _RATE_HEADROOM)
        moment, scheduled = self._now(), self._next_global[paid]
        # Stay on the slot grid while we are only a little late: a sleep overshoots by a
        # millisecond or so, and a slow database write holds the planner up for tens, which at
        # 1000/s would be rate lost for good. The catch-up is short (a quiet minute buys no
        # flood afterwards), and the departure window keeps what it bunches within the limit.
        start = max(scheduled if moment - scheduled < _CATCH_UP else moment, self._paused_until)
        self._next_global[paid] = start + interval
        return start

    def departure_delay(self, *, paid: bool = False) -> float:
        """Seconds until one more request fits in the last second's departures."""
        rate = self.limits.paid_rate_per_second if paid else self.limits.rate_per_second
        moment, window = self._now(), self._departures[paid]
        while window and window[0] <= moment - 1.0:
            window.popleft()
        if len(window) < max(1.0, rate * self._slowdown * _WINDOW_SHARE):
            return 0.0
        return window[0] + 1.0 - moment

    def depart(self, *, paid: bool = False) -> None:
        """A request is leaving now (call when ``departure_delay`` is zero)."""
        self._departures[paid].append(self._now())

    def pause(self, seconds: float) -> None:
        """Telegram said 429: nothing goes for ``seconds``, and then more slowly for a while."""
        self._paused_until = max(self._paused_until, self._now() + seconds)
        self._slowdown = max(0.25, self._slowdown * 0.7)

    def succeeded(self) -> None:
        """Each delivered message wins back a little of the rate a 429 took away."""
        if self._slowdown < 1.0:
            self._slowdown = min(1.0, self._slowdown + 0.01)

    def group_has_room(self, chat_id: int) -> bool:
        """Whether one more message fits in this group's window now (an edit made in answer
        to a press there, which cannot wait in the outbox's queue without the press hanging)."""
        sends = self._group_sends.get(chat_id)
        if sends is None:
            return True
        moment = self._now()
        while sends and sends[0] <= moment - self.limits.group_window:
            sends.popleft()
        return len(sends) < self.limits.group_per_minute

    def count_group_send(self, chat_id: int) -> None:
        """A message to this group left outside the outbox: it counts against the window."""
        self._group_sends.setdefault(chat_id, deque()).append(self._now())

    @property
    def paused_until(self) -> float:
        return self._paused_until
