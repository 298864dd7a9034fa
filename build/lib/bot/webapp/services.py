"""What the Mini App's routes work with, built once by the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from aiogram.utils.i18n import I18n

from bot.webapp.auth import FailedSignIns
from locales.rendering import Renderer
from scenarios.cashier import Till
from scenarios.clock import Clock
from scenarios.rules import Rules
from storage.customers import SqlCustomers
from storage.database import Database
from storage.ledger import SqlLedger
from storage.preferences import SqlPreferences
from storage.reminders import SqlReminders

# Failed sign-ins an address may make in any 60 seconds before it has to wait.
FAILED_SIGN_INS_PER_MINUTE = 20

# user id, first name -> whether they are staff (admins, CASHIER_IDS, the staff chat's members)
StaffCheck = Callable[[int, str | None], Awaitable[bool]]


@dataclass
class WebappServices:
    db: Database
    rules: Rules
    clock: Clock
    i18n: I18n
    renderer: Renderer
    bot_token: str
    shop_zone: ZoneInfo
    till: Till
    customers: SqlCustomers
    ledger: SqlLedger
    reminders: SqlReminders
    preferences: SqlPreferences
    is_staff: StaffCheck
    failures: FailedSignIns
