"""/stop (no more offers, still a member), /my_data (a copy of my data) and /delete_me (erase
my personal data)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.start import offers_on_keyboard
from locales.export import export_json
from scenarios.signup import SignupDesk
from storage.customers import CustomerRecord
from storage.database import Database
from storage.privacy import SqlPersonalData


class ErasePress(CallbackData, prefix="erase"):
    confirm: bool


def create_router() -> Router:
    router = Router(name="privacy")
    router.message.filter(F.chat.type == "private")
    router.message.register(stop, Command("stop"))
    router.message.register(ask_erase, Command("delete_me"))
    router.message.register(my_data, Command("my_data"))
    router.callback_query.register(erase, ErasePress.filter())
    return router


def erase_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("Yes, delete my data"), callback_data=ErasePress(confirm=True))
    builder.button(text=_("No, keep it"), callback_data=ErasePress(confirm=False))
    builder.adjust(1)
    return builder.as_markup()


async def stop(message: Message, customer: CustomerRecord, signup: SignupDesk) -> None:
    await signup.set_offers(customer, opt_in=False)
    if customer.joined_at is None:
        await message.answer(_("Done: I will not send you offers."))
        return
    await message.answer(
        _(
            "Done: no more offers and news. You stay in the bonus program and keep your "
            "points and card. The button below (also shown on /start) turns offers back on."
        ),
        reply_markup=offers_on_keyboard(),
    )


async def my_data(
    message: Message, customer: CustomerRecord, personal_data: SqlPersonalData, i18n: I18n
) -> None:
    """Everything stored about the sender, as a JSON file labelled in their language."""
    data = await personal_data.collect(customer_id=customer.id)
    body = export_json(data, i18n=i18n, locale=i18n.current_locale)
    await message.answer_document(
        BufferedInputFile(body.encode(), filename="my-data.json"),
        caption=_("A copy of everything the bot stores about you. /delete_me erases it."),
    )


async def ask_erase(message: Message) -> None:
    await message.answer(
        _(
            "Delete your personal data? Your phone number, name, birthday and the link to this "
            "Telegram account are erased and you leave the bonus program; your points are "
            "lost. Purchase records stay, without your name, for the shop's accounts."
        ),
        reply_markup=erase_keyboard(),
    )


async def erase(
    callback: CallbackQuery,
    callback_data: ErasePress,
    state: FSMContext,
    customer: CustomerRecord,
    signup: SignupDesk,
    db: Database,
) -> None:
    message = callback.message if isinstance(callback.message, Message) else None
    if not callback_data.confirm:
        await callback.answer()
        if message is not None:
            await message.edit_text(_("Nothing was deleted."))
        return
    # The presser's own row, as read for this update: a button cannot erase anyone else.
    await signup.erase(customer)
    await state.clear()
    # After the commit: no old copy of what was erased stays in SQLite's -wal file.
    db.checkpoint_soon()
    await callback.answer()
    text = _(
        "Your personal data is deleted. Goodbye, and thank you for being with us! "
        "If you ever come back, /start begins anew."
    )
    if message is not None:
        await message.edit_text(text)
