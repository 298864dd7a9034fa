"""Privacy rows: the bot's own secrets and the keyed hashes of erased customers' identities."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import select

from storage.database import Database
from storage.schema import app_secrets, erased_identities
from storage.sql import insert


class SqlSecrets:
    """Secrets kept in the database; every method joins the caller's transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_or_create(self, *, name: str, make: Callable[[], str], now: datetime) -> str:
        """The secret called ``name``; the first caller stores ``make()`` (once: a concurrent
        first caller's value wins and both read it)."""
        async with self._db.transaction() as conn:
            found = (
                await conn.execute(select(app_secrets.c.value).where(app_secrets.c.name == name))
            ).scalar_one_or_none()
            if found is not None:
                return str(found)
            await conn.execute(
                insert(conn, app_secrets)
                .values(name=name, value=make(), created_at=now)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            return str(
                (
                    await conn.execute(
                        select(app_secrets.c.value).where(app_secrets.c.name == name)
                    )
                ).scalar_one()
            )


class SqlErasedIdentities:
    """Keyed hashes of erased customers' phones and Telegram ids (no personal data)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def remember(self, *, digests: Sequence[tuple[str, str]], now: datetime) -> None:
        """``digests``: (kind, hex digest) pairs; one already known stays as it was."""
        if not digests:
            return
        async with self._db.transaction() as conn:
            for kind, digest in digests:
                await conn.execute(
                    insert(conn, erased_identities)
                    .values(digest=digest, kind=kind, erased_at=now)
                    .on_conflict_do_nothing(index_elements=["digest"])
                )

    async def known(self, *, digests: Sequence[str]) -> bool:
        """Whether any of these digests belonged to an erased customer."""
        if not digests:
            return False
        async with self._db.read() as conn:
            found = (
                await conn.execute(
                    select(erased_identities.c.digest)
                    .where(erased_identities.c.digest.in_(list(digests)))
                    .limit(1)
                )
            ).first()
        return found is not None
