"""/broadcast: an admin's wizard from segment to confirmed send, and the run's controls."""

from __future__ import annotations

import secrets
from html import escape
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.filters import ButtonNumber, IsAdmin
from handlers.wizard import go_on_to
from locales.rendering import Renderer
from scenarios.broadcasts import (
    InvalidBroadcastError,
    Variant,
    audience,
    broadcast_report,
    check_text,
    launch,
    parse_button,
)
from scenarios.clock import Clock
from scenarios.customers import SUPPORTED_LOCALES
from scenarios.rules import Rules
from scenarios.segments import (
    NEEDS_VALUE,
    InvalidSegmentError,
    Segment,
    SegmentKind,
    segment_with_value,
)
from storage.broadcasts import SqlBroadcasts
from storage.segments import SqlSegments


class Wizard(StatesGroup):
    segment_value = State()
    text = State()
    button = State()
    extras = State()
    extra_text = State()
    confirm = State()


class PickSegment(CallbackData, prefix="bseg"):
    kind: str


class PickTier(CallbackData, prefix="btier"):
    name: str


class WizardStep(CallbackData, prefix="bstep"):
    action: str  # skip_button, add_ru, add_uk, add_en, add_b, preview, send, abort


class Control(CallbackData, prefix="bctl"):
    action: str  # pause, resume, cancel
    broadcast_id: ButtonNumber


class ShowReport(CallbackData, prefix="brep"):
    broadcast_id: int


RECENT_SHOWN = 10  # broadcasts /broadcasts lists


def create_router() -> Router:
    router = Router(name="broadcast")
    router.message.filter(F.chat.type == "private", IsAdmin())
    router.message.register(begin, Command("broadcast"))
    router.message.register(list_recent, Command("broadcasts"))
    router.message.register(abort_by_command, Command("cancel"), Wizard())
    router.message.register(got_segment_value, Wizard.segment_value, F.text)
    router.message.register(got_text, Wizard.text, F.text)
    router.message.register(got_button, Wizard.button, F.text)
    router.message.register(got_extra_text, Wizard.extra_text, F.text)
    # Buttons are checked on every press: a forwarded or forged one proves nothing.
    router.callback_query.register(chose_segment, PickSegment.filter(), IsAdmin())
    router.callback_query.register(chose_tier, PickTier.filter(), IsAdmin())
    router.callback_query.register(step, WizardStep.filter(), IsAdmin())
    router.callback_query.register(control, Control.filter(), IsAdmin())
    router.callback_query.register(show_report, ShowReport.filter(), IsAdmin())
    router.callback_query.register(
        refuse_button, F.data.startswith(("bseg:", "btier:", "bstep:", "bctl:", "brep:"))
    )
    return router


async def refuse_button(callback: CallbackQuery, admin_ids: tuple[int, ...]) -> None:
    if callback.from_user.id in admin_ids:  # an admin's button that no longer parses
        await callback.answer(_("This button is out of date."), show_alert=True)
        return
    await callback.answer(_("This is for the shop's admins."), show_alert=True)


SEGMENT_ORDER = (
    SegmentKind.ALL,
    SegmentKind.TIER,
    SegmentKind.NEW,
    SegmentKind.REGULAR,
    SegmentKind.SLEEPING,
    SegmentKind.LOST,
    SegmentKind.SKU,
    SegmentKind.CATEGORY,
    SegmentKind.INACTIVE,
)


def segment_names(rules: Rules) -> dict[SegmentKind, str]:
    new_days = rules.segments.new_days
    return {
        SegmentKind.ALL: _("All members"),
        SegmentKind.TIER: _("By tier"),
        SegmentKind.NEW: _(
            "New (first order within %(days)s day)",
            "New (first order within %(days)s days)",
            new_days,
        )
        % {"days": new_days},
        SegmentKind.REGULAR: _("Regular customers"),
        SegmentKind.SLEEPING: _("Sleeping customers"),
        SegmentKind.LOST: _("Lost customers"),
        SegmentKind.SKU: _("Bought a product (SKU)"),
        SegmentKind.CATEGORY: _("Bought in a category"),
        SegmentKind.INACTIVE: _("No order for N days"),
    }


def describe(segment: Segment, *, rules: Rules, renderer: Renderer, locale: str) -> str:
    name = segment_names(rules)[segment.kind]
    value = segment.sku or segment.category
    if segment.tier is not None:
        value = tier_name(segment.tier, renderer=renderer, locale=locale)
    if segment.days is not None:
        value = str(segment.days)
    return f"{name}: {value}" if value else name


def tier_name(name: str, *, renderer: Renderer, locale: str) -> str:
    """A tier's name in the reader's language, from the catalogs (as every template shows it)."""
    return renderer.render("_tiers.html", locale=locale, name=name)


async def begin(message: Message, state: FSMContext, rules: Rules) -> None:
    await state.clear()
    builder = InlineKeyboardBuilder()
    names = segment_names(rules)
    for kind in SEGMENT_ORDER:
        builder.button(text=names[kind], callback_data=PickSegment(kind=kind.value))
    builder.adjust(1)
    await message.answer(
        _("New broadcast. Who should receive it?") + "\n" + _("/cancel stops the wizard."),
        reply_markup=builder.as_markup(),
    )


async def abort_by_command(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer(_("Broadcast cancelled; nothing was sent."))


async def chose_segment(
    callback: CallbackQuery,
    callback_data: PickSegment,
    state: FSMContext,
    rules: Rules,
    segments: SqlSegments,
    clock: Clock,
    renderer: Renderer,
    locale: str,
) -> None:
    try:
        kind = SegmentKind(callback_data.kind)
    except ValueError:
        await callback.answer(_("This button is out of date."), show_alert=True)
        return
    await callback.answer()
    if kind is SegmentKind.TIER:
        builder = InlineKeyboardBuilder()
        for tier in rules.bonus.tiers:
            builder.button(
                text=tier_name(tier.name, renderer=renderer, locale=locale),
                callback_data=PickTier(name=tier.name),
            )
        builder.adjust(3)
        await _reply(callback, _("Which tier?"), builder.as_markup())
        return
    if kind in NEEDS_VALUE:
        await go_on_to(state, Wizard.segment_value, kind=kind.value)
        prompts = {
            SegmentKind.SKU: _("Send the product's SKU, e.g. CAT-2KG."),
            SegmentKind.CATEGORY: _("Send the category name."),
            SegmentKind.INACTIVE: _("Send the number of days without an order, e.g. 60."),
        }
        await _reply(callback, prompts[kind])
        return
    await _segment_chosen(callback, Segment(kind), state, rules, segments, clock, renderer, locale)


async def chose_tier(
    callback: CallbackQuery,
    callback_data: PickTier,
    state: FSMContext,
    rules: Rules,
    segments: SqlSegments,
    clock: Clock,
    renderer: Renderer,
    locale: str,
) -> None:
    names = tuple(tier.name for tier in rules.bonus.tiers)
    try:
        segment = segment_with_value(SegmentKind.TIER, callback_data.name, tier_names=names)
    except InvalidSegmentError:
        await callback.answer(_("This button is out of date."), show_alert=True)
        return
    await callback.answer()
    await _segment_chosen(callback, segment, state, rules, segments, clock, renderer, locale)


async def got_segment_value(
    message: Message,
    state: FSMContext,
    rules: Rules,
    segments: SqlSegments,
    clock: Clock,
    renderer: Renderer,
    locale: str,
) -> None:
    data = await state.get_data()
    names = tuple(tier.name for tier in rules.bonus.tiers)
    try:
        segment = segment_with_value(
            SegmentKind(data["kind"]), message.text or "", tier_names=names
        )
    except InvalidSegmentError:
        await message.answer(_("That does not fit this segment; please try again."))
        return
    await _segment_chosen(message, segment, state, rules, segments, clock, renderer, locale)


async def _segment_chosen(
    event: Message | CallbackQuery,
    segment: Segment,
    state: FSMContext,
    rules: Rules,
    segments: SqlSegments,
    clock: Clock,
    renderer: Renderer,
    locale: str,
) -> None:
    members, reachable = await audience(segments, segment, rules=rules, clock=clock)
    await go_on_to(state, Wizard.text, segment=segment.as_json(), variants={})
    await _reply(
        event,
        renderer.render(
            "broadcast_audience.html",
            locale=locale,
            segment=describe(segment, rules=rules, renderer=renderer, locale=locale),
            members=members,
            reachable=reachable,
        ),
    )


async def got_text(message: Message, state: FSMContext) -> None:
    try:
        text = check_text(_message_html(message))
    except InvalidBroadcastError as error:
        await message.answer(_("The text cannot be sent: %(reason)s") % {"reason": error})
        return
    data = await state.get_data()
    variant = data.get("editing", "A")
    variants = data["variants"]
    variants[variant] = Variant(text=text).as_json()
    await state.update_data(variants=variants)
    await _ask_for_button(message, state)


async def _ask_for_button(message: Message, state: FSMContext) -> None:
    await state.set_state(Wizard.button)
    builder = InlineKeyboardBuilder()
    builder.button(text=_("No button"), callback_data=WizardStep(action="skip_button"))
    await message.answer(
        _("Add one link button? Send it as: Label | https://link"),
        reply_markup=builder.as_markup(),
    )


async def got_button(message: Message, state: FSMContext) -> None:
    try:
        button = parse_button(message.text or "")
    except InvalidBroadcastError:
        await message.answer(_("Please send the button as: Label | https://link"))
        return
    data = await state.get_data()
    variant = data.get("editing", "A")
    current = Variant.from_json(data["variants"][variant])
    data["variants"][variant] = Variant(current.text, current.by_locale, button).as_json()
    await state.update_data(variants=data["variants"])
    await _offer_extras(message, state)


async def got_extra_text(message: Message, state: FSMContext) -> None:
    data = await state.get_data()
    target = data["target"]
    try:
        text = check_text(_message_html(message))
    except InvalidBroadcastError as error:
        await message.answer(_("The text cannot be sent: %(reason)s") % {"reason": error})
        return
    variants = data["variants"]
    if target == "B":
        variants["B"] = Variant(text=text).as_json()
        await state.update_data(variants=variants, editing="B")
        await _ask_for_button(message, state)
        return
    variants["A"].setdefault("by_locale", {})[target] = text
    await state.update_data(variants=variants)
    await _offer_extras(message, state)


async def _offer_extras(event: Message | CallbackQuery, state: FSMContext) -> None:
    await go_on_to(state, Wizard.extras, editing="A")
    data = await state.get_data()
    builder = InlineKeyboardBuilder()
    have = set(data["variants"]["A"].get("by_locale", {}))
    labels = {
        "ru": _("Add a Russian version"),
        "uk": _("Add a Ukrainian version"),
        "en": _("Add an English version"),
    }
    for locale in SUPPORTED_LOCALES:
        if locale not in have:
            builder.button(text=labels[locale], callback_data=WizardStep(action=f"add_{locale}"))
    if "B" not in data["variants"]:
        builder.button(text=_("Add variant B (A/B test)"), callback_data=WizardStep(action="add_b"))
    builder.button(text=_("Preview"), callback_data=WizardStep(action="preview"))
    builder.adjust(1)
    await _reply(
        event,
        _("Everyone gets the same text unless you add a version for their language."),
        builder.as_markup(),
    )


async def step(
    callback: CallbackQuery,
    callback_data: WizardStep,
    state: FSMContext,
    bot: Bot,
    rules: Rules,
    segments: SqlSegments,
    broadcasts: SqlBroadcasts,
    clock: Clock,
) -> None:
    data = await state.get_data()
    if not data.get("variants"):
        await callback.answer(
            _("This wizard has expired; start again with /broadcast."), show_alert=True
        )
        return
    action = callback_data.action
    await callback.answer()
    if action == "skip_button":
        await _offer_extras(callback, state)
    elif action in {"add_ru", "add_uk", "add_en", "add_b"}:
        target = "B" if action == "add_b" else action.removeprefix("add_")
        await go_on_to(state, Wizard.extra_text, target=target)
        prompts = {
            "ru": _("Send the Russian text."),
            "uk": _("Send the Ukrainian text."),
            "en": _("Send the English text."),
            "B": _("Send the text of variant B; half of the recipients get it, chosen at random."),
        }
        await _reply(callback, prompts[target])
    elif action == "preview":
        await _preview(callback, state, bot, rules, segments, clock)
    elif action == "send":
        await _send(callback, state, bot, rules, segments, broadcasts, clock)
    elif action == "abort":
        await state.clear()
        await _reply(callback, _("Broadcast cancelled; nothing was sent."))


async def _preview(
    callback: CallbackQuery,
    state: FSMContext,
    bot: Bot,
    rules: Rules,
    segments: SqlSegments,
    clock: Clock,
) -> None:
    data = await state.get_data()
    chat_id = callback.from_user.id
    for name, raw in sorted(data["variants"].items()):
        variant = Variant.from_json(raw)
        markup = _markup(variant)
        versions = [("", variant.text), *sorted(variant.by_locale.items())]
        for locale, text in versions:
            label = _("Variant %(name)s") % {"name": name}
            if locale:
                label += f" · {locale}"
            await bot.send_message(chat_id, f"⬇️ {label}")
            try:
                await bot.send_message(chat_id, text, reply_markup=markup)
            except TelegramBadRequest as error:
                await state.set_state(Wizard.text if name == "A" and not locale else Wizard.extras)
                await bot.send_message(
                    chat_id,
                    escape(
                        _("Telegram cannot show this text: %(reason)s. Please send it again.")
                        % {"reason": error.message}
                    ),
                )
                return
    segment = Segment.from_json(data["segment"])
    _members, reachable = await audience(segments, segment, rules=rules, clock=clock)
    await state.set_state(Wizard.confirm)
    builder = InlineKeyboardBuilder()
    builder.button(text=_("Send now"), callback_data=WizardStep(action="send"))
    builder.button(text=_("Cancel"), callback_data=WizardStep(action="abort"))
    split = _(" Variants A and B go to random halves.") if "B" in data["variants"] else ""
    await bot.send_message(
        chat_id,
        _("This is exactly what customers will see. Recipients now: %(count)s.")
        % {"count": reachable}
        + split,
        reply_markup=builder.as_markup(),
    )


async def _send(
    callback: CallbackQuery,
    state: FSMContext,
    bot: Bot,
    rules: Rules,
    segments: SqlSegments,
    broadcasts: SqlBroadcasts,
    clock: Clock,
) -> None:
    data = await state.get_data()
    await state.clear()
    variants = {name: Variant.from_json(raw) for name, raw in data["variants"].items()}
    broadcast_id, total = await launch(
        segments,
        broadcasts,
        admin_id=callback.from_user.id,
        segment=Segment.from_json(data["segment"]),
        variants=variants,
        rules=rules,
        clock=clock,
        seed=secrets.randbelow(2**31),
    )
    queued = _(
        "Broadcast #%(id)s is queued for %(count)s recipient.",
        "Broadcast #%(id)s is queued for %(count)s recipients.",
        total,
    )
    progress = await bot.send_message(
        callback.from_user.id,
        queued % {"id": broadcast_id, "count": total},
        reply_markup=control_keyboard(broadcast_id, running=True),
    )
    await broadcasts.set_progress_message(
        broadcast_id=broadcast_id, chat_id=progress.chat.id, message_id=progress.message_id
    )


def control_keyboard(broadcast_id: int, *, running: bool) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if running:
        builder.button(
            text=_("Pause"), callback_data=Control(action="pause", broadcast_id=broadcast_id)
        )
    else:
        builder.button(
            text=_("Resume"), callback_data=Control(action="resume", broadcast_id=broadcast_id)
        )
    builder.button(
        text=_("Cancel"), callback_data=Control(action="cancel", broadcast_id=broadcast_id)
    )
    return builder.as_markup()


async def control(
    callback: CallbackQuery, callback_data: Control, broadcasts: SqlBroadcasts, clock: Clock
) -> None:
    moves: dict[str, tuple[str, list[str], Any]] = {
        "pause": ("paused", ["running"], _("Paused.")),
        "resume": ("running", ["paused"], _("Resumed.")),
        "cancel": (
            "cancelled",
            ["running", "paused"],
            _("Cancelled; what was not sent yet will not be."),
        ),
    }
    if callback_data.action not in moves:
        await callback.answer(_("This button is out of date."), show_alert=True)
        return
    to, allowed, done = moves[callback_data.action]
    changed = await broadcasts.change_state(
        broadcast_id=callback_data.broadcast_id, to=to, allowed_from=allowed, now=clock.now()
    )
    if not changed:
        await callback.answer(_("This broadcast can no longer be changed."), show_alert=True)
        return
    await callback.answer(done)
    if isinstance(callback.message, Message) and to != "cancelled":
        await callback.message.edit_reply_markup(
            reply_markup=control_keyboard(callback_data.broadcast_id, running=to == "running")
        )


async def list_recent(
    message: Message, broadcasts: SqlBroadcasts, rules: Rules, renderer: Renderer, locale: str
) -> None:
    """/broadcasts: the latest broadcasts, each with a button for its figures so far."""
    records = await broadcasts.recent(limit=RECENT_SHOWN)
    if not records:
        await message.answer(_("No broadcasts yet; /broadcast starts one."))
        return
    builder = InlineKeyboardBuilder()
    for record in records:
        builder.button(
            text=_("Figures of #%(id)s") % {"id": record.id},
            callback_data=ShowReport(broadcast_id=record.id),
        )
    builder.adjust(2)
    shown = [
        {
            "id": record.id,
            "created_at": record.created_at,
            "segment": describe(
                Segment.from_json(record.segment), rules=rules, renderer=renderer, locale=locale
            ),
            "state": record.state,
            "total": record.total,
        }
        for record in records
    ]
    await message.answer(
        renderer.render("broadcasts_list.html", locale=locale, broadcasts=shown),
        reply_markup=builder.as_markup(),
    )


async def show_report(
    callback: CallbackQuery,
    callback_data: ShowReport,
    broadcasts: SqlBroadcasts,
    rules: Rules,
    clock: Clock,
    renderer: Renderer,
    locale: str,
) -> None:
    report = await broadcast_report(
        broadcasts,
        broadcast_id=callback_data.broadcast_id,
        days=rules.broadcasts.conversion_days,
        clock=clock,
    )
    if report is None:
        await callback.answer(_("This button is out of date."), show_alert=True)
        return
    await callback.answer()
    await _reply(callback, renderer.render("broadcast_report.html", locale=locale, report=report))


def _markup(variant: Variant) -> InlineKeyboardMarkup | None:
    if variant.button is None:
        return None
    builder = InlineKeyboardBuilder()
    builder.button(text=variant.button.text, url=variant.button.url)
    return builder.as_markup()


def _message_html(message: Message) -> str:
    """What the admin typed: formatting they applied in Telegram, or HTML tags they wrote."""
    if message.entities:
        return message.html_text
    return message.text or ""


async def _reply(
    event: Message | CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None
) -> None:
    message = event.message if isinstance(event, CallbackQuery) else event
    if isinstance(message, Message):
        await message.answer(text, reply_markup=markup)
