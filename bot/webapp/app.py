"""The Mini App under /app/ of the bot's aiohttp server: the page, its static files, its API."""

from __future__ import annotations

import time
from pathlib import Path

from aiohttp import web

from bot.api.app import DATABASE, OPENAPI_EXTRA, error_response, healthz
from bot.webapp import routes
from bot.webapp.auth import FailedSignIns
from bot.webapp.openapi import webapp_openapi
from bot.webapp.routes import SERVICES, tma_auth, webapp_errors
from bot.webapp.services import FAILED_SIGN_INS_PER_MINUTE, WebappServices
from bot.webapp.texts import boot_texts_json

STATIC_DIR = Path(__file__).resolve().parent / "static"
PREFIX = "/app/"
INDEX = web.AppKey("webapp_index", str)


def create_webapp(services: WebappServices) -> web.Application:
    """The /app/ sub-application: every /app/api/ call is signed in by initData."""
    app = web.Application(middlewares=[webapp_errors, tma_auth], client_max_size=64 * 1024)
    app[SERVICES] = services
    # The parent's middlewares (the shop API's error handler) look these up on this app too.
    app[DATABASE] = services.db
    index = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    app[INDEX] = index.replace("__BOOT_TEXTS__", boot_texts_json(services.i18n)).replace(
        "__VERSION__", str(int(time.time()))
    )
    app.router.add_get("/", page)
    app.router.add_static("/static/", STATIC_DIR, name="static")
    app.router.add_get("/api/session", routes.session)
    app.router.add_get("/api/me", routes.me)
    app.router.add_get("/api/me/qr", routes.my_qr)
    app.router.add_get("/api/me/history", routes.my_history)
    app.router.add_get("/api/me/reminders", routes.my_reminders)
    app.router.add_post("/api/me/reminders/{reminder_id}/cancel", routes.cancel_reminder)
    app.router.add_put("/api/me/time-zone", routes.my_time_zone)
    app.router.add_post("/api/till/scan", routes.till_scan)
    app.router.add_post("/api/till/lookup", routes.till_lookup)
    app.router.add_post("/api/till/purchases", routes.till_purchase)
    return app


def failed_sign_ins() -> FailedSignIns:
    return FailedSignIns(FAILED_SIGN_INS_PER_MINUTE)


async def page(request: web.Request) -> web.Response:
    response = web.Response(text=request.app[INDEX], content_type="text/html")
    # The page holds no data (the API does); a new release must not be served from a cache.
    response.headers["Cache-Control"] = "no-cache"
    return response


def mount_webapp(server: web.Application, webapp: web.Application) -> None:
    """Serve the Mini App under /app/ of ``server`` and document its API there."""
    server.add_subapp(PREFIX, webapp)
    server[OPENAPI_EXTRA] = webapp_openapi()


@web.middleware
async def _json_not_found(request: web.Request, handler: routes.Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as http:
        if http.status < 400:
            raise
        response = error_response(
            http.status, (http.reason or "error").lower().replace(" ", "_"), http.reason or "error"
        )
        if "Allow" in http.headers:
            response.headers["Allow"] = http.headers["Allow"]
        return response


async def _to_page(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect(PREFIX)


def create_webapp_server(webapp: web.Application, services: WebappServices) -> web.Application:
    """The server when the shop API is off (no API_TOKEN): only /app/ and /healthz."""
    server = web.Application(middlewares=[_json_not_found])
    server[DATABASE] = services.db
    server.router.add_get("/healthz", healthz)
    server.router.add_get("/app", _to_page)
    mount_webapp(server, webapp)
    return server
