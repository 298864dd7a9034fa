"""Webhook delivery: POSTs pending updates to the bot and runs methods returned in replies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from aiohttp import (
    ClientConnectorError,
    ClientError,
    ClientResponse,
    ClientSession,
    ClientTimeout,
    MultipartReader,
)

from .params import Params, from_fields, read_multipart
from .state import FakeState, WebhookConfig
from .update_queue import PendingUpdate

Execute = Callable[[str, Params], Awaitable[object]]
_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


async def read_method(response: ClientResponse) -> tuple[str, Params] | None:
    """A method call returned in a webhook response body (JSON, form or multipart)."""
    content_type = response.content_type
    if content_type == "multipart/form-data":
        params = await read_multipart(MultipartReader(response.headers, response.content))
    elif content_type == "application/x-www-form-urlencoded":
        params = from_fields(parse_qsl(await response.text(), keep_blank_values=True))
    else:
        try:
            body = json.loads(await response.read() or b"null")
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        params = dict(body)
    method = params.pop("method", None)
    if not isinstance(method, str) or not method:
        return None
    return method, params


class WebhookWorker:
    """Delivers queued updates while a webhook is set, up to max_connections at a time."""

    def __init__(
        self, state: FakeState, execute: Execute, *, retry_delay: float, timeout: float
    ) -> None:
        self._state = state
        self._execute = execute
        self._retry_delay = retry_delay
        self._timeout = timeout
        self._session: ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._semaphore: tuple[WebhookConfig, asyncio.Semaphore] | None = None
        # Python 3.11's wait_for can swallow a cancel that races a wakeup, so loops
        # also check this flag instead of relying on cancellation alone.
        self._stopping = False

    async def start(self) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=self._timeout))
        self._task = asyncio.create_task(self._run(), name="fake-telegram-webhook")

    async def stop(self) -> None:
        self._stopping = True
        self._state.queue.wake_all()
        tasks = [*self._deliveries, *([self._task] if self._task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _slots(self, config: WebhookConfig) -> asyncio.Semaphore:
        # A new setWebhook gets a fresh connection budget; old deliveries keep theirs.
        if self._semaphore is None or self._semaphore[0] is not config:
            self._semaphore = (config, asyncio.Semaphore(config.max_connections))
        return self._semaphore[1]

    async def _run(self) -> None:
        state, queue = self._state, self._state.queue
        while not self._stopping:
            config = state.webhook
            if config is None or not len(queue):
                await queue.wait(3600)
                continue
            slots = self._slots(config)
            await slots.acquire()
            item = queue.popleft() if state.webhook is config else None
            if item is None or not queue.is_allowed(item.kind):
                slots.release()
                continue
            state.webhook_in_flight += 1
            task = asyncio.create_task(self._deliver(config, item, slots))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def _deliver(
        self, config: WebhookConfig, item: PendingUpdate, slots: asyncio.Semaphore
    ) -> None:
        state = self._state
        try:
            while not self._stopping:
                if state.webhook is not config:
                    # The webhook changed or was removed: the update stays pending.
                    state.queue.requeue([item])
                    return
                if await self._post(config, item):
                    return
                await asyncio.sleep(self._retry_delay)
            state.queue.requeue([item])
        finally:
            state.webhook_in_flight -= 1
            slots.release()

    async def _post(self, config: WebhookConfig, item: PendingUpdate) -> bool:
        """One delivery attempt; True when the bot answered 2xx."""
        assert self._session is not None
        headers = {"Content-Type": "application/json"}
        if config.secret_token:
            headers[_SECRET_HEADER] = config.secret_token
        body = json.dumps(item.payload, ensure_ascii=False).encode()
        reply: tuple[str, Params] | None = None
        try:
            async with self._session.post(config.url, data=body, headers=headers) as response:
                if not 200 <= response.status < 300:
                    reason = f"{response.status} {response.reason or ''}".rstrip()
                    self._failed(config, f"Wrong response from the webhook: {reason}")
                    return False
                reply = await read_method(response)
        except ClientConnectorError:
            self._failed(config, "Connection refused")
            return False
        except TimeoutError:
            self._failed(config, "Read timeout expired")
            return False
        except ClientError as exc:
            self._failed(config, f"{type(exc).__name__}: {exc}")
            return False
        if reply is not None:
            # Telegram executes a method returned in the response and ignores its outcome.
            await self._execute(*reply)
        return True

    def _failed(self, config: WebhookConfig, message: str) -> None:
        config.last_error_date = self._state.now()
        config.last_error_message = message
