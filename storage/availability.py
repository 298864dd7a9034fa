"""Whether the database answers, as its users find out: said once when it goes, once when back."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

log = logging.getLogger("storage.database")

# Driver errors that mean "not now" (PostgreSQL restarting, a backend killed, the SQLite file
# locked by another process) rather than "never" (a constraint, a bug in a statement).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "40")


def is_unavailable(error: BaseException) -> bool:
    """The database could not be reached or refused for the moment: retry later, do not fail."""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeoutError | OSError):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES:
            return True
    # asyncpg raises some connection errors unwrapped (while connecting, for instance).
    module = type(error).__module__
    return module.startswith("asyncpg") and "Connection" in type(error).__name__


def is_database_error(error: BaseException) -> bool:
    """Raised by the database or its driver (unavailable, or refusing this one write)."""
    return isinstance(error, DBAPIError) or is_unavailable(error)


class Availability:
    """One process's view of the database, fed by whoever uses it.

    Parts that retry on their own (the outbox sender, the periodic jobs) stay listed as failing
    until they succeed again; the database is "back" once none is left. Parts that do not retry
    (an API request) are forgotten at the first success of anyone. So an outage is logged as
    two lines, not as an error per job per tick. "Back" is said once nothing failed for
    ``settle`` seconds: a database that flaps (backends killed one after another) is one outage.
    A part may go a second or two without touching the database (the sender busy with Telegram),
    so a shorter settle saw one flapping outage as two.
    """

    def __init__(self, now: Callable[[], float] = time.monotonic, *, settle: float = 3.0) -> None:
        self._now = now
        self._settle = settle
        self._failing: dict[str, bool] = {}  # who -> retries on its own
        self._since: float | None = None
        self._recovered_at = 0.0
        self._back_timer: asyncio.TimerHandle | None = None

    @property
    def away(self) -> bool:
        return self._since is not None

    def failed(self, who: str, error: BaseException, *, retries: bool = True) -> None:
        if self._back_timer is not None:
            self._back_timer.cancel()
            self._back_timer = None
        if self._since is None:
            self._since = self._now()
            log.warning(
                "database unavailable (%s: %s); waiting for it to come back, "
                "retrying every few seconds",
                who,
                _brief(error),
            )
        self._failing[who] = self._failing.get(who, False) or retries

    def gave_up(self, who: str) -> None:
        """``who`` stopped retrying for now: the first success of anyone may say "back"."""
        if who in self._failing:
            self._failing[who] = False

    def ok(self, who: str) -> None:
        if self._since is None:
            return
        self._failing.pop(who, None)
        self._failing = {name: True for name, retries in self._failing.items() if retries}
        if self._failing or self._back_timer is not None:
            return
        self._recovered_at = self._now()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): say it now
            self._declare_back()
            return
        self._back_timer = loop.call_later(self._settle, self._declare_back)

    def _declare_back(self) -> None:
        self._back_timer = None
        if self._since is None or self._failing:
            return
        log.warning("database is back (unavailable for %.1f s)", self._recovered_at - self._since)
        self._since = None


def _brief(error: BaseException) -> str:
    """The first line of a driver error (SQLAlchemy appends the statement and a link)."""
    text = str(getattr(error, "orig", None) or error) or type(error).__name__
    return f"{type(error).__name__}: {text.splitlines()[0][:300]}"


class Backoff:
    """Waits between retries while the database is away: short at first, then every 2 s."""

    def __init__(self, first: float = 0.2, longest: float = 2.0) -> None:
        self._first = first
        self._longest = longest
        self.next = first

    def step(self) -> float:
        wait, self.next = self.next, min(self.next * 2, self._longest)
        return wait

    def reset(self) -> None:
        self.next = self._first
