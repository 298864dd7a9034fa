"""/settings: a customer switches offers and each kind of service message on or off, and
picks their time zone (quiet hours and "per day" caps follow it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from babel.core import get_global

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


# ---- the customer's time zone --------------------------------------------------------------


class UnknownZoneError(ValueError):
    """A zone that is not among the shop's country's choices (a forged or stale button)."""


class ZoneStore(Protocol):
    async def set_time_zone(self, *, customer_id: int, zone: str | None) -> None: ...


def zone_choices(shop_zone: str, now: datetime) -> tuple[str, ...]:
    """The zones a customer of this shop may pick: one per UTC offset of the shop's country
    (CLDR's territory data, which Babel ships), earliest offset first. A shop whose zone names
    no country (UTC) offers only its own.

    Within one offset the shop's own zone wins, then the zone a CLDR metazone is named after
    (Europe/Samara for "Samara time", not Europe/Ulyanovsk), then a zone the Windows mapping
    names, then the first by name.
    """
    territory = get_global("zone_territories").get(shop_zone)
    zones = sorted(get_global("territory_zones").get(territory, ())) if territory else []
    if shop_zone not in zones:
        zones.append(shop_zone)
    golden = set(get_global("windows_zone_mapping").values())
    metazones = get_global("meta_zones")

    def rank(zone: str) -> tuple[bool, bool, bool, str]:
        named = metazones.get(zone) == zone.rsplit("/", 1)[-1]
        return (zone != shop_zone, not named, zone not in golden, zone)

    chosen: dict[timedelta, str] = {}
    for zone in sorted(zones, key=rank):
        try:
            offset = now.astimezone(ZoneInfo(zone)).utcoffset()
        except (KeyError, ValueError):  # CLDR knows a zone this system's tzdata lacks
            continue
        if offset is not None:
            chosen.setdefault(offset, zone)
    return tuple(chosen[offset] for offset in sorted(chosen))


async def set_time_zone(
    store: ZoneStore, *, customer_id: int, zone: str, shop_zone: str, clock: Clock
) -> str | None:
    """Store the customer's pick; the shop's own zone is stored as none (they follow the shop
    if it ever moves). What is stored; UnknownZoneError for a zone not on offer."""
    if zone not in zone_choices(shop_zone, clock.now()):
        raise UnknownZoneError(zone)
    stored = None if zone == shop_zone else zone
    await store.set_time_zone(customer_id=customer_id, zone=stored)
    return stored
