"""Referrals on both databases: the friend's first order, the hold window, every refusal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.app import build_application, shutdown
from bot.services import Services
from bot.settings import Settings
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.ledger import PointsLedger
from scenarios.orders import OrderDesk, RawCustomer, RawItem, RawOrder
from scenarios.referrals import (
    Referrals,
    RefusalReason,
    first_order_refusal,
    member_link_refusal,
    month_bounds,
    reward_refusal,
    signup_refusal,
)
from scenarios.rules import Referral, Rules
from scenarios.signup import Consent
from scenarios.tiers import TierLadder
from storage.customers import CustomerRecord, SqlCustomers
from storage.database import Database
from storage.ledger import SqlLedger
from storage.orders import SqlOrders
from storage.referrals import SqlReferrals
from storage.schema import outbox
from tests.support.services import services_for
from tests.support.signup import entries

ZONE = ZoneInfo("Europe/Moscow")
RULES = Rules(referral=Referral(referral_monthly_cap=2))


# ---- rules (no database) -----------------------------------------------------------------


def test_signup_refusals() -> None:
    assert signup_refusal(
        referrer_id=None, referee_id=2, phone_ordered_before=False, has_referrer=False
    ) == (RefusalReason.UNKNOWN_CODE)
    assert signup_refusal(
        referrer_id=2, referee_id=2, phone_ordered_before=False, has_referrer=False
    ) == (RefusalReason.SELF_REFERRAL)
    assert signup_refusal(
        referrer_id=1, referee_id=2, phone_ordered_before=False, has_referrer=True
    ) == (RefusalReason.SECOND_REFERRER)
    assert signup_refusal(
        referrer_id=1, referee_id=2, phone_ordered_before=True, has_referrer=False
    ) == (RefusalReason.ALREADY_ORDERED)
    assert (
        signup_refusal(referrer_id=1, referee_id=2, phone_ordered_before=False, has_referrer=False)
        is None
    )
    assert member_link_refusal(referrer_id=3, member_id=3, has_referrer=False) == (
        RefusalReason.SELF_REFERRAL
    )
    assert member_link_refusal(referrer_id=1, member_id=3, has_referrer=True) == (
        RefusalReason.SECOND_REFERRER
    )
    assert member_link_refusal(referrer_id=1, member_id=3, has_referrer=False) == (
        RefusalReason.ALREADY_MEMBER
    )


def test_reward_refusals_and_the_minimum() -> None:
    assert reward_refusal(order_status="paid", rewarded_this_month=1, monthly_cap=2) is None
    assert reward_refusal(order_status="delivered", rewarded_this_month=2, monthly_cap=2) == (
        RefusalReason.MONTHLY_CAP
    )
    for status in ("cancelled", "refunded", None):
        assert reward_refusal(order_status=status, rewarded_this_month=0, monthly_cap=2) == (
            RefusalReason.ORDER_CANCELLED
        )
    assert first_order_refusal(paid_amount=99_999, minimum=100_000) == RefusalReason.BELOW_MINIMUM
    assert first_order_refusal(paid_amount=100_000, minimum=100_000) is None


def test_the_month_is_the_shops() -> None:
    clock = FixedClock(datetime(2026, 11, 30, 22, 30, tzinfo=UTC))  # 1 December in Moscow
    start, end = month_bounds(clock.now(), ZONE)
    assert start == datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
    assert end == datetime(2026, 12, 31, 21, 0, tzinfo=UTC)


# ---- on both databases -------------------------------------------------------------------


@dataclass
class World:
    db: Database
    clock: FixedClock
    services: Services
    desk: OrderDesk
    customers: SqlCustomers
    referrals: SqlReferrals

    async def person(self, telegram_id: int) -> CustomerRecord:
        return await self.customers.seen(
            telegram_id=telegram_id,
            first_name=f"P{telegram_id}",
            username=None,
            language_code="en",
            now=self.clock.now(),
            refresh_after=timedelta(minutes=10),
        )

    async def join(self, telegram_id: int, *, invite: str | None = None) -> int:
        person = await self.person(telegram_id)
        async with self.db.transaction():
            joined = await self.services.signup.join(
                person,
                phone=f"+7999{telegram_id:07d}",
                consent=Consent(accepted_at=self.clock.now(), marketing_opt_in=False),
                invite=invite,
            )
        return joined.customer_id

    async def code(self, customer_id: int) -> str:
        async with self.db.transaction():
            return await self.services.referrals.invite_code(customer_id=customer_id)

    async def order(
        self, ref: str, telegram_id: int, total: str = "1500.00", phone: str | None = None
    ) -> None:
        await self.desk.report(
            RawOrder(
                order_id=ref,
                customer=RawCustomer(telegram_id=telegram_id, phone=phone),
                items=[RawItem(sku="CAT", name="Cat food", quantity=1, price=total)],
                total=total,
                currency="RUB",
            )
        )

    async def refusals(self) -> list[tuple[str, int | None, int | None]]:
        return [
            (r.reason, r.referrer_id, r.referee_id)
            for r in reversed(await self.referrals.refusals())
        ]

    async def outbox_keys(self) -> list[str]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(outbox.c.dedupe_key).order_by(outbox.c.id))
            return list(rows.scalars())


@pytest.fixture
def world(db: Database, clock: FixedClock) -> World:
    services = services_for(db, rules=RULES, clock=clock, zone=ZONE)
    ladder = TierLadder.from_rules(RULES.bonus, currency="RUB")
    ledger = SqlLedger(db)
    desk = OrderDesk(
        uow=db,
        orders=SqlOrders(db),
        points=PointsLedger(ledger, bonus=RULES.bonus, ladder=ladder, clock=clock),
        reader=ledger,
        bonus=RULES.bonus,
        ladder=ladder,
        currency="RUB",
        clock=clock,
        followers=[services.referrals],
    )
    return World(db, clock, services, desk, SqlCustomers(db), SqlReferrals(db))


async def test_both_sides_are_rewarded_once_after_the_hold_window(world: World) -> None:
    anna = await world.join(101)
    ivan = await world.join(102, invite=await world.code(anna))
    await world.order("F-1", 102)
    referral = await world.referrals.of_referee(referee_id=ivan)
    assert referral is not None
    assert (referral.state, referral.order_ref) == ("qualified", "F-1")
    assert referral.mature_at == world.clock.now() + timedelta(days=14)

    world.clock.advance(timedelta(days=13))
    assert await world.services.referrals.reward_due() == 0
    world.clock.advance(timedelta(days=1))
    assert await world.services.referrals.reward_due() == 1
    assert await world.services.referrals.reward_due() == 0

    assert ("referral", f"friend:{ivan}", 200) in await entries(world.db, ivan)
    assert ("referral", f"referee:{ivan}", 200) in await entries(world.db, anna)
    assert await world.outbox_keys() == [
        f"referral-joined:{ivan}",  # the referrer heard when the friend joined
        f"referral-reward:{ivan}:friend",
        f"referral-reward:{ivan}:referrer",
    ]
    # A second order of the friend changes nothing.
    await world.order("F-2", 102)
    world.clock.advance(timedelta(days=30))
    assert await world.services.referrals.reward_due() == 0
    assert [e for e in await entries(world.db, anna) if e[0] == "referral"] == [
        ("referral", f"referee:{ivan}", 200)
    ]
    assert await world.refusals() == []


async def assert_nothing_credited(world: World, *customer_ids: int) -> None:
    for customer_id in customer_ids:
        assert [e for e in await entries(world.db, customer_id) if e[0] == "referral"] == []
    # (The referrer may have heard that the friend joined; no reward was announced.)
    assert [key for key in await world.outbox_keys() if key.startswith("referral-reward")] == []


async def test_a_member_opening_their_own_link_is_refused(world: World) -> None:
    anna = await world.join(101)
    code = await world.code(anna)
    async with world.db.transaction():
        reason = await world.services.referrals.member_followed_link(member_id=anna, code=code)
    assert reason is RefusalReason.SELF_REFERRAL
    assert await world.refusals() == [("self_referral", anna, anna)]
    assert await world.referrals.of_referee(referee_id=anna) is None


async def test_a_friend_whose_phone_ordered_before_is_refused(world: World) -> None:
    anna = await world.join(101)
    await world.order("OLD-1", 555, phone="+79990000102")  # Ivan's phone, before he joined
    ivan = await world.join(102, invite=await world.code(anna))
    assert await world.referrals.of_referee(referee_id=ivan) is None
    assert await world.refusals() == [("already_ordered", anna, ivan)]
    world.clock.advance(timedelta(days=30))
    assert await world.services.referrals.reward_due() == 0
    await assert_nothing_credited(world, anna, ivan)


async def test_a_second_referrer_is_refused(world: World) -> None:
    anna = await world.join(101)
    olha = await world.join(103)
    ivan = await world.join(102, invite=await world.code(anna))
    async with world.db.transaction():
        await world.services.referrals.member_followed_link(
            member_id=ivan, code=await world.code(olha)
        )
    referral = await world.referrals.of_referee(referee_id=ivan)
    assert referral is not None and referral.referrer_id == anna
    assert await world.refusals() == [("second_referrer", olha, ivan)]


async def test_a_cancelled_first_order_is_refused(world: World) -> None:
    anna = await world.join(101)
    ivan = await world.join(102, invite=await world.code(anna))
    await world.order("F-1", 102)
    world.clock.advance(timedelta(days=3))
    await world.desk.change_status(order_id="F-1", status="refunded")
    referral = await world.referrals.of_referee(referee_id=ivan)
    assert referral is not None
    assert (referral.state, referral.reason) == ("refused", "order_cancelled")
    world.clock.advance(timedelta(days=30))
    assert await world.services.referrals.reward_due() == 0
    await assert_nothing_credited(world, anna, ivan)
    assert await world.refusals() == [("order_cancelled", anna, ivan)]


async def test_a_first_order_below_the_minimum_is_refused(world: World) -> None:
    anna = await world.join(101)
    ivan = await world.join(102, invite=await world.code(anna))
    await world.order("F-1", 102, total="999.99")
    await world.order("F-2", 102, total="5000.00")  # not the first any more
    world.clock.advance(timedelta(days=30))
    assert await world.services.referrals.reward_due() == 0
    await assert_nothing_credited(world, anna, ivan)
    assert await world.refusals() == [("below_minimum", anna, ivan)]


async def test_i15_6_the_monthly_cap_limits_the_referrer_and_the_friend_gets_the_promise(
    world: World,
) -> None:
    """Over referral_monthly_cap the referrer earns nothing more; the friend still gets the
    points the link promised; both are told."""
    anna = await world.join(101)
    code = await world.code(anna)
    friends = [await world.join(200 + n, invite=code) for n in range(3)]
    for n in range(3):
        await world.order(f"F-{n}", 200 + n)
    world.clock.advance(timedelta(days=14))
    assert await world.services.referrals.reward_due() == 3
    assert await world.refusals() == [("monthly_cap", anna, friends[2])]
    assert [e[2] for e in await entries(world.db, anna) if e[0] == "referral"] == [200, 200]
    assert [e for e in await entries(world.db, friends[2]) if e[0] == "referral"] == [
        ("referral", f"friend:{friends[2]}", 200)
    ]
    capped = await world.referrals.of_referee(referee_id=friends[2])
    assert capped is not None and (capped.state, capped.reason) == ("capped", "monthly_cap")
    async with world.db.read() as conn:
        rows = await conn.execute(
            select(outbox.c.dedupe_key, outbox.c.payload).order_by(outbox.c.id)
        )
        told = {key: payload["context"] for key, payload in rows.all()}
    assert told[f"referral-reward:{friends[2]}:friend"] == {"points": 200, "role": "friend"}
    assert told[f"referral-capped:{friends[2]}"] == {
        "role": "referrer_capped",
        "points": 0,
        "cap": 2,
    }
    assert f"referral-reward:{friends[2]}:referrer" not in told
    # A capped referral does not count towards next month's cap, nor pays again.
    assert await world.services.referrals.reward_due() == 0


def test_i15_6_the_capped_referrer_reads_what_happened(renderer: Renderer) -> None:
    texts = {
        locale: renderer.render(
            "referral_reward.html", locale=locale, role="referrer_capped", points=0, cap=2
        )
        for locale in ("en", "ru", "uk")
    }
    assert texts["en"] == (
        "Your friend joined through your link and made their first order, and got their "
        "points. This month you were already rewarded for 2 invited friends, the monthly limit, "
        "so this one brings you no points. Thank you all the same!"
    )
    assert "за 2 приглашённых друзей" in texts["ru"]
    assert "за 2 запрошених друзів" in texts["uk"]


async def test_the_application_runs_the_referral_and_birthday_jobs(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        bot_token="123456:TEST-TOKEN",
        database_url=f"sqlite:///{tmp_path}/bot.sqlite3",
    )
    app = build_application(settings, Rules())
    try:
        jobs = {job.id for job in app.scheduler.get_jobs()}
        assert {"referral-rewards", "birthday-gifts"} <= jobs
        followers = app.services.order_followers
        assert Referrals in [type(follower) for follower in followers]
    finally:
        await shutdown(app)
