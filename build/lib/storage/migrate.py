"""Apply the Alembic migrations in storage/migrations to a database, from code or the CLI."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from storage.database import Database

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any fixed number: two processes starting at once on PostgreSQL migrate one after the other.
_MIGRATION_LOCK_ID = 7_301_522


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


class MigrationError(RuntimeError):
    """A migration left rows that point nowhere; it was rolled back."""


async def migrate(db: Database, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; returns the revision the database is at afterwards."""
    if db.backend == "postgresql":
        async with db.engine.begin() as connection:
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
            )
            return await connection.run_sync(_upgrade, revision)
    # SQLite alters a table by copying it and dropping the original; with foreign keys enforced
    # that drop would cascade into (or be refused by) every table referring to it. So migrate
    # with enforcement off, and check the references by hand before committing.
    unchecked = Database(db.url, connect_args=db.connect_args, foreign_keys=False)
    try:
        async with unchecked.engine.begin() as connection:
            revision_now = await connection.run_sync(_upgrade, revision)
            dangling = (await connection.execute(text("PRAGMA foreign_key_check"))).all()
            if dangling:
                raise MigrationError(f"rows pointing nowhere after migrating: {dangling[:5]}")
            return revision_now
    finally:
        await unchecked.close()


async def current_revision(db: Database) -> str | None:
    async with db.read() as connection:
        revision: str | None = await connection.run_sync(_current)
    return revision


def _upgrade(connection: Connection, revision: str) -> str | None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
    return _current(connection)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
