"""Fake groups and supergroups the bot is a member of, where fake users write and press."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import actions
from .actions import MessageRef
from .models import updates
from .models.messages import SentMessage
from .models.objects import group_chat_object, member_object
from .text_builder import utf16_len

if TYPE_CHECKING:
    from .state import FakeState
    from .users import FakeUser


class FakeGroup:
    """A group or supergroup the bot is a member of; negative id, -100... means supergroup."""

    def __init__(
        self,
        state: FakeState,
        chat_id: int,
        title: str,
        *,
        username: str | None = None,
        kind: str | None = None,
        is_forum: bool = False,
    ) -> None:
        if chat_id >= 0:
            msg = f"group ids are negative, got {chat_id}"
            raise ValueError(msg)
        self._state = state
        self.id = chat_id
        self.title = title
        self.username = username
        self.kind = kind or ("supergroup" if str(chat_id).startswith("-100") else "group")
        self.is_forum = is_forum
        self.bot_is_member = True
        self.members: set[int] = set()

    def __repr__(self) -> str:
        return f"FakeGroup(id={self.id}, title={self.title!r})"

    @property
    def chat_id(self) -> int:
        return self.id

    def to_dict(self) -> dict[str, Any]:
        return group_chat_object(self.id, self.kind, self.title, self.username, self.is_forum)

    @property
    def sent(self) -> list[SentMessage]:
        return list(self._state.log(self.id).sent)

    def _member(self, user: FakeUser) -> None:
        user.seen = True
        self.members.add(user.id)

    def message_update(
        self,
        text: str,
        *,
        from_user: FakeUser,
        entities: list[dict[str, Any]] | None = None,
        reply_to: MessageRef = None,
    ) -> dict[str, Any]:
        self._member(from_user)
        return actions.text_update(
            self._state,
            self.to_dict(),
            from_user.to_dict(),
            text,
            entities=entities,
            reply_to=reply_to,
        )

    def command_update(
        self, command: str, args: str | None = None, *, from_user: FakeUser, mention: bool = False
    ) -> dict[str, Any]:
        """ "/command[@bot] args" in the group."""
        text = actions.command_text(command, args, self._state.bot.username if mention else None)
        length = utf16_len(text.split(" ", 1)[0])
        return self.message_update(
            text,
            from_user=from_user,
            entities=[{"type": "bot_command", "offset": 0, "length": length}],
        )

    def callback_update(
        self, message: MessageRef, data: str, *, from_user: FakeUser, force: bool = False
    ) -> dict[str, Any]:
        self._member(from_user)
        return actions.callback_update(self._state, self.id, from_user, message, data, force)

    def _bot_membership_update(self, by: FakeUser, old: str, new: str) -> dict[str, Any]:
        self._member(by)
        state = self._state
        return updates.my_chat_member_update(
            state.next_update_id(),
            self.to_dict(),
            by.to_dict(),
            state.now(),
            member_object(old, state.bot_user),
            member_object(new, state.bot_user),
        )

    def _deliver(self, update: dict[str, Any]) -> dict[str, Any]:
        self._state.deliver(update)
        return update

    async def send(
        self,
        text: str,
        *,
        from_user: FakeUser,
        entities: list[dict[str, Any]] | None = None,
        reply_to: MessageRef = None,
    ) -> dict[str, Any]:
        return self._deliver(
            self.message_update(text, from_user=from_user, entities=entities, reply_to=reply_to)
        )

    async def command(
        self, command: str, args: str | None = None, *, from_user: FakeUser, mention: bool = False
    ) -> dict[str, Any]:
        return self._deliver(
            self.command_update(command, args, from_user=from_user, mention=mention)
        )

    async def press(
        self, message: MessageRef, data: str, *, from_user: FakeUser, force: bool = False
    ) -> dict[str, Any]:
        return self._deliver(self.callback_update(message, data, from_user=from_user, force=force))

    async def press_button(
        self, message: MessageRef = None, *, text: str, from_user: FakeUser, force: bool = False
    ) -> dict[str, Any]:
        sent = actions.find_message(self._state, self.id, message)
        button = sent.button(text)
        if "callback_data" in button:
            return await self.press(sent, button["callback_data"], from_user=from_user, force=force)
        return await self.send(text, from_user=from_user)

    async def add_bot(self, by: FakeUser) -> dict[str, Any]:
        """Someone adds the bot back to the group (left -> member)."""
        self.bot_is_member = True
        return self._deliver(self._bot_membership_update(by, "left", "member"))

    async def remove_bot(self, by: FakeUser) -> dict[str, Any]:
        """An admin removes the bot (member -> kicked); sends then fail with 403."""
        self.bot_is_member = False
        return self._deliver(self._bot_membership_update(by, "member", "kicked"))
