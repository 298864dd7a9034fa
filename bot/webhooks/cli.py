"""``python main.py webhooks``: list the deliveries that failed, and send them round again."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bot.settings import Settings
from scenarios.clock import SystemClock
from storage.database import Database
from storage.inbox import InboxState, SqlInbox
from storage.inbox_file import inbox_database, prepare_inbox
from storage.migrate import migrate

SHOWN = 100


async def webhooks_command(
    settings: Settings, *, retry: Sequence[int] | None, limit: int = SHOWN
) -> int:
    """Without ``retry``: the failed deliveries with their reasons (exit 1 when there are
    some). With it: those ids (an empty list: all failed) back to the queue; the running bot
    takes them within seconds."""
    db = Database(settings.database_url)
    inbox_db = inbox_database(db)
    try:
        await migrate(db)
        await prepare_inbox(inbox_db, db)
        inbox = SqlInbox(inbox_db)
        if retry is not None:
            moved = await inbox.retry_failed(now=SystemClock().now(), ids=retry)
            print(f"{moved} failed deliveries queued again; the running bot processes them")
            return 0
        failed = await inbox.listed(state=InboxState.FAILED, limit=limit)
        counts = await inbox.counts()
    finally:
        if inbox_db is not db:
            await inbox_db.close()
        await db.close()
    summary = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
    print(f"webhook deliveries: {summary or 'none yet'}")
    for row in failed:
        received = row.received_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        print(
            f"#{row.id}  {row.platform} {row.topic}  received {received}, "
            f"{row.attempts} tries: {row.reason}",
            file=sys.stdout,
        )
    if len(failed) == limit:
        print(f"(the first {limit} shown)")
    if failed:
        print("retry them with: python main.py webhooks --retry [ID ...]")
    return 1 if failed else 0
