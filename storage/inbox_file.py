"""On SQLite the webhook inbox lives in a file of its own, beside the main one.

A platform waits for its 200 only while one row is written. In the main file that row would
queue for SQLite's one writer behind button presses and orders; in its own file it has a
writer of its own. Applying a delivery is replay-safe (the order's number, the refund id, a
status moved forward only), so marking it done after the main file committed cannot make it
act twice: a crash in between applies it again as a no-op.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import delete, make_url, select, text
from sqlalchemy.engine import Connection

from storage.database import Database
from storage.inbox import FINISHED
from storage.schema import webhook_inbox
from storage.sql import insert

MOVED_AT_ONCE = 500


def inbox_path(database: Path) -> Path:
    """``data/bot.sqlite3`` keeps its inbox in ``data/bot.inbox.sqlite3``."""
    return database.with_name(f"{database.stem}.inbox{database.suffix}")


def inbox_database(db: Database) -> Database:
    """The database the webhook inbox is kept in: a file beside an SQLite file, otherwise
    (PostgreSQL, an in-memory SQLite) the same database."""
    path = db.sqlite_path
    if path is None:
        return db
    url = make_url(db.url).set(database=str(inbox_path(path)))
    return Database(
        url.render_as_string(hide_password=False), connect_args=db.connect_args, strict=db.strict
    )


async def prepare_inbox(inbox_db: Database, db: Database) -> None:
    """Create the inbox table in its own file, and move there the deliveries the main file
    kept before the inbox had a file of its own (they keep their ids). Run after migrating."""
    if inbox_db is db:
        return
    async with inbox_db.transaction() as conn:
        await conn.run_sync(_create_table)
    while True:
        async with db.transaction() as main:
            rows = (
                await main.execute(
                    select(webhook_inbox).order_by(webhook_inbox.c.id).limit(MOVED_AT_ONCE)
                )
            ).all()
            if not rows:
                return
            # Written to the inbox's file before they leave the main one: a crash in between
            # leaves a copy in both, and the next start skips the ones already moved.
            async with inbox_db.transaction() as own:
                await own.execute(
                    insert(own, webhook_inbox).on_conflict_do_nothing(),
                    [_kept(dict(row._mapping)) for row in rows],
                )
            await main.execute(
                delete(webhook_inbox).where(webhook_inbox.c.id.in_([row.id for row in rows]))
            )


def _kept(row: dict[str, Any]) -> dict[str, Any]:
    """A finished delivery moves without its body, as the worker now leaves it."""
    if row["state"] in FINISHED:
        row["body"] = ""
    return row


def _create_table(connection: Connection) -> None:
    """The table, or the indexes a file made by an earlier version lacks (as 0025 does)."""
    webhook_inbox.create(connection, checkfirst=True)
    for index in webhook_inbox.indexes:
        index.create(connection, checkfirst=True)
    connection.execute(text("DROP INDEX IF EXISTS ix_webhook_inbox_state_due"))
