"""Admin commands on a customer's points: find the customer, preview and apply /bonus."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import tzinfo
from enum import StrEnum

from scenarios.audit import AuditEntry, AuditLog
from scenarios.clock import Clock
from scenarios.customers import CustomerMatcher, CustomerSource, parse_customer_ref
from scenarios.delivery import Category, OutboxWriter, Outgoing, enqueue
from scenarios.ledger import (
    MAX_REASON,
    BalanceView,
    LedgerReader,
    PointsLedger,
    TierStatus,
    balance,
    tier_status,
)
from scenarios.problems import InputProblem
from scenarios.tiers import TierLadder
from storage.customers import CustomerRecord

BONUS_ADJUSTMENT = "bonus_adjustment"  # the audit action and the customer's message kind
MAX_POINTS = 10_000_000
_POINTS = re.compile(r"^[+-]?\d{1,12}$")
_SIGNED = re.compile(r"^[+-]\d+$")


class Problem(StrEnum):
    USAGE = "usage"  # missing arguments
    BAD_NUMBER = "bad_number"
    ZERO = "zero"
    TOO_MANY = "too_many"
    MISSING_REASON = "missing_reason"
    REASON_TOO_LONG = "reason_too_long"
    BAD_REFERENCE = "bad_reference"
    UNKNOWN_CUSTOMER = "unknown_customer"
    NOT_A_MEMBER = "not_a_member"
    NOT_ENOUGH_POINTS = "not_enough_points"


class AdminProblem(Exception):
    """A command an admin typed that cannot be done; nothing was changed."""

    def __init__(self, problem: Problem, *, available: int = 0) -> None:
        super().__init__(problem.value)
        self.problem = problem
        self.available = available


@dataclass(frozen=True, slots=True)
class BonusRequest:
    ref: str
    points: int
    reason: str


def parse_points_change(text: str) -> int:
    """``+100`` or ``-50`` (a bare number adds); anything else, or 0, is refused."""
    if not _POINTS.match(text):
        raise AdminProblem(Problem.BAD_NUMBER)
    points = int(text)
    if points == 0:
        raise AdminProblem(Problem.ZERO)
    if abs(points) > MAX_POINTS:
        raise AdminProblem(Problem.TOO_MANY)
    return points


def checked_reason(text: str) -> str:
    reason = text.strip()
    if not reason:
        raise AdminProblem(Problem.MISSING_REASON)
    if len(reason) > MAX_REASON:
        raise AdminProblem(Problem.REASON_TOO_LONG)
    return reason


def parse_bonus(args: str | None) -> BonusRequest:
    """``<customer> <+N|-N> <reason…>``. The customer may take several words (a phone written
    "+7 999 123-45-67"): it ends before the first signed number; unsigned, it is one word."""
    words = (args or "").split()
    if len(words) < 2:
        raise AdminProblem(Problem.USAGE)
    split = next((i for i, word in enumerate(words) if i and _SIGNED.match(word)), 1)
    return BonusRequest(
        ref=" ".join(words[:split]),
        points=parse_points_change(words[split]),
        reason=checked_reason(" ".join(words[split + 1 :])),
    )


async def find_customer(
    matcher: CustomerMatcher, source: CustomerSource, ref: str, *, region: str | None
) -> CustomerRecord:
    """The customer a phone, card number, Telegram id or @username names."""
    try:
        parsed = parse_customer_ref(ref, region=region)
    except InputProblem:
        raise AdminProblem(Problem.BAD_REFERENCE) from None
    match = await matcher.match_customer(
        telegram_id=parsed.telegram_id,
        phone=parsed.phone,
        customer_id=parsed.customer_id,
        username=parsed.username,
        card=parsed.card,
    )
    record = await source.customer(customer_id=match.id) if match is not None else None
    if record is None:
        raise AdminProblem(Problem.UNKNOWN_CUSTOMER)
    return record


@dataclass(frozen=True, slots=True)
class AccountView:
    customer: CustomerRecord
    balance: BalanceView
    status: TierStatus


async def account_view(
    reader: LedgerReader,
    customer: CustomerRecord,
    *,
    ladder: TierLadder,
    clock: Clock,
    zone: tzinfo,
) -> AccountView:
    return AccountView(
        customer=customer,
        balance=await balance(reader, customer_id=customer.id, clock=clock, zone=zone),
        status=await tier_status(reader, customer_id=customer.id, ladder=ladder, clock=clock),
    )


@dataclass(frozen=True, slots=True)
class BonusPreview:
    account: AccountView
    points: int
    reason: str

    @property
    def before(self) -> int:
        return self.account.balance.available

    @property
    def to_debt(self) -> int:
        """Added points pay off the customer's debt first (the ledger settles it at once)."""
        return min(self.points, self.account.balance.debt) if self.points > 0 else 0

    @property
    def after(self) -> int:
        return self.before + self.points - self.to_debt

    @property
    def debt_after(self) -> int:
        return self.account.balance.debt - self.to_debt


def preview_bonus(account: AccountView, request: BonusRequest) -> BonusPreview:
    """What /bonus would do; a member only, and no removal beyond the available points."""
    if account.customer.joined_at is None:
        raise AdminProblem(Problem.NOT_A_MEMBER)
    available = account.balance.available
    if request.points < 0 and -request.points > available:
        raise AdminProblem(Problem.NOT_ENOUGH_POINTS, available=available)
    return BonusPreview(account=account, points=request.points, reason=request.reason)


@dataclass(frozen=True, slots=True)
class BonusApplied:
    entry_id: int
    replayed: bool  # the same confirmation was already applied: nothing new was written
    available: int  # after


async def apply_bonus(
    *,
    ledger: PointsLedger,
    reader: LedgerReader,
    audit: AuditLog,
    outbox: OutboxWriter,
    clock: Clock,
    customer: CustomerRecord,
    points: int,
    reason: str,
    admin_id: int,
    key: str,
) -> BonusApplied:
    """Write the adjustment (``key`` makes a second press a no-op), audit it and tell the
    customer; call it inside one unit of work so all three are committed together."""
    view = await balance(reader, customer_id=customer.id, clock=clock)
    if points < 0 and -points > view.available:
        raise AdminProblem(Problem.NOT_ENOUGH_POINTS, available=view.available)
    posted = await ledger.adjust(
        customer_id=customer.id, key=key, points=points, reason=reason, admin_id=admin_id
    )
    after = (await balance(reader, customer_id=customer.id, clock=clock)).available
    if posted.replayed:
        return BonusApplied(entry_id=posted.entry.id, replayed=True, available=after)
    await audit.record(
        AuditEntry(
            at=clock.now(),
            actor_id=admin_id,
            action=BONUS_ADJUSTMENT,
            customer_id=customer.id,
            details={"points": points, "reason": reason, "entry_id": posted.entry.id},
        )
    )
    if customer.telegram_id is not None:
        await enqueue(
            outbox,
            Outgoing(
                dedupe_key=f"bonus-adjustment:{posted.entry.id}",
                chat_id=customer.telegram_id,
                category=Category.TRANSACTIONAL,
                kind=BONUS_ADJUSTMENT,
                content={
                    "template": "bonus_adjusted.html",
                    "context": {"points": points, "reason": reason, "available": after},
                },
                customer_id=customer.id,
            ),
            clock=clock,
        )
    return BonusApplied(entry_id=posted.entry.id, replayed=False, available=after)
