"""/balance and /history: a member's points, tier, expiry and ledger movements."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.filters import ButtonNumber
from handlers.flags import READS_ONLY
from locales.rendering import Renderer
from scenarios.clock import Clock
from scenarios.ledger import HistoryPage, LedgerReader, balance, history, tier_status
from scenarios.tiers import TierLadder
from storage.account import SqlAccount
from storage.customers import CustomerRecord

HISTORY_PAGE = 10


class HistoryButton(CallbackData, prefix="hist"):
    before: ButtonNumber  # show entries older than this id; 0: the newest page


def create_router() -> Router:
    router = Router(name="account")
    router.message.filter(F.chat.type == "private")
    router.message.register(show_balance, Command("balance"), flags=READS_ONLY)
    router.message.register(show_history, Command("history"), flags=READS_ONLY)
    router.callback_query.register(turn_page, HistoryButton.filter(), flags=READS_ONLY)
    # A button whose data no longer parses (an older bot version, a forgery).
    router.callback_query.register(stale_button, F.data.startswith("hist:"), flags=READS_ONLY)
    return router


def join_first() -> str:
    return _("You are not in the bonus program yet. Send /start to join.")


async def show_balance(
    message: Message,
    customer: CustomerRecord,
    renderer: Renderer,
    locale: str,
    ledger_reader: LedgerReader,
    tier_ladder: TierLadder,
    clock: Clock,
    shop_zone: ZoneInfo,
) -> None:
    if customer.joined_at is None:
        await message.answer(join_first())
        return
    view = await balance(ledger_reader, customer_id=customer.id, clock=clock, zone=shop_zone)
    status = await tier_status(
        ledger_reader, customer_id=customer.id, ladder=tier_ladder, clock=clock
    )
    await message.answer(renderer.render("balance.html", locale=locale, view=view, status=status))


def history_keyboard(page: HistoryPage, *, newer: int | None) -> InlineKeyboardMarkup | None:
    """Older for the next page back; Newer (``newer``: its ``before``, 0 the newest) when
    this is not the newest page."""
    builder = InlineKeyboardBuilder()
    if page.next_before_id is not None:
        builder.button(text=_("◀ Older"), callback_data=HistoryButton(before=page.next_before_id))
    if newer is not None:
        builder.button(text=_("Newer ▶"), callback_data=HistoryButton(before=newer))
    return builder.as_markup() if page.next_before_id is not None or newer is not None else None


async def show_history(
    message: Message,
    customer: CustomerRecord,
    renderer: Renderer,
    locale: str,
    ledger_reader: LedgerReader,
) -> None:
    if customer.joined_at is None:
        await message.answer(join_first())
        return
    page = await history(ledger_reader, customer_id=customer.id, limit=HISTORY_PAGE)
    await message.answer(
        renderer.render("history.html", locale=locale, entries=page.entries, newest=True),
        reply_markup=history_keyboard(page, newer=None),
    )


async def turn_page(
    callback: CallbackQuery,
    callback_data: HistoryButton,
    bot: Bot,
    customer: CustomerRecord,
    renderer: Renderer,
    locale: str,
    ledger_reader: LedgerReader,
    account_store: SqlAccount,
) -> None:
    """Always the presser's own ledger: the button carries only a position, never whose."""
    if customer.joined_at is None:
        await callback.answer(join_first(), show_alert=True)
        return
    before = callback_data.before
    if before < 0:
        await callback.answer(_("This button is out of date."), show_alert=True)
        return
    page = await history(
        ledger_reader, customer_id=customer.id, limit=HISTORY_PAGE, before_id=before or None
    )
    if not page.entries and before:
        await callback.answer(_("There is nothing older."), show_alert=True)
        return
    newer = None
    if before:
        start = await account_store.newer_page_start(
            customer_id=customer.id, after_id=before - 1, limit=HISTORY_PAGE
        )
        newer = start or 0
    text = renderer.render("history.html", locale=locale, entries=page.entries, newest=not before)
    markup = history_keyboard(page, newer=newer)
    await callback.answer()
    shown = callback.message
    if isinstance(shown, Message) and shown.chat.id == callback.from_user.id:
        await shown.edit_text(text, reply_markup=markup)
    else:  # pressed under someone else's message: the presser's own history, in their chat
        await bot.send_message(callback.from_user.id, text, reply_markup=markup)


async def stale_button(callback: CallbackQuery) -> None:
    await callback.answer(_("This button is out of date."), show_alert=True)
