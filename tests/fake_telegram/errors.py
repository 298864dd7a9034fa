"""Telegram-shaped API errors raised by method handlers and turned into error responses."""

from __future__ import annotations

from typing import Any

# The phrases Telegram puts in front of a description for each HTTP status.
STATUS_PREFIX: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"
POLL_CONFLICT = (
    "terminated by other getUpdates request; make sure that only one bot instance is running"
)
WEBHOOK_CONFLICT = (
    "can't use getUpdates method while webhook is active; use deleteWebhook to delete the "
    "webhook first"
)


class ApiError(Exception):
    """A failed Bot API call: HTTP status, Telegram description and optional retry_after."""

    def __init__(self, status: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> dict[str, Any]:
        """The JSON body Telegram sends for this error."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def describe(status: int, reason: str | None = None) -> str:
    """Telegram's description for a status: "Bad Request: chat not found" or a bare phrase."""
    prefix = STATUS_PREFIX.get(status, "Error")
    if not reason:
        return prefix
    if reason.startswith(prefix):
        return reason
    return f"{prefix}: {reason}"


def bad_request(reason: str) -> ApiError:
    """400 with Telegram's "Bad Request: ..." description."""
    return ApiError(400, describe(400, reason))


def forbidden(reason: str) -> ApiError:
    """403 with Telegram's "Forbidden: ..." description."""
    return ApiError(403, describe(403, reason))


def conflict(reason: str) -> ApiError:
    """409 with Telegram's "Conflict: ..." description."""
    return ApiError(409, describe(409, reason))


def too_many_requests(retry_after: int) -> ApiError:
    """429 exactly as Telegram words it, with parameters.retry_after."""
    return ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)


def status_error(status: int, reason: str | None = None, retry_after: int = 1) -> ApiError:
    """An error for an arbitrary status, used by fault injection."""
    if status == 429:
        return too_many_requests(retry_after)
    if status == 403 and not reason:
        reason = "bot was blocked by the user"
    if status == 400 and not reason:
        reason = "injected failure"
    return ApiError(status, describe(status, reason))
