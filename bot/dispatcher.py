"""create_dispatcher(): routers, middlewares and the dependencies handlers receive by name."""

from __future__ import annotations

from datetime import datetime

from aiogram import Dispatcher
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.utils.i18n import I18n

from bot.analytics import analytics_services
from bot.erasure import StaffRedactor
from bot.i18n import CustomerLocaleMiddleware
from bot.middlewares import CustomerMiddleware, HandlerModeMiddleware, UnitOfWorkMiddleware
from bot.signup import signup_services
from handlers import create_routers
from handlers.staff_alerts import StaffMembership, staff_locale
from locales.rendering import Renderer
from scenarios.clock import Clock
from scenarios.ledger import PointsLedger
from scenarios.redeem_codes import RedeemCodes
from scenarios.rules import Rules
from scenarios.tiers import TierLadder
from storage.account import SqlAccount
from storage.audit import SqlAuditLog
from storage.broadcasts import SqlBroadcasts
from storage.customers import SqlCustomers
from storage.database import Database
from storage.gifts import SqlGifts
from storage.ledger import SqlLedger
from storage.orders import SqlOrders
from storage.outbox import SqlOutbox
from storage.preferences import SqlPreferences
from storage.privacy import SqlPersonalData
from storage.redeem_codes import SqlRedeemCodes
from storage.reminders import SqlReminders
from storage.segments import SqlSegments


def create_dispatcher(
    *,
    db: Database,
    clock: Clock,
    i18n: I18n,
    renderer: Renderer,
    rules: Rules,
    fsm_storage: BaseStorage,
    admin_ids: tuple[int, ...],
    staff_chat_id: int | None,
    version: str,
    started_at: datetime,
    events_isolation: BaseEventIsolation | None = None,
    fraud_hash_secret: str | None = None,
) -> Dispatcher:
    customers = SqlCustomers(db)
    ledger = SqlLedger(db)
    ladder = TierLadder.from_rules(rules.bonus, currency=rules.shop.currency)
    joining = signup_services(
        db=db,
        rules=rules,
        clock=clock,
        zone=renderer.zone,
        fraud_hash_secret=fraud_hash_secret,
        redactor=StaffRedactor(
            db=db, renderer=renderer, i18n=i18n, locale=staff_locale(rules, i18n)
        ),
    )
    dispatcher = Dispatcher(
        storage=fsm_storage,
        # One update per user at a time: a double tap cannot race a wizard or a balance.
        events_isolation=events_isolation or SimpleEventIsolation(),
        db=db,
        clock=clock,
        customers=customers,
        outbox=SqlOutbox(db),
        segments=SqlSegments(db),
        preferences=SqlPreferences(db),
        broadcasts=SqlBroadcasts(db),
        reminders=SqlReminders(db),
        renderer=renderer,
        rules=rules,
        admin_ids=admin_ids,
        staff_chat_id=staff_chat_id,
        version=version,
        started_at=started_at,
        # Points and admin commands (handlers/account.py, handlers/admin_account.py).
        ledger_reader=ledger,
        points_ledger=PointsLedger(ledger, bonus=rules.bonus, ladder=ladder, clock=clock),
        tier_ladder=ladder,
        account_store=SqlAccount(db),
        order_store=SqlOrders(db),
        audit_log=SqlAuditLog(db),
        gift_store=SqlGifts(db),
        signup=joining.desk,
        personal_data=SqlPersonalData(db),
        referrals=joining.referrals,
        staff_membership=StaffMembership(
            staff_chat_id=staff_chat_id,
            admin_ids=admin_ids,
            ttl=rules.staff.membership_cache_seconds,
        ),
        redeem_codes=RedeemCodes(SqlRedeemCodes(db), bonus=rules.bonus, clock=clock),
        **analytics_services(db, rules),  # /stats and /export (bot/analytics.py)
    )
    dispatcher.update.outer_middleware(UnitOfWorkMiddleware(db))
    dispatcher.update.outer_middleware(CustomerMiddleware(customers, clock))
    # Inner middlewares of the dispatcher run for every router's handlers, after the filters.
    handler_mode = HandlerModeMiddleware(db)
    for name, observer in dispatcher.observers.items():
        if name not in {"update", "error"}:
            observer.middleware(handler_mode)
    CustomerLocaleMiddleware(i18n).setup(dispatcher)
    dispatcher["i18n"] = i18n
    dispatcher.include_routers(*create_routers())
    return dispatcher
