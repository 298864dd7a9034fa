"""FakeTelegram: the HTTP server on 127.0.0.1 plus the test-side API for acting as users."""

from __future__ import annotations

import asyncio
import json
import random
from types import TracebackType
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web

from .api import ApiCall, BotApi
from .errors import ApiError
from .faults import Fault, FaultInjector
from .groups import FakeGroup
from .limits import RateLimits
from .methods.bot import language_code as check_language
from .methods.bot import scope_key
from .models.messages import SentMessage
from .models.objects import BotIdentity
from .params import Params, read_request
from .state import CallbackAnswer, FakeState, WebhookConfig
from .users import FakeUser
from .webhook import WebhookWorker

ChatRef = FakeUser | FakeGroup | int
_UPLOAD_LIMIT = 50 * 1024 * 1024  # Telegram's upload limit for bots
_UNAUTHORIZED = {"ok": False, "error_code": 401, "description": "Unauthorized"}


def _json_response(status: int, body: dict[str, Any]) -> web.Response:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return web.Response(body=data, status=status, content_type="application/json")


class LocalAiohttpSession(AiohttpSession):
    """aiogram's session minus the 250 ms TLS shutdown grace: there is no TLS on 127.0.0.1."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def _chat_id(chat: ChatRef) -> int:
    return chat if isinstance(chat, int) else chat.id


class FakeTelegram:
    """A fake Bot API server for one bot token; use as `async with FakeTelegram() as tg`."""

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        *,
        bot_username: str = "test_bot",
        bot_name: str = "Test Bot",
        limits: RateLimits | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        record_calls: bool = True,
        first_update_id: int = 1,
        webhook_retry_delay: float = 0.2,
        webhook_timeout: float = 10.0,
        latency: float = 0.0,
    ) -> None:
        self.token = token
        # Every HTTP request is answered this many seconds late (a round trip to Telegram).
        self.latency = latency
        self.state = FakeState(
            BotIdentity.from_token(token, bot_username, bot_name), limits, first_update_id
        )
        self.faults = FaultInjector()
        self.api = BotApi(self.state, self.faults, record_calls=record_calls)
        self._host = host
        self._port = port
        self._webhook = WebhookWorker(
            self.state,
            self._call_from_webhook,
            retry_delay=webhook_retry_delay,
            timeout=webhook_timeout,
        )
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._bots: list[Bot] = []

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Binds the server to a free port on 127.0.0.1 and starts webhook delivery."""
        app = web.Application(client_max_size=_UPLOAD_LIMIT)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        # No access log: benchmarks push thousands of requests per second through here.
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._base_url = f"http://{host}:{port}"
        await self._webhook.start()

    async def close(self) -> None:
        """Ends long polls, stops webhook delivery, closes bots made by bot() and the server."""
        self.state.queue.closing = True
        self.state.queue.wake_all()
        await self._webhook.stop()
        await asyncio.gather(*(bot.session.close() for bot in self._bots))
        self._bots.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        """E.g. "http://127.0.0.1:PORT" for TelegramAPIServer.from_base()."""
        if self._base_url is None:
            msg = "FakeTelegram is not started; use `async with FakeTelegram() as tg`"
            raise RuntimeError(msg)
        return self._base_url

    @property
    def api_server(self) -> TelegramAPIServer:
        return TelegramAPIServer.from_base(self.base_url)

    def bot(self, **kwargs: Any) -> Bot:
        """An aiogram Bot wired to this server; its session is closed by close()."""
        bot = Bot(self.token, session=LocalAiohttpSession(api=self.api_server), **kwargs)
        self._bots.append(bot)
        return bot

    @property
    def bot_id(self) -> int:
        return self.state.bot.id

    @property
    def bot_username(self) -> str:
        return self.state.bot.username

    # -- HTTP ----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            self.api.record(method, {}, 401, _UNAUTHORIZED)
            return _json_response(401, _UNAUTHORIZED)
        try:
            params = await read_request(request)
        except ApiError as exc:
            return _json_response(exc.status, exc.payload())
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        status, body = await self.api.call(method, params)
        return _json_response(status, body)

    async def _call_from_webhook(self, method: str, params: Params) -> object:
        return await self.api.call(method, params, via_webhook=True)

    async def call(self, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
        """Calls a Bot API method directly (no HTTP): returns (status, Telegram JSON body)."""
        return await self.api.call(method, params)

    # -- participants --------------------------------------------------------------------

    def user(
        self,
        user_id: int,
        first_name: str | None = None,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
        is_premium: bool | None = None,
        known: bool = False,
    ) -> FakeUser:
        """The user with this id, created on first use; later calls update given fields.

        New users default to first_name "User<id>" and language_code "en".
        """
        existing = self.state.users.get(user_id)
        if existing is None:
            return self.state.add_user(
                FakeUser(
                    self.state,
                    user_id,
                    first_name or f"User{user_id}",
                    last_name=last_name,
                    username=username,
                    language_code=language_code or "en",
                    is_premium=bool(is_premium),
                    known=known,
                )
            )
        if first_name is not None:
            existing.first_name = first_name
        if last_name is not None:
            existing.last_name = last_name
        if username is not None:
            existing.username = username
        if language_code is not None:
            existing.language_code = language_code
        if is_premium is not None:
            existing.is_premium = is_premium
        if known:
            existing.known = existing.seen = True
        return existing

    def group(
        self,
        chat_id: int,
        title: str | None = None,
        *,
        username: str | None = None,
        kind: str | None = None,
        is_forum: bool = False,
    ) -> FakeGroup:
        """A group the bot is in; -100... ids are supergroups unless kind says otherwise."""
        existing = self.state.groups.get(chat_id)
        if existing is not None:
            if title is not None:
                existing.title = title
            return existing
        return self.state.add_group(
            FakeGroup(
                self.state,
                chat_id,
                title or f"Group {chat_id}",
                username=username,
                kind=kind,
                is_forum=is_forum,
            )
        )

    async def deliver(self, update: dict[str, Any]) -> bool:
        """Queues a hand-built raw update (its update_id should come from next_update_id())."""
        return self.state.deliver(update)

    def next_update_id(self) -> int:
        return self.state.next_update_id()

    # -- inspection ----------------------------------------------------------------------

    def sent(self, chat: ChatRef) -> list[SentMessage]:
        """Messages the bot sent to the chat, in order (deleted ones flagged, not removed)."""
        return list(self.state.log(_chat_id(chat)).sent)

    def last_message(self, chat: ChatRef) -> SentMessage:
        """The latest message the bot sent to the chat; AssertionError if there is none."""
        sent = self.state.log(_chat_id(chat)).sent
        if not sent:
            msg = f"the bot has not sent anything to chat {_chat_id(chat)}"
            raise AssertionError(msg)
        return sent[-1]

    def message(self, chat: ChatRef, message_id: int) -> SentMessage:
        found = self.state.log(_chat_id(chat)).sent_by_id.get(message_id)
        if found is None:
            msg = f"the bot never sent message #{message_id} to chat {_chat_id(chat)}"
            raise AssertionError(msg)
        return found

    async def wait_for(
        self, chat: ChatRef, count: int = 1, timeout: float = 5.0
    ) -> list[SentMessage]:
        """Waits until the bot has sent >= count messages to the chat; returns all of them."""
        return await self.state.wait_for_sent(_chat_id(chat), count, timeout)

    @property
    def calls(self) -> list[ApiCall]:
        """Every API call in order, including failed and faulted ones."""
        return self.api.calls

    def calls_to(self, method: str) -> list[ApiCall]:
        wanted = method.lower()
        return [call for call in self.api.calls if call.method.lower() == wanted]

    @property
    def callback_answers(self) -> dict[str, CallbackAnswer]:
        return self.state.callback_answers

    async def wait_callback_answer(
        self, query: str | dict[str, Any], timeout: float = 5.0
    ) -> CallbackAnswer:
        """Waits for answerCallbackQuery; accepts the id or the update press() returned."""
        query_id = query if isinstance(query, str) else query["callback_query"]["id"]
        return await self.state.wait_callback_answer(query_id, timeout)

    def commands(self, scope: Any = None, language_code: str = "") -> list[dict[str, str]]:
        """Commands stored by setMyCommands for a scope (dict, type name or aiogram model)."""
        key = (scope_key(scope), check_language(language_code))
        return [dict(command) for command in self.state.commands.get(key, [])]

    @property
    def violations(self) -> dict[str, int]:
        """Rate-limit violations by kind: global, private, group."""
        return self.state.violations

    @property
    def webhook(self) -> WebhookConfig | None:
        return self.state.webhook

    @property
    def pending_updates(self) -> int:
        return len(self.state.queue) + self.state.webhook_in_flight

    # -- fault injection -----------------------------------------------------------------

    def fail_next(
        self,
        method: str | None = "sendMessage",
        status: int | None = 429,
        *,
        retry_after: int = 3,
        times: int = 1,
        chat_id: int | str | None = None,
        description: str | None = None,
        delay: float = 0.0,
    ) -> Fault:
        """Fails the next `times` matching calls (method=None: any method) with status.

        status=None (or 200) with delay>0 only slows the calls down.
        """
        return self.faults.add(
            Fault(
                method=method.lower() if method else None,
                status=status,
                retry_after=retry_after,
                description=description,
                chat_id=chat_id,
                delay=delay,
                remaining=times,
            )
        )

    def slow_next(self, method: str | None, delay: float, *, times: int = 1) -> Fault:
        """Delays the next matching calls without failing them."""
        return self.fail_next(method, None, delay=delay, times=times)

    def fail_rate(
        self,
        method: str | None,
        status: int,
        probability: float,
        seed: int | None = None,
        *,
        retry_after: int = 1,
        description: str | None = None,
        chat_id: int | str | None = None,
        delay: float = 0.0,
    ) -> Fault:
        """Fails each matching call with this probability until clear_faults()."""
        return self.faults.add(
            Fault(
                method=method.lower() if method else None,
                status=status,
                retry_after=retry_after,
                description=description,
                chat_id=chat_id,
                delay=delay,
                remaining=None,
                probability=probability,
                rng=random.Random(seed),  # reproducible storms, not security
            )
        )

    def remove_fault(self, fault: Fault) -> None:
        self.faults.remove(fault)

    def clear_faults(self) -> None:
        self.faults.clear()
