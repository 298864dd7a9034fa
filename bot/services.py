"""The composition root: every repository, ledger, desk, follower, sender and job, built once."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiogram import Bot
from aiogram.utils.i18n import I18n

from bot.account_jobs import AccountJobs
from bot.analytics import shop_analytics
from bot.broadcast_progress import BroadcastProgress
from bot.charts import StatsCharts
from bot.delivery.limiter import RateLimiter
from bot.delivery.sender import OutboxSender, limits_from
from bot.erasure import StaffRedactor
from bot.order_desk import create_order_desk
from bot.rating_expiry import RatingExpiry
from bot.reminders import ReminderComposer, ReminderSweeper
from bot.scheduler import Scheduler, create_scheduler
from bot.settings import Settings
from bot.webhooks import Webhooks, create_webhooks, secrets_of
from handlers.rating import rating_buttons
from handlers.staff_alerts import StaffAlerts, StaffMembership
from locales import create_i18n
from locales.rendering import Renderer
from scenarios.analytics import ShopAnalytics
from scenarios.birthdays import BirthdayGifts
from scenarios.cashier import QrKey, QrVisitProof, Till
from scenarios.clock import Clock
from scenarios.expiry_watch import ExpiryWatch
from scenarios.gifts import GiftRunner
from scenarios.ledger import PointsLedger
from scenarios.order_notices import OrderPointsNotices
from scenarios.orders import OrderDesk, OrderFollower, RedeemProof
from scenarios.privacy import IdentityHasher
from scenarios.ratings import Escalation, RatingDesk, RatingRequests
from scenarios.redeem_codes import RedeemCodes
from scenarios.referrals import Referrals
from scenarios.reminders import ReplenishmentFollower
from scenarios.rules import Rules
from scenarios.signup import SignupDesk
from scenarios.tier_watch import TierWatch
from scenarios.tiers import TierLadder
from storage.account import SqlAccount
from storage.audit import SqlAuditLog
from storage.broadcasts import SqlBroadcasts
from storage.customers import SqlCustomers
from storage.database import Database
from storage.export import SqlExport
from storage.fsm import SqlFsmStates
from storage.gifts import SqlGifts
from storage.inbox import SqlInbox
from storage.ledger import SqlLedger
from storage.orders import SqlOrders
from storage.outbox import SqlOutbox
from storage.preferences import SqlPreferences
from storage.privacy import SqlErasedIdentities, SqlPersonalData, SqlSecrets
from storage.products import SqlProducts
from storage.qr_tokens import SqlQrScans
from storage.ratings import SqlRatings
from storage.redeem_codes import SqlRedeemCodes
from storage.referrals import SqlReferrals
from storage.refunds import SqlRefunds
from storage.reminders import SqlReminders
from storage.segments import SqlSegments
from storage.signup import SqlMembership

# Chooses the order followers from the services being built (None: every one the shop has).
FollowerChoice = Callable[["Services"], Sequence[OrderFollower]]


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the dispatcher (by these field names), the HTTP API, the jobs and the CLI
    use. Built by ``build_services``; nobody else constructs a repository or a service."""

    # the shop: its rules, its clock, its database, its time zone, its people
    settings: Settings
    rules: Rules
    clock: Clock
    db: Database
    shop_zone: ZoneInfo
    admin_ids: tuple[int, ...]
    staff_chat_id: int | None
    i18n: I18n
    renderer: Renderer
    # repositories (storage/)
    customers: SqlCustomers
    outbox: SqlOutbox
    segments: SqlSegments
    preferences: SqlPreferences
    broadcasts: SqlBroadcasts
    reminders: SqlReminders
    ledger_reader: SqlLedger
    account_store: SqlAccount
    order_store: SqlOrders
    audit_log: SqlAuditLog
    gift_store: SqlGifts
    personal_data: SqlPersonalData
    ratings: SqlRatings
    products: SqlProducts
    fsm_states: SqlFsmStates
    # the points program
    tier_ladder: TierLadder
    points_ledger: PointsLedger
    redeem_codes: RedeemCodes
    # desks: sign-up, referrals, birthdays, ratings and the staff chat's alerts
    signup: SignupDesk
    referrals: Referrals
    birthdays: BirthdayGifts
    rating_desk: RatingDesk
    escalation: Escalation
    staff_alerts: StaffAlerts
    staff_membership: StaffMembership
    # orders: what follows each one (in this order), the API's desk, the CSV import's desk
    order_notices: OrderPointsNotices
    replenishment: ReplenishmentFollower
    rating_requests: RatingRequests
    order_followers: tuple[OrderFollower, ...]
    order_desk: OrderDesk
    history_desk: OrderDesk
    # store platforms' webhooks: the inbox (/status counts it), its worker, the routes' secrets
    webhook_inbox: SqlInbox
    webhooks: Webhooks
    # periodic work and the delivery engine's limits (shared by the outbox and press edits)
    account_jobs: AccountJobs
    reminder_sweeper: ReminderSweeper
    limiter: RateLimiter
    # the Mini App (bot/webapp): its address (None: no Mini App, no buttons) and the till
    webapp_url: str | None
    till: Till
    qr_scans: SqlQrScans
    # the shop's figures (/stats, GET /api/v1/stats), their charts, the CSV export (/export)
    analytics: ShopAnalytics
    charts: StatsCharts
    data_export: SqlExport

    def by_name(self) -> Iterator[tuple[str, Any]]:
        """(name, service) pairs: the dispatcher's workflow data, what handlers ask for."""
        for field in fields(self):
            yield field.name, getattr(self, field.name)


def fraud_secret(settings: Settings) -> str | None:
    secret = settings.fraud_hash_secret
    return secret.get_secret_value() if secret is not None and secret.get_secret_value() else None


def build_services(
    settings: Settings,
    rules: Rules,
    db: Database,
    clock: Clock,
    *,
    i18n: I18n | None = None,
    renderer: Renderer | None = None,
    order_followers: FollowerChoice | None = None,
    staff_redactor: bool = True,
    inbox_db: Database | None = None,
) -> Services:
    """The whole service graph over ``db``; the webhook inbox in ``inbox_db`` (its own SQLite
    file: storage/inbox_file.py), else in ``db``. ``i18n``/``renderer``: the process's own (built
    from settings when not given). ``order_followers``: which followers the order desks call
    (tests choose a few; the shop runs them all). ``staff_redactor``: an erasure rewrites the
    staff chat's messages about the customer (off only where a test counts outbox rows)."""
    zone = settings.zone
    i18n = i18n or create_i18n(settings.default_locale)
    renderer = renderer or Renderer(i18n, currency=rules.shop.currency, zone=zone)
    # repositories
    customers = SqlCustomers(db)
    outbox = SqlOutbox(db)
    ledger = SqlLedger(db)
    account = SqlAccount(db)
    orders = SqlOrders(db)
    audit = SqlAuditLog(db)
    gifts = SqlGifts(db)
    ratings = SqlRatings(db)
    reminders = SqlReminders(db)
    members = SqlMembership(db)
    preferences = SqlPreferences(db)
    broadcasts = SqlBroadcasts(db)
    # the points program
    ladder = TierLadder.from_rules(rules.bonus, currency=rules.shop.currency)
    points = PointsLedger(ledger, bonus=rules.bonus, ladder=ladder, clock=clock)
    redeem_codes = RedeemCodes(SqlRedeemCodes(db), bonus=rules.bonus, clock=clock)
    # ratings and the staff chat
    limiter = RateLimiter(limits_from(rules))
    escalation = Escalation(store=ratings, outbox=outbox, reader=ledger, ladder=ladder, clock=clock)
    staff_alerts = StaffAlerts(
        staff_chat_id=settings.staff_chat_id,
        escalation=escalation,
        ratings=ratings,
        outbox=outbox,
        points=points,
        audit=audit,
        pace=limiter,
        renderer=renderer,
        i18n=i18n,
        rules=rules,
        clock=clock,
    )
    # sign-up, referrals, birthdays
    referrals = Referrals(
        store=SqlReferrals(db),
        members=members,
        orders=orders,
        ledger=points,
        outbox=outbox,
        uow=db,
        rules=rules,
        clock=clock,
        zone=zone,
    )
    inbox = SqlInbox(inbox_db or db)
    signup = SignupDesk(
        members=members,
        customers=customers,
        ledger=points,
        referrals=referrals,
        audit=audit,
        outbox=outbox,
        rules=rules,
        clock=clock,
        identities=SqlErasedIdentities(db),
        hasher=IdentityHasher(SqlSecrets(db), clock=clock, configured=fraud_secret(settings)),
        redactor=StaffRedactor(
            ratings=ratings, reminders=reminders, staff_alerts=staff_alerts, renderer=renderer
        )
        if staff_redactor
        else None,
        deliveries=inbox,
    )
    birthdays = BirthdayGifts(
        members=members,
        reader=ledger,
        ledger=points,
        ladder=ladder,
        outbox=outbox,
        uow=db,
        rules=rules,
        clock=clock,
        zone=zone,
    )
    # the points program's periodic work
    account_jobs = AccountJobs(
        expiry=ExpiryWatch(
            ledger=points,
            lots=account,
            outbox=outbox,
            bonus=rules.bonus,
            clock=clock,
            shop_zone=zone,
        ),
        tiers=TierWatch(
            uow=db, store=account, reader=ledger, ladder=ladder, outbox=outbox, clock=clock
        ),
        gifts=GiftRunner(
            uow=db,
            store=gifts,
            ledger=points,
            ladder=ladder,
            outbox=outbox,
            clock=clock,
            batch=rules.gifts.batch_size,
        ),
    )
    reminder_sweeper = ReminderSweeper(
        uow=db,
        store=reminders,
        outbox=outbox,
        composer=ReminderComposer(i18n, snooze_days=rules.reminders.snooze_days),
        rules=rules,
        clock=clock,
        shop_zone=zone,
    )
    # What follows every new order and status change, in the order's own transaction: the
    # customer told what their points did, tier announcements, referral rewards,
    # replenishment reminders, the rating request.
    order_notices = OrderPointsNotices(
        customers=account, reader=ledger, outbox=outbox, clock=clock, zone=zone
    )
    replenishment = ReplenishmentFollower(
        store=reminders,
        rules=rules.reminders,
        quiet=rules.quiet_hours,
        shop_zone=zone,
        clock=clock,
    )
    rating_requests = RatingRequests(
        store=ratings, outbox=outbox, rules=rules.ratings, clock=clock, buttons=rating_buttons
    )
    every_follower: tuple[OrderFollower, ...] = (
        order_notices,
        account_jobs.tiers,
        referrals,
        replenishment,
        rating_requests,
    )

    refunds = SqlRefunds(db)

    def order_desk(
        followers: Sequence[OrderFollower], *, history: bool, proof: RedeemProof = redeem_codes
    ) -> OrderDesk:
        return create_order_desk(
            refunds=refunds,
            uow=db,
            orders=orders,
            points=points,
            reader=ledger,
            ladder=ladder,
            redeem_codes=proof,
            zones=preferences,
            rules=rules,
            clock=clock,
            followers=followers,
            history=history,
            # SQLite has one writer: the API's concurrent orders share its transactions.
            group_commit=db.is_sqlite and not history,
        )

    # The Mini App's till: in-store purchases through a desk whose proof of presence, for
    # spending points, is the member's QR code the cashier scanned.
    qr_scans = SqlQrScans(db)
    visit_proof = QrVisitProof(
        qr_scans, clock=clock, visit=timedelta(minutes=rules.webapp.visit_minutes)
    )
    qr_key = QrKey(SqlSecrets(db), clock=clock)

    def till(followers: Sequence[OrderFollower]) -> Till:
        return Till(
            uow=db,
            desk=order_desk(followers, history=False, proof=visit_proof),
            scans=qr_scans,
            members=account,
            finder=orders,
            reader=ledger,
            audit=audit,
            bonus=rules.bonus,
            ladder=ladder,
            webapp=rules.webapp,
            currency=rules.shop.currency,
            clock=clock,
            qr_key=qr_key,
        )

    def webhooks(desk: OrderDesk) -> Webhooks:
        return create_webhooks(
            db=db,
            inbox=inbox,
            desk=desk,
            orders=orders,
            rules=rules,
            clock=clock,
            secrets=secrets_of(settings),
        )

    api_desk = order_desk(every_follower, history=False)
    # Two passes because a choice of followers may pick among the services built above.
    services = Services(
        settings=settings,
        rules=rules,
        clock=clock,
        db=db,
        shop_zone=zone,
        admin_ids=settings.admin_ids,
        staff_chat_id=settings.staff_chat_id,
        i18n=i18n,
        renderer=renderer,
        customers=customers,
        outbox=outbox,
        segments=SqlSegments(db),
        preferences=preferences,
        broadcasts=broadcasts,
        reminders=reminders,
        ledger_reader=ledger,
        account_store=account,
        order_store=orders,
        audit_log=audit,
        gift_store=gifts,
        personal_data=SqlPersonalData(db),
        ratings=ratings,
        products=SqlProducts(db),
        fsm_states=SqlFsmStates(db),
        tier_ladder=ladder,
        points_ledger=points,
        redeem_codes=redeem_codes,
        signup=signup,
        referrals=referrals,
        birthdays=birthdays,
        rating_desk=RatingDesk(store=ratings, rules=rules.ratings, clock=clock),
        escalation=escalation,
        staff_alerts=staff_alerts,
        staff_membership=StaffMembership(
            staff_chat_id=settings.staff_chat_id,
            admin_ids=settings.admin_ids,
            ttl=rules.staff.membership_cache_seconds,
        ),
        order_notices=order_notices,
        replenishment=replenishment,
        rating_requests=rating_requests,
        order_followers=every_follower,
        order_desk=api_desk,
        history_desk=order_desk(every_follower, history=True),
        webhook_inbox=inbox,
        webhooks=webhooks(api_desk),
        account_jobs=account_jobs,
        reminder_sweeper=reminder_sweeper,
        limiter=limiter,
        webapp_url=settings.webapp_url,
        till=till(every_follower),
        qr_scans=qr_scans,
        analytics=shop_analytics(db, rules, reminders=reminders, broadcasts=broadcasts, zone=zone),
        charts=StatsCharts(),
        data_export=SqlExport(db),
    )
    if order_followers is None:
        return services
    chosen = tuple(order_followers(services))
    chosen_desk = order_desk(chosen, history=False)
    return replace(
        services,
        order_followers=chosen,
        order_desk=chosen_desk,
        history_desk=order_desk(chosen, history=True),
        till=till(chosen),
        webhooks=webhooks(chosen_desk),
    )


@dataclass(frozen=True, slots=True)
class Runtime:
    """What talks to Telegram on its own: the outbox's sender and the periodic jobs."""

    sender: OutboxSender
    scheduler: Scheduler


def build_runtime(services: Services, bot: Bot, *, fsm_states: SqlFsmStates | None) -> Runtime:
    """``fsm_states``: the table the wizard-forgetting job tidies (None: FSM state in Redis)."""
    s = services
    sender = OutboxSender(
        db=s.db,
        bot=bot,
        renderer=s.renderer,
        i18n=s.i18n,
        rules=s.rules,
        clock=s.clock,
        shop_zone=s.shop_zone,
        worker_id=f"{socket.gethostname()}:{os.getpid()}",
        limiter=s.limiter,
        outbox=s.outbox,
        customers=s.customers,
    )
    scheduler = create_scheduler(
        rules=s.rules,
        clock=s.clock,
        fsm_states=fsm_states,
        outbox=s.outbox,
        broadcast_progress=BroadcastProgress(
            broadcasts=s.broadcasts,
            customers=s.customers,
            bot=bot,
            renderer=s.renderer,
            i18n=s.i18n,
            rules=s.rules,
            clock=s.clock,
        ),
        account_jobs=s.account_jobs,
        referrals=s.referrals,
        birthdays=s.birthdays,
        reminders=s.reminder_sweeper,
        rating_expiry=RatingExpiry(
            ratings=s.ratings,
            outbox=s.outbox,
            bot=bot,
            renderer=s.renderer,
            i18n=s.i18n,
            clock=s.clock,
        ),
        availability=s.db.availability,
        qr_scans=s.qr_scans,
    )
    return Runtime(sender=sender, scheduler=scheduler)
