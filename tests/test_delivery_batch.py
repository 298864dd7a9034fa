"""The policy's memory of a batch: what its recipients got, also across a batch claimed ahead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.delivery.batch import SendBatch
from scenarios.delivery import Category
from storage.outbox import OutboxRow, RecipientRecord

NOON = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
ANNA = 7


def anna() -> RecipientRecord:
    return RecipientRecord(
        customer_id=ANNA,
        blocked=False,
        marketing_opt_in=True,
        muted_kinds=frozenset(),
        locale=None,
        language_code="en",
        timezone=None,
    )


def offer(row_id: int) -> OutboxRow:
    return OutboxRow(
        id=row_id,
        dedupe_key=f"offer:{row_id}",
        chat_id=700,
        customer_id=ANNA,
        category=Category.MARKETING,
        kind="broadcast",
        priority=30,
        payload={"text": "Offer"},
        not_before=NOON,
        attempts=0,
    )


def batch(history: dict[int, dict[int, tuple[str, datetime]]] | None = None) -> SendBatch:
    return SendBatch(rows=[], deadline=0.0, recipients={ANNA: anna()}, history=history or {})


def offers_today(of: SendBatch) -> int:
    return of.recipient(anna(), ZoneInfo("UTC"), NOON).marketing_today


def test_a_batch_read_while_the_one_before_ran_counts_what_that_one_sent() -> None:
    running, ahead = batch(), batch()  # ``ahead`` was read before ``running`` sent anything
    running.note_sent(offer(1), NOON)
    ahead.carry_over(running)
    assert offers_today(ahead) == 1


def test_a_send_seen_in_the_database_and_in_memory_counts_once() -> None:
    running = batch()
    running.note_sent(offer(1), NOON)
    # Read after the "sending" mark was committed: the database knows it too.
    ahead = batch({ANNA: {1: (Category.MARKETING, NOON + timedelta(milliseconds=3))}})
    ahead.carry_over(running)
    assert offers_today(ahead) == 1


def test_only_what_the_batch_before_sent_itself_is_carried() -> None:
    # What the batch before had from the database is in the database for the next one too;
    # carrying it again would keep a failed send counted for ever.
    older = batch({ANNA: {1: (Category.MARKETING, NOON)}})
    newer = batch()
    newer.carry_over(older)
    assert offers_today(newer) == 0


def test_a_message_that_did_not_go_after_all_is_forgotten() -> None:
    running = batch()
    running.note_sent(offer(1), NOON)
    running.forget(offer(1))  # the recipient's queue was dropped before it left
    ahead = batch()
    ahead.carry_over(running)
    assert offers_today(running) == offers_today(ahead) == 0
