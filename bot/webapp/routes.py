"""The Mini App's JSON API: the member's card, balance, history and reminders; the till."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import segno
from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot.webapp.auth import InitData, InitDataError, init_data_from_header, validate_init_data
from bot.webapp.models import (
    CashierPurchaseBody,
    LookupBody,
    PurchaseAnswer,
    ScanBody,
    TillMember,
    TimeZoneBody,
)
from bot.webapp.services import WebappServices
from bot.webapp.texts import page_texts
from locales.formatting import format_date, format_money, format_points
from scenarios.cards import display_card_number, member_card
from scenarios.cashier import MemberAtTill, TillProblem
from scenarios.customers import resolve_locale
from scenarios.ledger import balance, history, tier_status
from scenarios.orders import RawItem, parse_money
from scenarios.preferences import UnknownZoneError, set_time_zone
from scenarios.problems import is_ascii_number
from scenarios.reminders import Answer, cancel_one
from scenarios.tiers import TierLadder
from storage.availability import is_unavailable
from storage.customers import CustomerRecord

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

SERVICES = web.AppKey("webapp_services", WebappServices)
HISTORY_PAGE = 10
MAX_BODY = 16 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Caller:
    """The signed-in Telegram user of a request, and the customer record behind them."""

    def __init__(self, init: InitData, customer: CustomerRecord | None, locale: str) -> None:
        self.init = init
        self.customer = customer
        self.locale = locale

    @property
    def user_id(self) -> int:
        return self.init.user.id


CALLER = web.RequestKey("webapp_caller", Caller)


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, "field": field}}, status=status
    )


def _address(request: web.Request) -> str:
    """The caller's address; behind a proxy on this machine, the one the proxy names."""
    remote = request.remote or ""
    forwarded = request.headers.get("X-Forwarded-For", "")
    if remote in {"127.0.0.1", "::1"} and forwarded:
        return forwarded.split(",")[-1].strip()
    return remote


@web.middleware
async def webapp_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error the page sees is JSON {"error": {code, message, field}}, never a 500 page."""
    try:
        return await handler(request)
    except TillProblem as problem:
        return error_response(problem.status, problem.code, problem.message, problem.field)
    except web.HTTPException as http:
        if http.status < 400:
            raise
        code = (http.reason or "error").lower().replace(" ", "_")
        response = error_response(http.status, code, http.reason or "error")
        if "Allow" in http.headers:  # RFC 9110: a 405 says which methods the resource takes
            response.headers["Allow"] = http.headers["Allow"]
        return response
    except Exception as error:
        if is_unavailable(error):
            return error_response(
                503, "database_unavailable", "the database does not answer; retry shortly"
            )
        log.exception("Mini App request %s %s failed", request.method, request.path)
        return error_response(500, "internal_error", "something went wrong on our side")


@web.middleware
async def tma_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /app/api/ call carries ``Authorization: tma <initData>``; failures are counted."""
    if not request.path.startswith("/app/api/"):
        return await handler(request)
    services = request.app[SERVICES]
    address = _address(request)
    wait = services.failures.retry_after(address)
    if wait is not None:
        response = error_response(
            429, "too_many_requests", f"too many failed sign-ins; retry in {wait} s"
        )
        response.headers["Retry-After"] = str(wait)
        return response
    try:
        raw = init_data_from_header(request.headers.get("Authorization"))
        init = validate_init_data(
            raw,
            bot_token=services.bot_token,
            max_age_seconds=services.rules.webapp.max_age_seconds,
            now=services.clock.now().timestamp(),
        )
    except InitDataError as error:
        services.failures.failed(address)
        return error_response(401, "unauthorized", str(error))
    customer = await services.customers.by_telegram_id(telegram_id=init.user.id)
    locale = resolve_locale(
        chosen=customer.locale if customer else None,
        language_code=customer.language_code if customer else init.user.language_code,
        default=services.i18n.default_locale,
    )
    request[CALLER] = Caller(init, customer, locale)
    return await handler(request)


# ---- helpers -----------------------------------------------------------------------------


def _caller(request: web.Request) -> Caller:
    caller: Caller = request[CALLER]
    return caller


def _member(request: web.Request) -> CustomerRecord:
    customer = _caller(request).customer
    if customer is None or customer.joined_at is None:
        raise TillProblem(404, "not_member", "you are not in the bonus program yet; send /start")
    return customer


async def _staff(request: web.Request) -> Caller:
    caller = _caller(request)
    services = request.app[SERVICES]
    if not await services.is_staff(caller.user_id, caller.init.user.first_name):
        raise TillProblem(403, "forbidden", "only the shop's staff may use the till")
    return caller


async def _body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise TillProblem(413, "body_too_large", "the body is larger than 16 KiB")
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise TillProblem(400, "invalid_body", first["msg"], field) from None


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(model.model_dump(mode="json"), status=status)


def _points(services: WebappServices, count: int, locale: str) -> str:
    return format_points(count, services.i18n, locale)


def _html(services: WebappServices, template: str, locale: str, **context: Any) -> str:
    return services.renderer.render(template, locale=locale, **context)


def _zone(services: WebappServices, customer: CustomerRecord) -> ZoneInfo:
    return ZoneInfo(customer.timezone) if customer.timezone else services.shop_zone


# ---- session -------------------------------------------------------------------------------


async def session(request: web.Request) -> web.Response:
    """Who the page talks to: the language, its texts, and which views this user has."""
    caller = _caller(request)
    services = request.app[SERVICES]
    customer = caller.customer
    return web.json_response(
        {
            "user_id": caller.user_id,
            "locale": caller.locale,
            "member": customer is not None and customer.joined_at is not None,
            "cashier": await services.is_staff(caller.user_id, caller.init.user.first_name),
            "texts": page_texts(services.i18n, caller.locale),
        }
    )


# ---- the member's own views -------------------------------------------------------------------


async def me(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    customer = _member(request)
    locale = _caller(request).locale
    zone = _zone(services, customer)
    view = await balance(services.ledger, customer_id=customer.id, clock=services.clock, zone=zone)
    ladder = TierLadder.from_rules(services.rules.bonus, currency=services.rules.shop.currency)
    status = await tier_status(
        services.ledger, customer_id=customer.id, ladder=ladder, clock=services.clock
    )
    card = member_card(customer)
    progress = None
    if status.gap is not None:
        span = status.gap.next_tier.threshold - status.tier.threshold
        progress = max(0.0, min(1.0, (status.spend - status.tier.threshold) / span)) if span else 1
    return web.json_response(
        {
            "name": customer.first_name,
            "card": card,
            "card_display": display_card_number(card),
            "available": view.available,
            "pending": view.pending,
            "available_text": _points(services, view.available, locale),
            "next_expiry": (
                {
                    "amount": view.nearest_expiry.amount,
                    "day": view.nearest_expiry.day.isoformat(),
                    "day_text": format_date(view.nearest_expiry.day, locale),
                }
                if view.nearest_expiry
                else None
            ),
            "tier": status.tier.name,
            "tier_text": _html(services, "_tiers.html", locale, name=status.tier.name),
            "tier_progress": progress,
            "balance_html": _html(services, "balance.html", locale, view=view, status=status),
        }
    )


async def my_qr(request: web.Request) -> web.Response:
    """A fresh one-time QR code naming the member (the page asks again before it expires)."""
    services = request.app[SERVICES]
    customer = _member(request)
    code = await services.till.issue_qr(customer_id=customer.id)
    image = segno.make(code.text, error="m")
    return web.json_response(
        {
            "text": code.text,
            "expires_at": code.expires_at.isoformat(),
            "expires_in": int((code.expires_at - services.clock.now()).total_seconds()),
            "svg": image.svg_data_uri(scale=6, border=2),
        }
    )


async def my_history(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    customer = _member(request)
    before = request.query.get("before")
    if before is not None and not (is_ascii_number(before) and 0 < len(before) <= 18):
        raise TillProblem(422, "invalid_before", "before is an entry id", "before")
    page = await history(
        services.ledger,
        customer_id=customer.id,
        limit=HISTORY_PAGE,
        before_id=int(before) if before else None,
    )
    return web.json_response(
        {
            "html": _html(
                services,
                "history.html",
                _caller(request).locale,
                entries=page.entries,
                newest=before is None,
            ),
            "next_before": page.next_before_id,
        }
    )


async def _reminders_answer(
    request: web.Request, customer: CustomerRecord, notice: str | None = None
) -> web.Response:
    services = request.app[SERVICES]
    items = await services.reminders.of_customer(customer_id=customer.id)
    return web.json_response(
        {
            "html": _html(
                services, "reminders_list.html", _caller(request).locale, reminders=items
            ),
            "items": [{"id": item.id, "name": item.name} for item in items],
            "notice": notice,
        }
    )


async def my_reminders(request: web.Request) -> web.Response:
    return await _reminders_answer(request, _member(request))


async def cancel_reminder(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    customer = _member(request)
    raw_id = request.match_info["reminder_id"]
    if not (is_ascii_number(raw_id) and len(raw_id) <= 18):
        raise TillProblem(404, "reminder_not_found", "no such reminder", "reminder_id")
    async with services.db.transaction():
        outcome = await cancel_one(
            services.reminders,
            reminder_id=int(raw_id),
            customer_id=customer.id,
            clock=services.clock,
        )
    if outcome.answer is Answer.NOT_YOURS:
        raise TillProblem(404, "reminder_not_found", "no such reminder", "reminder_id")
    return await _reminders_answer(request, customer, notice="reminder_cancelled")


async def my_time_zone(request: web.Request) -> web.Response:
    """The device's zone (Intl), which quiet hours then use; one the shop's country does not
    have is not stored (the customer may still pick one in /settings)."""
    services = request.app[SERVICES]
    customer = _member(request)
    body = await _body(request, TimeZoneBody)
    try:
        async with services.db.transaction():
            stored = await set_time_zone(
                services.preferences,
                customer_id=customer.id,
                zone=body.zone,
                shop_zone=services.shop_zone.key,
                clock=services.clock,
            )
    except UnknownZoneError:
        return web.json_response({"recorded": False, "zone": customer.timezone})
    return web.json_response({"recorded": True, "zone": stored})


# ---- the till -------------------------------------------------------------------------------


def _till_member(
    services: WebappServices, member: MemberAtTill, locale: str, *, needs_qr: bool
) -> TillMember:
    return TillMember(
        customer_id=member.customer_id,
        name=member.name,
        card=member.card,
        card_display=display_card_number(member.card),
        tier=member.tier,
        tier_text=_html(services, "_tiers.html", locale, name=member.tier),
        available=member.available,
        available_text=_points(services, member.available, locale),
        pending=member.pending,
        redeemable=member.redeemable,
        redeemable_text=(
            _points(services, member.redeemable, locale) if member.redeemable is not None else None
        ),
        visit=member.visit,
        can_redeem=member.visit is not None or not needs_qr,
    )


def _needs_qr(services: WebappServices) -> bool:
    return services.rules.bonus.redeem_requires_code


async def till_scan(request: web.Request) -> web.Response:
    caller = await _staff(request)
    services = request.app[SERVICES]
    body = await _body(request, ScanBody)
    member = await services.till.scan(qr=body.qr, cashier_id=caller.user_id, total=body.total)
    return _json(_till_member(services, member, caller.locale, needs_qr=_needs_qr(services)))


async def till_lookup(request: web.Request) -> web.Response:
    caller = await _staff(request)
    services = request.app[SERVICES]
    body = await _body(request, LookupBody)
    if body.customer_id is not None:
        member = await services.till.member(
            customer_id=body.customer_id,
            cashier_id=caller.user_id,
            total=body.total,
            visit=body.visit,
        )
    elif body.ref is not None:
        member = await services.till.look_up(
            ref=body.ref, cashier_id=caller.user_id, total=body.total
        )
    else:
        raise TillProblem(422, "invalid_customer_ref", "send ref or customer_id", "ref")
    return _json(_till_member(services, member, caller.locale, needs_qr=_needs_qr(services)))


async def till_purchase(request: web.Request) -> web.Response:
    caller = await _staff(request)
    services = request.app[SERVICES]
    body = await _body(request, CashierPurchaseBody)
    done = await services.till.purchase(
        cashier_id=caller.user_id,
        customer_id=body.customer_id,
        purchase_id=body.id,
        total=body.total,
        redeem=body.redeem,
        visit=body.visit,
        note=body.note,
        items=[
            RawItem(sku=item.sku, name=item.name, quantity=item.quantity, price=item.price)
            for item in body.items
        ],
    )
    locale = caller.locale
    receipt = done.receipt
    answer = PurchaseAnswer(
        order_id=receipt.order_id,
        recorded=done.recorded,
        points_accrued=receipt.points_accrued,
        points_redeemed=done.redeemed,
        available=receipt.balance.available,
        pending=receipt.balance.pending,
        earned_text=_points(services, receipt.points_accrued, locale),
        spent_text=_points(services, done.redeemed, locale),
        available_text=_points(services, receipt.balance.available, locale),
        total_text=format_money(_minor(body.total, services), services.rules.shop.currency, locale),
    )
    return _json(answer, status=201 if done.recorded else 200)


def _minor(total: str, services: WebappServices) -> int:
    return parse_money(total, currency=services.rules.shop.currency, field="total")
