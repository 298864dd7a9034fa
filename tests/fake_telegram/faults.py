"""Injected failures and slowdowns for chosen methods, one-shot or at a random rate."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, status_error
from .params import as_int


@dataclass(eq=False)
class Fault:
    """One injection rule; `hits` counts how many calls it affected."""

    method: str | None
    status: int | None
    retry_after: int = 1
    description: str | None = None
    chat_id: int | str | None = None
    delay: float = 0.0
    remaining: int | None = 1
    probability: float = 1.0
    rng: random.Random | None = field(default=None, repr=False)
    hits: int = 0

    def matches(self, params: dict[str, Any]) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.chat_id is not None and _chat_key(params.get("chat_id")) != _chat_key(self.chat_id):
            return False
        return not (self.rng is not None and self.rng.random() >= self.probability)

    def error(self) -> ApiError | None:
        if self.status is None or 200 <= self.status < 300:
            return None
        return status_error(self.status, self.description, self.retry_after)


def _chat_key(value: Any) -> Any:
    """chat_id may arrive as int or numeric string; "@username" stays a string."""
    number = as_int(value)
    return value if number is None else number


class FaultInjector:
    """Holds fault rules by lower-cased method name (None = every method)."""

    def __init__(self) -> None:
        self._rules: dict[str | None, list[Fault]] = {}

    def add(self, fault: Fault) -> Fault:
        self._rules.setdefault(fault.method, []).append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        rules = self._rules.get(fault.method, [])
        if fault in rules:
            rules.remove(fault)

    def clear(self) -> None:
        self._rules.clear()

    def take(self, method: str, params: dict[str, Any]) -> Fault | None:
        """The first matching rule, consuming one of its remaining uses."""
        if not self._rules:
            return None
        for key in (method, None):
            rules = self._rules.get(key)
            if not rules:
                continue
            for fault in rules:
                if fault.matches(params):
                    fault.hits += 1
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            rules.remove(fault)
                    return fault
        return None
