"""Database outages on demand: "sending" marks refused by a trigger, PostgreSQL backends killed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.database import Database
from tests.support.databases import POSTGRES_URL, require_postgres

REFUSAL = "sending refused for the test"


async def refuse_sending(db: Database) -> None:
    """From now on every write that marks an outbox row "sending" fails (until allowed)."""
    async with db.engine.begin() as conn:
        if db.is_sqlite:
            await conn.exec_driver_sql(
                "CREATE TRIGGER refuse_sending BEFORE UPDATE OF state ON outbox "
                f"WHEN NEW.state = 'sending' BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
            )
        else:
            await conn.exec_driver_sql(
                "CREATE FUNCTION refuse_sending() RETURNS trigger AS $$ BEGIN "
                f"RAISE EXCEPTION '{REFUSAL}'; END $$ LANGUAGE plpgsql"
            )
            await conn.exec_driver_sql(
                "CREATE TRIGGER refuse_sending BEFORE UPDATE ON outbox FOR EACH ROW "
                "WHEN (NEW.state = 'sending') EXECUTE FUNCTION refuse_sending()"
            )


async def allow_sending(db: Database) -> None:
    async with db.engine.begin() as conn:
        if db.is_sqlite:
            await conn.exec_driver_sql("DROP TRIGGER refuse_sending")
        else:
            await conn.exec_driver_sql("DROP TRIGGER refuse_sending ON outbox")
            await conn.exec_driver_sql("DROP FUNCTION refuse_sending()")


@asynccontextmanager
async def postgres_role_database() -> AsyncIterator[tuple[str, Database]]:
    """A fresh PostgreSQL login role with a schema of its own name: a URL that a separate
    process (the real bot) can use as is (search_path "$user" finds the schema), and whose
    backends can be told apart (to kill them). Yields (url, a database handle on it)."""
    await require_postgres()
    role = f"outage_{uuid.uuid4().hex[:12]}"
    admin = Database(POSTGRES_URL)
    async with admin.engine.begin() as conn:
        await conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        await conn.execute(text(f'CREATE SCHEMA "{role}" AUTHORIZATION "{role}"'))
        # Only its own schema, never tables someone left in public.
        await conn.execute(text(f'ALTER ROLE "{role}" SET search_path = "{role}"'))
    prefix, _, rest = POSTGRES_URL.partition("://")
    url = f"{prefix}://{role}@{rest.partition('@')[2]}"
    db = Database(url)
    try:
        yield url, db
    finally:
        await db.close()
        async with admin.engine.begin() as conn:
            await terminate_backends(conn, role)
            await conn.execute(text(f'DROP SCHEMA "{role}" CASCADE'))
            await conn.execute(text(f'DROP ROLE "{role}"'))
        await admin.close()


async def terminate_backends(conn: AsyncConnection, role: str) -> int:
    result = await conn.execute(
        text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE usename = :role AND pid <> pg_backend_pid()"
        ),
        {"role": role},
    )
    return int(result.scalar_one())


async def kill_backends_for(role: str, *, seconds: float, every: float = 0.1) -> int:
    """Kill every backend of ``role`` again and again for ``seconds``: connections die in the
    middle of transactions, new ones die soon after. Returns how many were killed."""
    admin = Database(POSTGRES_URL)
    killed = 0
    try:
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        async with admin.engine.connect() as conn:
            while loop.time() < until:
                killed += await terminate_backends(conn, role)
                await conn.commit()
                await asyncio.sleep(every)
    finally:
        await admin.close()
    return killed


@asynccontextmanager
async def locked_out(role: str) -> AsyncIterator[None]:
    """PostgreSQL refuses ``role`` until the block ends: its backends killed, and new ones
    refused with "too many connections" (SQLSTATE 53300, as a server at its limit answers).
    Unlike killing backends now and then, no quick statement slips through in between."""
    admin = Database(POSTGRES_URL)
    try:
        async with admin.engine.begin() as conn:
            await conn.execute(text(f'ALTER ROLE "{role}" CONNECTION LIMIT 0'))
            await terminate_backends(conn, role)
        yield
    finally:
        async with admin.engine.begin() as conn:
            await conn.execute(text(f'ALTER ROLE "{role}" CONNECTION LIMIT -1'))
        await admin.close()
