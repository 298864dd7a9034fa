"""What the staff chat's messages about an erased customer say instead: rendered here, where
the templates are, for the sign-up desk (which decides which messages change)."""

from __future__ import annotations

from collections.abc import Sequence

from handlers.staff_alerts import StaffAlerts
from locales.rendering import Renderer
from scenarios.ratings import alert_key
from scenarios.reminders import reorder_key
from scenarios.signup import StaffText
from storage.ratings import SqlRatings
from storage.reminders import SqlReminders

# Nothing can reach an erased customer: no compensation message, no reply.
_GONE_ACTIONS = (":comp", ":reply")


class StaffRedactor:
    def __init__(
        self,
        *,
        ratings: SqlRatings,
        reminders: SqlReminders,
        staff_alerts: StaffAlerts,
        renderer: Renderer,
    ) -> None:
        self._ratings = ratings
        self._reminders = reminders
        self._alerts = staff_alerts
        self._renderer = renderer
        self._locale = staff_alerts.locale  # the staff chat's language (staff.locale)

    async def redacted(
        self, *, alert_ids: Sequence[int], reminder_ids: Sequence[int]
    ) -> list[StaffText]:
        """Read after the erasure wrote: the alert's snapshot and comment are already gone."""
        locale = self._locale
        texts: list[StaffText] = []
        for alert_id in alert_ids:
            alert = await self._ratings.alert(alert_id=alert_id)
            rating = await self._ratings.by_id(rating_id=alert.rating_id) if alert else None
            if alert is None or rating is None:
                continue
            rows = [
                [b for b in row if not b["callback_data"].endswith(_GONE_ACTIONS)]
                for row in self._alerts.buttons(alert)
            ]
            texts.append(
                StaffText(
                    key=alert_key(alert_id),
                    text=self._alerts.text(alert, rating, waiting=False).text,
                    buttons=[row for row in rows if row] or None,
                )
            )
        for reminder_id in reminder_ids:
            reminder = await self._reminders.get(id=reminder_id)
            if reminder is None:
                continue
            texts.append(
                StaffText(
                    key=reorder_key(reminder_id),
                    text=self._renderer.render(
                        "reorder_request.html",
                        locale=locale,
                        erased=True,
                        product=reminder.name,
                        sku=reminder.sku,
                        quantity=reminder.quantity,
                    ),
                )
            )
        return texts
