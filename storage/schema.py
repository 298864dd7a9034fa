"""The database schema as SQLAlchemy Core tables; migrations in storage/migrations follow it."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

from storage.types import BigIntId, UtcDateTime

# Deterministic constraint names keep Alembic migrations identical on both backends.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

customers = Table(
    "customers",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("telegram_id", BigInteger, nullable=True, unique=True),
    Column("first_name", String(256), nullable=True),
    Column("username", String(64), nullable=True),
    # What Telegram reports for the user's app, and what the user chose with /lang.
    Column("language_code", String(16), nullable=True),
    Column("locale", String(8), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    # Consent to offers (marketing): off unless the customer turns it on; when it last changed.
    Column("marketing_opt_in", Boolean, nullable=False, server_default=false()),
    Column("marketing_changed_at", UtcDateTime, nullable=True),
    # Set when Telegram says the chat is gone (blocked, deactivated); cleared when they return.
    Column("blocked_at", UtcDateTime, nullable=True),
    # The customer's own IANA zone for quiet hours, when known; else the shop's.
    Column("timezone", String(64), nullable=True),
    # Membership of the bonus program: phone (E.164) and the moment they joined.
    Column("phone", String(20), nullable=True, unique=True),
    Column("joined_at", UtcDateTime, nullable=True),
    # Sign-up: when the program's terms were accepted; the birthday (year optional) and when it
    # was entered (a fresh one earns no gift that year); the year of the last birthday gift.
    Column("terms_accepted_at", UtcDateTime, nullable=True),
    Column("birthday_day", SmallInteger, nullable=True),
    Column("birthday_month", SmallInteger, nullable=True),
    Column("birthday_year", SmallInteger, nullable=True),
    Column("birthday_set_at", UtcDateTime, nullable=True),
    Column("birthday_gift_year", SmallInteger, nullable=True),
    # The code in the member's invite link (t.me/<bot>?start=<code>), made on first /invite.
    Column("invite_code", String(32), nullable=True, unique=True),
    # Set by /delete_me: the row stays (anonymised) for the ledger and orders that refer to it.
    Column("erased_at", UtcDateTime, nullable=True),
    # The member card's EAN-13: random for new members (it cannot be derived from the id);
    # members from before random numbers keep the "29" + id number they were given.
    Column("card_number", String(13), nullable=True, unique=True),
    Index("ix_customers_birthday", "birthday_month", "birthday_day"),
)

# Service kinds (rating requests, reminders, ...) a customer switched off in /settings.
notification_mutes = Table(
    "notification_mutes",
    metadata,
    Column(
        "customer_id",
        BigInteger,
        ForeignKey("customers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("kind", String(40), primary_key=True),
    Column("muted_at", UtcDateTime, nullable=False),
)

# Every proactive message is a row here first; the sender drains it under Telegram's limits.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("dedupe_key", String(200), nullable=False, unique=True),
    Column("chat_id", BigInteger, nullable=False),
    Column(
        "customer_id", BigInteger, ForeignKey("customers.id", ondelete="SET NULL"), nullable=True
    ),
    Column("category", String(16), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("not_before", UtcDateTime, nullable=False),
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    Column("telegram_message_id", BigInteger, nullable=True),
    # The broadcast this message belongs to, if any (pause, resume, progress, report).
    Column("broadcast_id", BigInteger, nullable=True),
    Index("ix_outbox_due", "state", "priority", "not_before"),
    Index("ix_outbox_broadcast_state", "broadcast_id", "state"),
    Index("ix_outbox_chat_state", "chat_id", "state"),
    Index("ix_outbox_customer_sent", "customer_id", "category", "sent_at"),
)

# Orders as the shop reports them; ``order_ref`` is the shop's own id ("A-1001").
orders = Table(
    "orders",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("order_ref", String(64), nullable=False, unique=True),
    Column(
        "customer_id", BigInteger, ForeignKey("customers.id", ondelete="SET NULL"), nullable=True
    ),
    Column("phone", String(20), nullable=True, index=True),
    Column("telegram_id", BigInteger, nullable=True),
    Column("total", BigInteger, nullable=False),  # minor units
    Column("bonus_redeemed", BigInteger, nullable=False, server_default="0"),  # points
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("ordered_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_orders_customer_ordered", "customer_id", "ordered_at"),
    # /stats reads customers' histories from this index alone (migration 0019).
    Index("ix_orders_customer_history", "customer_id", "ordered_at", "id", "status", "total"),
    # ... and a date range of orders (the period, the last year, the cohorts' months), 0023.
    Index("ix_orders_ordered_at", "ordered_at", "status", "customer_id", "total", "id"),
    # sha256 of the order as the shop API first reported it: a replay must match it exactly.
    Column("fingerprint", String(64), nullable=True),
)

# Each known customer's counted orders (not cancelled or refunded) in one row: how many, the first
# and last moment, the spend. Kept by triggers on orders (migration 0024), so /stats reads one
# row per customer instead of regrouping every order; no foreign key, the triggers alone decide
# when a row goes (a customer's deletion sets their orders' customer_id to NULL, which does).
customer_order_totals = Table(
    "customer_order_totals",
    metadata,
    Column("customer_id", BigIntId, primary_key=True, autoincrement=False),
    Column("orders", Integer, nullable=False),
    Column("first_at", UtcDateTime, nullable=False),
    Column("last_at", UtcDateTime, nullable=False),
    Column("spend", BigInteger, nullable=False),
)

order_items = Table(
    "order_items",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column(
        "order_id",
        BigInteger,
        ForeignKey("orders.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("sku", String(64), nullable=False, index=True),
    Column("name", String(256), nullable=False),
    Column("category", String(64), nullable=True, index=True),
    Column("quantity", Integer, nullable=False),
    Column("price", BigInteger, nullable=False),  # minor units, per unit
)

# The shop's catalog as far as the bot needs it: links for "reorder", consumption for reminders.
products = Table(
    "products",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("url", String(2048), nullable=True),
    Column("category", String(64), nullable=True),
    # Days one unit lasts (cat food 2 kg: 30); reminders come lead_days before it runs out.
    Column("consumption_days", Integer, nullable=True),
    Column("lead_days", Integer, nullable=True),
    # Other skus that replace this one (a bigger bag, another flavour).
    Column("related", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# An admin's broadcast: segment, content (one or two variants), and its run.
broadcasts = Table(
    "broadcasts",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("created_by", BigInteger, nullable=False),
    Column("segment", JSON, nullable=False),
    Column("variants", JSON, nullable=False),
    Column("state", String(12), nullable=False),
    Column("seed", Integer, nullable=False),
    Column("total", Integer, nullable=False, server_default="0"),
    Column("progress_chat_id", BigInteger, nullable=True),
    Column("progress_message_id", BigInteger, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    # The progress message shows the end (finished or cancelled); the report waits for the
    # conversion window after finished_at to close, then reported_at is set.
    Column("progress_final_at", UtcDateTime, nullable=True),
    Column("reported_at", UtcDateTime, nullable=True),
)

broadcast_recipients = Table(
    "broadcast_recipients",
    metadata,
    Column(
        "broadcast_id",
        BigInteger,
        ForeignKey("broadcasts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "customer_id",
        BigInteger,
        ForeignKey("customers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("variant", String(1), nullable=False),
)

# aiogram FSM state, kept in the main database so a wizard survives a restart.
fsm_states = Table(
    "fsm_states",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("state", String(255), nullable=True),
    Column("data", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False, index=True),
)

# The points ledger. Entries are append-only and the balance is their sum. Every credit creates
# lots (points with their own hold and expiry); every debit records which lots it took points
# from (allocations), so an expiry, a refund or an audit can tell exactly whose points went where.
# Foreign keys to customers restrict deletion: a financial record is anonymised, not dropped.
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    # What caused it ("order:A-1001", "lot:17"): with kind, the key that makes a replay a no-op.
    Column("source", String(200), nullable=False),
    Column("amount", BigInteger, nullable=False),  # points, signed
    # Accruals: the money paid (minor units) the points were earned on; tiers count it as spend.
    Column("paid_amount", BigInteger, nullable=True),
    Column("reason", String(500), nullable=False),
    Column("actor_id", BigInteger, nullable=True),  # NULL: the system; else the admin's user id
    Column("occurred_at", UtcDateTime, nullable=False),
    # Accruals: when the order was placed; the tier window counts spend from this date.
    Column("ordered_at", UtcDateTime, nullable=True),
    # Source first: an order's entries are looked up by source alone, the key by both.
    UniqueConstraint("source", "kind"),
    Index("ix_ledger_entries_customer_history", "customer_id", "id"),
    Index("ix_ledger_entries_customer_kind", "customer_id", "kind", "occurred_at"),
    Index("ix_ledger_entries_occurred_at", "occurred_at"),
)

ledger_lots = Table(
    "ledger_lots",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("entry_id", BigInteger, ForeignKey("ledger_entries.id"), nullable=False),
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    # amount minus the allocations taken from it, kept in the same transaction as they are made.
    Column("remaining", BigInteger, nullable=False),
    Column("earned_at", UtcDateTime, nullable=False),
    Column("available_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    # The database itself refuses to spend a lot twice.
    CheckConstraint(
        "amount > 0 AND remaining >= 0 AND remaining <= amount", name="remaining_within_amount"
    ),
    Index("ix_ledger_lots_entry_id", "entry_id"),
    Index("ix_ledger_lots_customer_expiry", "customer_id", "expires_at"),
    # Expiry runs look for lots with points left; spent lots pile up and need not be scanned.
    Index(
        "ix_ledger_lots_open_expiry",
        "expires_at",
        sqlite_where=text("remaining > 0"),
        postgresql_where=text("remaining > 0"),
    ),
)

# Which lots a debit took its points from; a debt settled later points at the lot that paid it.
ledger_allocations = Table(
    "ledger_allocations",
    metadata,
    Column("entry_id", BigInteger, ForeignKey("ledger_entries.id"), primary_key=True),
    Column("lot_id", BigInteger, ForeignKey("ledger_lots.id"), primary_key=True),
    Column("amount", BigInteger, nullable=False),
    CheckConstraint("amount > 0", name="amount_positive"),
    Index("ix_ledger_allocations_lot_id", "lot_id"),
)

# Cached per-customer sums, changed in the same transaction as the entries (tests reconcile them).
ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column(
        "customer_id",
        BigInteger,
        ForeignKey("customers.id"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("balance", BigInteger, nullable=False),  # the sum of the customer's entries
    # Points charged back that no lot could cover yet; the next credits pay it off first.
    Column("debt", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# What admins and staff did (bonus adjustments, compensation, gifts, erasures): who, when, what.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    # The Telegram id of the admin or staff member; None for the system itself.
    Column("actor_id", BigInteger, nullable=True),
    Column("action", String(64), nullable=False),
    # No foreign key: the trail outlives an erased customer's personal data.
    Column("customer_id", BigInteger, nullable=True),
    Column("details", JSON, nullable=False),
    Index("ix_audit_log_customer_id", "customer_id"),
    Index("ix_audit_log_at", "at"),
)

# The tier each customer was last told about; a change from it is announced once (``changes``
# numbers the announcements, so each has its own outbox key). No row: the lowest tier.
tier_standings = Table(
    "tier_standings",
    metadata,
    Column(
        "customer_id",
        BigInteger,
        ForeignKey("customers.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("tier", String(32), nullable=False),
    Column("changes", Integer, nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
)

# An admin's holiday gift to all members or one tier, granted in batches by a scheduler tick:
# ``cursor`` is the last customer id handled, so a restart resumes where it stopped.
gifts = Table(
    "gifts",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    # The confirmation's own key: pressing "Confirm" twice starts one gift.
    Column("request_key", String(64), nullable=False, unique=True),
    Column("created_by", BigInteger, nullable=False),
    Column("locale", String(8), nullable=False),  # the admin's, for the closing report
    Column("amount", BigInteger, nullable=False),  # points before the tier multiplier
    Column("reason", String(500), nullable=False),
    # The reason in other languages ({"uk": "..."}); members of other languages get ``reason``.
    Column("reasons", JSON, nullable=True),
    Column("tier", String(32), nullable=True),  # None: every member
    Column("multipliers", JSON, nullable=False),  # tier name -> multiplier, as confirmed
    Column("state", String(12), nullable=False),  # running, done
    Column("cursor", BigInteger, nullable=False, server_default="0"),
    Column("granted", Integer, nullable=False, server_default="0"),
    Column("points", BigInteger, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Index("ix_gifts_state", "state"),
)

# Who brought whom: one row per invited customer (the referee), from sign-up to the reward.
# state: joined -> qualified (first paid order noted) -> rewarded, or refused (with a reason), or
# capped: the friend rewarded, the referrer not (over referral_monthly_cap; reason monthly_cap).
referrals = Table(
    "referrals",
    metadata,
    Column(
        "referee_id", BigInteger, ForeignKey("customers.id"), primary_key=True, autoincrement=False
    ),
    Column("referrer_id", BigInteger, ForeignKey("customers.id"), nullable=False),
    Column("state", String(12), nullable=False),
    Column("order_ref", String(64), nullable=True),  # the friend's first paid order
    Column("reason", String(40), nullable=True),  # why it was refused
    Column("created_at", UtcDateTime, nullable=False),
    Column("mature_at", UtcDateTime, nullable=True),  # the order leaves the hold window
    Column("settled_at", UtcDateTime, nullable=True),  # rewarded or refused
    Index("ix_referrals_state_mature", "state", "mature_at"),
    Index("ix_referrals_referrer_state", "referrer_id", "state", "settled_at"),
)

# Every referral the program refused, with the reason (self-referral, monthly cap, ...).
referral_refusals = Table(
    "referral_refusals",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("referrer_id", BigInteger, nullable=True),
    Column("referee_id", BigInteger, nullable=True),
    Column("order_ref", String(64), nullable=True),
    Column("reason", String(40), nullable=False),
    Index("ix_referral_refusals_referrer_id", "referrer_id"),
)

# Replenishment reminders: one row per product line of a member's order that has a consumption
# model. ``due_at`` is set only while the reminder waits (scheduled or snoozed), so the sweep's
# index holds just the waiting ones and a tick reads the due rows, not every pending one.
reminders = Table(
    "reminders",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column(
        "customer_id",
        BigInteger,
        ForeignKey("customers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("sku", String(64), nullable=False),
    # The order that scheduled it; with customer and sku, what makes a replay a no-op.
    Column("order_ref", String(64), nullable=False),
    Column("ordered_at", UtcDateTime, nullable=False),
    Column("quantity", Integer, nullable=False),
    # How the run-out date was found: "customer", "catalog" or "product" (learned).
    Column("basis", String(12), nullable=False),
    Column("runs_out_at", UtcDateTime, nullable=False),
    Column("remind_at", UtcDateTime, nullable=False),  # as planned, kept when it stops waiting
    Column("due_at", UtcDateTime, nullable=True),
    Column("state", String(12), nullable=False),
    Column("reason", String(32), nullable=True),  # why it was cancelled
    # The newer order that replaced it: if that order is cancelled, this one waits again.
    Column("cancelled_by", String(64), nullable=True),
    Column("message_key", String(200), nullable=True),  # the outbox message it went out in
    Column("sent_at", UtcDateTime, nullable=True),
    Column("converted_at", UtcDateTime, nullable=True),
    Column("converted_order_ref", String(64), nullable=True),
    Column("revenue", BigInteger, nullable=True),  # minor units of the converting order's lines
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("customer_id", "sku", "order_ref"),
    Index(
        "ix_reminders_due",
        "due_at",
        sqlite_where=text("due_at IS NOT NULL"),
        postgresql_where=text("due_at IS NOT NULL"),
    ),
    Index("ix_reminders_order_ref", "order_ref"),
    Index("ix_reminders_cancelled_by", "cancelled_by"),
    Index("ix_reminders_converted_order_ref", "converted_order_ref"),
    Index("ix_reminders_sent_at", "sent_at"),
)

# "I don't need this": no more reminders of this sku for this customer.
reminder_stops = Table(
    "reminder_stops",
    metadata,
    Column(
        "customer_id",
        BigInteger,
        ForeignKey("customers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("sku", String(64), primary_key=True),
    Column("stopped_at", UtcDateTime, nullable=False),
)

# Per-unit intervals learned from purchases, for products the catalog gives no figure; the
# daily refresh replaces the whole table.
product_intervals = Table(
    "product_intervals",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("seconds_per_unit", BigInteger, nullable=False),
    Column("customers", Integer, nullable=False),  # how many customers the median is over
    Column("refreshed_at", UtcDateTime, nullable=False),
)

# One rating request per member's order (``order_ref``) and the customer's answer to it.
ratings = Table(
    "ratings",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("order_ref", String(64), nullable=False, unique=True),
    Column(
        "customer_id", BigInteger, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    ),
    Column("requested_at", UtcDateTime, nullable=False),  # when the request is due to go out
    Column("expires_at", UtcDateTime, nullable=False),  # unanswered after this: expired
    Column("withdrawn_at", UtcDateTime, nullable=True),  # the order was cancelled or refunded
    Column("score", SmallInteger, nullable=True),
    # The first answer starts the window in which the score may still be changed.
    Column("first_rated_at", UtcDateTime, nullable=True),
    Column("rated_at", UtcDateTime, nullable=True),
    Column("comment", Text, nullable=True),
    # When an unanswered request's message was edited to say it expired (the periodic sweep).
    Column("closed_at", UtcDateTime, nullable=True),
    CheckConstraint("score IS NULL OR (score >= 1 AND score <= 5)", name="score_range"),
    Index("ix_ratings_rated_at", "rated_at"),
    Index("ix_ratings_expires_at", "expires_at"),
)

# A negative rating escalated to the staff chat, until someone resolves it.
rating_alerts = Table(
    "rating_alerts",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column(
        "rating_id",
        BigInteger,
        ForeignKey("ratings.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column(
        "customer_id", BigInteger, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    ),
    Column("state", String(12), nullable=False),  # open, taken, resolved
    # The customer and order as staff saw them when the alert was raised (name, phone, tier...).
    Column("snapshot", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("taken_by", BigInteger, nullable=True),
    Column("taken_by_name", String(256), nullable=True),
    Column("taken_at", UtcDateTime, nullable=True),
    Column("resolved_by", BigInteger, nullable=True),
    Column("resolved_by_name", String(256), nullable=True),
    Column("resolved_at", UtcDateTime, nullable=True),
    Column("compensation_points", BigInteger, nullable=True),
    Column("compensated_by_name", String(256), nullable=True),
    Column("compensated_at", UtcDateTime, nullable=True),
    Column("replied_by_name", String(256), nullable=True),
    Column("replied_at", UtcDateTime, nullable=True),
    Index("ix_rating_alerts_customer_state", "customer_id", "state"),
    Index("ix_rating_alerts_created_at", "created_at"),
)

# One-time codes a member shows at the till to spend points (/code): a sha256 bound to the
# customer, never the code itself; valid until expires_at, spent once (used_at, for which order).
redeem_codes = Table(
    "redeem_codes",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column(
        "customer_id", BigInteger, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    ),
    Column("code_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Column("order_ref", String(64), nullable=True),
    # Wrong codes tried for this member while the code was live; enough of them lock it.
    Column("wrong_attempts", Integer, nullable=False, server_default="0"),
    Index("ix_redeem_codes_customer_hash", "customer_id", "code_hash"),
)

# Keyed hashes (HMAC-SHA256 with the shop's secret) of the phones and Telegram ids of erased
# customers: what fraud checks need (no second welcome bonus, no referral of a returning
# customer) without keeping the phone or the id itself.
erased_identities = Table(
    "erased_identities",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # phone, telegram
    Column("erased_at", UtcDateTime, nullable=False),
)

# Secrets the bot makes for itself on first use (the fraud-check hash key when
# FRAUD_HASH_SECRET is not set).
app_secrets = Table(
    "app_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# Card QR codes scanned at the till (bot/webapp): one row per code, so a code works once. The
# cashier who scanned it may spend the member's points on one purchase (order_ref) while the
# visit lasts (webapp.visit_minutes).
qr_scans = Table(
    "qr_scans",
    metadata,
    Column("nonce", String(32), primary_key=True),
    Column(
        "customer_id", BigInteger, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    ),
    Column("cashier_id", BigInteger, nullable=False),
    Column("scanned_at", UtcDateTime, nullable=False),
    Column("order_ref", String(64), nullable=True),
)

# Deliveries from store platforms (Shopify, WooCommerce, Tilda) as they arrived, verified: the
# HTTP answer waits only for this row; a worker maps it into the order desk afterwards. The
# platform's delivery id makes a retried delivery a no-op.
webhook_inbox = Table(
    "webhook_inbox",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("platform", String(16), nullable=False),
    Column("delivery_id", String(128), nullable=False),
    Column("topic", String(64), nullable=False),
    Column("body", Text, nullable=False),  # the raw body as received (UTF-8)
    # pending, done, skipped (nothing to do, with why), failed (why: an admin may retry it)
    Column("state", String(12), nullable=False),
    Column("reason", Text, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("not_before", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("platform", "delivery_id"),
    # The worker's batch: the oldest pending deliveries that are due, in id order.
    Index("ix_webhook_inbox_state_id", "state", "id", "not_before"),
)

# A platform's own order id (Shopify's numeric id, WooCommerce's post id) and the order_ref the
# bot stored it under: a refund names only the platform's id.
store_orders = Table(
    "store_orders",
    metadata,
    Column("platform", String(16), primary_key=True),
    Column("external_id", String(64), primary_key=True),
    Column("order_ref", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# Partial refunds of an order, once per refund id: the amount (minor units) each one returned.
order_refunds = Table(
    "order_refunds",
    metadata,
    Column("order_ref", String(64), primary_key=True),
    Column("refund_key", String(100), primary_key=True),
    Column("amount", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
