"""The one place rows of buttons (storage.messages.ButtonRows) become Telegram's keyboard."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from storage.messages import ButtonRows


def keyboard(rows: ButtonRows | None) -> InlineKeyboardMarkup | None:
    """The inline keyboard of these rows; None (no keyboard, or an edit removing it) for none."""
    if not rows:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton.model_validate(button) for button in row] for row in rows
        ]
    )
