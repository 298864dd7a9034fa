"""Uploaded files, generated file ids and the PhotoSize/Document objects Telegram returns."""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import re
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .errors import bad_request

# Telegram's thumbnail ladder: each size is the image scaled to fit this many pixels.
_PHOTO_SIDES = (90, 320, 800, 1280, 2560)
_FILE_ID = re.compile(r"^[A-Za-z0-9_\-]{20,}$")
_DEFAULT_DIMENSIONS = (800, 600)
_WRONG_FILE = "wrong file identifier/HTTP URL specified"


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file that arrived in a multipart request."""

    name: str
    filename: str
    content_type: str
    data: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(slots=True)
class StoredFile:
    """What the fake remembers about a file id so it can be reused in later sends."""

    kind: str
    file_id: str
    unique_id: str
    size: int
    data: bytes | None = field(default=None, repr=False)
    photo: list[dict[str, Any]] | None = None
    document: dict[str, Any] | None = None


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height of PNG, GIF, JPEG, WebP or BMP data; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data.startswith(b"BM") and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return width, abs(height)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _webp_dimensions(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_dimensions(data)
    return None


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        # SOF0..SOF15 carry the frame size, except DHT(C4), JPG(C8) and DAC(CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def photo_sizes(
    file_id: str, unique_id: str, width: int, height: int, size: int
) -> list[dict[str, Any]]:
    """The PhotoSize ladder Telegram generates; the largest entry reuses the given file id."""
    longest = max(width, height, 1)
    sides = [side for side in _PHOTO_SIDES if side < longest][:4]
    sides.append(min(longest, _PHOTO_SIDES[-1]))
    sizes = []
    for index, side in enumerate(sides):
        scale = side / longest
        w, h = max(round(width * scale), 1), max(round(height * scale), 1)
        last = index == len(sides) - 1
        sizes.append(
            {
                "file_id": file_id if last else f"{file_id[:-4]}{index:02d}{file_id[-2:]}",
                "file_unique_id": unique_id if last else f"{unique_id[:-2]}{index:02d}",
                "file_size": max(int(size * scale * scale), 1) if size else w * h // 8,
                "width": w,
                "height": h,
            }
        )
    return sizes


class FileRegistry:
    """Generates file ids and remembers uploaded files so file_id re-sends work."""

    def __init__(self, bot_id: int) -> None:
        self._bot_id = bot_id
        self._counter = 0
        self._files: dict[str, StoredFile] = {}

    def get(self, file_id: str) -> StoredFile | None:
        return self._files.get(file_id)

    def _new_ids(self, kind: str) -> tuple[str, str]:
        self._counter += 1
        digest = hashlib.sha256(f"{self._bot_id}:{kind}:{self._counter}".encode()).digest()
        # Real ids are base64url of a packed structure; the prefix mimics Telegram's.
        prefix = {"photo": "AgACAgIAAxkDAAI", "document": "BQACAgIAAxkDAAI"}.get(kind, "CAACAgIA")
        file_id = prefix + base64.urlsafe_b64encode(digest * 2).decode().rstrip("=")[:60]
        unique_id = "AQAD" + base64.urlsafe_b64encode(digest[:9]).decode()
        return file_id, unique_id

    def photo(self, source: Any) -> tuple[list[dict[str, Any]], StoredFile | None]:
        """PhotoSizes for an upload, a known/plausible file id or an HTTP URL."""
        if isinstance(source, UploadedFile):
            if not source.data:
                raise bad_request("file must be non-empty")
            dimensions = image_dimensions(source.data)
            if dimensions is None or min(dimensions) <= 0:
                raise bad_request("IMAGE_PROCESS_FAILED")
            file_id, unique_id = self._new_ids("photo")
            sizes = photo_sizes(file_id, unique_id, *dimensions, len(source.data))
            stored = StoredFile("photo", file_id, unique_id, len(source.data), source.data, sizes)
            self._register(stored)
            return sizes, stored
        if not isinstance(source, str) or not source:
            raise bad_request("there is no photo in the request")
        known = self._files.get(source)
        if known is not None and known.photo is not None:
            return known.photo, known
        if _is_url(source):
            file_id, unique_id = self._new_ids("photo")
            sizes = photo_sizes(file_id, unique_id, *_DEFAULT_DIMENSIONS, 0)
            stored = StoredFile("photo", file_id, unique_id, 0, None, sizes)
            self._register(stored)
            return sizes, stored
        if not _FILE_ID.match(source):
            raise bad_request(_WRONG_FILE)
        # A plausible id from elsewhere (e.g. production config): accept it as Telegram would.
        unique_id = "AQAD" + hashlib.sha256(source.encode()).hexdigest()[:12]
        return photo_sizes(source, unique_id, *_DEFAULT_DIMENSIONS, 0), None

    def document(self, source: Any) -> tuple[dict[str, Any], StoredFile | None]:
        """A Document object for an upload, a file id or an HTTP URL."""
        if isinstance(source, UploadedFile):
            if not source.data:
                raise bad_request("file must be non-empty")
            file_id, unique_id = self._new_ids("document")
            mime = (
                mimetypes.guess_type(source.filename)[0]
                or source.content_type
                or "application/octet-stream"
            )
            document = {
                "file_id": file_id,
                "file_unique_id": unique_id,
                "file_name": source.filename,
                "mime_type": mime,
                "file_size": len(source.data),
            }
            stored = StoredFile(
                "document", file_id, unique_id, len(source.data), source.data, document=document
            )
            self._register(stored)
            return document, stored
        if not isinstance(source, str) or not source:
            raise bad_request("there is no document in the request")
        known = self._files.get(source)
        if known is not None and known.document is not None:
            return known.document, known
        if _is_url(source):
            file_id, unique_id = self._new_ids("document")
            name = urlsplit(source).path.rsplit("/", 1)[-1] or "file"
            document = {
                "file_id": file_id,
                "file_unique_id": unique_id,
                "file_name": name,
                "mime_type": mimetypes.guess_type(name)[0] or "application/octet-stream",
            }
            stored = StoredFile("document", file_id, unique_id, 0, document=document)
            self._register(stored)
            return document, stored
        if not _FILE_ID.match(source):
            raise bad_request(_WRONG_FILE)
        unique_id = "AgAD" + hashlib.sha256(source.encode()).hexdigest()[:12]
        return {"file_id": source, "file_unique_id": unique_id}, None

    def _register(self, stored: StoredFile) -> None:
        self._files[stored.file_id] = stored
        for size in stored.photo or ():
            self._files.setdefault(size["file_id"], stored)


def _is_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
