"""Telegram's HTML parse mode, ported from tdlib's parse_html including its error messages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .text_builder import FormattedText, ParseError, TextBuilder, byte_offset

# tdlib's is_space(): these (and NUL) separate tag names and attributes.
_SPACES = frozenset(" \t\r\n\x0b\x00")
_SUPPORTED = frozenset(
    {
        "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins",
        "tg-spoiler", "tg-emoji", "span", "pre", "code", "blockquote",
    }
)  # fmt: skip
_SIMPLE_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "u": "underline",
    "ins": "underline",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_PLAIN_RUN = re.compile(r"[^<&]+")
_NAME_TOKEN = re.compile(r"[A-Za-z0-9.\-]*")


@dataclass(slots=True)
class _OpenTag:
    name: str
    start: int
    attributes: dict[str, str] = field(default_factory=dict)


def _decode_entity(text: str, i: int) -> tuple[str, int] | None:
    """Decodes "&...;" at i; unknown or malformed entities stay literal, as in tdlib."""
    end = text.find(";", i + 1, i + 12)
    if end == -1:
        return None
    body = text[i + 1 : end]
    if body.startswith("#"):
        digits = body[1:]
        try:
            code = int(digits[1:], 16) if digits[:1] in ("x", "X") else int(digits, 10)
        except ValueError:
            return None
        if not 0 < code <= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        return chr(code), end + 1 - i
    named = _NAMED_ENTITIES.get(body)
    if named is None:
        return None
    return named, end + 1 - i


def unescape(text: str) -> str:
    """Decodes the HTML entities Telegram understands in attribute values."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "&" and (decoded := _decode_entity(text, i)) is not None:
            out.append(decoded[0])
            i += decoded[1]
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _skip_spaces(text: str, i: int) -> int:
    while i < len(text) and text[i] in _SPACES:
        i += 1
    return i


def _read_start_tag(text: str, begin: int) -> tuple[_OpenTag, int]:
    """Parses "<name attr=...>" starting at begin; returns the tag and the index after '>'."""
    n = len(text)
    offset = byte_offset(text, begin)
    i = begin + 1
    while i < n and text[i] not in _SPACES and text[i] != ">":
        i += 1
    if i >= n:
        raise ParseError(f"Unclosed start tag at byte offset {offset}")
    name = text[begin + 1 : i].lower()
    if name not in _SUPPORTED:
        raise ParseError(f'Unsupported start tag "{name}" at byte offset {offset}')
    tag = _OpenTag(name, 0)
    while True:
        i = _skip_spaces(text, i)
        if i >= n:
            raise ParseError(f"Unclosed start tag at byte offset {offset}")
        if text[i] == ">":
            return tag, i + 1
        attr_begin = i
        while i < n and text[i] not in _SPACES and text[i] not in "=>":
            i += 1
        attr = text[attr_begin:i].lower()
        if not attr:
            raise ParseError(f'Empty attribute name in the tag "{name}" at byte offset {offset}')
        i = _skip_spaces(text, i)
        if i >= n:
            raise ParseError(f"Unclosed start tag at byte offset {offset}")
        if text[i] != "=":
            # Only <blockquote expandable> may carry a valueless attribute.
            if name == "blockquote" and attr == "expandable":
                tag.attributes[attr] = ""
                continue
            raise ParseError(
                "Expected equal sign in declaration of an attribute of the tag "
                f'"{name}" at byte offset {offset}'
            )
        i = _skip_spaces(text, i + 1)
        if i >= n:
            raise ParseError(f"Unclosed start tag at byte offset {offset}")
        if text[i] in "'\"":
            quote = text[i]
            close = text.find(quote, i + 1)
            if close == -1:
                raise ParseError(f"Unclosed start tag at byte offset {offset}")
            value = unescape(text[i + 1 : close])
            i = close + 1
        else:
            match = _NAME_TOKEN.match(text, i)
            token_end = match.end() if match else i
            value = text[i:token_end].lower()
            if token_end < n and text[token_end] not in _SPACES and text[token_end] != ">":
                raise ParseError(
                    f"Unexpected end of name token at byte offset {byte_offset(text, i)}"
                )
            i = token_end
        tag.attributes[attr] = value


def _read_end_tag(text: str, begin: int) -> tuple[str, int]:
    """Parses "</name>" at begin; returns the (possibly empty) name and the index after '>'."""
    n = len(text)
    i = begin + 2
    while i < n and text[i] not in _SPACES and text[i] != ">":
        i += 1
    name = text[begin + 2 : i].lower()
    i = _skip_spaces(text, i)
    if i >= n or text[i] != ">":
        raise ParseError(f"Unclosed end tag at byte offset {byte_offset(text, begin)}")
    return name, i + 1


def _validate_start(tag: _OpenTag, text: str, begin: int) -> None:
    if tag.name == "span" and tag.attributes.get("class") != "tg-spoiler":
        raise ParseError(
            f'Tag "span" must have class "tg-spoiler" at byte offset {byte_offset(text, begin)}'
        )
    if tag.name == "tg-emoji" and not tag.attributes.get("emoji-id", "").isdigit():
        raise ParseError("Invalid custom emoji identifier specified")


def _close(builder: TextBuilder, tag: _OpenTag) -> None:
    """Emits the entity for a closed tag."""
    name, attrs = tag.name, tag.attributes
    if name in _SIMPLE_TYPES:
        builder.add_entity(tag.start, _SIMPLE_TYPES[name])
    elif name == "a":
        # Without href tdlib keeps the text and creates no link.
        if href := attrs.get("href"):
            builder.add_entity(tag.start, "text_link", url=href)
    elif name == "code":
        language = attrs.get("class", "")
        if language.startswith("language-"):
            builder.add_entity(tag.start, "code", language=language[len("language-") :])
        else:
            builder.add_entity(tag.start, "code")
    elif name == "pre":
        _close_pre(builder, tag.start)
    elif name == "blockquote":
        kind = "expandable_blockquote" if "expandable" in attrs else "blockquote"
        builder.add_entity(tag.start, kind)
    elif name == "tg-emoji":
        builder.add_entity(tag.start, "custom_emoji", custom_emoji_id=attrs["emoji-id"])


def _close_pre(builder: TextBuilder, start: int) -> None:
    """<pre><code class="language-x"> collapses into one pre entity carrying the language."""
    language = None
    for entity in builder.entities:
        same_range = entity["offset"] == start and entity["length"] == builder.pos - start
        if entity["type"] == "code" and same_range:
            language = entity.pop("language", None)
            builder.entities.remove(entity)
            break
    if language:
        builder.add_entity(start, "pre", language=language)
    else:
        builder.add_entity(start, "pre")


def parse_html(text: str) -> FormattedText:
    """Parses Telegram HTML into plain text and entities or raises ParseError like Telegram."""
    builder = TextBuilder()
    stack: list[_OpenTag] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "&":
            decoded = _decode_entity(text, i)
            if decoded is None:
                builder.append("&")
                i += 1
            else:
                builder.append(decoded[0])
                i += decoded[1]
            continue
        if char != "<":
            match = _PLAIN_RUN.match(text, i)
            assert match is not None
            builder.append(match.group())
            i = match.end()
            continue
        if i + 1 < n and text[i + 1] == "/":
            if not stack:
                raise ParseError(f"Unexpected end tag at byte offset {byte_offset(text, i)}")
            end_name, after = _read_end_tag(text, i)
            tag = stack[-1]
            if end_name and end_name != tag.name:
                raise ParseError(
                    f"Unmatched end tag at byte offset {byte_offset(text, i)}, "
                    f'expected "</{tag.name}>", found "</{end_name}>"'
                )
            stack.pop()
            _close(builder, tag)
            i = after
            continue
        tag, after = _read_start_tag(text, i)
        _validate_start(tag, text, i)
        tag.start = builder.pos
        stack.append(tag)
        i = after
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    return builder.build()
