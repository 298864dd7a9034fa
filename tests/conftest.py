"""Fixtures shared by every test: clock, databases on both backends, i18n and rendering."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from locales import CatalogI18n, create_i18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from storage.database import Database
from tests.support.databases import postgres_database, sqlite_database

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 1, 10, 0, tzinfo=UTC))


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        async with sqlite_database(tmp_path / "bot.sqlite3") as database:
            yield database
    else:
        async with postgres_database() as database:
            yield database


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    async with sqlite_database(tmp_path / "bot.sqlite3") as database:
        yield database


@pytest.fixture(scope="session")
def i18n() -> CatalogI18n:
    return create_i18n("en")


@pytest.fixture(scope="session")
def renderer(i18n: CatalogI18n) -> Renderer:
    return Renderer(i18n, currency="RUB", zone=ZoneInfo("Europe/Moscow"))
