"""How an outbox message reaches Telegram: aiogram's Bot, or a lean JSON request at high rates.

aiogram builds every request as multipart form data and validates the whole answer; at a
thousand messages a second that is most of the sender's CPU. For plain text messages over
aiogram's aiohttp session we post pre-built JSON instead and let aiogram's own
``check_response`` turn the answer into a result or the usual exceptions, so both paths fail
the same way.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import EditMessageText, SendMessage, SendPhoto, TelegramMethod
from aiogram.types import MessageId, ReplyParameters
from aiohttp import ClientConnectorError, ClientError, ClientTimeout, ConnectionTimeoutError

from handlers.keyboards import keyboard
from storage.messages import ButtonRows

# How long a send may take before we stop waiting for its answer (it may still have arrived).
REQUEST_TIMEOUT_SECONDS = 30.0


def may_have_arrived(error: TelegramNetworkError) -> bool:
    """Whether a failed request may have reached Telegram (and so must not be sent again).

    Only a failure to connect (refused, DNS, TLS, a connect timeout) proves the request never
    left; a timeout waiting for the answer or a connection lost after sending does not.
    """
    cause = error.__cause__
    return not isinstance(cause, ClientConnectorError | ConnectionTimeoutError)


@dataclass(frozen=True, slots=True)
class TelegramRequest:
    """One request to Telegram, ready to leave: the transport side of a queued message
    (scenarios.delivery.Outgoing is the policy side, what a scenario asks to send)."""

    chat_id: int
    text: str
    buttons: ButtonRows | None
    photo: str | None
    paid: bool
    edit_message_id: int | None = None  # set: edit that message instead of sending one
    reply_to_message_id: int | None = None


class _SendMessage(SendMessage):
    """sendMessage whose answer is read for its message_id only: validating a whole Message
    costs more than the request itself when a broadcast runs at 1000 messages a second."""

    __returning__ = MessageId  # type: ignore[assignment]


class _SendPhoto(SendPhoto):
    """sendPhoto, its answer read for the message_id only (see _SendMessage)."""

    __returning__ = MessageId  # type: ignore[assignment]


class Transport:
    def __init__(self, bot: Bot, *, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.bot = bot
        self._lean = isinstance(bot.session, AiohttpSession)
        self._timeout_seconds = timeout
        self._timeout = ClientTimeout(total=timeout)

    async def send(self, message: TelegramRequest) -> int:
        """The message id Telegram gave the message; aiogram's exceptions on failure."""
        if message.edit_message_id is not None:
            await self.bot(
                EditMessageText(
                    chat_id=message.chat_id,
                    message_id=message.edit_message_id,
                    text=message.text,
                    reply_markup=keyboard(message.buttons),
                )
            )
            return message.edit_message_id
        if message.photo is None and self._lean:
            return await self._post_json(message)
        method = self._method(message)
        result = await self.bot(
            cast("TelegramMethod[MessageId]", method),
            request_timeout=math.ceil(self._timeout_seconds),
        )
        return result.message_id

    def _method(self, message: TelegramRequest) -> SendMessage | SendPhoto:
        paid = True if message.paid else None
        markup = keyboard(message.buttons)
        reply = (
            ReplyParameters(
                message_id=message.reply_to_message_id, allow_sending_without_reply=True
            )
            if message.reply_to_message_id is not None
            else None
        )
        if message.photo is not None:
            return _SendPhoto(
                chat_id=message.chat_id,
                photo=message.photo,
                caption=message.text,
                reply_markup=markup,
                allow_paid_broadcast=paid,
                reply_parameters=reply,
            )
        return _SendMessage(
            chat_id=message.chat_id,
            text=message.text,
            reply_markup=markup,
            allow_paid_broadcast=paid,
            reply_parameters=reply,
        )

    async def _post_json(self, message: TelegramRequest) -> int:
        session = cast(AiohttpSession, self.bot.session)
        body: dict[str, Any] = {
            "chat_id": message.chat_id,
            "text": message.text,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        }
        if message.buttons:
            # keyboard()'s rows as plain JSON: the lean path skips building pydantic models.
            body["reply_markup"] = {"inline_keyboard": message.buttons}
        if message.paid:
            body["allow_paid_broadcast"] = True
        if message.reply_to_message_id is not None:
            body["reply_parameters"] = {
                "message_id": message.reply_to_message_id,
                "allow_sending_without_reply": True,
            }
        url = session.api.api_url(token=self.bot.token, method="sendMessage")
        client = await session.create_session()
        try:
            async with client.post(
                url,
                data=json.dumps(body, ensure_ascii=False),
                headers={"Content-Type": "application/json"},
                timeout=self._timeout,
            ) as response:
                status, content = response.status, await response.text()
        except (TimeoutError, ClientError) as error:
            raise TelegramNetworkError(
                method=self._method(message), message=f"{type(error).__name__}: {error}"
            ) from error
        if status == HTTPStatus.OK:
            answer = json.loads(content)
            if answer.get("ok") and isinstance(answer.get("result"), dict):
                return int(answer["result"]["message_id"])
        # Anything else: aiogram's own reading of the answer raises the usual exception.
        session.check_response(
            bot=self.bot,
            method=cast("TelegramMethod[MessageId]", self._method(message)),
            status_code=status,
            content=content,
        )
        raise TelegramNetworkError(method=self._method(message), message=f"odd answer: {content}")
