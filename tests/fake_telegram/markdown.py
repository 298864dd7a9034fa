"""Telegram's MarkdownV2 and legacy Markdown parse modes with tdlib-style error messages."""

from __future__ import annotations

from dataclasses import dataclass

from .text_builder import FormattedText, ParseError, TextBuilder, byte_offset

_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_V2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


@dataclass(slots=True)
class _Open:
    kind: str
    start: int
    byte_offset: int


def _read_until(text: str, i: int, terminator: str, escapable: str) -> tuple[str, int] | None:
    """Reads up to an unescaped terminator; inside code, pre and URLs only a few escapes work."""
    out: list[str] = []
    n = len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] in escapable:
            out.append(text[i + 1])
            i += 2
            continue
        if text.startswith(terminator, i):
            return "".join(out), i + len(terminator)
        out.append(char)
        i += 1
    return None


def _v2_code(text: str, i: int, builder: TextBuilder) -> int:
    """Handles `code` and ```pre``` blocks starting at i; returns the index after them."""
    offset = byte_offset(text, i)
    if text.startswith("```", i):
        read = _read_until(text, i + 3, "```", "`\\")
        if read is None:
            raise ParseError(f"Can't find end of Pre entity at byte offset {offset}")
        body, after = read
        language = ""
        first_line, newline, rest = body.partition("\n")
        if newline and first_line and " " not in first_line:
            language, body = first_line, rest
        start = builder.pos
        builder.append(body)
        if language:
            builder.add_entity(start, "pre", language=language)
        else:
            builder.add_entity(start, "pre")
        return after
    read = _read_until(text, i + 1, "`", "`\\")
    if read is None:
        raise ParseError(f"Can't find end of Code entity at byte offset {offset}")
    start = builder.pos
    builder.append(read[0])
    builder.add_entity(start, "code")
    return read[1]


def _v2_toggle(kind: str, stack: list[_Open], builder: TextBuilder, offset: int) -> None:
    """Closes the innermost entity of this kind or opens a new one."""
    if stack and stack[-1].kind == kind:
        builder.add_entity(stack.pop().start, kind)
        return
    if any(entry.kind == kind for entry in stack):
        top = stack[-1]
        raise ParseError(
            f"Can't find end of {_V2_NAMES[top.kind]} entity at byte offset {top.byte_offset}"
        )
    stack.append(_Open(kind, builder.pos, offset))


def _v2_link_end(text: str, i: int, stack: list[_Open], builder: TextBuilder) -> int:
    """Handles "](url)" closing a text link or custom emoji opened by "[" or "![" ."""
    entry = stack.pop()
    if not text.startswith("(", i + 1):
        # tdlib keeps "[text]" without a URL as plain text.
        return i + 1
    read = _read_until(text, i + 2, ")", ")\\")
    if read is None:
        raise ParseError(f"Can't find end of a URL at byte offset {byte_offset(text, i + 1)}")
    url, after = read
    if entry.kind == "custom_emoji":
        emoji_id = url.removeprefix("tg://emoji?id=")
        if not emoji_id.isdigit():
            raise ParseError("Invalid custom emoji URL specified")
        builder.add_entity(entry.start, "custom_emoji", custom_emoji_id=emoji_id)
    elif url:
        builder.add_entity(entry.start, "text_link", url=url)
    return after


def _v2_quote_line(
    text: str, i: int, builder: TextBuilder, quote: _Open | None
) -> tuple[int, _Open | None]:
    """At a line start: opens/continues a blockquote on '>' (or '**>' for expandable)."""
    if text.startswith("**>", i):
        return i + 3, quote or _Open("expandable_blockquote", builder.pos, byte_offset(text, i))
    if text.startswith(">", i):
        return i + 1, quote or _Open("blockquote", builder.pos, byte_offset(text, i))
    return i, quote


def parse_markdown_v2(text: str) -> FormattedText:
    """Parses MarkdownV2; every reserved character outside entities must be escaped."""
    builder = TextBuilder()
    stack: list[_Open] = []
    quote: _Open | None = None
    i, n = 0, len(text)
    line_start = True
    while i < n:
        if line_start:
            line_start = False
            i, quote = _v2_quote_line(text, i, builder, quote)
            if i >= n:
                break
        char = text[i]
        if char == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
            builder.append(text[i + 1])
            i += 2
            continue
        if char == "\n":
            at_quote_end = quote is not None and not text.startswith((">", "**>"), i + 1)
            if quote is not None and at_quote_end:
                builder.add_entity(quote.start, quote.kind)
                quote = None
            builder.append(char)
            line_start = True
            i += 1
            continue
        if char not in _RESERVED:
            j = i + 1
            while j < n and text[j] not in _RESERVED and text[j] not in "\\\n":
                j += 1
            builder.append(text[i:j])
            i = j
            continue
        offset = byte_offset(text, i)
        if char == "`":
            i = _v2_code(text, i, builder)
        elif char == "*":
            _v2_toggle("bold", stack, builder, offset)
            i += 1
        elif char == "_":
            underline = text.startswith("__", i) and (
                not stack or stack[-1].kind != "italic" or any(e.kind == "underline" for e in stack)
            )
            _v2_toggle("underline" if underline else "italic", stack, builder, offset)
            i += 2 if underline else 1
        elif char == "~":
            _v2_toggle("strikethrough", stack, builder, offset)
            i += 1
        elif char == "|" and text.startswith("||", i):
            if (
                quote is not None
                and quote.kind == "expandable_blockquote"
                and (i + 2 >= n or text[i + 2] == "\n")
            ):
                i += 2  # "||" ending an expandable blockquote is a marker, not a spoiler
            else:
                _v2_toggle("spoiler", stack, builder, offset)
                i += 2
        elif char == "[":
            stack.append(_Open("text_link", builder.pos, offset))
            i += 1
        elif char == "!" and text.startswith("![", i):
            stack.append(_Open("custom_emoji", builder.pos, offset))
            i += 2
        elif char == "]" and stack and stack[-1].kind in ("text_link", "custom_emoji"):
            i = _v2_link_end(text, i, stack, builder)
        else:
            raise ParseError(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
    if stack:
        top = stack[-1]
        raise ParseError(
            f"Can't find end of {_V2_NAMES[top.kind]} entity at byte offset {top.byte_offset}"
        )
    if quote is not None:
        builder.add_entity(quote.start, quote.kind)
    return builder.build()


_LEGACY_SIMPLE = {"*": "bold", "_": "italic"}


def parse_markdown(text: str) -> FormattedText:
    """Parses legacy Markdown: *bold*, _italic_, `code`, ```pre```, [text](url); no nesting."""
    builder = TextBuilder()
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            builder.append(text[i + 1])
            i += 2
            continue
        if char not in "_*`[":
            j = i + 1
            while j < n and text[j] not in "_*`[\\":
                j += 1
            builder.append(text[i:j])
            i = j
            continue
        error = ParseError(
            f"Can't find end of the entity starting at byte offset {byte_offset(text, i)}"
        )
        start = builder.pos
        if char in _LEGACY_SIMPLE:
            end = text.find(char, i + 1)
            if end == -1:
                raise error
            builder.append(text[i + 1 : end])
            builder.add_entity(start, _LEGACY_SIMPLE[char])
            i = end + 1
        elif text.startswith("```", i):
            end = text.find("```", i + 3)
            if end == -1:
                raise error
            body = text[i + 3 : end]
            first_line, newline, rest = body.partition("\n")
            language = first_line if newline and first_line and " " not in first_line else ""
            builder.append(rest if language else body)
            if language:
                builder.add_entity(start, "pre", language=language)
            else:
                builder.add_entity(start, "pre")
            i = end + 3
        elif char == "`":
            end = text.find("`", i + 1)
            if end == -1:
                raise error
            builder.append(text[i + 1 : end])
            builder.add_entity(start, "code")
            i = end + 1
        else:
            close = text.find("]", i + 1)
            if close == -1 or not text.startswith("(", close + 1):
                raise error
            url_end = text.find(")", close + 2)
            if url_end == -1:
                raise error
            builder.append(text[i + 1 : close])
            if url := text[close + 2 : url_end]:
                builder.add_entity(start, "text_link", url=url)
            i = url_end + 1
    return builder.build()
