"""Joining the bonus program: consent, the member's own phone, earlier orders, welcome bonus,
birthday, opting out of offers and erasing oneself."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import phonenumbers

from scenarios.audit import AuditEntry, AuditLog
from scenarios.birthdays import Birthday
from scenarios.cards import new_card_number
from scenarios.clock import Clock
from scenarios.customers import normalize_phone, region_for
from scenarios.delivery import Category, OutboxWriter, Outgoing, enqueue
from scenarios.ledger import LedgerRefusal, PointsLedger, welcome_source
from scenarios.orders import FINAL_STATUSES
from scenarios.privacy import IdentityHasher, names_phone, scrub_json, scrubber
from scenarios.problems import InputProblem
from scenarios.ratings import alert_key
from scenarios.referrals import Referrals, valid_code
from scenarios.reminders import reorder_key
from scenarios.rules import Rules
from storage.customers import CustomerRecord
from storage.ledger import EntryKind
from storage.messages import ButtonRows, MessageContent
from storage.outbox import OutboxState, QueuedMessage
from storage.signup import Erased, UnclaimedOrder

log = logging.getLogger(__name__)

ERASED_EDIT = ":erased"  # the key suffix of the edit that removes an erased customer


class PhoneRefusal(StrEnum):
    NOT_OWN = "not_own"  # someone else's contact, or a contact without a Telegram user
    INVALID = "invalid"
    TAKEN = "taken"  # another member has this phone


class SignupRefused(Exception):
    def __init__(self, reason: PhoneRefusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


# Telegram's anonymous numbers (Fragment): +888 and 8 digits; the numbering-plan metadata
# knows no +888, so it is accepted by length.
ANONYMOUS_COUNTRY_CODE = 888
_ANONYMOUS_DIGITS = range(8, 12)


def own_phone(
    *, contact_user_id: int | None, sender_id: int, phone_number: str, currency: str
) -> str:
    """The sender's own phone as E.164. Telegram sends contacts without the leading +.

    Telegram has verified a contact its own user shares, so it is accepted when it is a
    *possible* number (the right length for its country code) even where the metadata calls
    it invalid: new ranges reach users before they reach the library, and +888 numbers are in
    no numbering plan. Typed numbers (admins, the API) stay strictly validated."""
    if contact_user_id is None or contact_user_id != sender_id:
        raise SignupRefused(PhoneRefusal.NOT_OWN)
    text = phone_number.strip()
    if not text.startswith("+"):
        text = "+" + text
    try:
        return normalize_phone(text, region=region_for(currency))
    except InputProblem:
        pass
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise SignupRefused(PhoneRefusal.INVALID) from None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    anonymous = number.country_code == ANONYMOUS_COUNTRY_CODE and (
        len(e164) - len(f"+{ANONYMOUS_COUNTRY_CODE}") in _ANONYMOUS_DIGITS
    )
    if not (anonymous or phonenumbers.is_possible_number(number)):
        raise SignupRefused(PhoneRefusal.INVALID)
    return e164


@dataclass(frozen=True, slots=True)
class Consent:
    accepted_at: datetime
    marketing_opt_in: bool


@dataclass(frozen=True, slots=True)
class Joined:
    customer_id: int
    phone: str
    orders_claimed: int
    points_credited: int  # cashback for the earlier orders
    orders_too_old: int  # of them, placed before signup.claim_orders_days: no points
    welcome_points: int
    referred: bool
    returning: bool = False  # phone or Telegram id of an erased customer: no welcome bonus


class MembershipStore(Protocol):
    async def phone_owner(self, *, phone: str) -> int | None: ...

    async def join(
        self,
        *,
        customer_id: int,
        phone: str,
        terms_accepted_at: datetime,
        marketing_opt_in: bool,
        now: datetime,
        make_card: Callable[[], str] | None = None,
    ) -> None: ...

    async def claim_orders(self, *, phone: str, customer_id: int) -> list[UnclaimedOrder]: ...

    async def set_birthday(
        self, *, customer_id: int, day: int, month: int, year: int | None, now: datetime
    ) -> None: ...

    async def erase(
        self,
        *,
        customer_id: int,
        now: datetime,
        scrub: Callable[[str], str],
        scrub_json: Callable[[Any], Any],
    ) -> Erased: ...


class ErasedIdentities(Protocol):
    async def remember(self, *, digests: Sequence[tuple[str, str]], now: datetime) -> None: ...

    async def known(self, *, digests: Sequence[str]) -> bool: ...


@dataclass(frozen=True, slots=True)
class StaffText:
    """What a staff-chat message about an erased customer says instead (no name, no phone).
    ``key`` is the message's outbox key; follow-up copies under ``key:`` get it too."""

    key: str
    text: str
    buttons: ButtonRows | None = None


class StaffRedactor(Protocol):
    async def redacted(
        self, *, alert_ids: Sequence[int], reminder_ids: Sequence[int]
    ) -> list[StaffText]: ...


class StaffMessages(Protocol):
    async def by_key(self, *, dedupe_key: str) -> QueuedMessage | None: ...

    async def keys_with_prefix(self, *, prefix: str) -> list[str]: ...

    async def replace_waiting_payload(
        self, *, dedupe_key: str, payload: MessageContent, now: datetime
    ) -> bool: ...


class MarketingSwitch(Protocol):
    async def set_marketing_opt_in(
        self, *, customer_id: int, opt_in: bool, now: datetime
    ) -> None: ...


class QueueDropper(Protocol):
    async def drop_queued_for_chat(self, *, chat_id: int, reason: str, now: datetime) -> int: ...

    async def scrub_finished(
        self,
        *,
        customer_id: int,
        chat_id: int | None,
        dedupe_keys: Sequence[str],
        key_prefixes: Sequence[str],
        now: datetime,
    ) -> int: ...


class Outbox(QueueDropper, StaffMessages, OutboxWriter, Protocol):
    pass


class Deliveries(Protocol):
    """Store platforms' deliveries kept in the webhook inbox, not yet applied."""

    async def erase_naming(
        self, names: Callable[[str], bool], *, reason: str, now: datetime
    ) -> int: ...


class SignupDesk:
    """Each call runs inside the caller's unit of work (the update's transaction)."""

    def __init__(
        self,
        *,
        members: MembershipStore,
        customers: MarketingSwitch,
        ledger: PointsLedger,
        referrals: Referrals,
        audit: AuditLog,
        outbox: Outbox,
        rules: Rules,
        clock: Clock,
        identities: ErasedIdentities,
        hasher: IdentityHasher,
        redactor: StaffRedactor | None = None,
        deliveries: Deliveries | None = None,
    ) -> None:
        self._redactor = redactor
        self._deliveries = deliveries
        self._identities = identities
        self._hasher = hasher
        self._members = members
        self._customers = customers
        self._ledger = ledger
        self._referrals = referrals
        self._audit = audit
        self._outbox = outbox
        self._rules = rules
        self._clock = clock

    async def join(
        self, customer: CustomerRecord, *, phone: str, consent: Consent, invite: str | None
    ) -> Joined:
        """Make the customer a member: phone, consents, earlier orders and their points (once:
        the ledger key is the order), the welcome bonus, the referrer if a link brought them."""
        owner = await self._members.phone_owner(phone=phone)
        if owner is not None and owner != customer.id:
            raise SignupRefused(PhoneRefusal.TAKEN)
        now = self._clock.now()
        # Someone who erased their data and comes back is not a new customer for the bonuses.
        digests = await self._hasher.digests(phone=phone, telegram_id=customer.telegram_id)
        returning = await self._identities.known(digests=[digest for _, digest in digests])
        # Whether this phone ordered before is decided before its orders become the member's.
        referred = False
        if valid_code(invite):
            assert invite is not None
            referred = await self._referrals.at_signup(
                referee_id=customer.id, code=invite, phone=phone, returning=returning
            )
        await self._members.join(
            customer_id=customer.id,
            phone=phone,
            terms_accepted_at=consent.accepted_at,
            marketing_opt_in=consent.marketing_opt_in,
            now=now,
            make_card=new_card_number,
        )
        claimed = await self._members.claim_orders(phone=phone, customer_id=customer.id)
        # Every earlier order becomes the member's (history, reminders, segments), but only
        # recent ones earn points: years of imported history must not turn into a liability.
        days = self._rules.signup.claim_orders_days
        earliest = now - timedelta(days=days)
        credited = 0
        too_old = 0
        for order in claimed:
            if order.status in FINAL_STATUSES:
                continue
            if days == 0 or order.ordered_at < earliest:
                too_old += 1
                continue
            try:
                accrual = await self._ledger.accrue(
                    customer_id=customer.id,
                    order_id=order.order_ref,
                    total=order.total,
                    ordered_at=order.ordered_at,
                    backdated=True,
                )
            except LedgerRefusal as refusal:  # e.g. a total below what was redeemed
                log.warning("order %s earns nothing at sign-up: %s", order.order_ref, refusal)
                continue
            credited += accrual.points
        welcome = 0 if returning else self._rules.signup.welcome_points
        if welcome > 0:
            await self._ledger.grant(
                customer_id=customer.id,
                kind=EntryKind.WELCOME,
                source=welcome_source(customer.id),
                points=welcome,
                reason="welcome bonus",
            )
        log.info(
            "customer %s joined; %d earlier order(s) (%d too old to earn), %d point(s) for them, "
            "referred: %s, returning: %s",
            customer.id,
            len(claimed),
            too_old,
            credited,
            referred,
            returning,
        )
        return Joined(
            customer_id=customer.id,
            phone=phone,
            orders_claimed=len(claimed),
            points_credited=credited,
            orders_too_old=too_old,
            welcome_points=welcome,
            referred=referred,
            returning=returning,
        )

    async def set_birthday(self, customer: CustomerRecord, birthday: Birthday) -> None:
        await self._members.set_birthday(
            customer_id=customer.id,
            day=birthday.day,
            month=birthday.month,
            year=birthday.year,
            now=self._clock.now(),
        )

    async def set_offers(self, customer: CustomerRecord, *, opt_in: bool) -> None:
        await self._customers.set_marketing_opt_in(
            customer_id=customer.id, opt_in=opt_in, now=self._clock.now()
        )

    async def erase(self, customer: CustomerRecord) -> Erased:
        """/delete_me: personal data and the Telegram link go; their points are forfeited; the
        anonymised ledger and orders stay for accounting; queued messages are dropped; keyed
        hashes of the phone and Telegram id stay for the fraud checks; the audit log says
        when."""
        now = self._clock.now()
        if customer.joined_at is not None:
            # Only members had a welcome bonus or a referral to repeat; someone who never
            # joined leaves no trace.
            await self._identities.remember(
                digests=await self._hasher.digests(
                    phone=customer.phone, telegram_id=customer.telegram_id
                ),
                now=now,
            )
        forfeited = await self._ledger.forfeit(customer_id=customer.id, reason="account erased")
        await self._referrals.at_erasure(customer_id=customer.id)
        dropped = 0
        if customer.telegram_id is not None:
            dropped = await self._outbox.drop_queued_for_chat(
                chat_id=customer.telegram_id, reason="the customer erased their data", now=now
            )
        scrub = scrubber(
            name=customer.first_name,
            username=customer.username,
            phone=customer.phone,
            telegram_id=customer.telegram_id,
        )
        erased = await self._members.erase(
            customer_id=customer.id,
            now=now,
            scrub=scrub,
            scrub_json=lambda value: scrub_json(value, scrub),
        )
        await self._redact_staff_messages(erased)
        deliveries_erased = 0
        if self._deliveries is not None and customer.phone:
            # A store's delivery still waiting (or failed) names them in its body: it goes
            # unapplied rather than keep their phone, name and address.
            deliveries_erased = await self._deliveries.erase_naming(
                names_phone(customer.phone), reason="the customer erased their data", now=now
            )
        # Messages already sent kept what they said (names, comments, the staff alerts about
        # this customer and their follow-up copies); only the rows' bare facts stay.
        staff_keys = [alert_key(alert_id) for alert_id in erased.alert_ids]
        staff_keys += [reorder_key(reminder_id) for reminder_id in erased.reminder_ids]
        scrubbed = await self._outbox.scrub_finished(
            customer_id=customer.id,
            chat_id=customer.telegram_id,
            dedupe_keys=staff_keys,
            key_prefixes=[f"{alert_key(alert_id)}:" for alert_id in erased.alert_ids],
            now=now,
        )
        await self._audit.record(
            AuditEntry(
                at=now,
                actor_id=None,
                action="erasure",
                customer_id=customer.id,
                details={
                    "requested_by": "customer",
                    "was_member": customer.joined_at is not None,
                    "orders_anonymised": erased.orders_anonymised,
                    "messages_dropped": dropped,
                    "messages_scrubbed": scrubbed,
                    "ratings_scrubbed": erased.ratings_scrubbed,
                    "alerts_scrubbed": len(erased.alert_ids),
                    "texts_scrubbed": erased.texts_scrubbed,
                    "deliveries_erased": deliveries_erased,
                    "points_forfeited": -forfeited.entry.amount if forfeited else 0,
                },
            )
        )
        log.info("customer %s erased their personal data", customer.id)
        return erased

    async def _redact_staff_messages(self, erased: Erased) -> None:
        """The staff chat's alerts and reorder requests about them lose the name and phone:
        one still queued says the new text when it goes; one sent is edited, through the
        outbox (transactional, paced by the group limit like the alert itself)."""
        if self._redactor is None or not (erased.alert_ids or erased.reminder_ids):
            return
        now = self._clock.now()
        for staff in await self._redactor.redacted(
            alert_ids=erased.alert_ids, reminder_ids=erased.reminder_ids
        ):
            payload: MessageContent = {"text": staff.text}
            if staff.buttons is not None:
                payload["buttons"] = staff.buttons
            keys = [staff.key, *await self._outbox.keys_with_prefix(prefix=f"{staff.key}:")]
            for key in keys:
                if key.endswith(ERASED_EDIT):
                    continue
                message = await self._outbox.by_key(dedupe_key=key)
                if message is None:
                    continue
                if await self._outbox.replace_waiting_payload(
                    dedupe_key=key, payload=payload, now=now
                ):
                    continue
                if message.state is OutboxState.SENT and message.telegram_message_id:
                    await enqueue(
                        self._outbox,
                        Outgoing(
                            dedupe_key=f"{key}{ERASED_EDIT}",
                            chat_id=message.chat_id,
                            category=Category.TRANSACTIONAL,
                            kind="staff_redaction",
                            content={**payload, "edit_message_id": message.telegram_message_id},
                        ),
                        clock=self._clock,
                    )
