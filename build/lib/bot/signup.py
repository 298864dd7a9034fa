"""Composition of the sign-up, referral and birthday services over the database."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from scenarios.birthdays import BirthdayGifts
from scenarios.clock import Clock
from scenarios.ledger import PointsLedger
from scenarios.privacy import IdentityHasher
from scenarios.referrals import Referrals
from scenarios.rules import Rules
from scenarios.signup import SignupDesk, StaffRedactor
from scenarios.tiers import TierLadder
from storage.audit import SqlAuditLog
from storage.customers import SqlCustomers
from storage.database import Database
from storage.ledger import SqlLedger
from storage.orders import SqlOrders
from storage.outbox import SqlOutbox
from storage.privacy import SqlErasedIdentities, SqlSecrets
from storage.referrals import SqlReferrals
from storage.signup import SqlMembership


@dataclass(frozen=True, slots=True)
class SignupServices:
    desk: SignupDesk
    referrals: Referrals
    birthdays: BirthdayGifts


def signup_services(
    *,
    db: Database,
    rules: Rules,
    clock: Clock,
    zone: ZoneInfo,
    fraud_hash_secret: str | None = None,
    redactor: StaffRedactor | None = None,
) -> SignupServices:
    """``fraud_hash_secret``: FRAUD_HASH_SECRET; unset, the bot keeps its own in the database."""
    ladder = TierLadder.from_rules(rules.bonus, currency=rules.shop.currency)
    store = SqlLedger(db)
    ledger = PointsLedger(store, bonus=rules.bonus, ladder=ladder, clock=clock)
    members = SqlMembership(db)
    outbox = SqlOutbox(db)
    referrals = Referrals(
        store=SqlReferrals(db),
        members=members,
        orders=SqlOrders(db),
        ledger=ledger,
        outbox=outbox,
        uow=db,
        rules=rules,
        clock=clock,
        zone=zone,
    )
    return SignupServices(
        desk=SignupDesk(
            members=members,
            customers=SqlCustomers(db),
            ledger=ledger,
            referrals=referrals,
            audit=SqlAuditLog(db),
            outbox=outbox,
            rules=rules,
            clock=clock,
            identities=SqlErasedIdentities(db),
            hasher=IdentityHasher(SqlSecrets(db), clock=clock, configured=fraud_hash_secret),
            redactor=redactor,
        ),
        referrals=referrals,
        birthdays=BirthdayGifts(
            members=members,
            reader=store,
            ledger=ledger,
            ladder=ladder,
            outbox=outbox,
            uow=db,
            rules=rules,
            clock=clock,
            zone=zone,
        ),
    )
