"""Records of what the bot sent: messages with their edit history, grouped per chat."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from tests.fake_telegram.keyboards import iter_buttons
from tests.fake_telegram.media import UploadedFile


@dataclass(frozen=True, slots=True)
class Revision:
    """A previous version of a message, kept when the bot edits it."""

    text: str | None
    raw: str | None
    parse_mode: str | None
    entities: list[dict[str, Any]]
    reply_markup: dict[str, Any] | None
    date: int


@dataclass(eq=False)
class SentMessage:
    """A message the bot sent; text/markup reflect the current state after edits."""

    chat_id: int
    message_id: int
    method: str
    payload: dict[str, Any]
    raw: str | None = None
    parse_mode: str | None = None
    reply_markup: dict[str, Any] | None = None
    upload: UploadedFile | None = None
    params: dict[str, Any] = field(default_factory=dict, repr=False)
    edits: list[Revision] = field(default_factory=list)
    deleted: bool = False

    @property
    def text(self) -> str | None:
        """Plain text as the user sees it (tags stripped); the caption for media."""
        value = self.payload.get("text", self.payload.get("caption"))
        return value if isinstance(value, str) else None

    @property
    def html(self) -> str | None:
        """The raw text the bot sent (HTML or Markdown source)."""
        return self.raw

    @property
    def caption(self) -> str | None:
        value = self.payload.get("caption")
        return value if isinstance(value, str) else None

    @property
    def entities(self) -> list[dict[str, Any]]:
        value = self.payload.get("entities", self.payload.get("caption_entities", []))
        return list(value)

    @property
    def photo(self) -> list[dict[str, Any]] | None:
        value = self.payload.get("photo")
        return list(value) if isinstance(value, list) else None

    @property
    def document(self) -> dict[str, Any] | None:
        value = self.payload.get("document")
        return dict(value) if isinstance(value, dict) else None

    @property
    def date(self) -> int:
        return int(self.payload["date"])

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """Every button of the current keyboard (inline or reply), row by row."""
        return list(iter_buttons(self.reply_markup))

    @property
    def button_texts(self) -> list[str]:
        return [str(button.get("text")) for button in self.buttons]

    def button(self, text: str) -> dict[str, Any]:
        """The button with exactly this text; AssertionError listing the buttons if absent."""
        for candidate in self.buttons:
            if candidate.get("text") == text:
                return candidate
        msg = f"no button {text!r} on message #{self.message_id}; buttons: {self.button_texts}"
        raise AssertionError(msg)

    @property
    def edit_date(self) -> int | None:
        value = self.payload.get("edit_date")
        return int(value) if value is not None else None

    def snapshot(self) -> Revision:
        """The current version, appended to edits before an edit replaces it."""
        return Revision(
            text=self.text,
            raw=self.raw,
            parse_mode=self.parse_mode,
            entities=self.entities,
            reply_markup=self.reply_markup,
            date=self.edit_date or self.date,
        )

    def to_dict(self) -> dict[str, Any]:
        """The Telegram Message object in its current state."""
        return self.payload

    def describe(self) -> str:
        """One line for assertion messages."""
        state = " (deleted)" if self.deleted else ""
        edits = f" [{len(self.edits)} edit(s)]" if self.edits else ""
        body = self.text if self.text is not None else "<media>" if self.photo else "<no text>"
        buttons = f" buttons={self.button_texts}" if self.buttons else ""
        return f"#{self.message_id} {self.method}{state}{edits}: {body!r}{buttons}"


class ChatLog:
    """All messages of one chat (both directions) plus the bot's sent list and waiters."""

    __slots__ = ("_waiters", "chat_id", "messages", "next_message_id", "sent", "sent_by_id")

    def __init__(self, chat_id: int) -> None:
        self.chat_id = chat_id
        self.next_message_id = 1
        self.messages: dict[int, dict[str, Any]] = {}
        self.sent: list[SentMessage] = []
        self.sent_by_id: dict[int, SentMessage] = {}
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def allocate_id(self) -> int:
        """Message ids are per chat and shared by the user's and the bot's messages."""
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id

    def add_incoming(self, message: dict[str, Any]) -> None:
        self.messages[message["message_id"]] = message

    def add_sent(self, sent: SentMessage) -> None:
        self.messages[sent.message_id] = sent.payload
        self.sent.append(sent)
        self.sent_by_id[sent.message_id] = sent
        if self._waiters:
            self._wake()

    def live(self, message_id: int) -> dict[str, Any] | None:
        """A message that exists and was not deleted."""
        return self.messages.get(message_id)

    def delete(self, message_id: int) -> bool:
        if self.messages.pop(message_id, None) is None:
            return False
        sent = self.sent_by_id.get(message_id)
        if sent is not None:
            sent.deleted = True
        return True

    async def wait_for(self, count: int, timeout: float) -> bool:
        """Waits until the bot has sent at least count messages here; False on timeout."""
        if len(self.sent) >= count:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (count, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return False
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
        return True

    def _wake(self) -> None:
        sent = len(self.sent)
        for count, future in self._waiters:
            if sent >= count and not future.done():
                future.set_result(None)
