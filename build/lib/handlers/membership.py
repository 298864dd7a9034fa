"""my_chat_member in private chats: a customer blocked or unblocked the bot."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import KICKED, MEMBER, ChatMemberUpdatedFilter
from aiogram.types import ChatMemberUpdated

from scenarios.clock import Clock
from scenarios.reachability import chat_blocked, chat_returned
from storage.customers import SqlCustomers
from storage.outbox import SqlOutbox


def create_router() -> Router:
    router = Router(name="membership")
    router.my_chat_member.filter(F.chat.type == "private")
    router.my_chat_member.register(blocked, ChatMemberUpdatedFilter(member_status_changed=KICKED))
    router.my_chat_member.register(returned, ChatMemberUpdatedFilter(member_status_changed=MEMBER))
    return router


async def blocked(
    event: ChatMemberUpdated, customers: SqlCustomers, outbox: SqlOutbox, clock: Clock
) -> None:
    await chat_blocked(customers, outbox, telegram_id=event.chat.id, clock=clock)


async def returned(event: ChatMemberUpdated, customers: SqlCustomers) -> None:
    await chat_returned(customers, telegram_id=event.chat.id)
