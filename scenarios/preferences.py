"""/settings: a customer switches offers and each kind of service message on or off."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from scenarios.clock import Clock

MARKETING = "marketing"
# Service messages a customer may switch off; the delivery policy reads the same names.
SERVICE_KINDS: tuple[str, ...] = ("reminder", "rating_request", "expiry_warning")
SWITCHES: tuple[str, ...] = (MARKETING, *SERVICE_KINDS)


class UnknownSwitchError(ValueError):
    """A switch name that is not on the list (a forged button)."""


@dataclass(frozen=True, slots=True)
class Switches:
    """Which messages a customer gets: switch name → on."""

    states: dict[str, bool]


class PreferenceStore(Protocol):
    async def muted_kinds(self, *, customer_id: int) -> frozenset[str]: ...

    async def set_muted(
        self, *, customer_id: int, kind: str, muted: bool, now: datetime
    ) -> None: ...


class ConsentStore(Protocol):
    async def set_marketing_opt_in(
        self, *, customer_id: int, opt_in: bool, now: datetime
    ) -> None: ...


async def current(
    preferences: PreferenceStore, *, customer_id: int, marketing_opt_in: bool
) -> Switches:
    muted = await preferences.muted_kinds(customer_id=customer_id)
    states = {MARKETING: marketing_opt_in}
    states.update({kind: kind not in muted for kind in SERVICE_KINDS})
    return Switches(states)


async def toggle(
    preferences: PreferenceStore,
    consent: ConsentStore,
    *,
    customer_id: int,
    marketing_opt_in: bool,
    switch: str,
    clock: Clock,
) -> Switches:
    """Flip one switch; consent changes are stored with their time."""
    if switch not in SWITCHES:
        raise UnknownSwitchError(switch)
    before = await current(preferences, customer_id=customer_id, marketing_opt_in=marketing_opt_in)
    turn_on = not before.states[switch]
    if switch == MARKETING:
        await consent.set_marketing_opt_in(customer_id=customer_id, opt_in=turn_on, now=clock.now())
    else:
        await preferences.set_muted(
            customer_id=customer_id, kind=switch, muted=not turn_on, now=clock.now()
        )
    return Switches({**before.states, switch: turn_on})
