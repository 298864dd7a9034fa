"""The shop API's aiohttp application: auth, JSON errors, and the order and customer routes."""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, ValidationError

from bot.api.access_log import MaskedAccessLogger, mask_target
from bot.api.models import (
    AMOUNT_PATTERN,
    Balance,
    BodyProblem,
    CustomerAnswer,
    OrderBody,
    ProductAnswer,
    ProductBody,
    StatusAnswer,
    StatusBody,
    body_problem,
    path_problem,
)
from bot.api.models import (
    Receipt as ReceiptAnswer,
)
from bot.api.openapi import openapi_document
from bot.api.stats import install_stats
from bot.services import Services
from scenarios.cards import looks_like_card
from scenarios.clock import Clock
from scenarios.orders import (
    CustomerCard,
    OrderDesk,
    Points,
    Receipt,
    StatusChange,
)
from scenarios.problems import InputProblem, ProblemKind
from scenarios.products import checked_product, save_product
from storage.availability import is_unavailable
from storage.database import Database
from storage.products import SqlProducts

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

DESK = web.AppKey("order_desk", OrderDesk)
PRODUCTS = web.AppKey("products", SqlProducts)
DATABASE = web.AppKey("database", Database)
# The webhook inbox's database: on SQLite a file of its own (storage/inbox_file.py).
INBOX_DATABASE = web.AppKey("inbox_database", Database)
CLOCK = web.AppKey("clock", Clock)
MAX_BODY = 1024 * 1024
# Look-ups by card number, per API process: plenty for tills, hopeless for trying numbers.
CARD_LOOKUPS_PER_MINUTE = 60
HEALTH_TIMEOUT = 5.0
OPEN_PATHS = frozenset({"/healthz", "/api/v1/openapi.json"})
# The Mini App (bot/webapp) under /app/ signs its callers in with Telegram's initData instead.
OWN_AUTH_PREFIX = "/app/"
# Paths, schemas and tags another part of the server adds to the OpenAPI document.
OPENAPI_EXTRA = web.AppKey("openapi_extra", dict[str, Any])
WEBHOOKS_PREFIX = "/webhooks/"

_STATUS = {
    ProblemKind.MALFORMED: 400,
    ProblemKind.INVALID: 422,
    ProblemKind.NOT_FOUND: 404,
    ProblemKind.CONFLICT: 409,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LookupLimit:
    """At most ``per_minute`` look-ups in any 60 seconds (a sliding window)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._recent: deque[float] = deque()

    def retry_after(self) -> int | None:
        """None and the look-up counts, or the seconds until one is allowed again."""
        now = self._clock()
        while self._recent and now - self._recent[0] >= 60:
            self._recent.popleft()
        if len(self._recent) >= self._per_minute:
            return max(1, math.ceil(60 - (now - self._recent[0])))
        self._recent.append(now)
        return None


CARD_LIMIT = web.AppKey("card_lookups", LookupLimit)


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, "field": field}}, status=status
    )


def create_api_app(
    services: Services,
    *,
    api_token: str,
    card_lookups_per_minute: int = CARD_LOOKUPS_PER_MINUTE,
) -> web.Application:
    """The API over the services' database; every route but /healthz wants
    ``Bearer <api_token>``. Orders go to ``services.order_desk``, whose followers act on every
    new order and status change in the same transaction (rating requests, reminders, referral
    rewards)."""
    if not api_token:
        raise ValueError("the API needs a non-empty token")
    app = web.Application(
        middlewares=[_json_errors, _bearer_auth(api_token)], client_max_size=MAX_BODY
    )
    app[DESK] = services.order_desk
    app[DATABASE] = services.db
    app[INBOX_DATABASE] = services.webhook_inbox.db
    app[CLOCK] = services.clock
    app[PRODUCTS] = services.products
    app[CARD_LIMIT] = LookupLimit(card_lookups_per_minute)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/api/v1/orders", report_order)
    app.router.add_post("/api/v1/orders/{order_id}/status", change_status)
    app.router.add_get("/api/v1/customers/{ref}", customer_card)
    app.router.add_put("/api/v1/products/{sku}", put_product)
    app.router.add_get("/api/v1/openapi.json", openapi)
    install_stats(
        app,
        analytics=services.analytics,
        clock=services.clock,
        currency=services.rules.shop.currency,
    )
    return app


async def start_api(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve ``app`` on host:port; the caller ends it with ``await runner.cleanup()``."""
    runner = web.AppRunner(app, access_log_class=MaskedAccessLogger)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


# ---- middlewares -------------------------------------------------------------------------


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error an integrator sees is JSON with a code, a message and the field."""
    availability = request.app[DATABASE].availability
    try:
        response = await handler(request)
    except InputProblem as problem:
        return error_response(_STATUS[problem.kind], problem.code, problem.message, problem.field)
    except BodyProblem as problem:
        return error_response(problem.status, problem.code, problem.message, problem.field)
    except web.HTTPException as http:
        if http.status < 400:
            raise
        code = (http.reason or "error").lower().replace(" ", "_")
        response = error_response(http.status, code, http.reason or "error")
        # RFC 9110: a 405 says which methods the resource does take.
        if "Allow" in http.headers:
            response.headers["Allow"] = http.headers["Allow"]
        return response
    except Exception as error:
        if is_unavailable(error):
            # Logged once for the process (not per request); the client retries the same
            # request (its order_id makes that safe) once the database is back.
            availability.failed("api", error, retries=False)
            unavailable = error_response(
                503, "database_unavailable", "the database does not answer; retry shortly"
            )
            unavailable.headers["Retry-After"] = "2"
            return unavailable
        log.exception(
            "API request %s %s failed",
            request.method,
            mask_target(request.path, request.query_string),
        )
        return error_response(500, "internal_error", "something went wrong on our side")
    availability.ok("api")
    return response


def _bearer_auth(token: str) -> Middleware:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        # The Mini App signs its callers in with initData, store platforms' webhooks prove
        # themselves with their own signatures.
        if request.path in OPEN_PATHS or request.path.startswith(
            (OWN_AUTH_PREFIX, WEBHOOKS_PREFIX)
        ):
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return error_response(
                401, "unauthorized", "send the API token as Authorization: Bearer <token>"
            )
        return await handler(request)

    return bearer_auth


# ---- routes ------------------------------------------------------------------------------


async def put_product(request: web.Request) -> web.Response:
    sku = _path(request, "sku")
    body = await _parse(request, ProductBody)
    product = checked_product(sku=sku, **body.model_dump())
    created = await save_product(request.app[PRODUCTS], product, clock=request.app[CLOCK])
    answer = ProductAnswer(**{**asdict(product), "related": list(product.related)})
    return _answer(answer, status=201 if created else 200)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app.get(OPENAPI_EXTRA)))


async def healthz(request: web.Request) -> web.Response:
    # The Mini App's own server (the API off, so no webhooks either) knows only the first.
    databases = {request.app[DATABASE], request.app.get(INBOX_DATABASE, request.app[DATABASE])}
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            for database in databases:
                await database.ping()
    except Exception as error:  # whatever the driver raises, the answer is "not healthy"
        log.warning("health check: the database is unreachable: %r", error)
        return error_response(503, "database_unavailable", "the database does not answer")
    return web.json_response({"status": "ok"})


async def report_order(request: web.Request) -> web.Response:
    body = await _parse(request, OrderBody)
    # submit: on SQLite concurrent orders are written in one transaction (group commit).
    reported = await request.app[DESK].submit(body.to_raw())
    return _answer(receipt_json(reported.receipt), status=201 if reported.created else 200)


async def change_status(request: web.Request) -> web.Response:
    order_id = _path(request, "order_id")
    body = await _parse(request, StatusBody)
    change = await request.app[DESK].change_status(order_id=order_id, status=body.status)
    return _answer(status_json(change))


async def customer_card(request: web.Request) -> web.Response:
    if looks_like_card(request.match_info["ref"]):
        wait = request.app[CARD_LIMIT].retry_after()
        if wait is not None:
            response = error_response(
                429, "too_many_requests", f"too many look-ups by card number; retry in {wait} s"
            )
            response.headers["Retry-After"] = str(wait)
            return response
    card = await request.app[DESK].customer_card(ref=_path(request, "ref"), total=_total(request))
    return _answer(card_json(card))


def _path(request: web.Request, name: str) -> str:
    """A path parameter within the document's bounds (a NUL or 300 characters name nothing)."""
    value = request.match_info[name]
    problem = path_problem(name, value)
    if problem is not None:
        raise problem
    return value


def _total(request: web.Request) -> str | None:
    total = request.query.get("total")
    if total is not None and (len(total) > 32 or not re.fullmatch(AMOUNT_PATTERN, total)):
        raise BodyProblem(422, "invalid_amount", "total is an amount like 2580.00", "total")
    return total


def _answer(answer: BaseModel, *, status: int = 200) -> web.Response:
    return web.json_response(answer.model_dump(mode="json"), status=status)


async def _parse(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise body_problem(error) from None


# ---- serialisation -----------------------------------------------------------------------


def points_json(points: Points) -> Balance:
    return Balance(available=points.available, pending=points.pending)


def receipt_json(receipt: Receipt) -> ReceiptAnswer:
    return ReceiptAnswer(
        order_id=receipt.order_id,
        customer_id=receipt.customer_id,
        points_accrued=receipt.points_accrued,
        pending_until=receipt.pending_until,
        balance=points_json(receipt.balance),
    )


def status_json(change: StatusChange) -> StatusAnswer:
    cancellation = change.cancellation
    return StatusAnswer(
        order_id=change.order_id,
        status=change.after,
        previous_status=change.before,
        changed=change.changed,
        customer_id=change.customer_id,
        # Every earned point the refund took back: from the order's own points, and from
        # other points where those were already spent; what nothing covered is the new debt.
        points_reversed=cancellation.reversed_points + cancellation.corrected_points
        if cancellation
        else 0,
        points_restored=cancellation.restored_points if cancellation else 0,
        debt=cancellation.owed_points if cancellation else 0,
        balance=points_json(change.balance) if change.balance else None,
    )


def card_json(card: CustomerCard) -> CustomerAnswer:
    return CustomerAnswer(
        customer_id=card.customer_id,
        tier=card.tier,
        cashback_percent=str(card.cashback_percent),
        balance=points_json(card.balance),
        redeemable=card.redeemable,
    )
