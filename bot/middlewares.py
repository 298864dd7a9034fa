"""Per-update plumbing: the unit of work, committed before each Bot API call, and the customer.

The unit of work of an update begins its transactions lazily and commits what is open just
before any request to Telegram leaves the process (``CommitBeforeRequest``, a request
middleware on the bot's session); the next database use in the update begins a new one. So no
Bot API call waits inside a write transaction, a person is never told about something that
was not committed, and a failing handler rolls back only what it had not yet told anyone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.dispatcher.flags import get_flag
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.fsm.context import FSMContext
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import Chat, TelegramObject, Update, User
from aiohttp import ClientConnectorError

from bot.fsm_storage import DatabaseFsmStorage
from handlers.flags import DB_FLAG
from scenarios.clock import Clock
from scenarios.customers import TelegramUser, recognise
from scenarios.reachability import chat_returned
from storage.customers import SqlCustomers
from storage.database import Database

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

# How long a direct reply may wait in all for Telegram to take it (429 retry_after, 5xx, a
# connection refused) before the handler sees the error. The user's action is committed by
# then; this only bounds how long their chat waits for the answer.
REPLY_RETRY_BUDGET = 5.0
_FIRST_BACKOFF = 0.25


class UnitOfWorkMiddleware(BaseMiddleware):
    """One unit of work per update: committed at each Bot API call and at the end; what is not
    committed yet is rolled back if handling fails (the user then gets a short apology)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.requests = CommitBeforeRequest(db)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        bot: Bot | None = data.get("bot")
        if bot is not None and self.requests not in bot.session.middleware:
            bot.session.middleware(self.requests)
        async with self.db.unit_of_work():
            return await handler(event, data)


class HandlerModeMiddleware(BaseMiddleware):
    """Once the handler is chosen: ``flags=READS_ONLY`` handlers read without the writer,
    ``READS_FIRST`` ones too until their first write, the rest begin write transactions
    (read-then-write stays atomic between two Bot API calls)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        flag = get_flag(data, DB_FLAG)
        await self.db.set_unit_mode(flag if flag in ("read", "auto") else "write")
        return await handler(event, data)


class CommitBeforeRequest(BaseRequestMiddleware):
    """Before a request leaves during an update: commit the unit's open transaction. A direct
    reply that Telegram refuses for now (429, 5xx) or that never left (connection refused) is
    retried within REPLY_RETRY_BUDGET; one that may have arrived (a timeout, a connection lost
    after sending) never is, so the user cannot get it twice."""

    def __init__(self, db: Database, *, budget: float = REPLY_RETRY_BUDGET) -> None:
        self.db = db
        self.budget = budget

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        await self.db.release()
        if self.db.unit is None:  # the outbox sender and the jobs have policies of their own
            return await make_request(bot, method)
        return await self._reply(make_request, bot, method)

    async def _reply(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        deadline = time.monotonic() + self.budget
        backoff = _FIRST_BACKOFF
        while True:
            failure: TelegramNetworkError | TelegramRetryAfter | TelegramServerError
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as error:
                failure, wait = error, float(error.retry_after)
            except TelegramServerError as error:
                failure, wait, backoff = error, backoff, backoff * 2
            except TelegramNetworkError as error:
                if not never_left(error):
                    raise
                failure, wait, backoff = error, backoff, backoff * 2
            if time.monotonic() + wait > deadline:
                raise failure
            log.info(
                "reply %s: %s; retrying in %.2f s", method.__api_method__, failure.message, wait
            )
            await asyncio.sleep(wait)


def never_left(error: TelegramNetworkError) -> bool:
    """True when the request surely did not reach Telegram (no connection was made)."""
    cause: BaseException | None = error.__cause__
    while cause is not None:
        if isinstance(cause, ClientConnectorError | ConnectionRefusedError):
            return True
        cause = cause.__cause__
    return False


class CustomerMiddleware(BaseMiddleware):
    """Recognises the Telegram user as a customer (created on first contact) for the handlers."""

    def __init__(self, customers: SqlCustomers, clock: Clock) -> None:
        self.customers = customers
        self.clock = clock

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        if user is not None and not user.is_bot:
            customer = await recognise(
                self.customers,
                user=TelegramUser(
                    id=user.id,
                    first_name=user.first_name,
                    username=user.username,
                    language_code=user.language_code,
                ),
                clock=self.clock,
                fsm_key=_fsm_key(data),
            )
            if customer.blocked_at is not None and _writes_to_us(event, chat):
                # Someone who writes to the bot has evidently not blocked it (any more).
                await chat_returned(self.customers, telegram_id=user.id)
            data["customer"] = customer
        return await handler(event, data)


def _fsm_key(data: dict[str, Any]) -> str | None:
    """The update's FSM row, when it lives in our database: read with the customer."""
    state: FSMContext | None = data.get("state")
    if state is None or not isinstance(state.storage, DatabaseFsmStorage):
        return None
    return state.storage.keys.build(state.key)


class UserLockMiddleware(FSMContextMiddleware):
    """aiogram's FSM middleware without its eager state read: it takes the user's lock (event
    isolation) and hands the handlers their ``state``; ``StateMiddleware`` reads the state
    later, inside the unit of work, where the customer's statement has already read it."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        context = self.resolve_event_context(data["bot"], data)
        data["fsm_storage"] = self.storage
        if context is None:
            return await handler(event, data)
        # The lock first: everything the update reads is read after the user's previous
        # update has committed (aiogram issue 1317).
        async with self.events_isolation.lock(key=context.key):
            data["state"] = context
            return await handler(event, data)


class StateMiddleware(BaseMiddleware):
    """``raw_state`` for the state filters, as aiogram's FSM middleware would have set it."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        state: FSMContext | None = data.get("state")
        if state is not None:
            data["raw_state"] = await state.get_state()
        return await handler(event, data)


def use_user_lock(dispatcher: Dispatcher) -> None:
    """Swap the dispatcher's FSM middleware for ``UserLockMiddleware`` (same storage, lock
    and strategy); register ``StateMiddleware`` after the customer's."""
    fsm = dispatcher.fsm
    lock = UserLockMiddleware(
        storage=fsm.storage, events_isolation=fsm.events_isolation, strategy=fsm.strategy
    )
    dispatcher.update.outer_middleware.unregister(fsm)
    dispatcher.update.outer_middleware(lock)
    dispatcher.fsm = lock


def _writes_to_us(update: TelegramObject, chat: Chat | None) -> bool:
    """A message or button press in the private chat; a block notice itself does not count."""
    if chat is None or chat.type != "private" or not isinstance(update, Update):
        return False
    return update.message is not None or update.callback_query is not None
