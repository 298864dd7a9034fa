"""The Telegram Mini App: the member's card in the pocket and the till for the shop's staff."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import User

from bot.services import Services
from bot.webapp.app import create_webapp, create_webapp_server, failed_sign_ins, mount_webapp
from bot.webapp.services import StaffCheck, WebappServices
from handlers.staff_alerts import StaffMembership

__all__ = [
    "create_webapp",
    "create_webapp_server",
    "mount_webapp",
    "staff_check",
    "webapp_services",
]


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


def webapp_services(services: Services, *, bot: Bot, bot_token: str) -> WebappServices:
    """What the Mini App's routes use, from the composition root's services; ``bot`` asks
    Telegram who is in the staff chat, ``bot_token`` checks the initData Telegram signed."""
    return WebappServices(
        db=services.db,
        rules=services.rules,
        clock=services.clock,
        i18n=services.i18n,
        renderer=services.renderer,
        bot_token=bot_token,
        shop_zone=services.shop_zone,
        till=services.till,
        customers=services.customers,
        ledger=services.ledger_reader,
        reminders=services.reminders,
        preferences=services.preferences,
        is_staff=staff_check(
            bot=bot,
            admin_ids=services.admin_ids,
            cashier_ids=services.settings.cashier_ids,
            staff=services.staff_membership,
        ),
        failures=failed_sign_ins(),
    )
