"""The Telegram Mini App: the member's card in the pocket and the till for the shop's staff."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import timedelta
from zoneinfo import ZoneInfo

from aiogram import Bot
from aiogram.types import User
from aiogram.utils.i18n import I18n

from bot.order_desk import create_order_desk
from bot.webapp.app import create_webapp, create_webapp_server, failed_sign_ins, mount_webapp
from bot.webapp.services import StaffCheck, WebappServices
from handlers.staff_alerts import StaffMembership
from locales.rendering import Renderer
from scenarios.cashier import QrVisitProof, Till
from scenarios.clock import Clock
from scenarios.orders import OrderFollower
from scenarios.rules import Rules
from scenarios.tiers import TierLadder
from storage.account import SqlAccount
from storage.audit import SqlAuditLog
from storage.customers import SqlCustomers
from storage.database import Database
from storage.ledger import SqlLedger
from storage.orders import SqlOrders
from storage.preferences import SqlPreferences
from storage.privacy import SqlSecrets
from storage.qr_tokens import SqlQrScans
from storage.reminders import SqlReminders

__all__ = [
    "build_webapp_services",
    "create_webapp",
    "create_webapp_server",
    "mount_webapp",
    "staff_check",
]

QR_KEY_NAME = "webapp_qr_key"


def staff_check(
    *, bot: Bot, admin_ids: tuple[int, ...], cashier_ids: tuple[int, ...], staff: StaffMembership
) -> StaffCheck:
    """Admins, CASHIER_IDS, and the staff chat's members (Telegram asked, answers cached)."""

    async def is_staff(user_id: int, first_name: str | None) -> bool:
        if user_id in admin_ids or user_id in cashier_ids:
            return True
        user = User(id=user_id, is_bot=False, first_name=first_name or "")
        return await staff.is_staff(bot, user)

    return is_staff


async def build_webapp_services(
    *,
    db: Database,
    rules: Rules,
    clock: Clock,
    i18n: I18n,
    renderer: Renderer,
    bot: Bot,
    bot_token: str,
    shop_zone: ZoneInfo,
    admin_ids: tuple[int, ...],
    cashier_ids: tuple[int, ...],
    staff_chat_id: int | None,
    followers: Sequence[OrderFollower],
) -> WebappServices:
    """Everything the Mini App uses. The QR key is made once and kept in the database, so every
    bot process (and a restarted one) reads the codes the others signed."""
    key = await SqlSecrets(db).get_or_create(
        name=QR_KEY_NAME, make=lambda: secrets.token_hex(32), now=clock.now()
    )
    scans = SqlQrScans(db)
    proof = (
        QrVisitProof(scans, clock=clock, visit=timedelta(minutes=rules.webapp.visit_minutes))
        if rules.bonus.redeem_requires_code
        else None
    )
    desk = create_order_desk(
        db=db, rules=rules, clock=clock, followers=followers, redeem_proof=proof
    )
    ledger = SqlLedger(db)
    till = Till(
        uow=db,
        desk=desk,
        scans=scans,
        members=SqlAccount(db),
        finder=SqlOrders(db),
        reader=ledger,
        audit=SqlAuditLog(db),
        bonus=rules.bonus,
        ladder=TierLadder.from_rules(rules.bonus, currency=rules.shop.currency),
        webapp=rules.webapp,
        currency=rules.shop.currency,
        clock=clock,
        qr_key=bytes.fromhex(key),
    )
    staff = StaffMembership(
        staff_chat_id=staff_chat_id, admin_ids=admin_ids, ttl=rules.staff.membership_cache_seconds
    )
    return WebappServices(
        db=db,
        rules=rules,
        clock=clock,
        i18n=i18n,
        renderer=renderer,
        bot_token=bot_token,
        shop_zone=shop_zone,
        till=till,
        customers=SqlCustomers(db),
        ledger=ledger,
        reminders=SqlReminders(db),
        preferences=SqlPreferences(db),
        is_staff=staff_check(bot=bot, admin_ids=admin_ids, cashier_ids=cashier_ids, staff=staff),
        failures=failed_sign_ins(),
    )
