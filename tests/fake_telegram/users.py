"""Fake Telegram users talking to the bot: messages, commands, contacts, presses, blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import actions
from .actions import MessageRef
from .models import updates
from .models.messages import SentMessage
from .models.objects import member_object, private_chat_object, user_object
from .text_builder import utf16_len

if TYPE_CHECKING:
    from .state import FakeState


class FakeUser:
    """A Telegram user talking to the bot; their private chat id equals their user id."""

    def __init__(
        self,
        state: FakeState,
        user_id: int,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
        is_premium: bool = False,
        known: bool = False,
    ) -> None:
        if user_id <= 0:
            msg = f"user ids are positive, got {user_id}"
            raise ValueError(msg)
        self._state = state
        self.id = user_id
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.language_code = language_code
        self.is_premium = is_premium
        self.known = known  # has a private chat with the bot (sent it anything)
        self.seen = known  # the bot has met them somewhere, e.g. in a group
        self.blocked = False

    def __repr__(self) -> str:
        return f"FakeUser(id={self.id}, first_name={self.first_name!r})"

    @property
    def chat_id(self) -> int:
        return self.id

    def to_dict(self) -> dict[str, Any]:
        """The User object as it appears in "from"."""
        return user_object(
            self.id,
            self.first_name,
            last_name=self.last_name,
            username=self.username,
            language_code=self.language_code,
            is_premium=self.is_premium,
        )

    def chat_dict(self) -> dict[str, Any]:
        return private_chat_object(self.id, self.first_name, self.last_name, self.username)

    @property
    def sent(self) -> list[SentMessage]:
        """Messages the bot sent to this user, in order."""
        return list(self._state.log(self.id).sent)

    # -- raw updates (no delivery) -------------------------------------------------------

    def _started(self) -> None:
        self.known = True
        self.seen = True

    def message_update(
        self,
        text: str,
        *,
        entities: list[dict[str, Any]] | None = None,
        reply_to: MessageRef = None,
    ) -> dict[str, Any]:
        """A message update from this user; stored in the chat so the bot can reply to it."""
        self._started()
        return actions.text_update(
            self._state,
            self.chat_dict(),
            self.to_dict(),
            text,
            entities=entities,
            reply_to=reply_to,
        )

    def command_update(self, command: str, args: str | None = None) -> dict[str, Any]:
        """ "/command args" with the bot_command entity Telegram attaches."""
        text = actions.command_text(command, args, None)
        length = utf16_len(text.split(" ", 1)[0])
        return self.message_update(
            text, entities=[{"type": "bot_command", "offset": 0, "length": length}]
        )

    def contact_update(
        self,
        phone_number: str,
        *,
        own: bool = True,
        first_name: str | None = None,
        last_name: str | None = None,
        user_id: int | None = None,
    ) -> dict[str, Any]:
        """A shared contact; own=True is what a request_contact button produces."""
        self._started()
        state = self._state
        if own:
            contact = updates.contact_object(
                phone_number, self.first_name, last_name=self.last_name, user_id=self.id
            )
        else:
            other_id = user_id if user_id is not None else self.id + 7_000_000
            contact = updates.contact_object(
                phone_number, first_name or "Contact", last_name=last_name, user_id=other_id
            )
        log = state.log(self.id)
        message = updates.contact_message(
            log.allocate_id(), state.now(), self.chat_dict(), self.to_dict(), contact
        )
        log.add_incoming(message)
        return updates.message_update(state.next_update_id(), message)

    def callback_update(
        self, message: MessageRef, data: str, *, force: bool = False
    ) -> dict[str, Any]:
        """A callback_query for an inline button on a message the bot sent to this user."""
        self._started()
        return actions.callback_update(self._state, self.id, self, message, data, force)

    def _membership_update(self, old: str, new: str) -> dict[str, Any]:
        state = self._state
        bot = state.bot_user
        return updates.my_chat_member_update(
            state.next_update_id(),
            self.chat_dict(),
            self.to_dict(),
            state.now(),
            member_object(old, bot),
            member_object(new, bot),
        )

    def block_update(self) -> dict[str, Any]:
        """The my_chat_member update for blocking the bot (member -> kicked)."""
        self._started()
        self.blocked = True
        return self._membership_update("member", "kicked")

    def unblock_update(self) -> dict[str, Any]:
        """The my_chat_member update for unblocking (kicked -> member)."""
        self._started()
        self.blocked = False
        return self._membership_update("kicked", "member")

    # -- actions (delivered to the bot) --------------------------------------------------

    def _deliver(self, update: dict[str, Any]) -> dict[str, Any]:
        self._state.deliver(update)
        return update

    def _ensure_unblocked(self) -> None:
        # Telegram apps make you unblock (emitting my_chat_member) before you can write.
        if self.blocked:
            self._deliver(self.unblock_update())

    async def send(
        self,
        text: str,
        *,
        entities: list[dict[str, Any]] | None = None,
        reply_to: MessageRef = None,
    ) -> dict[str, Any]:
        """Sends a text message to the bot; returns the delivered update."""
        self._ensure_unblocked()
        return self._deliver(self.message_update(text, entities=entities, reply_to=reply_to))

    async def command(self, command: str, args: str | None = None) -> dict[str, Any]:
        """Sends "/command args", e.g. command("start", "ref_abc")."""
        self._ensure_unblocked()
        return self._deliver(self.command_update(command, args))

    async def share_contact(
        self,
        phone_number: str,
        *,
        own: bool = True,
        first_name: str | None = None,
        last_name: str | None = None,
        user_id: int | None = None,
    ) -> dict[str, Any]:
        """Shares a phone contact: their own (user_id == self.id) or someone else's."""
        self._ensure_unblocked()
        return self._deliver(
            self.contact_update(
                phone_number, own=own, first_name=first_name, last_name=last_name, user_id=user_id
            )
        )

    async def press(self, message: MessageRef, data: str, *, force: bool = False) -> dict[str, Any]:
        """Presses the inline button with this callback_data; see callback_update."""
        return self._deliver(self.callback_update(message, data, force=force))

    async def press_button(
        self, message: MessageRef = None, *, text: str, force: bool = False
    ) -> dict[str, Any]:
        """Presses a button by its label: inline -> callback, reply keyboard -> message."""
        sent = actions.find_message(self._state, self.id, message)
        button = sent.button(text)
        if "callback_data" in button:
            return await self.press(sent, button["callback_data"], force=force)
        if button.get("request_contact"):
            return await self.share_contact(self._default_phone())
        if "keyboard" in (sent.reply_markup or {}):
            return await self.send(text)
        msg = f"button {text!r} has no callback_data and is not a reply keyboard button: {button}"
        raise AssertionError(msg)

    def _default_phone(self) -> str:
        return f"+7999{self.id % 10_000_000:07d}"

    async def block(self) -> dict[str, Any]:
        """Blocks the bot: sends to this user then fail with 403."""
        return self._deliver(self.block_update())

    async def unblock(self) -> dict[str, Any]:
        return self._deliver(self.unblock_update())

    async def ask(self, text: str, *, replies: int = 1, timeout: float = 5.0) -> list[SentMessage]:
        """Sends text and waits for `replies` new bot messages; returns just those."""
        before = len(self._state.log(self.id).sent)
        await self.send(text)
        sent = await self._state.wait_for_sent(self.id, before + replies, timeout)
        return sent[before:]
