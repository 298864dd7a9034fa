"""Every text people read, in ru, uk and en: gettext catalogs, Jinja2 templates, Babel formats."""

from __future__ import annotations

import gettext
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiogram.utils.i18n import I18n
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).resolve().parent
DOMAIN = "messages"


def compile_catalog(po_path: Path) -> gettext.GNUTranslations:
    """Compile a .po file in memory, so a shop edits texts and restarts; no build step."""
    with po_path.open("rb") as source:
        catalog = read_po(source, locale=po_path.parent.parent.name, domain=DOMAIN)
    buffer = io.BytesIO()
    # Fuzzy entries are drafts: a stale translation is worse than the English original.
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


class CatalogI18n(I18n):
    """aiogram's gettext I18n, reading .po sources instead of prebuilt .mo files."""

    @contextmanager
    def context(self) -> Iterator[I18n]:
        # aiogram keeps "the current I18n" per class; register under I18n itself so that
        # aiogram's ``gettext``/``lazy_gettext`` helpers find this subclass.
        token = I18n.set_current(self)
        try:
            yield self
        finally:
            I18n.reset_current(token)

    def find_locales(self) -> dict[str, gettext.GNUTranslations]:
        found: dict[str, gettext.GNUTranslations] = {}
        for po_path in sorted(self.path.glob(f"*/LC_MESSAGES/{self.domain}.po")):
            found[po_path.parent.parent.name] = compile_catalog(po_path)
        return found


def create_i18n(default_locale: str, path: Path = LOCALES_DIR) -> CatalogI18n:
    return CatalogI18n(path=path, default_locale=default_locale, domain=DOMAIN)
