"""Longer messages: Jinja2 templates in locales/templates, one environment for the process."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiogram.utils.i18n import I18n
from babel.lists import format_list
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from locales.formatting import (
    format_date,
    format_datetime,
    format_money,
    format_number,
    format_percent,
    format_points,
    tidy_stops,
)

_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUN = re.compile(r"\n{3,}")
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


class Renderer:
    """Renders a template in a given locale: texts via gettext, values via Babel, HTML escaped.

    A shop may edit the templates (structure) and the .po catalogs (words) without Python.
    """

    def __init__(
        self,
        i18n: I18n,
        *,
        currency: str,
        zone: ZoneInfo,
        templates_dir: Path = TEMPLATES_DIR,
    ) -> None:
        self.i18n = i18n
        self.currency = currency
        self.zone = zone
        self.env = Environment(
            loader=FileSystemLoader(templates_dir),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            extensions=["jinja2.ext.i18n"],
            # Templates ship with the code: checking each file's mtime on every render cost
            # a stat per reply (4 % of a /balance); a new release restarts the process.
            auto_reload=False,
        )
        self.env.install_gettext_callables(  # type: ignore[attr-defined]
            gettext=lambda message: i18n.gettext(message),
            ngettext=lambda singular, plural, n: i18n.gettext(singular, plural, n),
            newstyle=True,
        )
        # The language being rendered, for texts a person wrote in several (a gift's reason).
        self.env.globals["current_locale"] = lambda: str(i18n.current_locale)
        self.env.filters.update(
            number=lambda value: format_number(value, i18n.current_locale),
            money=self._money,
            date=self._date,
            datetime=self._datetime,
            points=lambda count: format_points(count, i18n, i18n.current_locale),
            percent=lambda share: format_percent(share, i18n.current_locale),
            # ["cat food", "litter"] → "cat food and litter" in the locale's own words.
            and_list=lambda items: format_list(
                [str(item) for item in items], locale=str(i18n.current_locale)
            ),
        )

    def _money(self, minor_units: int, currency: str | None = None) -> str:
        return format_money(minor_units, currency or self.currency, self.i18n.current_locale)

    def _date(self, value: date | datetime | str, style: str = "long") -> str:
        # Outbox templates get their context as JSON, so a day arrives as "2027-03-01".
        if isinstance(value, str):
            value = date.fromisoformat(value)
        return format_date(value, self.i18n.current_locale, style=style)

    def _datetime(self, value: datetime | date, style: str = "medium") -> str:
        if not isinstance(value, datetime):
            return format_date(value, self.i18n.current_locale, style=style)
        return format_datetime(value, self.i18n.current_locale, tz=self.zone, style=style)

    def render(self, template_name: str, /, *, locale: str, **context: Any) -> str:
        """A template (e.g. "welcome.html") as HTML text for Telegram, without blank runs."""
        template = self.env.get_template(template_name)
        with self.i18n.use_locale(locale):
            text = template.render(**context)
        # Templates stay readable with tags on their own lines; the chat gets no empty runs.
        text = _TRAILING_SPACE.sub("\n", text)
        return tidy_stops(_BLANK_RUN.sub("\n\n", text).strip())

    def template_names(self) -> list[str]:
        return sorted(self.env.list_templates(filter_func=lambda name: name.endswith(".html")))
