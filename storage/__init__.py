"""Storage: schema, migrations, repositories and transactions for SQLite and PostgreSQL."""

from storage.database import Database, DatabaseUrlError, normalize_database_url

__all__ = ["Database", "DatabaseUrlError", "normalize_database_url"]
