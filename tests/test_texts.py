"""Texts: three complete catalogs, CLDR plurals, Babel formats, templates that render and escape."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiogram.types import BotCommand
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from locales import LOCALES_DIR, CatalogI18n
from locales.formatting import fill, format_date, format_money, format_points
from locales.rendering import Renderer
from scenarios.broadcasts import AbVerdict, BroadcastReport, Progress, VariantResult
from scenarios.customers import SUPPORTED_LOCALES
from scenarios.reminders import ReminderStats
from scenarios.status import BotStatus
from storage.ratings import AlertRecord, PeriodStats, RatingStats
from storage.reminders import ReminderRecord
from tests.support.account_samples import ACCOUNT_SAMPLES
from tests.support.stats_samples import SAMPLE_STATS, STATS_SAMPLES

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
KEYWORDS = {"_": None, "__": None, "gettext": None}


def plain(text: str) -> str:
    """Babel separates digits and units with (narrow) no-break spaces; compare as plain spaces."""
    return text.replace("\xa0", " ").replace("\u202f", " ")


def catalog(locale: str) -> Any:
    with (LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as source:
        return read_po(source, locale=locale)


def msgids(locale: str) -> set[str]:
    return {m.id if isinstance(m.id, str) else m.id[0] for m in catalog(locale) if m.id}


def used_in_code() -> set[str]:
    """Every text the code and templates ask for, found the way pybabel extract finds them."""
    method_map = [("**/*.py", "python"), ("locales/templates/**.html", "jinja2")]
    options = {"locales/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found: set[str] = set()
    for directory in ("bot", "handlers", "locales", "scenarios", "storage"):
        for _file, _line, message, _comments, _ctx in extract_from_dir(
            ROOT / directory,
            method_map=[(pattern.replace("locales/", ""), kind) for pattern, kind in method_map],
            options_map={k.replace("locales/", ""): v for k, v in options.items()},
            keywords={"_": None, "__": None, "gettext": None, "ngettext": (1, 2)},
        ):
            found.add(message if isinstance(message, str) else message[0])
    found.discard("")
    return found


def test_the_product_speaks_exactly_the_locales_it_has_catalogs_for(i18n: CatalogI18n) -> None:
    assert sorted(i18n.available_locales) == sorted(SUPPORTED_LOCALES)


def test_every_locale_has_the_same_keys() -> None:
    assert msgids("ru") == msgids("uk") == msgids("en")


def test_every_text_used_in_code_and_templates_is_in_the_catalogs() -> None:
    used = used_in_code()
    # Python calls, lazy menu texts, template blocks and plurals are all seen by the extractor.
    assert {
        "Choose the language of the bot:",
        "Change the language",
        "Hello, %(name)s!",
        "%(count)s point",
    } <= used
    missing = used - msgids("en")
    assert not missing, f"run locales/extract.sh and translate: {sorted(missing)}"


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_every_entry_is_translated_with_the_same_placeholders(locale: str) -> None:
    for message in catalog(locale):
        if not message.id:
            continue
        assert "fuzzy" not in message.flags, f"{locale}: fuzzy {message.id!r}"
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        assert all(strings), f"{locale}: untranslated {message.id!r}"
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for string in strings:
            assert set(PLACEHOLDER.findall(string)) == wanted, f"{locale}: {string!r}"
        if isinstance(message.id, tuple):
            assert len(strings) == catalog(locale).num_plurals


@pytest.mark.parametrize(
    ("locale", "counts"),
    [
        (
            "ru",
            {
                1: "1 бонус",
                2: "2 бонуса",
                5: "5 бонусов",
                11: "11 бонусов",
                21: "21 бонус",
                22: "22 бонуса",
                1000: "1 000 бонусов",
            },
        ),
        (
            "uk",
            {
                1: "1 бал",
                2: "2 бали",
                5: "5 балів",
                11: "11 балів",
                21: "21 бал",
                24: "24 бали",
                1000: "1 000 балів",
            },
        ),
        ("en", {0: "0 points", 1: "1 point", 2: "2 points", 1000: "1,000 points"}),
    ],
)
def test_points_follow_cldr_plurals_and_local_digits(
    i18n: CatalogI18n, locale: str, counts: dict[int, str]
) -> None:
    for count, expected in counts.items():
        assert plain(format_points(count, i18n, locale)) == expected


def test_money_and_dates_are_written_the_local_way() -> None:
    assert plain(format_money(258000, "RUB", "ru")) == "2 580,00 ₽"
    assert plain(format_money(258000, "UAH", "uk")) == "2 580,00 ₴"
    assert format_money(258050, "USD", "en") == "$2,580.50"
    assert plain(format_date(date(2027, 3, 1), "ru")) == "1 марта 2027 г."
    assert plain(format_date(date(2027, 3, 1), "uk")) == "1 березня 2027 р."
    assert format_date(date(2027, 3, 1), "en") == "March 1, 2027"


def test_values_put_into_html_texts_are_escaped() -> None:
    assert fill("Hello, <b>%(name)s</b>!", name="<i>Eve</i> & co") == (
        "Hello, <b>&lt;i&gt;Eve&lt;/i&gt; &amp; co</b>!"
    )


RATING_ALERT = AlertRecord(
    id=1,
    rating_id=1,
    customer_id=1,
    state="taken",
    snapshot={
        "name": "Anna <3",
        "username": "anna",
        "phone": "+79991234567",
        "telegram_id": 1001,
        "tier": "gold",
        "order_id": "A-1001",
        "items": [["Cat & Dog food 2 kg", 2]],
        "total": 258000,
        "currency": "RUB",
    },
    created_at=datetime(2026, 11, 1, tzinfo=UTC),
    taken_by=7,
    taken_by_name="Olga",
    taken_at=datetime(2026, 11, 1, tzinfo=UTC),
    resolved_by=None,
    resolved_by_name=None,
    resolved_at=None,
    compensation_points=300,
    compensated_by_name="Olga",
    compensated_at=datetime(2026, 11, 1, tzinfo=UTC),
    replied_by_name="Olga",
    replied_at=datetime(2026, 11, 1, tzinfo=UTC),
)
RATING_STATS = RatingStats(
    week=PeriodStats(count=2, average=3.5, satisfied=1),
    month=PeriodStats(count=5, average=4.2, satisfied=4),
    alerts_open=1,
    alerts_resolved=3,
    median_resolve_seconds=10800.0,
)

SAMPLE_CONTEXTS: dict[str, dict[str, Any]] = {
    "broadcast_audience.html": {"segment": "Cat & Dog buyers", "members": 21, "reachable": 3},
    "broadcast_progress.html": {
        "broadcast_id": 7,
        "state": "paused",
        "progress": Progress(total=10, sent=5, failed=1, blocked=1, skipped=1, remaining=2),
        "eta_minutes": 1,
        "report_on": None,
    },
    "broadcast_report.html": {
        "report": BroadcastReport(
            broadcast_id=7,
            days=14,
            results=[VariantResult("A", 5, 4, 1, 129000), VariantResult("B", 5, 5, 2, 0)],
            closes_at=datetime(2026, 11, 15, 10, 0, tzinfo=UTC),
            final=True,
            verdict=AbVerdict("B", "A", 1.0),
        ),
    },
    "broadcasts_list.html": {
        "broadcasts": [
            {
                "id": 7,
                "created_at": datetime(2026, 11, 1, 10, 0, tzinfo=UTC),
                "segment": "Cat & Dog buyers",
                "state": "done",
                "total": 21,
            }
        ]
    },
    "welcome.html": {"name": "Anna", "shop": "Cat & Dog"},
    "welcome_back.html": {"name": "Anna", "card": "2 900000 000018", "offers_on": False},
    "member_card.html": {"card": "2 900000 000018", "welcome": 100, "spend_code": True},
    "redeem_code.html": {"code": "123 456", "minutes": 10},
    "invite.html": {
        "link": "https://t.me/shop_bot?start=abc",
        "friend_points": 200,
        "referrer_points": 300,
        "min_order": 100000,
        "hold_days": 14,
    },
    "referral_reward.html": {"points": 200, "role": "referrer_capped", "cap": 10},
    "referral_joined.html": {"points": 200, "min_order": 100000, "hold_days": 14},
    "birthday_gift.html": {"name": "Anna", "points": 300},
    "help.html": {
        "shop": "Cat & Dog",
        "commands": [BotCommand(command="start", description="Start")],
    },
    "status.html": {
        "status": BotStatus(
            version="1.0",
            backend="sqlite",
            schema_revision="0001",
            customers=21,
            uptime=timedelta(hours=5, minutes=7),
        )
    },
    "reminder.html": {"names": ["Cat & Dog food 2 kg", "Litter"]},
    "reminders_list.html": {
        "reminders": [
            ReminderRecord(
                id=1,
                customer_id=1,
                sku="CAT-2KG",
                order_ref="A-1",
                ordered_at=datetime(2026, 11, 1, tzinfo=UTC),
                quantity=2,
                basis="catalog",
                runs_out_at=datetime(2026, 12, 1, tzinfo=UTC),
                remind_at=datetime(2026, 11, 28, 9, tzinfo=UTC),
                due_at=datetime(2026, 11, 28, 9, tzinfo=UTC),
                state="snoozed",
                sent_at=None,
                message_key=None,
                name="Cat & Dog food",
                url=None,
            )
        ]
    },
    "reorder_request.html": {
        "name": "Cat & Dog fan",
        "username": "anna",
        "phone": "+79991234567",
        "card": "2900 0000 0001 5",
        "product": "Food 2 kg",
        "sku": "CAT-2KG",
        "quantity": 2,
    },
    "stats_reminders.html": {"reminders": ReminderStats(sent=1, converted=0, revenue=0)},
    "rating_request.html": {
        "order_id": "A-1001",
        "items": [["Cat & Dog food 2 kg", 2]],
        "score": None,
    },
    "rating_alert.html": {
        "alert": RATING_ALERT,
        "order_id": "A-1001",
        "score": 2,
        "comment": "<b>late</b> & cold",
        "awaiting_comment": False,
        "items_shown": 10,
        "comment_apart": False,
    },
    "_items.html": {"items": [["Cat & Dog food 2 kg", 2]] * 12, "limit": 10},
    "rating_comment.html": {"order_id": "A-1001", "comment": "Cat & Dog <3", "heading": True},
    "rating_compensation.html": {"points": 300, "order_id": "A-1001"},
    "rating_staff_reply.html": {"shop": "Cat & Dog", "order_id": "A-1001", "text": "Sorry <3"},
    "stats_ratings.html": {"ratings": RATING_STATS, "median": None},
}
SAMPLE_CONTEXTS.update(ACCOUNT_SAMPLES)
SAMPLE_CONTEXTS.update(STATS_SAMPLES)


def test_every_template_has_a_sample_context(renderer: Renderer) -> None:
    assert sorted(SAMPLE_CONTEXTS) == renderer.template_names()


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("template", sorted(SAMPLE_CONTEXTS))
def test_every_template_renders_in_every_locale(
    renderer: Renderer, locale: str, template: str
) -> None:
    text = renderer.render(template, locale=locale, **SAMPLE_CONTEXTS[template])
    assert text
    assert "\n\n\n" not in text
    assert "Cat &amp; Dog" in text or "Cat" not in str(SAMPLE_CONTEXTS[template])
    if locale != "en":
        english = renderer.render(template, locale="en", **SAMPLE_CONTEXTS[template])
        assert text != english, "the template is not translated"


def test_welcome_greets_by_name_in_each_language_and_escapes_it(renderer: Renderer) -> None:
    context = {"name": "<script>Anna</script>", "shop": "Lapki"}
    assert renderer.render("welcome.html", locale="ru", **context).startswith(
        "Здравствуйте, &lt;script&gt;Anna&lt;/script&gt;!\n"
        "Это бонусная программа магазина <b>Lapki</b>."
    )
    assert renderer.render("welcome.html", locale="uk", **context).startswith("Вітаємо, &lt;script")
    assert renderer.render("welcome.html", locale="en", name="", shop="Lapki").startswith(
        "Hello!\nThis is the bonus program of <b>Lapki</b>."
    )


def test_status_uses_plurals_and_local_numbers(renderer: Renderer) -> None:
    status = BotStatus(
        version="1.0",
        backend="postgresql",
        schema_revision="0001",
        customers=1002,
        uptime=timedelta(hours=26, minutes=3),
    )
    ru = plain(renderer.render("status.html", locale="ru", status=status))
    assert "1 002 клиента" in ru
    assert "Работает 26 ч 3 мин" in ru
    uk = plain(renderer.render("status.html", locale="uk", status=status))
    assert "1 002 клієнти" in uk


def test_datetime_filter_shows_the_shop_zone(renderer: Renderer) -> None:
    template = renderer.env.from_string("{{ moment|datetime('short') }}")
    with renderer.i18n.use_locale("ru"):
        shown = template.render(moment=datetime(2026, 11, 1, 21, 30, tzinfo=UTC))
    assert plain(shown) == "02.11.2026, 00:30"


def test_the_broadcast_report_speaks_each_language_with_plurals(renderer: Renderer) -> None:
    context = SAMPLE_CONTEXTS["broadcast_report.html"]
    ru = plain(renderer.render("broadcast_report.html", locale="ru", **context))
    assert "1 клиент сделал заказ в течение 14 дн. (25 %)" in ru
    assert "2 клиента сделали заказ в течение 14 дн. (40 %)" in ru
    assert "Выручка с этих заказов: 1 290,00 ₽" in ru
    en = plain(renderer.render("broadcast_report.html", locale="en", **context))
    assert "1 customer ordered within 14 days (25%)" in en


def test_rating_texts_escape_what_people_typed_and_use_plurals(renderer: Renderer) -> None:
    alert = renderer.render(
        "rating_alert.html", locale="ru", **SAMPLE_CONTEXTS["rating_alert.html"]
    )
    assert "Комментарий: <i>&lt;b&gt;late&lt;/b&gt; &amp; cold</i>" in alert
    assert "Клиент: Anna &lt;3 (@anna)" in alert
    assert "Компенсация 300 бонусов, начислил(а) Olga" in alert
    assert "580,00" in alert
    assert "🛠 Взял(а) Olga\n🎁 Компенсация" in alert
    # The tier by its name in the reader's language, not the config key.
    assert "Уровень: Золото" in alert
    for locale, tier, erased in (
        ("en", "Tier: Gold", "The customer has deleted their personal data."),
        ("uk", "Рівень: Золото", "Клієнт видалив свої персональні дані."),
        ("ru", "Уровень: Золото", "Клиент удалил свои персональные данные."),
    ):
        context = SAMPLE_CONTEXTS["rating_alert.html"]
        shown = renderer.render("rating_alert.html", locale=locale, **context)
        assert tier in shown and "gold" not in shown
        # An erased customer's alert: the order and the score, nobody's name or phone.
        gone = renderer.render(
            "rating_alert.html",
            locale=locale,
            **{**context, "alert": replace(RATING_ALERT, snapshot={})},
        )
        assert erased in gone and "A-1001" in gone
        assert "Anna" not in gone and tier not in gone
    uk = plain(renderer.render("rating_compensation.html", locale="uk", points=2, order_id="A-1"))
    assert "ми нарахували вам 2 бали" in uk
    satisfaction = plain(
        renderer.render(
            "stats_satisfaction.html",
            locale="ru",
            stats=SAMPLE_STATS,
            period_label="30 дней",
            ratings=RATING_STATS,
            median="3 ч",
        )
    )
    engagement = plain(
        renderer.render(
            "stats_engagement.html",
            locale="ru",
            stats=SAMPLE_STATS,
            period_label="30 дней",
            reminders=ReminderStats(sent=21, converted=1, revenue=129000),
        )
    )
    stats = satisfaction + engagement
    assert "За 7 дней: 2 оценки, в среднем 3,5, CSAT 50 %" in stats
    assert "За 30 дней: 5 оценок, в среднем 4,2, CSAT 80 %" in stats
    assert "Негативные оценки: открыто 1, решено 3" in stats
    assert "Медианное время решения: 3 ч" in stats
    assert "21 напоминание отправлено" in stats
