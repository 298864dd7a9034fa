"""The webhook routes: verify the platform's signature, keep the delivery, answer at once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from scenarios.clock import Clock
from scenarios.webhooks import shopify, tilda, woocommerce
from scenarios.webhooks.model import Inspection, Platform, Verdict
from storage.availability import is_unavailable
from storage.inbox import SqlInbox

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
MAX_HEADER = 128  # a delivery id or topic longer than this is not the platform's

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class WebhookSecrets:
    """Each platform's secret; None turns its route off (404)."""

    shopify: str | None = None
    woocommerce: str | None = None
    tilda: str | None = None

    @property
    def any(self) -> bool:
        return bool(self.shopify or self.woocommerce or self.tilda)


INBOX = web.AppKey("webhook_inbox", SqlInbox)
SECRETS = web.AppKey("webhook_secrets", WebhookSecrets)
CLOCK = web.AppKey("webhook_clock", Clock)
WAKE: web.AppKey[Callable[[], None]] = web.AppKey("webhook_wake")


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, "field": None}}, status=status
    )


def signed(body: bytes, secret: str, given: str | None) -> bool:
    """``given`` is base64(HMAC-SHA256(body, secret)), compared in constant time."""
    if not given:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, given.strip().encode("ascii", errors="replace"))


def create_webhooks_app(
    *, inbox: SqlInbox, secrets: WebhookSecrets, clock: Clock, wake: Callable[[], None]
) -> web.Application:
    """Mounted at /webhooks on the shop API's server; ``wake`` tells the worker a delivery
    is waiting."""
    app = web.Application(middlewares=[_errors], client_max_size=MAX_BODY)
    app[INBOX] = inbox
    app[SECRETS] = secrets
    app[CLOCK] = clock
    app[WAKE] = wake
    app.router.add_post("/shopify", receive_shopify)
    app.router.add_post("/woocommerce", receive_woocommerce)
    app.router.add_post("/tilda/{key}", receive_tilda)
    return app


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as http:
        if http.status < 400:
            raise
        return error(http.status, (http.reason or "error").lower().replace(" ", "_"), http.reason)
    except Exception as failure:
        if not is_unavailable(failure):
            raise
        # The platform retries later with the same delivery id; nothing was kept.
        log.warning("webhook %s not kept: the database does not answer", request.path[:40])
        response = error(503, "database_unavailable", "the database does not answer; retry")
        response.headers["Retry-After"] = "5"
        return response


def _header(request: web.Request, name: str) -> str | None:
    value = request.headers.get(name, "").strip()
    return value[:MAX_HEADER] if value else None


async def receive_shopify(request: web.Request) -> web.Response:
    secret = request.app[SECRETS].shopify
    if not secret:
        return error(404, "not_found", "Shopify webhooks are off (SHOPIFY_WEBHOOK_SECRET)")
    body = await request.read()
    if not signed(body, secret, request.headers.get("X-Shopify-Hmac-Sha256")):
        return _refused(request, Platform.SHOPIFY, "X-Shopify-Hmac-Sha256")
    topic = _header(request, "X-Shopify-Topic") or ""
    inspection = (
        shopify.inspect(topic=topic, webhook_id=_header(request, "X-Shopify-Webhook-Id"), body=body)
        if b"\x00" not in body
        else Inspection(Verdict.MALFORMED, reason="a NUL byte in the body")
    )
    return await _settle(request, Platform.SHOPIFY, topic, body, inspection)


async def receive_woocommerce(request: web.Request) -> web.Response:
    secret = request.app[SECRETS].woocommerce
    if not secret:
        return error(404, "not_found", "WooCommerce webhooks are off (WOOCOMMERCE_WEBHOOK_SECRET)")
    body = await request.read()
    # The ping WooCommerce sends when a webhook is saved carries no signature; it is answered
    # and nothing is kept, so it needs none.
    if woocommerce.is_ping(body):
        return web.json_response({"status": "ok"})
    if not signed(body, secret, request.headers.get("X-WC-Webhook-Signature")):
        return _refused(request, Platform.WOOCOMMERCE, "X-WC-Webhook-Signature")
    topic = _header(request, "X-WC-Webhook-Topic") or ""
    inspection = (
        woocommerce.inspect(
            topic=topic, delivery_id=_header(request, "X-WC-Webhook-Delivery-ID"), body=body
        )
        if b"\x00" not in body
        else Inspection(Verdict.IGNORE, reason="a NUL byte in the body")
    )
    return await _settle(request, Platform.WOOCOMMERCE, topic, body, inspection)


async def receive_tilda(request: web.Request) -> web.Response:
    key = request.app[SECRETS].tilda
    if not key:
        return error(404, "not_found", "Tilda webhooks are off (TILDA_WEBHOOK_KEY)")
    given = request.match_info["key"].encode("utf-8", errors="replace")
    if not hmac.compare_digest(given, key.encode()):
        return _refused(request, Platform.TILDA, "the key in the URL")
    body = await request.read()
    inspection = (
        tilda.inspect(body=body)
        if b"\x00" not in body
        else Inspection(Verdict.MALFORMED, reason="a NUL byte in the body")
    )
    return await _settle(request, Platform.TILDA, tilda.TOPIC, body, inspection)


def _refused(request: web.Request, platform: Platform, what: str) -> web.Response:
    # Never the body: it holds customers' names and phones, and it is not the shop's.
    log.warning(
        "%s webhook refused: %s is missing or wrong (from %s)", platform, what, request.remote
    )
    return error(401, "unauthorized", f"{what} does not match the secret set in the bot")


async def _settle(
    request: web.Request, platform: Platform, topic: str, body: bytes, inspection: Inspection
) -> web.Response:
    verdict = inspection.verdict
    if verdict is Verdict.PING:
        log.info("%s webhook: the platform checked the URL", platform)
        return web.json_response({"status": "ok"})
    if verdict is Verdict.IGNORE:
        log.info("%s webhook %s ignored: %s", platform, topic, inspection.reason)
        return web.json_response({"status": "ignored", "reason": inspection.reason})
    if verdict is Verdict.MALFORMED:
        log.warning("%s webhook %s refused: %s", platform, topic, inspection.reason)
        return error(400, "malformed", inspection.reason or "not the platform's shape")
    assert inspection.delivery_id is not None
    kept = await request.app[INBOX].add(
        platform=platform,
        delivery_id=inspection.delivery_id,
        topic=topic,
        body=body.decode("utf-8"),
        now=request.app[CLOCK].now(),
    )
    if kept:
        request.app[WAKE]()
    return web.json_response({"status": "accepted" if kept else "duplicate"})
