"""Storage: schema, migrations, repositories and transactions for SQLite and PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storage.urls import DatabaseUrlError, normalize_database_url

if TYPE_CHECKING:
    from storage.database import Database

__all__ = ["Database", "DatabaseUrlError", "normalize_database_url"]


def __getattr__(name: str) -> Any:
    # Lazily, so that reading a URL (settings, --help) does not import SQLAlchemy.
    if name == "Database":
        from storage.database import Database

        return Database
    raise AttributeError(name)
