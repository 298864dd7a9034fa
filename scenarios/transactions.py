"""The unit of work a scenario asks for: one transaction around what must happen together."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol


class UnitOfWork(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[object]: ...


class SavepointUnitOfWork(UnitOfWork, Protocol):
    """One that can also undo part of a transaction (a batch's one failing item)."""

    def savepoint(self) -> AbstractAsyncContextManager[object]: ...
