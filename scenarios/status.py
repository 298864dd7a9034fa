"""What an admin sees in /status: version, database, members, uptime."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from scenarios.clock import Clock


class CustomerCounter(Protocol):
    async def count(self) -> int: ...


@dataclass(frozen=True, slots=True)
class BotStatus:
    version: str
    backend: str
    schema_revision: str | None
    customers: int
    uptime: timedelta


async def collect_status(
    *,
    customers: CustomerCounter,
    version: str,
    backend: str,
    schema_revision: str | None,
    started_at: datetime,
    clock: Clock,
) -> BotStatus:
    return BotStatus(
        version=version,
        backend=backend,
        schema_revision=schema_revision,
        customers=await customers.count(),
        uptime=clock.now() - started_at,
    )
