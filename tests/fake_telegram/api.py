"""Executes one Bot API call: method lookup, fault injection, the handler and call recording."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError
from .faults import FaultInjector
from .methods import METHODS
from .params import Params
from .state import FakeState

_NOT_FOUND = {"ok": False, "error_code": 404, "description": "Not Found"}


@dataclass(slots=True)
class ApiCall:
    """One recorded call: what the bot asked and how the fake answered."""

    method: str
    params: Params = field(repr=False)
    status: int
    time: float
    result: Any = field(default=None, repr=False)
    description: str | None = None
    via_webhook: bool = False
    faulted: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 200


class BotApi:
    """The transport-independent core shared by HTTP requests and webhook replies."""

    def __init__(self, state: FakeState, faults: FaultInjector, *, record_calls: bool) -> None:
        self.state = state
        self.faults = faults
        self.record_calls = record_calls
        self.calls: list[ApiCall] = []

    def record(
        self,
        method: str,
        params: Params,
        status: int,
        body: dict[str, Any],
        *,
        via_webhook: bool = False,
        faulted: bool = False,
    ) -> None:
        if self.record_calls:
            result = body.get("result")
            if isinstance(result, dict):
                # Later edits mutate the stored message; keep what was actually answered.
                result = dict(result)
            self.calls.append(
                ApiCall(
                    method=method,
                    params=params,
                    status=status,
                    time=time.time(),
                    result=result,
                    description=body.get("description"),
                    via_webhook=via_webhook,
                    faulted=faulted,
                )
            )

    async def call(
        self, method: str, params: Params, *, via_webhook: bool = False
    ) -> tuple[int, dict[str, Any]]:
        """Runs a method and returns (HTTP status, Telegram JSON body)."""
        entry = METHODS.get(method.lower())
        if entry is None:
            self.record(method, params, 404, _NOT_FOUND, via_webhook=via_webhook)
            return 404, _NOT_FOUND
        name, handler = entry
        fault = self.faults.take(name.lower(), params)
        faulted = False
        body: dict[str, Any]
        try:
            if fault is not None:
                if fault.delay > 0:
                    await asyncio.sleep(fault.delay)
                error = fault.error()
                if error is not None:
                    faulted = True
                    raise error
            result = await handler(self.state, params)
        except ApiError as exc:
            status, body = exc.status, exc.payload()
            self.state.record_failure(params.get("chat_id"), name, exc.description)
        else:
            status, body = 200, {"ok": True, "result": result}
        self.record(name, params, status, body, via_webhook=via_webhook, faulted=faulted)
        return status, body
