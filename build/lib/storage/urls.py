"""Database URLs: the accepted spellings and the default, without importing a database driver."""

from __future__ import annotations

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/bot.sqlite3"

_SCHEMES = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


class DatabaseUrlError(ValueError):
    """The database URL names a backend or driver this product does not run on."""


def normalize_database_url(url: str) -> str:
    """Map the accepted spellings of a database URL onto the async drivers we ship."""
    scheme, sep, rest = url.strip().partition("://")
    driver = _SCHEMES.get(scheme.lower())
    if not sep or driver is None:
        raise DatabaseUrlError(
            "expected sqlite:///path/to/file.sqlite3 or postgresql://user@host:5432/dbname"
        )
    if driver.startswith("sqlite") and not rest.startswith("/"):
        raise DatabaseUrlError("a SQLite URL needs three slashes: sqlite:///./data/bot.sqlite3")
    return f"{driver}://{rest}"
