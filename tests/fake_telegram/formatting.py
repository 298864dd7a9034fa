"""Turns (text, parse_mode, entities) into Telegram's plain text + entities, with its checks."""

from __future__ import annotations

from typing import Any

from .errors import bad_request
from .html import parse_html
from .markdown import parse_markdown, parse_markdown_v2
from .text_builder import FormattedText, ParseError, utf16_len

# Characters tdlib trims from both ends of a message text.
_TRIM = " \t\n\r\x0b\x0c"


def _trim(formatted: FormattedText) -> FormattedText:
    """Strips surrounding whitespace like Telegram does, shifting and clipping entities."""
    text = formatted.text
    stripped = text.strip(_TRIM)
    if stripped == text:
        return formatted
    lead = len(text) - len(text.lstrip(_TRIM))
    shift = lead  # trimmed characters are ASCII, so characters == UTF-16 units
    end = utf16_len(stripped)
    entities = []
    for entity in formatted.entities:
        start = max(entity["offset"] - shift, 0)
        stop = min(entity["offset"] + entity["length"] - shift, end)
        if stop > start:
            entities.append({**entity, "offset": start, "length": stop - start})
    return FormattedText(stripped, entities)


def parse_formatted(text: str, parse_mode: Any, entities: Any) -> FormattedText:
    """Parses text the way Telegram does for a given parse_mode or explicit entities."""
    if isinstance(entities, list):
        # Explicit entities win over parse_mode, exactly like the Bot API.
        return _trim(FormattedText(text, [dict(e) for e in entities if isinstance(e, dict)]))
    if parse_mode is None or parse_mode == "":
        return _trim(FormattedText(text))
    if not isinstance(parse_mode, str):
        raise bad_request("unsupported parse_mode")
    mode = parse_mode.lower()
    try:
        if mode == "html":
            parsed = parse_html(text)
        elif mode == "markdownv2":
            parsed = parse_markdown_v2(text)
        elif mode == "markdown":
            parsed = parse_markdown(text)
        else:
            raise bad_request("unsupported parse_mode")
    except ParseError as exc:
        raise bad_request(f"can't parse entities: {exc}") from None
    return _trim(parsed)


def message_text(text: Any, parse_mode: Any, entities: Any) -> FormattedText:
    """A sendMessage/editMessageText text: non-empty and at most 4096 characters."""
    if text is None or text == "":
        raise bad_request("message text is empty")
    formatted = parse_formatted(str(text), parse_mode, entities)
    if not formatted.text:
        raise bad_request("message text is empty")
    if len(formatted.text) > 4096:
        raise bad_request("message is too long")
    return formatted


def caption_text(caption: Any, parse_mode: Any, entities: Any) -> FormattedText | None:
    """A media caption: optional and at most 1024 characters."""
    if caption is None or caption == "":
        return None
    formatted = parse_formatted(str(caption), parse_mode, entities)
    if len(formatted.text) > 1024:
        raise bad_request("message caption is too long")
    return formatted if formatted.text else None
