"""Issue 15, item 12: texts that say what really happens (what is kept, who is told, the terms)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram.methods import EditMessageText, SendMessage
from sqlalchemy import update

from bot.scheduler import create_scheduler
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.rules import Bonus, Referral, Rules, Shop
from scenarios.tiers import TierLadder
from storage.database import Database
from storage.schema import customers
from tests.support.flow import Flow, build_flow
from tests.support.seed import member
from tests.support.updates import TgUser

ADMIN = TgUser(9001, first_name="Olga", language_code="en")
OLHA = TgUser(2002, first_name="Ольга", language_code="uk")
IVAN = TgUser(2003, first_name="Иван", language_code="ru")


def plain(text: str | None) -> str:
    return (text or "").replace("\xa0", " ").replace("\u202f", " ")


def flow_for(db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    return build_flow(
        db=db,
        clock=clock,
        i18n=i18n,
        renderer=renderer,
        admin_ids=(ADMIN.id,),
        rules=Rules(shop=Shop(name="Lapki")),
    )


async def test_i15_12_declining_says_what_is_kept_and_the_welcome_shows_the_terms(
    sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    flow = flow_for(sqlite_db, clock, i18n, renderer)
    [welcome] = [c for c in await flow.send(IVAN, "/start") if isinstance(c, SendMessage)]
    text = plain(welcome.text)
    # No terms_url: the terms the customer accepts are the summary built from the config.
    assert "<b>Условия программы</b>\n• Бронза: кешбэк 5 %\n" in text
    assert "• Серебро: кешбэк 7 % от 10 000,00 ₽ оплаченных заказов\n" in text
    assert "Бонусы можно потратить через 14 дней после заказа; они действуют 365 дн." in text
    assert "1 бонус = 1,00 ₽; бонусами можно оплатить до 30 % заказа." in text
    assert (
        "• Приветственный бонус: 100 бонусов.\nЧтобы присоединиться, примите эти условия." in text
    )
    calls = await flow.press(IVAN, "join:decline", message=flow.message_from(welcome))
    [edit] = [c for c in calls if isinstance(c, EditMessageText)]
    assert "Бот хранит только ваш Telegram id" in plain(edit.text)
    assert "ничего о вас не сохранено" not in plain(edit.text)


async def test_i15_12_a_friend_from_a_link_hears_of_the_reward_and_its_condition(
    sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    flow = flow_for(sqlite_db, clock, i18n, renderer)
    [welcome] = [c for c in await flow.send(OLHA, "/start abcdef123") if isinstance(c, SendMessage)]
    text = plain(welcome.text)
    assert "🤝 Ви прийшли за запрошенням учасника: після вступу ваше перше оплачене" in text
    assert "від 1 000,00 RUB принесе вам 200 балів, коли пролежить 14 дн." in text
    joined = renderer.render(
        "referral_joined.html", locale="en", points=200, min_order=100_000, hold_days=14
    )
    assert plain(joined) == (
        "🤝 A friend joined the bonus program through your link.\n"
        "When their first paid order of at least RUB 1,000.00 has kept for 14 days (the return "
        "window), you get 200 points."
    )


async def test_i15_12_bonus_says_when_the_customer_cannot_be_told(
    sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    flow = flow_for(sqlite_db, clock, i18n, renderer)
    customer_id = await member(flow.db, 1001)
    async with flow.db.transaction() as conn:
        await conn.execute(
            update(customers)
            .where(customers.c.id == customer_id)
            .values(first_name="Anna", blocked_at=datetime(2026, 10, 1, tzinfo=UTC))
        )
    [preview] = [
        c for c in await flow.send(ADMIN, "/bonus tg:1001 +100 sorry") if isinstance(c, SendMessage)
    ]
    assert "The customer cannot be told: they blocked the bot. Confirm?" in plain(preview.text)
    assert "will be told" not in plain(preview.text)
    data = preview.reply_markup.inline_keyboard[0][0].callback_data  # type: ignore[union-attr]
    assert data is not None
    calls = await flow.press(ADMIN, data, message=flow.message_from(preview))
    [done] = [c for c in calls if isinstance(c, EditMessageText)]
    assert plain(done.text).endswith("The customer cannot be told: they blocked the bot.")


def test_i15_12_the_tier_down_text_follows_the_tier_window(renderer: Renderer) -> None:
    context = {"direction": "down", "tier": "bronze", "previous": "silver", "cashback_bp": 500}
    rolling = renderer.render("tier_change.html", locale="en", window="12 months", **context)
    assert "Your orders of the last 12 months count" in rolling
    lifetime = renderer.render("tier_change.html", locale="en", window="lifetime", **context)
    assert "12 months" not in lifetime
    assert (
        "Refunded orders and refunded parts of orders no longer count towards your tier" in lifetime
    )
    # The announcement carries the ladder's window.
    from scenarios.tier_watch import tier_change_message
    from scenarios.tiers import Downgrade, Tier, TierWindow
    from tests.support.account_samples import CUSTOMER

    change = Downgrade(before=Tier("silver", 1, 700), after=Tier("bronze", 0, 500))
    message = tier_change_message(CUSTOMER, change, number=2, window=TierWindow.LIFETIME)
    assert message is not None
    assert message.content["context"]["window"] == "lifetime"
    assert TierLadder.from_rules(Bonus(), currency="RUB").window is TierWindow.LIFETIME


def test_i15_12_the_referral_job_runs_as_often_as_the_invite_text_says(
    renderer: Renderer,
) -> None:
    rules = Rules(referral=Referral(check_every_minutes=30))
    text = renderer.render(
        "invite.html",
        locale="en",
        link="https://t.me/x?start=a",
        friend_points=200,
        referrer_points=200,
        min_order=100_000,
        hold_days=14,
        check_minutes=rules.referral.check_every_minutes,
    )
    assert "They are paid out within 30 minutes after that." in text

    class Rewards:
        async def reward_due(self) -> int:
            return 0

        async def tick(self) -> None:  # stands in for the broadcast progress too
            return None

    scheduler = create_scheduler(
        rules=rules,
        clock=FixedClock(datetime(2026, 11, 1, tzinfo=UTC)),
        fsm_states=None,
        outbox=None,  # type: ignore[arg-type]
        broadcast_progress=Rewards(),  # type: ignore[arg-type]
        referrals=Rewards(),  # type: ignore[arg-type]
    )
    job = scheduler.get_job("referral-rewards")
    assert job is not None and job.trigger.interval.total_seconds() == 30 * 60
