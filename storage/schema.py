"""The database schema as SQLAlchemy Core tables; migrations in storage/migrations follow it."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    false,
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
    Index("ix_outbox_due", "state", "priority", "not_before"),
    Index("ix_outbox_chat_state", "chat_id", "state"),
    Index("ix_outbox_customer_sent", "customer_id", "category", "sent_at"),
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
