"""Editing a message the bot sent: an edit that would change nothing is not an error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiogram.exceptions import TelegramBadRequest


@contextmanager
def unless_unchanged() -> Iterator[None]:
    """Wrap an edit; Telegram's "message is not modified" (a double tap, an unchanged
    progress line) is swallowed, every other refusal still raises."""
    try:
        yield
    except TelegramBadRequest as error:
        if "not modified" not in error.message:
            raise
