"""Building blocks shared by the markup parsers: output builder, UTF-16 lengths, errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ParseError(Exception):
    """Malformed markup; the message becomes "can't parse entities: <message>"."""


@dataclass(frozen=True, slots=True)
class FormattedText:
    """Plain text as Telegram stores it plus entities with UTF-16 offsets."""

    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram entity offsets."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def byte_offset(text: str, index: int) -> int:
    """UTF-8 byte offset of a character index, as used in Telegram's parse errors."""
    return len(text[:index].encode("utf-8"))


class TextBuilder:
    """Accumulates output text while tracking its UTF-16 length for entity offsets."""

    __slots__ = ("_chunks", "entities", "pos")

    def __init__(self) -> None:
        self._chunks: list[str] = []
        self.pos = 0
        self.entities: list[dict[str, Any]] = []

    def append(self, chunk: str) -> None:
        if chunk:
            self._chunks.append(chunk)
            self.pos += utf16_len(chunk)

    def add_entity(self, start: int, kind: str, **extra: Any) -> None:
        """Adds an entity from start to the current position; empty ranges are dropped."""
        if self.pos > start:
            self.entities.append(
                {"type": kind, "offset": start, "length": self.pos - start, **extra}
            )

    def build(self) -> FormattedText:
        entities = sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))
        return FormattedText("".join(self._chunks), entities)
