"""The API's access log without personal data: customer references and tokens are masked."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, unquote, urlencode

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

MASK = "***"
# A path segment that names a person: a phone (any spelling), tg:<id>, @username, or a run of
# digits long enough to be a Telegram id or a card number. Order ids ("A-1001") and skus stay.
_PERSONAL = re.compile(r"^(?:tg:.*|@.*|\+?[\d\s\-()]{6,})$", re.IGNORECASE)
_SECRET_KEYS = re.compile(r"token|secret|password|passwd|key|auth|signature", re.IGNORECASE)
_DIGIT_RUN = re.compile(r"\+?\d[\d\s\-()]*\d")
_PERSONAL_DIGITS = 6  # as long as a Telegram id can be; amounts ("2580.00") are shorter
# The segment after these is always masked: a customer reference, or Tilda's webhook key.
_PERSON_SEGMENTS = frozenset({"customers", "tilda"})


def _mask_digits(value: str) -> str:
    return _DIGIT_RUN.sub(
        lambda run: MASK if sum(c.isdigit() for c in run[0]) >= _PERSONAL_DIGITS else run[0],
        value,
    )


def mask_segment(segment: str) -> str:
    text = unquote(segment)
    if text.lower().startswith("tg:"):
        return "tg:" + MASK
    if text.startswith("@"):
        return "@" + MASK
    return MASK


def mask_target(path: str, query: str = "") -> str:
    """``path?query`` as it may be logged: customer references, phones and Telegram ids in the
    path become ***, and so do secrets and phone-like values in the query."""
    segments = path.split("/")
    masked: list[str] = []
    for index, segment in enumerate(segments):
        after_person = index > 0 and segments[index - 1] in _PERSON_SEGMENTS
        if segment and (after_person or _PERSONAL.match(unquote(segment))):
            masked.append(mask_segment(segment))
        else:
            masked.append(segment)
    target = "/".join(masked)
    if query:
        pairs = [
            (key, MASK if _SECRET_KEYS.search(key) else _mask_digits(value))
            for key, value in parse_qsl(query, keep_blank_values=True)
        ]
        target += "?" + urlencode(pairs, safe="*")
    return target


class MaskedAccessLogger(AbstractAccessLogger):
    """One INFO line per request: method, masked target, status, size and time."""

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %s %.3fs',
            request.remote,
            request.method,
            mask_target(request.path, request.query_string),
            response.status,
            response.body_length,
            time,
        )
