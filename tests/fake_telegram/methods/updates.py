"""Getting updates: getUpdates long polling and setWebhook/deleteWebhook/getWebhookInfo."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import urlsplit

from tests.fake_telegram.errors import POLL_CONFLICT, WEBHOOK_CONFLICT, bad_request, conflict
from tests.fake_telegram.params import Params, as_bool, as_int, as_json
from tests.fake_telegram.state import FakeState, WebhookConfig

_SECRET = re.compile(r"^[A-Za-z0-9_\-]{1,256}$")


def _seconds(value: Any) -> float:
    try:
        return max(float(value or 0), 0.0)
    except (TypeError, ValueError):
        return 0.0


async def get_updates(state: FakeState, params: Params) -> Any:
    if state.webhook is not None:
        raise conflict(WEBHOOK_CONFLICT)
    queue = state.queue
    # A newer getUpdates ends any older long poll with 409, as Telegram does.
    queue.poll_generation += 1
    generation = queue.poll_generation
    queue.wake_all()
    offset = as_int(params.get("offset")) or 0
    limit = min(max(as_int(params.get("limit")) or 100, 1), 100)
    timeout = _seconds(params.get("timeout"))
    allowed = as_json(params.get("allowed_updates"))
    if isinstance(allowed, list):
        queue.set_allowed(str(kind) for kind in allowed)
    queue.confirm(offset)
    updates = queue.peek(limit)
    if updates or timeout <= 0:
        return updates
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not updates and not queue.closing:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await queue.wait(remaining)
        if queue.poll_generation != generation:
            raise conflict(POLL_CONFLICT)
        if state.webhook is not None:
            raise conflict(WEBHOOK_CONFLICT)
        updates = queue.peek(limit)
    return updates


def _drop_pending(state: FakeState, params: Params) -> None:
    if as_bool(params.get("drop_pending_updates")):
        state.queue.clear()


async def set_webhook(state: FakeState, params: Params) -> Any:
    url = params.get("url")
    if not url:
        # setWebhook with an empty URL removes the webhook.
        return await delete_webhook(state, params)
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    secret = params.get("secret_token")
    if secret and not (isinstance(secret, str) and _SECRET.match(secret)):
        raise bad_request("bad webhook: secret token contains unallowed characters")
    max_connections = min(max(as_int(params.get("max_connections")) or 40, 1), 100)
    allowed = as_json(params.get("allowed_updates"))
    if isinstance(allowed, list):
        state.queue.set_allowed(str(kind) for kind in allowed)
    _drop_pending(state, params)
    ip_address = params.get("ip_address")
    state.webhook = WebhookConfig(
        url=str(url),
        secret_token=secret or None,
        max_connections=max_connections,
        ip_address=ip_address if isinstance(ip_address, str) and ip_address else None,
        allowed_updates=state.queue.allowed_updates,
    )
    # Wakes the webhook worker and ends any long poll with 409.
    state.queue.wake_all()
    return True


async def delete_webhook(state: FakeState, params: Params) -> Any:
    state.webhook = None
    _drop_pending(state, params)
    state.queue.wake_all()
    return True


async def get_webhook_info(state: FakeState, params: Params) -> Any:
    config = state.webhook
    info: dict[str, Any] = {
        "url": config.url if config else "",
        "has_custom_certificate": False,
        "pending_update_count": len(state.queue) + state.webhook_in_flight,
    }
    if config is None:
        return info
    info["max_connections"] = config.max_connections
    if config.ip_address:
        info["ip_address"] = config.ip_address
    if config.allowed_updates is not None:
        info["allowed_updates"] = config.allowed_updates
    if config.last_error_date is not None:
        info["last_error_date"] = config.last_error_date
        info["last_error_message"] = config.last_error_message
    return info


HANDLERS = {
    "getUpdates": get_updates,
    "setWebhook": set_webhook,
    "deleteWebhook": delete_webhook,
    "getWebhookInfo": get_webhook_info,
}
