"""A wizard's next step and its data in one write, where the FSM storage can do that."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import StorageKey


@runtime_checkable
class StepStorage(Protocol):
    """An FSM storage that sets a state and its data together (the database's one does)."""

    async def set_step(self, key: StorageKey, state: State, data: Mapping[str, Any]) -> None: ...


async def go_to(state: FSMContext, step: State, data: Mapping[str, Any]) -> None:
    """Move to ``step`` with ``data`` as the wizard's data: one row written instead of two
    (aiogram's set_state and set_data each write); other storages get the two calls."""
    if isinstance(state.storage, StepStorage):
        await state.storage.set_step(state.key, step, data)
        return
    await state.set_state(step)
    await state.set_data(data)


async def go_on_to(state: FSMContext, step: State, **more: Any) -> None:
    """Move to ``step``, adding ``more`` to the wizard's data (set_state + update_data)."""
    await go_to(state, step, {**await state.get_data(), **more})
