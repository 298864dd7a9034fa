"""Issue 15, item 11: a birthday gift's greeting arrives on the day, whatever else went out."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from scenarios.delivery import Category, Outgoing, Postpone, Recipient, decide, enqueue
from scenarios.rules import Delivery, QuietHours
from tests.test_delivery_sender import Rig, rig  # noqa: F401  (the fixture)

KYIV = ZoneInfo("Europe/Kyiv")


async def queue(rig: Rig, key: str, kind: str, customer_id: int) -> None:  # noqa: F811
    await enqueue(
        rig.outbox,
        Outgoing(
            dedupe_key=key,
            chat_id=401,
            category=Category.SERVICE,
            kind=kind,
            content={"text": key},
            customer_id=customer_id,
        ),
        clock=rig.clock,
    )


async def test_i15_11_a_birthday_greeting_is_not_postponed_by_the_daily_service_cap(
    rig: Rig,  # noqa: F811
) -> None:
    anna = await rig.customer(401)
    await queue(rig, "rating-request:A-1", "rating_request", anna.id)
    await rig.sender.drain_until_empty()
    await queue(rig, "birthday:1:2026", "birthday", anna.id)
    await queue(rig, "reminder:1:2026-11-10", "reminder", anna.id)
    await rig.sender.drain_until_empty()
    states = await rig.states()
    assert states["rating-request:A-1"] == ("sent", None)
    assert states["birthday:1:2026"] == ("sent", None)
    # Other service messages still keep to one a day.
    assert states["reminder:1:2026-11-10"] == ("pending", "daily service cap reached")


def test_i15_11_a_birthday_greeting_still_waits_for_the_end_of_quiet_hours() -> None:
    night = datetime(2026, 11, 10, 21, 0, tzinfo=UTC)  # 23:00 in Kyiv
    recipient = Recipient(blocked=False, marketing_opt_in=False, zone=KYIV, service_today=1)
    decision = decide(
        category=Category.SERVICE,
        kind="birthday",
        recipient=recipient,
        rules=Delivery(),
        quiet=QuietHours(),
        now=night,
    )
    assert decision == Postpone(datetime(2026, 11, 11, 7, 0, tzinfo=UTC), "quiet hours")
