"""Sample contexts for the account templates (balance, history, notices, admin views)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from scenarios.admin_bonus import AccountView, BonusPreview
from scenarios.gifts import GiftPlan, GiftRequest, TierShare
from scenarios.ledger import BalanceView, NearestExpiry, PendingPoints, TierStatus
from scenarios.tiers import Tier, TierGap
from storage.audit import AuditEntry
from storage.customers import CustomerRecord
from storage.ledger import EntryKind, EntryRecord
from storage.orders import OrderSummary
from storage.ratings import CustomerRating

AT = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
BRONZE = Tier("bronze", 0, 500)
SILVER = Tier("silver", 1_000_000, 700)

VIEW = BalanceView(
    at=AT,
    available=1200,
    pending=300,
    pending_release=(PendingPoints(300, datetime(2026, 11, 15, 10, tzinfo=UTC)),),
    debt=0,
    total=1500,
    nearest_expiry=NearestExpiry(120, date(2027, 3, 1), datetime(2027, 3, 1, 9, tzinfo=UTC)),
    lifetime_earned=1500,
    lifetime_spent=0,
)
STATUS = TierStatus(tier=BRONZE, spend=500_000, gap=TierGap(next_tier=SILVER, missing=500_000))
CUSTOMER = CustomerRecord(
    id=42,
    telegram_id=1001,
    first_name="Cat & Dog fan",
    username="anna",
    language_code="ru",
    locale=None,
    created_at=AT,
    last_seen_at=AT,
    marketing_opt_in=True,
    marketing_changed_at=AT,
    phone="+79991234567",
    joined_at=AT,
)
ACCOUNT = AccountView(customer=CUSTOMER, balance=VIEW, status=STATUS)


def entry(
    entry_id: int, kind: EntryKind, source: str, amount: int, reason: str = ""
) -> EntryRecord:
    return EntryRecord(entry_id, 42, kind, source, amount, None, reason or "x", None, AT)


ACCOUNT_SAMPLES: dict[str, dict[str, Any]] = {
    "_tiers.html": {"name": "gold"},
    "balance.html": {"view": VIEW, "status": STATUS},
    "history.html": {
        "entries": [
            entry(3, EntryKind.ADJUSTMENT, "adjustment:1", 50, "Cat & Dog <b>day</b>"),
            entry(2, EntryKind.REDEMPTION, "order:A-1002", -100),
            entry(1, EntryKind.ACCRUAL, "order:A-1001", 120),
        ],
        "newest": True,
    },
    "expiry_warning.html": {"points": 120, "day": "2027-03-01"},
    "tier_change.html": {
        "direction": "up",
        "tier": "silver",
        "previous": "bronze",
        "cashback_bp": 700,
    },
    "order_points.html": {
        "event": "new",
        "order_id": "R-1",
        "available": 1129,
        "debt": 0,
        "earned": 129,
        "spent": 50,
        "debt_paid": 0,
        "day": "2026-12-15",
    },
    "bonus_adjusted.html": {"points": -50, "reason": "Cat & Dog correction", "available": 100},
    "gift.html": {"points": 150, "reason": "Happy Cat & Dog day!"},
    "gift_done.html": {"gift_id": 3, "granted": 21, "points": 2150},
    "bonus_preview.html": {
        "preview": BonusPreview(account=ACCOUNT, points=100, reason="late delivery"),
        "card": "2 900000 000427",
    },
    "customer_profile.html": {
        "account": ACCOUNT,
        "card": "2 900000 000427",
        "orders": [OrderSummary("A-1001", 258000, "RUB", 0, "delivered", AT)],
        "muted": {"reminder"},
        "audit": [
            AuditEntry(AT, 9001, "bonus_adjustment", 42, {"points": 100, "reason": "late"}),
        ],
        "ratings": [CustomerRating("A-1001", 2, "cold & late", AT, "taken")],
    },
    "gift_preview.html": {
        "plan": GiftPlan(
            request=GiftRequest(amount=100, reason="New Year", tier=None),
            shares=(TierShare("bronze", 20, 100), TierShare("silver", 1, 150)),
        )
    },
}
