"""Decoding Bot API parameters from query strings, JSON, urlencoded and multipart bodies."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web

from .errors import bad_request
from .media import UploadedFile

Params = dict[str, Any]

# Parameters that are strings even when they look like JSON ("123" text must stay text).
_STRING_PARAMS = frozenset(
    {
        "text", "caption", "parse_mode", "callback_query_id", "url", "secret_token",
        "language_code", "photo", "document", "action", "inline_message_id", "description",
        "short_description", "name", "ip_address", "emoji", "message_effect_id",
        "business_connection_id", "query_id", "switch_pm_text", "file_id", "title",
    }
)  # fmt: skip
_ATTACH = "attach://"


def coerce(name: str, value: str) -> Any:
    """Form values arrive as strings; aiogram JSON-encodes everything that is not a str."""
    if name in _STRING_PARAMS:
        return value
    if not value:
        return value
    first = value[0]
    if first in '[{"-tfn' or first.isdigit():
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def resolve_attachments(params: Params, files: dict[str, UploadedFile]) -> Params:
    """Replaces "attach://name" references (and directly uploaded fields) with the files."""
    for key, upload in files.items():
        if key not in params:
            params[key] = upload
    for key, value in list(params.items()):
        if isinstance(value, str) and value.startswith(_ATTACH):
            attached = files.get(value[len(_ATTACH) :])
            if attached is None:
                raise bad_request(f"there is no {key} in the request")
            params[key] = attached
    return params


def from_fields(fields: Iterable[tuple[str, str | UploadedFile]]) -> Params:
    """Builds params from decoded form fields."""
    params: Params = {}
    files: dict[str, UploadedFile] = {}
    for name, value in fields:
        if isinstance(value, UploadedFile):
            files[name] = value
        else:
            params[name] = coerce(name, value)
    return resolve_attachments(params, files)


async def read_request(request: web.Request) -> Params:
    """Reads parameters from any body encoding Telegram accepts, plus the query string."""
    # Parsing the query string is skipped when there is none: it is the hot path.
    fields: list[tuple[str, str | UploadedFile]] = (
        list(request.query.items()) if request.query_string else []
    )
    if request.method == "POST" and request.can_read_body:
        content_type = request.content_type
        if content_type == "application/json":
            try:
                body = json.loads(await request.read() or b"{}")
            except ValueError:
                raise bad_request("can't parse JSON encoded request") from None
            if not isinstance(body, dict):
                raise bad_request("can't parse JSON encoded request")
            params = from_fields(fields)
            params.update(body)
            return params
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    data = value.file.read()
                    fields.append(
                        (name, UploadedFile(name, value.filename, value.content_type, data))
                    )
                elif isinstance(value, str):
                    fields.append((name, value))
                else:
                    fields.append((name, bytes(value).decode("utf-8", "replace")))
    return from_fields(fields)


async def read_multipart(reader: MultipartReader) -> Params:
    """Parses a multipart body, e.g. a method aiogram returns in a webhook response."""
    fields: list[tuple[str, str | UploadedFile]] = []
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        if part.filename:
            data = await part.read()
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            fields.append((part.name, UploadedFile(part.name, part.filename, content_type, data)))
        else:
            fields.append((part.name, await part.text()))
    return from_fields(fields)


def as_int(value: Any) -> int | None:
    """An integer parameter given as int or numeric string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def as_bool(value: Any) -> bool:
    """Telegram accepts true/false, 1/0 and JSON booleans."""
    if isinstance(value, str):
        return value.lower() in ("true", "1")
    return bool(value)


def as_json(value: Any) -> Any:
    """Nested objects may still be JSON strings when sent in JSON bodies by other clients."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def required_int(params: Params, name: str, reason: str) -> int:
    value = as_int(params.get(name))
    if value is None:
        raise bad_request(reason)
    return value
