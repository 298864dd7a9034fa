"""Tests for the fake Telegram Bot API, driven through a real aiogram Bot over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.methods import SendMessage
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    Update,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from tests.fake_telegram import FakeTelegram, FakeUser, LocalAiohttpSession, RateLimits
from tests.fake_telegram.html import parse_html
from tests.fake_telegram.markdown import parse_markdown, parse_markdown_v2
from tests.fake_telegram.text_builder import ParseError

TOKEN = "123456:TEST-TOKEN"


def png(width: int, height: int) -> bytes:
    """A real (tiny, red) PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN, bot_username="shop_test_bot") as fake:
        yield fake


@pytest.fixture
def bot(tg: FakeTelegram) -> Bot:
    return tg.bot()


@pytest.fixture
def anna(tg: FakeTelegram) -> FakeUser:
    return tg.user(1001, first_name="Anna", language_code="ru", username="anna", known=True)


@contextlib.asynccontextmanager
async def polling(dp: Dispatcher, bot: Bot) -> AsyncIterator[None]:
    """Runs real aiogram long polling against the fake for the duration of the block."""
    task = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=1)
    )
    try:
        yield
    finally:
        try:
            await dp.stop_polling()
        except RuntimeError:  # polling never got as far as starting
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def raw_call(tg: FakeTelegram, method: str, token: str = TOKEN, **params: Any) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{tg.base_url}/bot{token}/{method}", json=params) as response,
    ):
        return response.status, await response.json()


# -- basics ---------------------------------------------------------------------------------


async def test_get_me_returns_the_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == 123456
    assert me.is_bot
    assert me.username == "shop_test_bot"


async def test_unknown_token_is_unauthorized(tg: FakeTelegram) -> None:
    other = Bot("654321:WRONG", session=LocalAiohttpSession(api=tg.api_server))
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await other.get_me()
    finally:
        await other.session.close()


async def test_unknown_method_is_404_and_names_are_case_insensitive(
    tg: FakeTelegram, anna: FakeUser
) -> None:
    status, body = await raw_call(tg, "sendSomethingElse")
    assert (status, body) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
    status, body = await raw_call(tg, "SENDMESSAGE", chat_id=anna.id, text="hi")
    assert status == 200
    assert body["ok"] is True
    assert body["result"]["text"] == "hi"
    assert tg.calls[-1].method == "sendMessage"


async def test_urlencoded_and_get_requests_work(tg: FakeTelegram, anna: FakeUser) -> None:
    url = f"{tg.base_url}/bot{TOKEN}/sendMessage"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data={"chat_id": str(anna.id), "text": "123"}) as response:
            assert (await response.json())["result"]["text"] == "123"
        async with session.get(f"{tg.base_url}/bot{TOKEN}/getMe") as response:
            assert (await response.json())["result"]["id"] == 123456


# -- sending, editing, deleting -------------------------------------------------------------


async def test_send_edit_and_delete_message(tg: FakeTelegram, bot: Bot, anna: FakeUser) -> None:
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Rate", callback_data="rate:5")]]
    )
    message = await bot.send_message(
        anna.id, "<b>Hello</b> &amp; welcome", parse_mode="HTML", reply_markup=keyboard
    )
    assert isinstance(message, Message)
    assert message.chat.type == "private"
    assert message.text == "Hello & welcome"
    assert message.entities is not None
    assert message.entities[0].type == "bold"
    assert message.reply_markup is not None
    assert message.reply_markup.model_dump() == keyboard.model_dump()

    sent = tg.last_message(anna)
    assert sent.text == "Hello & welcome"
    assert sent.html == "<b>Hello</b> &amp; welcome"
    assert sent.parse_mode == "HTML"
    assert sent.reply_markup == keyboard.model_dump(exclude_none=True)
    assert sent.button_texts == ["Rate"]

    edited = await bot.edit_message_text(
        "Bye", chat_id=anna.id, message_id=message.message_id, reply_markup=keyboard
    )
    assert isinstance(edited, Message)
    assert edited.edit_date is not None
    assert sent.text == "Bye"
    assert [revision.text for revision in sent.edits] == ["Hello & welcome"]

    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "Bye", chat_id=anna.id, message_id=message.message_id, reply_markup=keyboard
        )
    await bot.edit_message_reply_markup(chat_id=anna.id, message_id=message.message_id)
    assert sent.reply_markup is None

    assert await bot.delete_message(anna.id, message.message_id)
    assert sent.deleted
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("again", chat_id=anna.id, message_id=message.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(anna.id, message.message_id)


async def test_message_ids_increment_per_chat_in_both_directions(
    tg: FakeTelegram, bot: Bot, anna: FakeUser
) -> None:
    boris = tg.user(1002, "Boris", known=True)
    first = await bot.send_message(anna.id, "one")
    await anna.send("hi")
    second = await bot.send_message(anna.id, "two")
    other = await bot.send_message(boris.id, "one")
    assert (first.message_id, second.message_id, other.message_id) == (1, 3, 1)


async def test_reply_parameters(tg: FakeTelegram, bot: Bot, anna: FakeUser) -> None:
    update = await anna.send("question")
    asked = update["message"]["message_id"]
    reply = await bot.send_message(anna.id, "answer", reply_to_message_id=asked)
    assert reply.reply_to_message is not None
    assert reply.reply_to_message.text == "question"
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(anna.id, "answer", reply_to_message_id=999)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<blink>x</blink>", 'Unsupported start tag "blink" at byte offset 0'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ('<span class="x">y</span>', 'Tag "span" must have class "tg-spoiler"'),
        ("<a href='x'>y", 'Can\'t find end tag corresponding to start tag "a"'),
    ],
)
async def test_malformed_html_is_rejected(
    tg: FakeTelegram, bot: Bot, anna: FakeUser, text: str, error: str
) -> None:
    with pytest.raises(TelegramBadRequest, match="can't parse entities") as caught:
        await bot.send_message(anna.id, text, parse_mode="HTML")
    assert error in caught.value.message
    assert tg.sent(anna) == []


async def test_text_length_and_emptiness(tg: FakeTelegram, bot: Bot, anna: FakeUser) -> None:
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(anna.id, "")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(anna.id, "<b> </b>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(anna.id, "x" * 4097)
    # Tags do not count towards the limit; only the parsed text does.
    await bot.send_message(anna.id, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
    assert len(tg.sent(anna)) == 1


async def test_callback_data_longer_than_64_bytes(bot: Bot, anna: FakeUser) -> None:
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="я" * 33)]]
    )
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(anna.id, "hi", reply_markup=keyboard)


async def test_unknown_chat_and_blocked_user(tg: FakeTelegram, bot: Bot, anna: FakeUser) -> None:
    stranger = tg.user(1003, "Stranger")  # never started the bot
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(999_999, "hi")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(stranger.id, "hi")

    update = await anna.block()
    assert Update.model_validate(update).my_chat_member is not None
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(anna.id, "promo")
    assert tg.sent(anna) == []
    await anna.unblock()
    await bot.send_message(anna.id, "welcome back")
    assert tg.last_message(anna).text == "welcome back"


async def test_send_photo_upload_and_file_id(tg: FakeTelegram, bot: Bot, anna: FakeUser) -> None:
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Open", url="https://example.com")]]
    )
    message = await bot.send_photo(
        anna.id,
        BufferedInputFile(png(400, 300), filename="card.png"),
        caption="<i>Your card</i>",
        parse_mode="HTML",
        reply_markup=keyboard,
    )
    assert message.photo is not None
    assert [(size.width, size.height) for size in message.photo] == [
        (90, 68),
        (320, 240),
        (400, 300),
    ]
    assert message.caption == "Your card"
    assert message.reply_markup is not None
    assert message.reply_markup.model_dump() == keyboard.model_dump()
    sent = tg.last_message(anna)
    assert sent.upload is not None
    assert sent.upload.filename == "card.png"
    assert sent.method == "sendPhoto"

    again = await bot.send_photo(anna.id, message.photo[-1].file_id)
    assert again.photo is not None
    assert again.photo[-1].file_id == message.photo[-1].file_id

    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(anna.id, BufferedInputFile(b"not an image", filename="x.png"))
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(anna.id, "bad id!")


async def test_send_document(tg: FakeTelegram, bot: Bot, anna: FakeUser) -> None:
    message = await bot.send_document(
        anna.id, BufferedInputFile(b"a,b\n1,2\n", filename="report.csv")
    )
    assert message.document is not None
    assert message.document.file_name == "report.csv"
    assert message.document.mime_type == "text/csv"
    assert message.document.file_size == 8


async def test_commands_are_stored_per_scope_and_language(tg: FakeTelegram, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand(command="start", description="Start")])
    await bot.set_my_commands(
        [BotCommand(command="card", description="Карта")],
        scope=BotCommandScopeAllPrivateChats(),
        language_code="ru",
    )
    assert tg.commands() == [{"command": "start", "description": "Start"}]
    assert tg.commands(scope="all_private_chats", language_code="ru") == [
        {"command": "card", "description": "Карта"}
    ]
    stored = await bot.get_my_commands(scope=BotCommandScopeAllPrivateChats(), language_code="ru")
    assert [command.command for command in stored] == ["card"]
    assert await bot.get_my_commands(language_code="en") == []
    await bot.delete_my_commands()
    assert tg.commands() == []
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad Command", description="x")])


async def test_get_chat_and_chat_action(tg: FakeTelegram, bot: Bot, anna: FakeUser) -> None:
    staff = tg.group(-1001234567890, title="Staff")
    private = await bot.get_chat(anna.id)
    assert (private.type, private.first_name, private.username) == ("private", "Anna", "anna")
    group = await bot.get_chat(staff.id)
    assert (group.type, group.title) == ("supergroup", "Staff")
    assert await bot.send_chat_action(anna.id, "typing")


# -- faults ----------------------------------------------------------------------------------


async def test_429_becomes_retry_after(tg: FakeTelegram, bot: Bot, anna: FakeUser) -> None:
    tg.fail_next("sendMessage", status=429, retry_after=3)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(anna.id, "hi")
    assert caught.value.retry_after == 3
    assert tg.sent(anna) == []
    assert tg.calls[-1].faulted
    assert tg.calls[-1].status == 429
    await bot.send_message(anna.id, "hi")
    assert len(tg.sent(anna)) == 1


async def test_other_injected_faults(tg: FakeTelegram, bot: Bot, anna: FakeUser) -> None:
    tg.fail_next("sendMessage", status=500)
    with pytest.raises(TelegramServerError):
        await bot.send_message(anna.id, "x")
    tg.fail_next("sendMessage", status=403)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(anna.id, "x")
    tg.fail_next("sendMessage", status=400, description="chat not found", chat_id=anna.id)
    with pytest.raises(TelegramBadRequest, match="Bad Request: chat not found"):
        await bot.send_message(anna.id, "x")
    tg.slow_next("sendMessage", delay=0.2)
    started = time.monotonic()
    await bot.send_message(anna.id, "slow but fine")
    assert time.monotonic() - started >= 0.2
    assert [sent.text for sent in tg.sent(anna)] == ["slow but fine"]


async def test_fail_rate_is_reproducible(tg: FakeTelegram, bot: Bot, anna: FakeUser) -> None:
    async def outcomes() -> list[bool]:
        tg.clear_faults()
        tg.fail_rate("sendMessage", 502, probability=0.5, seed=7)
        results = []
        for _ in range(20):
            try:
                await bot.send_message(anna.id, "x")
            except TelegramServerError:
                results.append(False)
            else:
                results.append(True)
        return results

    first, second = await outcomes(), await outcomes()
    assert first == second
    assert 0 < first.count(False) < 20


# -- rate limits -----------------------------------------------------------------------------


async def test_rate_limit_violations_are_counted() -> None:
    limits = RateLimits(global_per_second=5, private_min_interval=1.0, group_per_minute=3)
    async with FakeTelegram(token=TOKEN, limits=limits) as tg:
        bot = tg.bot()
        anna = tg.user(1001, "Anna", known=True)
        staff = tg.group(-1001234567890, "Staff")
        message = await bot.send_message(anna.id, "1")
        await bot.send_message(anna.id, "2")  # too soon for the same private chat
        await bot.edit_message_text("1!", chat_id=anna.id, message_id=message.message_id)
        for n in range(4):  # the 4th exceeds 3/minute, the 6th send overall exceeds 5/second
            await bot.send_message(staff.id, str(n))
        assert tg.violations == {"global": 1, "private": 1, "group": 1}
        assert len(tg.sent(staff)) == 4


async def test_rate_limit_reject_mode_answers_429() -> None:
    async with FakeTelegram(token=TOKEN, limits=RateLimits(mode="reject")) as tg:
        bot = tg.bot()
        anna = tg.user(1001, "Anna", known=True)
        await bot.send_message(anna.id, "1")
        with pytest.raises(TelegramRetryAfter) as caught:
            await bot.send_message(anna.id, "2")
        assert caught.value.retry_after == 1
        assert [sent.text for sent in tg.sent(anna)] == ["1"]
        assert tg.violations == {"global": 0, "private": 0, "group": 0}


async def test_paid_broadcast_uses_the_higher_global_limit() -> None:
    limits = RateLimits(global_per_second=2, paid_global_per_second=10, mode="reject")
    async with FakeTelegram(token=TOKEN, limits=limits) as tg:
        bot = tg.bot()
        users = [tg.user(2000 + n, known=True) for n in range(5)]
        for user in users:
            await bot.send_message(user.id, "promo", allow_paid_broadcast=True)
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(tg.user(3000, known=True).id, "free")


# -- updates: polling, long polling, webhooks ------------------------------------------------


async def test_polling_dispatcher_echoes(tg: FakeTelegram, bot: Bot, anna: FakeUser) -> None:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message, command: CommandObject) -> None:
        await message.answer(f"start:{command.args}")

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    dp = Dispatcher()
    dp.include_router(router)
    async with polling(dp, bot):
        await anna.command("start", "ref_abc")
        await anna.send("hello")
        sent = await tg.wait_for(anna, count=2, timeout=5.0)
    assert [message.text for message in sent] == ["start:ref_abc", "hello"]


async def test_callback_press_reaches_handler(tg: FakeTelegram, bot: Bot, anna: FakeUser) -> None:
    dp = Dispatcher()

    @dp.message(Command("rate"))
    async def ask(message: Message) -> None:
        buttons = [
            InlineKeyboardButton(text=f"{n}★", callback_data=f"rate:{n}") for n in range(1, 6)
        ]
        await message.answer(
            "Rate us", reply_markup=InlineKeyboardMarkup(inline_keyboard=[buttons])
        )

    @dp.callback_query(F.data.startswith("rate:"))
    async def rated(query: CallbackQuery) -> None:
        assert isinstance(query.message, Message)
        await query.answer(f"thanks for {query.data}", show_alert=True)
        await query.message.edit_text(f"rated {query.data}")

    async with polling(dp, bot):
        await anna.command("rate")
        question = (await tg.wait_for(anna))[0]
        press = await anna.press(question, "rate:5")
        answer = await tg.wait_callback_answer(press, timeout=5.0)
        second = await anna.press_button(question, text="4★")
        await tg.wait_callback_answer(second, timeout=5.0)
    assert (answer.text, answer.show_alert) == ("thanks for rate:5", True)
    assert question.text == "rated rate:4"
    assert [revision.text for revision in question.edits] == ["Rate us", "rated rate:5"]
    with pytest.raises(AssertionError, match="no button with callback_data='rate:9'"):
        await anna.press(question, "rate:9")


async def test_group_command_and_contact_sharing(
    tg: FakeTelegram, bot: Bot, anna: FakeUser
) -> None:
    staff = tg.group(-1001234567890, title="Staff")
    manager = tg.user(2001, first_name="Max", username="max")
    dp = Dispatcher()

    @dp.message(Command("stats"))
    async def stats(message: Message) -> None:
        assert message.from_user is not None
        await message.answer(f"{message.chat.type} stats for {message.from_user.first_name}")

    @dp.message(F.contact)
    async def contact(message: Message) -> None:
        assert message.contact is not None
        assert message.from_user is not None
        own = message.contact.user_id == message.from_user.id
        await message.answer(f"{message.contact.phone_number} own={own}")

    async with polling(dp, bot):
        await staff.send(from_user=manager, text="/stats")
        await anna.share_contact("+79991234567", own=True)
        await anna.share_contact("+79990000000", own=False)
        await tg.wait_for(staff)
        await tg.wait_for(anna, count=2)
    assert tg.last_message(staff).text == "supergroup stats for Max"
    assert [sent.text for sent in tg.sent(anna)] == [
        "+79991234567 own=True",
        "+79990000000 own=False",
    ]


async def test_reply_keyboard_button_press_sends_its_text(
    tg: FakeTelegram, bot: Bot, anna: FakeUser
) -> None:
    keyboard = ReplyKeyboardMarkup(
        keyboard=[
            [KeyboardButton(text="Русский"), KeyboardButton(text="Phone", request_contact=True)]
        ]
    )
    await bot.send_message(anna.id, "Language?", reply_markup=keyboard)
    update = await anna.press_button(text="Русский")
    assert update["message"]["text"] == "Русский"
    update = await anna.press_button(text="Phone")
    assert update["message"]["contact"]["user_id"] == anna.id


async def test_long_poll_waits_for_an_update(tg: FakeTelegram, bot: Bot, anna: FakeUser) -> None:
    async def send_later() -> None:
        await asyncio.sleep(0.2)
        await anna.send("late")

    started = time.monotonic()
    sender = asyncio.create_task(send_later())
    updates = await bot.get_updates(timeout=5)
    await sender
    elapsed = time.monotonic() - started
    assert 0.15 < elapsed < 2
    assert [update.message.text for update in updates if update.message] == ["late"]

    started = time.monotonic()
    status, body = await raw_call(tg, "getUpdates", offset=updates[-1].update_id + 1, timeout=0.3)
    assert (status, body) == (200, {"ok": True, "result": []})
    assert time.monotonic() - started >= 0.25


async def test_get_updates_offset_limit_and_allowed_updates(
    tg: FakeTelegram, bot: Bot, anna: FakeUser
) -> None:
    for n in range(3):
        await anna.send(str(n))
    first = await bot.get_updates(limit=2)
    assert [u.message.text for u in first if u.message] == ["0", "1"]
    assert first[1].update_id > first[0].update_id
    rest = await bot.get_updates(offset=first[-1].update_id + 1)
    assert [u.message.text for u in rest if u.message] == ["2"]

    await bot.get_updates(offset=rest[-1].update_id + 1, allowed_updates=["callback_query"])
    await anna.send("ignored")
    assert await bot.get_updates() == []
    assert tg.pending_updates == 0


async def test_concurrent_get_updates_conflict(tg: FakeTelegram, bot: Bot) -> None:
    older = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    await bot.get_updates(timeout=0)
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await older


async def test_webhook_round_trip(tg: FakeTelegram, bot: Bot, anna: FakeUser) -> None:
    dp = Dispatcher()
    seen_secrets: list[str | None] = []

    @dp.message(F.text == "ping")
    async def ping(message: Message) -> SendMessage:
        # Returning a method makes aiogram answer it inside the webhook response.
        return message.answer("pong")

    @web.middleware
    async def capture(request: web.Request, handler: Any) -> web.StreamResponse:
        seen_secrets.append(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        response: web.StreamResponse = await handler(request)
        return response

    app = web.Application(middlewares=[capture])
    SimpleRequestHandler(dp, bot, handle_in_background=False, secret_token="s3cret").register(
        app, path="/webhook"
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        url = f"http://{host}:{port}/webhook"
        assert await bot.set_webhook(url, secret_token="s3cret")
        info = await bot.get_webhook_info()
        assert info.url == url
        with pytest.raises(TelegramConflictError, match="webhook is active"):
            await bot.get_updates()

        await anna.send("ping")
        [pong] = await tg.wait_for(anna)
        assert pong.text == "pong"
        assert seen_secrets == ["s3cret"]
        assert tg.calls_to("sendMessage")[-1].via_webhook
        assert (await bot.get_webhook_info()).pending_update_count == 0
        assert await bot.delete_webhook()
        assert (await bot.get_webhook_info()).url == ""
    finally:
        await runner.cleanup()


async def test_webhook_retries_failures_and_runs_json_method_replies() -> None:
    attempts: list[str | None] = []

    async def flaky(request: web.Request) -> web.Response:
        attempts.append(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        if len(attempts) == 1:
            return web.Response(status=500)
        update = await request.json()
        reply = {"method": "sendMessage", "chat_id": update["message"]["chat"]["id"], "text": "ok"}
        return web.json_response(reply)

    app = web.Application()
    app.router.add_post("/hook", flaky)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with FakeTelegram(token=TOKEN, webhook_retry_delay=0.05) as tg:
            bot = tg.bot()
            anna = tg.user(1001, "Anna")
            await bot.set_webhook(f"http://{host}:{port}/hook", secret_token="abc_DEF-1")
            await anna.send("hi")
            [reply] = await tg.wait_for(anna)
            assert reply.text == "ok"
            assert attempts == ["abc_DEF-1", "abc_DEF-1"]
            info = await bot.get_webhook_info()
            assert info.last_error_message == (
                "Wrong response from the webhook: 500 Internal Server Error"
            )
            assert info.pending_update_count == 0
    finally:
        await runner.cleanup()


# -- test-side helpers -----------------------------------------------------------------------


async def test_wait_for_times_out_with_a_helpful_message(
    tg: FakeTelegram, bot: Bot, anna: FakeUser
) -> None:
    await bot.send_message(anna.id, "only one")
    with pytest.raises(TelegramBadRequest):
        await bot.send_message(anna.id, "<b>broken", parse_mode="HTML")
    with pytest.raises(AssertionError) as caught:
        await tg.wait_for(anna, count=2, timeout=0.05)
    report = str(caught.value)
    assert "'only one'" in report
    assert "can't parse entities" in report


async def test_update_builders_work_without_a_server() -> None:
    tg = FakeTelegram(token=TOKEN, bot_username="shop_test_bot")
    anna = tg.user(1001, first_name="Anna", language_code="ru", username="anna")
    raw = anna.command_update("start", "ref_abc")
    update = Update.model_validate(raw)
    assert update.message is not None
    assert update.message.text == "/start ref_abc"
    assert update.message.entities is not None
    assert update.message.entities[0].type == "bot_command"
    assert update.message.from_user is not None
    assert update.message.from_user.language_code == "ru"
    assert not update.message.from_user.is_bot
    later = Update.model_validate(anna.message_update("hi"))
    assert later.update_id == update.update_id + 1

    received: list[str] = []
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message, command: CommandObject) -> None:
        received.append(command.args or "")

    offline_bot = Bot(TOKEN, default=DefaultBotProperties(parse_mode="HTML"))
    try:
        await dp.feed_update(offline_bot, update)
    finally:
        await offline_bot.session.close()
    assert received == ["ref_abc"]


# -- parsers ---------------------------------------------------------------------------------


def test_html_entities_use_utf16_offsets() -> None:
    parsed = parse_html('😀 <b>bold <i>both</i></b> <a href="https://x.io/?a=1&amp;b=2">link</a>')
    assert parsed.text == "😀 bold both link"
    assert parsed.entities == [
        {"type": "bold", "offset": 3, "length": 9},
        {"type": "italic", "offset": 8, "length": 4},
        {"type": "text_link", "offset": 13, "length": 4, "url": "https://x.io/?a=1&b=2"},
    ]


def test_html_pre_code_language_and_expandable_quote() -> None:
    parsed = parse_html(
        '<pre><code class="language-python">x = 1</code></pre>'
        "<blockquote expandable>q</blockquote><tg-spoiler>s</tg-spoiler>"
    )
    assert parsed.entities == [
        {"type": "pre", "offset": 0, "length": 5, "language": "python"},
        {"type": "expandable_blockquote", "offset": 5, "length": 1},
        {"type": "spoiler", "offset": 6, "length": 1},
    ]


def test_markdown_parsers() -> None:
    parsed = parse_markdown_v2(r"*bold* _it_ __u__ ~s~ ||sp|| `c` [l](https://x.io) 1\.5")
    assert parsed.text == "bold it u s sp c l 1.5"
    assert [entity["type"] for entity in parsed.entities] == [
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "code",
        "text_link",
    ]
    with pytest.raises(ParseError, match=r"Character '\.' is reserved"):
        parse_markdown_v2("1.5")
    with pytest.raises(ParseError, match="Can't find end of Bold entity at byte offset 0"):
        parse_markdown_v2("*bold")
    assert parse_markdown("*b* _i_ `c`").text == "b i c"
    with pytest.raises(ParseError, match="Can't find end of the entity starting at byte offset 0"):
        parse_markdown("*b")
