"""aiogram FSM storage in the bot's own database, so wizards survive a restart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StateType, StorageKey

from scenarios.clock import Clock
from storage.fsm import SqlFsmStates


class DatabaseFsmStorage(BaseStorage):
    """FSM state and data in the ``fsm_states`` table; joins the update's transaction."""

    def __init__(self, states: SqlFsmStates, clock: Clock) -> None:
        self.states = states
        self.clock = clock
        self.keys = DefaultKeyBuilder(with_bot_id=True, with_destiny=True)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        name = state.state if isinstance(state, State) else state
        await self.states.set_state(key=self.keys.build(key), state=name, now=self.clock.now())

    async def get_state(self, key: StorageKey) -> str | None:
        state, _ = await self.states.get(key=self.keys.build(key))
        return state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self.states.set_data(key=self.keys.build(key), data=dict(data), now=self.clock.now())

    async def set_step(self, key: StorageKey, state: State, data: Mapping[str, Any]) -> None:
        """The state and its data in one write (handlers.wizard.go_to)."""
        await self.states.set(
            key=self.keys.build(key), state=state.state, data=dict(data), now=self.clock.now()
        )

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        _, data = await self.states.get(key=self.keys.build(key))
        return data

    async def close(self) -> None:
        """The database belongs to the application, which closes it."""
