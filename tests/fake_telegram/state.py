"""The fake's world: users, groups, chat logs, files, callbacks, commands and pending updates."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .errors import bad_request, forbidden
from .groups import FakeGroup
from .limits import RateLimiter, RateLimits, new_violations
from .media import FileRegistry
from .models.messages import ChatLog, SentMessage
from .models.objects import BotIdentity
from .params import as_int
from .update_queue import UpdateQueue
from .users import FakeUser


@dataclass(frozen=True, slots=True)
class CallbackAnswer:
    """What the bot answered to a callback query."""

    callback_query_id: str
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int


@dataclass(slots=True)
class WebhookConfig:
    url: str
    secret_token: str | None
    max_connections: int
    ip_address: str | None
    allowed_updates: list[str] | None
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """A resolved chat_id: its log, Chat object and whether it is a private chat."""

    log: ChatLog
    chat: dict[str, Any]
    private: bool


@dataclass(slots=True)
class _CallbackRecord:
    chat_id: int
    message_id: int
    answered: bool = False
    waiters: list[asyncio.Future[CallbackAnswer]] = field(default_factory=list)


class FakeState:
    """Everything method handlers and fake users read and change."""

    def __init__(self, bot: BotIdentity, limits: RateLimits | None, first_update_id: int) -> None:
        self.bot = bot
        self.bot_user = bot.user()
        self.users: dict[int, FakeUser] = {}
        self.groups: dict[int, FakeGroup] = {}
        self.chats: dict[int, ChatLog] = {}
        self.files = FileRegistry(bot.id)
        self.queue = UpdateQueue()
        self.webhook: WebhookConfig | None = None
        self.webhook_in_flight = 0
        self.callback_answers: dict[str, CallbackAnswer] = {}
        self.commands: dict[tuple[tuple[Any, ...], str], list[dict[str, str]]] = {}
        self.bot_texts: dict[tuple[str, str], str] = {}
        self.menu_buttons: dict[int | None, dict[str, Any]] = {}
        self.violations = new_violations()
        self.limiter = RateLimiter(limits, self.violations) if limits is not None else None
        self._callbacks: dict[str, _CallbackRecord] = {}
        # Recent failed calls per chat, quoted when wait_for times out.
        self.failures: dict[int, deque[str]] = {}
        self._next_update_id = first_update_id
        self._next_callback = 0

    # -- clocks and counters -------------------------------------------------------------

    @staticmethod
    def now() -> int:
        return int(time.time())

    def next_update_id(self) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        return update_id

    def log(self, chat_id: int) -> ChatLog:
        log = self.chats.get(chat_id)
        if log is None:
            log = self.chats[chat_id] = ChatLog(chat_id)
        return log

    # -- participants --------------------------------------------------------------------

    def add_user(self, user: FakeUser) -> FakeUser:
        self.users[user.id] = user
        return user

    def add_group(self, group: FakeGroup) -> FakeGroup:
        self.groups[group.id] = group
        return group

    def target(self, raw_chat_id: Any, *, sending: bool = True) -> Target:
        """Resolves chat_id like Telegram: unknown chats, blocks and kicks become errors."""
        if raw_chat_id is None or raw_chat_id == "":
            raise bad_request("chat_id is empty")
        chat_id = as_int(raw_chat_id)
        if chat_id is None:
            if isinstance(raw_chat_id, str) and raw_chat_id.startswith("@"):
                group = self._group_by_username(raw_chat_id[1:])
                if group is not None:
                    return self._group_target(group, sending)
            raise bad_request("chat not found")
        if chat_id == self.bot.id:
            raise forbidden("bot can't send messages to bots")
        if chat_id > 0:
            user = self.users.get(chat_id)
            if user is None or not user.known:
                if user is not None and user.seen:
                    raise forbidden("bot can't initiate conversation with a user")
                raise bad_request("chat not found")
            if sending and user.blocked:
                raise forbidden("bot was blocked by the user")
            return Target(self.log(chat_id), user.chat_dict(), True)
        group = self.groups.get(chat_id)
        if group is None:
            raise bad_request("chat not found")
        return self._group_target(group, sending)

    def _group_target(self, group: FakeGroup, sending: bool) -> Target:
        if sending and not group.bot_is_member:
            raise forbidden(f"bot was kicked from the {group.kind} chat")
        return Target(self.log(group.id), group.to_dict(), False)

    def _group_by_username(self, username: str) -> FakeGroup | None:
        wanted = username.lower()
        for group in self.groups.values():
            if group.username and group.username.lower() == wanted:
                return group
        return None

    def record_failure(self, chat_id: Any, method: str, description: str) -> None:
        key = as_int(chat_id)
        if key is not None:
            self.failures.setdefault(key, deque(maxlen=5)).append(f"{method} -> {description}")

    async def wait_for_sent(self, chat_id: int, count: int, timeout: float) -> list[SentMessage]:
        """Waits for the bot to have sent >= count messages to the chat, else AssertionError."""
        log = self.log(chat_id)
        if await log.wait_for(count, timeout):
            return list(log.sent)
        lines = [f"  {sent.describe()}" for sent in log.sent] or ["  (nothing)"]
        failures = [f"  {line}" for line in self.failures.get(chat_id, ())]
        msg = (
            f"expected at least {count} message(s) from the bot in chat {chat_id} within "
            f"{timeout}s, got {len(log.sent)}:\n" + "\n".join(lines)
        )
        if failures:
            msg += "\nrecent failed calls for this chat:\n" + "\n".join(failures)
        raise AssertionError(msg)

    # -- updates -------------------------------------------------------------------------

    def deliver(self, update: dict[str, Any]) -> bool:
        """Queues an update for getUpdates or the webhook worker (which waits on the queue)."""
        return self.queue.push(update)

    # -- callback queries ----------------------------------------------------------------

    def new_callback(self, chat_id: int, message_id: int) -> str:
        self._next_callback += 1
        # Real ids are large opaque numbers rendered as strings.
        query_id = str(self.bot.id * 1_000_000_000_000 + self._next_callback)
        self._callbacks[query_id] = _CallbackRecord(chat_id, message_id)
        return query_id

    def answer_callback(self, answer: CallbackAnswer) -> None:
        record = self._callbacks.get(answer.callback_query_id)
        if record is None or record.answered:
            # Telegram accepts exactly one answer per query.
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        record.answered = True
        self.callback_answers[answer.callback_query_id] = answer
        for waiter in record.waiters:
            if not waiter.done():
                waiter.set_result(answer)
        record.waiters.clear()

    async def wait_callback_answer(self, query_id: str, timeout: float) -> CallbackAnswer:
        answer = self.callback_answers.get(query_id)
        if answer is not None:
            return answer
        record = self._callbacks.get(query_id)
        if record is None:
            msg = f"unknown callback query id {query_id!r}"
            raise AssertionError(msg)
        waiter: asyncio.Future[CallbackAnswer] = asyncio.get_running_loop().create_future()
        record.waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            msg = f"the bot did not answer callback query {query_id} within {timeout}s"
            raise AssertionError(msg) from None
