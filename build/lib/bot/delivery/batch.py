"""A claimed batch of outbox messages and the policy's memory of what its recipients got."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from scenarios.delivery import Category, Recipient, local_day_start, week_start
from storage.outbox import OutboxRow, QueuedMessage, RecipientRecord


@dataclass
class SendBatch:
    """A claimed batch and what the policy needs about its recipients, kept current as
    messages go."""

    rows: list[OutboxRow]
    deadline: float  # time.monotonic(): past it the claim could lapse, so rows go back
    recipients: dict[int, RecipientRecord]
    # customer -> outbox row id -> (category, sent_at): keyed by row so that a send seen both
    # in the database and in memory counts once.
    history: dict[int, dict[int, tuple[str, datetime]]]
    # The part of ``history`` this batch is sending itself (what the next batch carries over).
    planned: dict[int, dict[int, tuple[str, datetime]]] = field(default_factory=dict)
    full: bool = False  # as many rows as were asked for: more are probably waiting
    # The messages that rows of this batch edit or reply to, by dedupe key, as claimed.
    targets: dict[str, QueuedMessage] = field(default_factory=dict)
    started: set[int] = field(default_factory=set)  # marked "sending" and handed to a request

    def recipient(self, record: RecipientRecord, zone: ZoneInfo, now: datetime) -> Recipient:
        sends = self.history.get(record.customer_id, {}).values()
        day, week = local_day_start(now, zone), week_start(now)
        return Recipient(
            blocked=record.blocked,
            marketing_opt_in=record.marketing_opt_in,
            zone=zone,
            muted_kinds=record.muted_kinds,
            service_today=sum(1 for c, at in sends if c == Category.SERVICE and at >= day),
            marketing_today=sum(1 for c, at in sends if c == Category.MARKETING and at >= day),
            marketing_this_week=sum(1 for c, at in sends if c == Category.MARKETING and at >= week),
            open_complaint=record.open_complaint,
        )

    def note_sent(self, row: OutboxRow, now: datetime) -> None:
        if row.customer_id is not None:
            self.history.setdefault(row.customer_id, {})[row.id] = (row.category, now)
            self.planned.setdefault(row.customer_id, {})[row.id] = (row.category, now)

    def forget(self, row: OutboxRow) -> None:
        """A planned message did not go after all (it was no longer ours to send)."""
        if row.customer_id is not None:
            self.history.get(row.customer_id, {}).pop(row.id, None)
            self.planned.get(row.customer_id, {}).pop(row.id, None)

    def carry_over(self, earlier: SendBatch) -> None:
        """Count the sends of the batch before: this one may have been read while it ran."""
        for customer_id in self.recipients:
            sent = earlier.planned.get(customer_id)
            if sent:
                self.history.setdefault(customer_id, {}).update(sent)
