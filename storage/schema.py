"""The database schema as SQLAlchemy Core tables; migrations in storage/migrations follow it."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, MetaData, String, Table

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
