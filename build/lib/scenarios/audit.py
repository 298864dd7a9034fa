"""The audit trail: every admin or staff action that changes a customer is recorded."""

from __future__ import annotations

from typing import Protocol

from storage.audit import AuditEntry

__all__ = ["AuditEntry", "AuditLog"]


class AuditLog(Protocol):
    async def record(self, entry: AuditEntry) -> None: ...

    async def for_customer(self, *, customer_id: int, limit: int = 20) -> list[AuditEntry]: ...
