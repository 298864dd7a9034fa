"""aiogram routers, one per feature: parse the update, call a scenario, render the answer."""

from __future__ import annotations

from aiogram import Router

from handlers import (
    account,
    admin,
    admin_account,
    birthday,
    broadcast,
    errors,
    export,
    fallback,
    help,
    language,
    membership,
    privacy,
    rating,
    reminders,
    settings,
    signup,
    staff_alerts,
    start,
    stats,
)


def create_routers() -> list[Router]:
    """Fresh routers for one Dispatcher; the fallback comes last so it only gets the leftovers."""
    return [
        errors.create_router(),
        membership.create_router(),
        start.create_router(),
        language.create_router(),
        settings.create_router(),
        help.create_router(),
        admin.create_router(),
        broadcast.create_router(),
        account.create_router(),
        admin_account.create_router(),
        signup.create_router(),
        birthday.create_router(),
        privacy.create_router(),
        reminders.create_router(),
        stats.create_router(),
        export.create_router(),
        rating.create_router(),
        staff_alerts.create_router(),
        fallback.create_router(),
    ]
