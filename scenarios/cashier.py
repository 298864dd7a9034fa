"""The till in the Mini App: one-time card QR codes, member look-ups and in-store purchases."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from scenarios.audit import AuditLog
from scenarios.cards import member_card
from scenarios.clock import Clock
from scenarios.customers import CustomerMatcher, CustomerSource, parse_customer_ref, region_for
from scenarios.ledger import LedgerReader, balance, redeem_limit, tier_status
from scenarios.orders import (
    OrderDesk,
    OrderProblem,
    RawCustomer,
    RawItem,
    RawOrder,
    Receipt,
    parse_money,
)
from scenarios.problems import ProblemKind, is_ascii_number
from scenarios.rules import Bonus, Webapp
from scenarios.tiers import TierLadder, percent_to_basis_points
from scenarios.transactions import UnitOfWork
from storage.audit import AuditEntry
from storage.customers import CustomerRecord
from storage.qr_tokens import QrScan
from storage.redeem_codes import CodeCheck

QR_PREFIX = "QR1"
_NONCE_BYTES = 12  # 16 characters of base64url
# What a purchase id from the till may be: a UUID the page makes once per purchase.
_PURCHASE_ID = re.compile(r"^[A-Za-z0-9-]{8,40}$")
ORDER_PREFIX = "till-"
IN_STORE_SKU = "in-store"
AUDIT_ACTION = "till_purchase"


class TillProblem(Exception):
    """Something the till refuses; nothing has changed when it is raised. ``status`` is the
    HTTP status the Mini App's API answers with."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


# ---- the card's QR code -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QrCode:
    text: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class QrClaim:
    customer_id: int
    nonce: str
    expires_at: datetime


def _signature(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue_qr(key: bytes, *, customer_id: int, now: datetime, ttl: timedelta) -> QrCode:
    """A code naming the member, signed, valid ``ttl`` and (see ``Till.scan``) usable once.

    QR1.<customer id>.<random nonce>.<expiry, unix seconds>.<HMAC-SHA256>: nothing in it is
    secret but the signature, which only this shop's key makes."""
    nonce = base64.urlsafe_b64encode(secrets.token_bytes(_NONCE_BYTES)).decode()
    expires = int((now + ttl).timestamp())
    payload = f"{QR_PREFIX}.{customer_id}.{nonce}.{expires}"
    return QrCode(
        text=f"{payload}.{_signature(key, payload)}",
        expires_at=datetime.fromtimestamp(expires, UTC),
    )


def read_qr(key: bytes, text: str, *, now: datetime) -> QrClaim:
    """The member a scanned code names; refused when it is not ours or has expired."""
    parts = text.strip().split(".")
    invalid = TillProblem(422, "qr_invalid", "this is not a member card's QR code", "qr")
    if len(parts) != 5 or parts[0] != QR_PREFIX:
        raise invalid
    prefix, customer, nonce, expires, signature = parts
    if not (is_ascii_number(customer) and is_ascii_number(expires) and len(nonce) == 16):
        raise invalid
    expected = _signature(key, f"{prefix}.{customer}.{nonce}.{expires}")
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise invalid
    expires_at = datetime.fromtimestamp(int(expires), UTC)
    if now >= expires_at:
        raise TillProblem(
            409, "qr_expired", "this QR code has expired; ask for the one on screen now", "qr"
        )
    return QrClaim(customer_id=int(customer), nonce=nonce, expires_at=expires_at)


# ---- ports ----------------------------------------------------------------------------------


class SecretStore(Protocol):
    async def get_or_create(self, *, name: str, make: Callable[[], str], now: datetime) -> str: ...


class QrKey:
    """The key that signs card QR codes: made once and kept in the database, so every bot
    process (and a restarted one) reads the codes the others signed."""

    NAME = "webapp_qr_key"

    def __init__(self, store: SecretStore, *, clock: Clock) -> None:
        self._secrets = store
        self._clock = clock
        self._key: bytes | None = None

    async def get(self) -> bytes:
        if self._key is None:
            value = await self._secrets.get_or_create(
                name=self.NAME, make=lambda: secrets.token_hex(32), now=self._clock.now()
            )
            self._key = bytes.fromhex(value)
        return self._key


class QrScans(Protocol):
    async def claim(
        self, *, nonce: str, customer_id: int, cashier_id: int, now: datetime
    ) -> bool: ...

    async def get(self, *, nonce: str, lock: bool = False) -> QrScan | None: ...

    async def bind_order(self, *, nonce: str, order_ref: str) -> bool: ...


class QrVisitProof:
    """The order desk's proof that a member is at the till, when the shop asks for one: the
    QR code the cashier scanned (its nonce), within ``webapp.visit_minutes`` of the scan, for
    one purchase. Runs inside the desk's transaction, so the purchase and the proof commit
    together or not at all."""

    def __init__(self, scans: QrScans, *, clock: Clock, visit: timedelta) -> None:
        self._scans = scans
        self._clock = clock
        self._visit = visit

    async def spend(self, *, customer_id: int, code: str, order_ref: str) -> CodeCheck:
        scan = await self._scans.get(nonce=code, lock=True)
        if scan is None or scan.customer_id != customer_id:
            return CodeCheck.UNKNOWN
        if scan.order_ref is not None and scan.order_ref != order_ref:
            return CodeCheck.USED
        if self._clock.now() > scan.scanned_at + self._visit:
            return CodeCheck.EXPIRED
        if scan.order_ref is None and not await self._scans.bind_order(
            nonce=code, order_ref=order_ref
        ):
            return CodeCheck.USED
        return CodeCheck.ACCEPTED

    async def count_wrong(self, *, customer_id: int) -> int:
        """Nothing to count: a visit id is 96 random bits that only the scan gave the till,
        so trying ids locks nobody's points out (unlike six-digit /code codes)."""
        return 0


# ---- what the cashier sees --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberAtTill:
    customer_id: int
    name: str | None
    card: str
    tier: str
    cashback_bp: int
    available: int
    pending: int
    redeemable: int | None  # points that may pay for the asked total (None: no total asked)
    visit: str | None  # the scanned code's nonce, which lets this purchase spend points


@dataclass(frozen=True, slots=True)
class Purchase:
    receipt: Receipt
    recorded: bool  # False: the same purchase again (a double tap), nothing written
    redeemed: int


def purchase_order_id(purchase_id: str) -> str:
    """The order id of a till purchase: the page makes the purchase id once per purchase, so a
    repeated tap or a retried request names the same order and is recorded once."""
    if not _PURCHASE_ID.match(purchase_id):
        raise TillProblem(
            422, "invalid_purchase_id", "a purchase id is 8-40 letters, digits or dashes", "id"
        )
    return ORDER_PREFIX + purchase_id


class Till:
    """The cashier's actions. Staff rights are checked by the caller (bot/webapp)."""

    def __init__(
        self,
        *,
        uow: UnitOfWork,
        desk: OrderDesk,
        scans: QrScans,
        members: CustomerSource,
        finder: CustomerMatcher,
        reader: LedgerReader,
        audit: AuditLog,
        bonus: Bonus,
        ladder: TierLadder,
        webapp: Webapp,
        currency: str,
        clock: Clock,
        qr_key: QrKey,
    ) -> None:
        self._uow = uow
        self._desk = desk
        self._scans = scans
        self._members = members
        self._finder = finder
        self._reader = reader
        self._audit = audit
        self._bonus = bonus
        self._ladder = ladder
        self._webapp = webapp
        self._currency = currency
        self._clock = clock
        self._key = qr_key
        self._share_bp = percent_to_basis_points(bonus.max_redeem_share)

    async def issue_qr(self, *, customer_id: int) -> QrCode:
        return issue_qr(
            await self._key.get(),
            customer_id=customer_id,
            now=self._clock.now(),
            ttl=timedelta(seconds=self._webapp.qr_seconds),
        )

    async def scan(self, *, qr: str, cashier_id: int, total: str | None = None) -> MemberAtTill:
        """A member's QR code at the till: it works once; a used or expired one changes nothing."""
        now = self._clock.now()
        claim = read_qr(await self._key.get(), qr, now=now)
        async with self._uow.transaction():
            member = await self._members.customer(customer_id=claim.customer_id)
            if member is None or member.joined_at is None:
                raise TillProblem(404, "customer_not_found", "no member with this card", "qr")
            _not_own_card(member, cashier_id=cashier_id)
            if not await self._scans.claim(
                nonce=claim.nonce, customer_id=member.id, cashier_id=cashier_id, now=now
            ):
                raise TillProblem(
                    409, "qr_used", "this QR code was already used; ask for the one on screen", "qr"
                )
        return await self._view(member, total=total, visit=claim.nonce)

    async def look_up(self, *, ref: str, cashier_id: int, total: str | None = None) -> MemberAtTill:
        """A member by card number or phone typed at the till (earns points; spending them needs
        the QR code when the shop asks for proof)."""
        try:
            parsed = parse_customer_ref(ref, region=region_for(self._currency))
        except OrderProblem as problem:
            raise TillProblem(422, problem.code, problem.message, "ref") from None
        if parsed.card is None and parsed.phone is None:
            raise TillProblem(
                422, "invalid_customer_ref", "type the card number or the phone", "ref"
            )
        match = await self._finder.match_customer(
            telegram_id=None, phone=parsed.phone, card=parsed.card
        )
        member = await self._members.customer(customer_id=match.id) if match else None
        if member is None or member.joined_at is None:
            raise TillProblem(404, "customer_not_found", "no member with this reference", "ref")
        _not_own_card(member, cashier_id=cashier_id)
        return await self._view(member, total=total, visit=None)

    async def member(
        self, *, customer_id: int, cashier_id: int, total: str | None, visit: str | None
    ) -> MemberAtTill:
        """The member again, e.g. with the purchase's total to show the cap."""
        member = await self._members.customer(customer_id=customer_id)
        if member is None or member.joined_at is None:
            raise TillProblem(404, "customer_not_found", "no such member", "customer_id")
        _not_own_card(member, cashier_id=cashier_id)
        return await self._view(member, total=total, visit=visit)

    async def _view(
        self, member: CustomerRecord, *, total: str | None, visit: str | None
    ) -> MemberAtTill:
        status = await tier_status(
            self._reader, customer_id=member.id, ladder=self._ladder, clock=self._clock
        )
        points = await balance(self._reader, customer_id=member.id, clock=self._clock)
        redeemable = None
        if total is not None:
            limit = redeem_limit(
                order_total=self._money(total),
                share_bp=self._share_bp,
                point_value=self._bonus.point_value,
            )
            redeemable = min(points.available, limit)
        return MemberAtTill(
            customer_id=member.id,
            name=member.first_name,
            card=member_card(member),
            tier=status.tier.name,
            cashback_bp=status.tier.cashback_bp,
            available=points.available,
            pending=points.pending,
            redeemable=redeemable,
            visit=visit,
        )

    def _money(self, total: str) -> int:
        try:
            amount = parse_money(total, currency=self._currency, field="total")
        except OrderProblem as problem:
            raise TillProblem(422, problem.code, problem.message, "total") from None
        if amount <= 0:
            raise TillProblem(422, "invalid_amount", "a purchase total is more than 0", "total")
        return amount

    async def purchase(
        self,
        *,
        cashier_id: int,
        customer_id: int,
        purchase_id: str,
        total: str,
        redeem: int = 0,
        visit: str | None = None,
        note: str | None = None,
        items: Sequence[RawItem] = (),
    ) -> Purchase:
        """An in-store purchase through the order desk (points earned, the member told as after
        any order); with ``redeem`` points paying for part of it, within the cap. Audited with
        the cashier's id in the same transaction. ``items`` (optional) must add up to the total;
        their SKUs plan replenishment reminders as an online order's do."""
        order_id = purchase_order_id(purchase_id)
        self._money(total)
        if redeem < 0:
            raise TillProblem(422, "invalid_points", "points are a whole number", "redeem")
        member = await self._members.customer(customer_id=customer_id)
        if member is None or member.joined_at is None or member.telegram_id is None:
            raise TillProblem(404, "customer_not_found", "no such member", "customer_id")
        _not_own_card(member, cashier_id=cashier_id)
        raw = RawOrder(
            order_id=order_id,
            customer=RawCustomer(telegram_id=member.telegram_id),
            items=list(items)
            or [
                RawItem(
                    sku=IN_STORE_SKU,
                    name=(note or "").strip()[:120] or "In-store purchase",
                    quantity=1,
                    price=total,
                )
            ],
            total=total,
            currency=self._currency,
            status="delivered",  # handed over at the till
            bonus_redeemed=redeem,
            redeem_code=visit,
        )
        try:
            async with self._uow.transaction():
                reported = await self._desk.report(raw)
                if reported.created:
                    await self._audit.record(
                        AuditEntry(
                            at=self._clock.now(),
                            actor_id=cashier_id,
                            action=AUDIT_ACTION,
                            customer_id=member.id,
                            details=_audit_details(order_id, raw, reported.receipt, redeem),
                        )
                    )
        except OrderProblem as problem:
            status = {ProblemKind.CONFLICT: 409, ProblemKind.NOT_FOUND: 404}.get(problem.kind, 422)
            raise TillProblem(status, problem.code, problem.message, problem.field) from None
        return Purchase(receipt=reported.receipt, recorded=reported.created, redeemed=redeem)


def _not_own_card(member: CustomerRecord, *, cashier_id: int) -> None:
    """A cashier's own purchases are recorded by someone else: nobody earns or spends points on
    their own card with nobody watching."""
    if member.telegram_id == cashier_id:
        raise TillProblem(
            403,
            "own_card",
            "a purchase on your own card is recorded by another cashier",
            "customer",
        )


def _audit_details(
    order_id: str, raw: RawOrder, receipt: Receipt, redeem: int
) -> Mapping[str, object]:
    return {
        "order_id": order_id,
        "total": raw.total,
        "points_redeemed": redeem,
        "points_accrued": receipt.points_accrued,
    }
