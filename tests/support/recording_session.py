"""A Bot session that records every API call and answers with plausible results, in order."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import TelegramMethod
from aiogram.types import Chat, InlineKeyboardMarkup, Message, User


class RecordingSession(BaseSession):
    """Records requests; answers from a FIFO of prepared results/errors, else fabricates one.

    Unlike aiogram's own mocked bot (a LIFO), prepared answers are consumed first in, first out,
    so a test reads like the conversation it stages.
    """

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[TelegramMethod[Any]] = []
        self.prepared: deque[Any] = deque()
        self.failures: dict[str, deque[BaseException]] = {}
        # Called with each request as it "leaves", e.g. to check no transaction is open then.
        self.on_request: Callable[[TelegramMethod[Any]], None] | None = None
        self._message_ids = itertools.count(1000)

    def prepare(self, result_or_error: Any) -> None:
        """The next request gets this result, or raises it if it is an exception."""
        self.prepared.append(result_or_error)

    def fail_next(self, method_name: str, error: BaseException, *, times: int = 1) -> None:
        """The next ``times`` requests of this method ("answerCallbackQuery") raise ``error``;
        other requests are answered as usual meanwhile."""
        self.failures.setdefault(method_name.lower(), deque()).extend([error] * times)

    async def close(self) -> None:
        """Nothing to close: no network."""

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        yield b""

    async def make_request(
        self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None
    ) -> Any:
        self.requests.append(method)
        if self.on_request is not None:
            self.on_request(method)
        failures = self.failures.get(method.__api_method__.lower())
        if failures:
            raise failures.popleft()
        if self.prepared:
            answer = self.prepared.popleft()
            if isinstance(answer, BaseException):
                raise answer
            return answer
        return self._fabricate(bot, method)

    def _fabricate(self, bot: Bot, method: TelegramMethod[Any]) -> Any:
        returning = method.__returning__
        name = type(method).__name__
        if method.__api_method__ == "getMe":
            return User(id=bot.id, is_bot=True, first_name="Shop", username="shop_test_bot")
        if returning is bool or name.startswith(("Set", "Delete", "Answer")):
            return True
        if "Message" in str(returning):
            chat_id = getattr(method, "chat_id", None) or 0
            markup = getattr(method, "reply_markup", None)
            message_id = getattr(method, "message_id", None) or next(self._message_ids)
            return Message(
                message_id=message_id,
                date=datetime.now(UTC),
                chat=Chat(id=chat_id, type="private" if int(chat_id) > 0 else "supergroup"),
                from_user=User(id=bot.id, is_bot=True, first_name="Shop"),
                text=getattr(method, "text", None),
                reply_markup=markup if isinstance(markup, InlineKeyboardMarkup) else None,
            )
        if "list" in str(returning).lower():
            return []
        raise AssertionError(f"RecordingSession cannot fabricate a result for {name}")

    def calls(self, method_name: str) -> list[TelegramMethod[Any]]:
        """Requests of one Bot API method ("SendMessage" or "sendMessage"), subclasses too."""
        wanted = method_name.lower()
        return [r for r in self.requests if r.__api_method__.lower() == wanted]

    def texts_to(self, chat_id: int) -> list[str]:
        """Texts the bot sent to or edited in a chat, in order."""
        return [
            request.text  # type: ignore[attr-defined]
            for request in self.requests
            if request.__api_method__ in {"sendMessage", "editMessageText"}
            and getattr(request, "chat_id", None) == chat_id
        ]

    def clear(self) -> None:
        self.requests.clear()
