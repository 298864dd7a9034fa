"""What an admin sees in /status: version, database, members, uptime."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from scenarios.clock import Clock


class CustomerCounter(Protocol):
    async def count(self) -> int: ...


class QueueCounter(Protocol):
    async def counts(self) -> dict[str, int]: ...


@dataclass(frozen=True, slots=True)
class BotStatus:
    version: str
    backend: str
    schema_revision: str | None
    customers: int
    uptime: timedelta
    # Outbox messages by state: what an operator checks when "nothing arrives".
    waiting: int = 0
    failed: int = 0
    unknown: int = 0
    # Store platforms' webhook deliveries; None when none ever arrived.
    webhooks: WebhookCounts | None = None


@dataclass(frozen=True, slots=True)
class WebhookCounts:
    waiting: int  # kept, not processed yet
    failed: int  # could not be mapped: `python main.py webhooks --failed` lists them
    skipped: int  # nothing for the bot in them (not paid yet, no phone)
    done: int


async def collect_status(
    *,
    customers: CustomerCounter,
    outbox: QueueCounter,
    version: str,
    backend: str,
    schema_revision: str | None,
    started_at: datetime,
    clock: Clock,
    inbox: QueueCounter | None = None,
) -> BotStatus:
    queue = await outbox.counts()
    deliveries = await inbox.counts() if inbox is not None else {}
    return BotStatus(
        version=version,
        backend=backend,
        schema_revision=schema_revision,
        customers=await customers.count(),
        uptime=clock.now() - started_at,
        waiting=sum(queue.get(state, 0) for state in ("pending", "held", "claimed", "sending")),
        failed=queue.get("failed", 0),
        unknown=queue.get("unknown", 0),
        webhooks=WebhookCounts(
            waiting=deliveries.get("pending", 0),
            failed=deliveries.get("failed", 0),
            skipped=deliveries.get("skipped", 0),
            done=deliveries.get("done", 0),
        )
        if deliveries
        else None,
    )
