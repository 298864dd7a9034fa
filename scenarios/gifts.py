"""Holiday gifts: /gift to all members or one tier, bigger for higher tiers, granted in batches."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Protocol

from scenarios.admin_bonus import MAX_POINTS, AdminProblem, Problem, checked_reason
from scenarios.audit import AuditEntry, AuditLog
from scenarios.clock import Clock
from scenarios.customers import SUPPORTED_LOCALES
from scenarios.delivery import Category, OutboxWriter, Outgoing, enqueue
from scenarios.ledger import PointsLedger
from scenarios.problems import is_ascii_number
from scenarios.tiers import TierLadder
from scenarios.transactions import UnitOfWork
from storage.gifts import GiftMember, GiftRecord, NewGift
from storage.ledger import EntryKind

GIFT = "gift"  # the audit action and the announcement's kind
_TIER_PREFIX = "tier:"


class UnknownTierError(AdminProblem):
    def __init__(self, name: str) -> None:
        super().__init__(Problem.USAGE)
        self.name = name


@dataclass(frozen=True, slots=True)
class GiftRequest:
    amount: int
    reason: str  # for members whose language has no version of its own
    tier: str | None  # None: every member
    reasons: Mapping[str, str] = field(default_factory=dict)  # locale -> the reason in it


# A line "uk: З Новим роком!" after the command gives the reason in that language.
_VERSION_LINE = re.compile(r"^\s*(" + "|".join(SUPPORTED_LOCALES) + r")\s*:\s*(.*)$", re.I)


def parse_gift(args: str | None, *, tier_names: tuple[str, ...]) -> GiftRequest:
    """``<amount> <reason…>`` with an optional ``tier:<name>`` word anywhere after the amount,
    then optional lines ``ru: …``, ``uk: …``, ``en: …`` with the reason in those languages."""
    main: list[str] = []
    reasons: dict[str, str] = {}
    for line in (args or "").splitlines():
        version = _VERSION_LINE.match(line)
        if version is None:
            main.append(line)
        else:
            reasons[version.group(1).lower()] = checked_reason(version.group(2))
    words = " ".join(main).split()
    if not words:
        raise AdminProblem(Problem.USAGE)
    amount = _positive_points(words[0])
    tier = None
    rest = []
    for word in words[1:]:
        if word.lower().startswith(_TIER_PREFIX) and tier is None:
            wanted = word[len(_TIER_PREFIX) :].lower()
            tier = next((name for name in tier_names if name.lower() == wanted), None)
            if tier is None:
                raise UnknownTierError(wanted)
        else:
            rest.append(word)
    return GiftRequest(
        amount=amount, reason=checked_reason(" ".join(rest)), tier=tier, reasons=reasons
    )


def _positive_points(text: str) -> int:
    if not is_ascii_number(text):
        raise AdminProblem(Problem.BAD_NUMBER)
    amount = int(text)
    if amount == 0:
        raise AdminProblem(Problem.ZERO)
    if amount > MAX_POINTS:
        raise AdminProblem(Problem.TOO_MANY)
    return amount


def share(amount: int, multiplier: Decimal) -> int:
    """A tier's points of a gift: the amount times its multiplier, rounded down."""
    return int((amount * multiplier).to_integral_value(rounding=ROUND_FLOOR))


def multipliers_for(ladder: TierLadder, configured: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Every tier's multiplier; tiers not in the config get 1."""
    return {tier.name: configured.get(tier.name, Decimal(1)) for tier in ladder.tiers}


class GiftStore(Protocol):
    async def create(self, gift: NewGift, *, now: datetime) -> int | None: ...

    async def by_key(self, *, request_key: str) -> GiftRecord | None: ...

    async def running(self) -> list[GiftRecord]: ...

    async def members_after(
        self, *, after_customer_id: int, limit: int, since: datetime | None
    ) -> list[GiftMember]: ...

    async def members_per_tier(
        self, *, thresholds: list[tuple[str, int]], since: datetime | None
    ) -> dict[str, int]: ...

    async def advance(self, *, gift_id: int, cursor: int, granted: int, points: int) -> None: ...

    async def finish(self, *, gift_id: int, now: datetime) -> bool: ...


@dataclass(frozen=True, slots=True)
class TierShare:
    tier: str
    members: int
    points_each: int


@dataclass(frozen=True, slots=True)
class GiftPlan:
    request: GiftRequest
    shares: tuple[TierShare, ...]  # tiers that get something, lowest first

    @property
    def recipients(self) -> int:
        return sum(item.members for item in self.shares)

    @property
    def points(self) -> int:
        return sum(item.members * item.points_each for item in self.shares)


async def plan_gift(
    store: GiftStore,
    request: GiftRequest,
    *,
    ladder: TierLadder,
    multipliers: Mapping[str, Decimal],
    clock: Clock,
) -> GiftPlan:
    """Who gets how much if the gift went out now (the confirmation shows it)."""
    counts = await store.members_per_tier(
        thresholds=[(tier.name, tier.threshold) for tier in ladder.tiers],
        since=ladder.window_start(clock.now()),
    )
    per_tier = multipliers_for(ladder, multipliers)
    shares = tuple(
        TierShare(
            tier=tier.name,
            members=counts.get(tier.name, 0),
            points_each=share(request.amount, per_tier[tier.name]),
        )
        for tier in ladder.tiers
        if request.tier in (None, tier.name) and counts.get(tier.name, 0)
    )
    # A multiplier below 1 may round a small gift down to nothing: those members get nothing.
    return GiftPlan(request=request, shares=tuple(s for s in shares if s.points_each > 0))


async def start_gift(
    store: GiftStore,
    audit: AuditLog,
    plan: GiftPlan,
    *,
    ladder: TierLadder,
    multipliers: Mapping[str, Decimal],
    admin_id: int,
    locale: str,
    key: str,
    clock: Clock,
) -> tuple[int, bool]:
    """Record the confirmed gift for the scheduler to grant; (gift id, started now).
    The confirmation's key makes a second press return the first gift."""
    request = plan.request
    gift_id = await store.create(
        NewGift(
            request_key=key,
            created_by=admin_id,
            locale=locale,
            amount=request.amount,
            reason=request.reason,
            reasons=dict(request.reasons),
            tier=request.tier,
            multipliers={
                name: str(value) for name, value in multipliers_for(ladder, multipliers).items()
            },
        ),
        now=clock.now(),
    )
    if gift_id is None:
        existing = await store.by_key(request_key=key)
        assert existing is not None, "the key conflicted, so its gift exists"
        return existing.id, False
    await audit.record(
        AuditEntry(
            at=clock.now(),
            actor_id=admin_id,
            action=GIFT,
            customer_id=None,
            details={
                "gift_id": gift_id,
                "amount": request.amount,
                "reason": request.reason,
                "tier": request.tier,
                "recipients": plan.recipients,
                "points": plan.points,
            },
        )
    )
    return gift_id, True


def gift_source(gift_id: int, customer_id: int) -> str:
    """Once per gift and member: a batch run again after a crash grants nothing twice."""
    return f"gift:{gift_id}:customer:{customer_id}"


class GiftRunner:
    """Grants running gifts, ``batch`` members per tick, each in its own short transaction;
    the cursor in the gift's row lets a restart resume where the last batch ended."""

    def __init__(
        self,
        *,
        uow: UnitOfWork,
        store: GiftStore,
        ledger: PointsLedger,
        ladder: TierLadder,
        outbox: OutboxWriter,
        clock: Clock,
        batch: int = 500,
    ) -> None:
        self._uow = uow
        self._store = store
        self._ledger = ledger
        self._ladder = ladder
        self._outbox = outbox
        self._clock = clock
        self._batch = batch

    async def tick(self) -> int:
        """One batch of the oldest running gift; returns the members granted."""
        running = await self._store.running()
        if not running:
            return 0
        return await self._run_batch(running[0])

    async def _run_batch(self, gift: GiftRecord) -> int:
        members = await self._store.members_after(
            after_customer_id=gift.cursor,
            limit=self._batch,
            since=self._ladder.window_start(self._clock.now()),
        )
        granted = points = 0
        for member in members:
            tier = self._ladder.tier_for(member.spend).name
            if gift.tier is not None and tier != gift.tier:
                continue
            each = share(gift.amount, Decimal(gift.multipliers.get(tier, "1")))
            if each <= 0:
                continue
            async with self._uow.transaction():  # the points and their announcement together
                await self._ledger.grant(
                    customer_id=member.id,
                    kind=EntryKind.GIFT,
                    source=gift_source(gift.id, member.id),
                    points=each,
                    reason=gift.reason,
                    actor_id=gift.created_by,
                )
                if member.marketing_opt_in and member.telegram_id is not None:
                    await enqueue(
                        self._outbox,
                        Outgoing(
                            dedupe_key=f"gift:{gift.id}:{member.id}",
                            chat_id=member.telegram_id,
                            category=Category.MARKETING,
                            kind=GIFT,
                            content={
                                "template": "gift.html",
                                "context": {
                                    "points": each,
                                    "reason": gift.reason,
                                    "reasons": dict(gift.reasons or {}),
                                },
                            },
                            customer_id=member.id,
                        ),
                        clock=self._clock,
                    )
            granted += 1
            points += each
        async with self._uow.transaction():
            if members:
                await self._store.advance(
                    gift_id=gift.id, cursor=members[-1].id, granted=granted, points=points
                )
            if len(members) < self._batch and await self._store.finish(
                gift_id=gift.id, now=self._clock.now()
            ):
                await self._report(gift, granted=granted, points=points)
        return granted

    async def _report(self, gift: GiftRecord, *, granted: int, points: int) -> None:
        await enqueue(
            self._outbox,
            Outgoing(
                dedupe_key=f"gift-done:{gift.id}",
                chat_id=gift.created_by,
                category=Category.TRANSACTIONAL,
                kind="gift_report",
                content={
                    "template": "gift_done.html",
                    "locale": gift.locale,
                    "context": {
                        "gift_id": gift.id,
                        "granted": gift.granted + granted,
                        "points": gift.points + points,
                    },
                },
            ),
            clock=self._clock,
        )
