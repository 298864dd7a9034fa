"""Which writes SQLite runs on the event loop's thread: one row by their shape, nothing that
may run long; and the bot's own hot paths (a star press, joining) are such writes.

Found measuring the write path (#17): a press and a sign-up step each went to aiosqlite's
thread two or three times while holding SQLite's single writer, and on a busy bot each trip
waited for the GIL, so the writer was held for milliseconds per update and capped the rate.
"""

from __future__ import annotations

import pytest
from aiogram.methods import SendMessage
from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ClauseElement

from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from storage.database import Database
from storage.short_writes import writes_one_row
from tests.support.flow import build_flow
from tests.support.signup import contact, photos
from tests.support.updates import TgUser
from tests.test_sqlite_driver import trips_to_the_thread

metadata = MetaData()
shops = Table(
    "shops",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String, unique=True),
    Column("city", String),
    Column("region", String),
    Column("name", String),
    UniqueConstraint("city", "name"),
)
shelves = Table(
    "shelves",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("shop_id", ForeignKey("shops.id", ondelete="CASCADE")),
    Column("code", String),
    Column("row", Integer),
    Column("active", Integer),
    Index("one_active_code", "code", unique=True, sqlite_where=Column("active") == 1),
    Index("shelf_rows", "shop_id", "row", unique=True),
)

ONE_ROW: dict[str, ClauseElement] = {
    "an INSERT of one row": insert(shops).values(slug="a", city="Kyiv", name="A"),
    "an INSERT with RETURNING": insert(shops).values(slug="a").returning(shops.c.id),
    "an upsert": sqlite_insert(shops)
    .values(slug="a", name="A")
    .on_conflict_do_update(index_elements=["slug"], set_={"name": "A"}),
    "an UPDATE by the primary key": update(shops).where(shops.c.id == 1).values(name="B"),
    "an UPDATE by the key and more": update(shops)
    .where(shops.c.id == 1, shops.c.name.is_(None))
    .values(name="B"),
    "an UPDATE by a unique column": update(shops).where(shops.c.slug == "a").values(name="B"),
    "an UPDATE by a unique constraint": update(shops)
    .where(shops.c.city == "Kyiv", shops.c.name == "A")
    .values(region="K"),
    "an UPDATE by a unique index": update(shelves)
    .where(shelves.c.shop_id == 1, shelves.c.row == 2)
    .values(code="x"),
    "an UPDATE computing from its own row": update(shops)
    .where(shops.c.id == 1)
    .values(name=shops.c.name + "!"),
    "a DELETE by the key where nothing cascades": delete(shelves).where(shelves.c.id == 1),
}

MAYBE_MANY: dict[str, ClauseElement] = {
    "an INSERT of many rows": insert(shops).values([{"slug": "a"}, {"slug": "b"}]),
    "an INSERT from a SELECT": insert(shops).from_select(["slug"], select(shelves.c.code)),
    "an upsert that sets a subquery": sqlite_insert(shops)
    .values(slug="a")
    .on_conflict_do_update(
        index_elements=["slug"], set_={"name": select(shelves.c.code).scalar_subquery()}
    ),
    "an UPDATE of every row": update(shops).values(name="B"),
    "an UPDATE by a column that is not unique": update(shops)
    .where(shops.c.region == "K")
    .values(name="B"),
    "an UPDATE by part of a unique constraint": update(shops)
    .where(shops.c.city == "Kyiv")
    .values(region="K"),
    "an UPDATE by a unique index that has a WHERE": update(shelves)
    .where(shelves.c.code == "x")
    .values(row=1),
    "an UPDATE by the key OR something else": update(shops)
    .where((shops.c.id == 1) | (shops.c.region == "K"))
    .values(name="B"),
    "an UPDATE by a key that is not equal": update(shops).where(shops.c.id > 1).values(name="B"),
    "an UPDATE setting a subquery": update(shops)
    .where(shops.c.id == 1)
    .values(name=select(func.max(shelves.c.code)).scalar_subquery()),
    "an UPDATE whose WHERE has a subquery": update(shops)
    .where(shops.c.id == 1, shops.c.slug.in_(select(shelves.c.code)))
    .values(name="B"),
    "an UPDATE ... FROM another table": update(shops)
    .where(shops.c.id == shelves.c.shop_id, shelves.c.id == 1)
    .values(name="B"),
    "a DELETE of a row others cascade from": delete(shops).where(shops.c.id == 1),
    "a DELETE by a column that is not unique": delete(shelves).where(shelves.c.row == 1),
    "a SELECT": select(shops.c.id).where(shops.c.id == 1),
}


@pytest.mark.parametrize("statement", ONE_ROW.values(), ids=ONE_ROW.keys())
def test_a_write_of_one_row_by_its_shape_may_run_in_place(statement: ClauseElement) -> None:
    assert writes_one_row(statement)


@pytest.mark.parametrize("statement", MAYBE_MANY.values(), ids=MAYBE_MANY.keys())
def test_anything_that_may_touch_many_rows_stays_on_the_thread(statement: ClauseElement) -> None:
    assert not writes_one_row(statement)


async def test_every_step_of_joining_runs_without_a_trip_to_the_thread(
    sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    flow = build_flow(db=sqlite_db, clock=clock, i18n=i18n, renderer=renderer)
    anna = TgUser(2001, first_name="Anna", language_code="en")
    await flow.send(TgUser(2002, first_name="Olha"), "/help")  # the pool's connection opened

    with trips_to_the_thread() as handed:
        [welcome] = [c for c in await flow.send(anna, "/start") if isinstance(c, SendMessage)]
        await flow.press(anna, "join:offers", message=flow.message_from(welcome))
        calls = await flow.press(anna, "join:accept", message=flow.message_from(welcome))
        [ask] = [c for c in calls if isinstance(c, SendMessage)]
        await flow.feed(contact(flow.updates, anna, "79991234567"))
        calls = await flow.send(anna, "31.12.1990")

    assert ask.text.startswith("Thank you! Now share your phone number")
    [card] = photos(calls)
    assert str(card.caption).startswith("Welcome to the program! 100 points are already yours.")
    # The customer, the FSM row, the consent, the phone, the welcome points and their lot,
    # the birthday, the audit and the outbox: each write one row, in place.
    assert handed == [], handed
