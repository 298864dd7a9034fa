"""The Mini App's sign-in: initData checked as Telegram documents, against a published example."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import quote, urlencode

import pytest

from bot.webapp.auth import (
    FailedSignIns,
    InitDataError,
    init_data_from_header,
    validate_init_data,
)

# The worked example of the Telegram Mini Apps documentation (docs.telegram-mini-apps.com,
# "init data" validation; bot id 7342037359, the user "Vladislav + - ? /", a photo URL and the
# newer Ed25519 "signature" field, which the HMAC covers too) with the bot token published with
# it. core.telegram.org's own example (bot id 7342037359 as well) only shows third-party
# validation by Ed25519, whose bot token is not published, so it cannot check an HMAC.
EXAMPLE_TOKEN = "7342037359:AAHI25ES9xCOMPokpYoz-p8XVrZUdygo2J4"
EXAMPLE = (
    "user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%20%2B%20-%20%3F%20%5C%2F"
    "%22%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_"
    "code%22%3A%22ru%22%2C%22is_premium%22%3Atrue%2C%22allows_write_to_pm%22%3Atrue%2C%22"
    "photo_url%22%3A%22https%3A%5C%2F%5C%2Ft.me%5C%2Fi%5C%2Fuserpic%5C%2F320%5C%2F4FPEE4tm"
    "P3ATHa57u6MqTDih13LTOiMoKoLDRG4PnSA.svg%22%7D&chat_instance=8134722200314281151&chat_"
    "type=private&auth_date=1733509682&signature=TYJxVcisqbWjtodPepiJ6ghziUL94-KNpG8Pau-X7oNN"
    "LNBM72APCpi_RKiUlBvcqo5L-LAxIc3dnTzcZX_PDg&hash=a433d8f9847bd6addcc563bff7cc82c89e97ea0d"
    "90c11fe5729cae6796a36d73"
)
SIGNED_AT = 1733509682
TOKEN = "123456:TEST-TOKEN"


def telegram_signed(fields: dict[str, str], token: str = TOKEN) -> str:
    """initData as Telegram makes it, spelt out here independently of bot.webapp.auth."""
    check = "\n".join(f"{key}={fields[key]}" for key in sorted(fields))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    digest = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode({**fields, "hash": digest}, quote_via=quote)


def fields(auth_date: int = SIGNED_AT, user_id: int = 42) -> dict[str, str]:
    user = {"id": user_id, "first_name": "Олег", "language_code": "uk"}
    return {
        "auth_date": str(auth_date),
        "query_id": "AAH-query",
        "user": json.dumps(user, ensure_ascii=False, separators=(",", ":")),
    }


def test_telegrams_documented_example_is_genuine() -> None:
    init = validate_init_data(
        EXAMPLE, bot_token=EXAMPLE_TOKEN, max_age_seconds=3600, now=SIGNED_AT + 10
    )
    assert init.user.id == 279058397
    assert init.user.first_name == "Vladislav + - ? /"
    assert init.user.language_code == "ru"
    assert init.auth_date == SIGNED_AT


@pytest.mark.parametrize(
    "tampered",
    [
        EXAMPLE.replace("279058397", "279058398"),  # another user
        EXAMPLE.replace("auth_date=1733509682", "auth_date=1733509683"),
        EXAMPLE.replace("signature=", "altered="),  # a field renamed
        EXAMPLE.replace("hash=a433", "hash=b433"),
        EXAMPLE + "&extra=1",  # a field added
        EXAMPLE.split("&hash=")[0],  # no hash
    ],
)
def test_any_change_to_the_example_is_refused(tampered: str) -> None:
    with pytest.raises(InitDataError):
        validate_init_data(
            tampered, bot_token=EXAMPLE_TOKEN, max_age_seconds=3600, now=SIGNED_AT + 10
        )


def test_the_example_is_refused_under_another_bots_token() -> None:
    with pytest.raises(InitDataError, match="not signed"):
        validate_init_data(EXAMPLE, bot_token=TOKEN, max_age_seconds=3600, now=SIGNED_AT)


def test_auth_date_older_than_max_age_is_refused_and_a_fresh_one_accepted() -> None:
    raw = telegram_signed(fields())
    assert validate_init_data(raw, bot_token=TOKEN, max_age_seconds=3600, now=SIGNED_AT + 3600)
    with pytest.raises(InitDataError, match="expired"):
        validate_init_data(raw, bot_token=TOKEN, max_age_seconds=3600, now=SIGNED_AT + 3601)
    with pytest.raises(InitDataError, match="future"):
        validate_init_data(raw, bot_token=TOKEN, max_age_seconds=3600, now=SIGNED_AT - 120)


def test_missing_repeated_or_userless_init_data_is_refused() -> None:
    for raw in ("", "auth_date=1", "x" * 5000):
        with pytest.raises(InitDataError):
            validate_init_data(raw, bot_token=TOKEN, max_age_seconds=3600, now=SIGNED_AT)
    repeated = telegram_signed(fields()) + "&auth_date=1"
    with pytest.raises(InitDataError, match="repeats"):
        validate_init_data(repeated, bot_token=TOKEN, max_age_seconds=3600, now=SIGNED_AT)
    userless = telegram_signed({"auth_date": str(SIGNED_AT), "query_id": "q"})
    with pytest.raises(InitDataError, match="no user"):
        validate_init_data(userless, bot_token=TOKEN, max_age_seconds=3600, now=SIGNED_AT)


def test_the_user_of_signed_init_data_is_read_back() -> None:
    init = validate_init_data(
        telegram_signed(fields(user_id=777)), bot_token=TOKEN, max_age_seconds=60, now=SIGNED_AT
    )
    assert (init.user.id, init.user.first_name, init.user.language_code) == (777, "Олег", "uk")


def test_the_header_is_tma_and_init_data() -> None:
    assert init_data_from_header("tma a=1&b=2") == "a=1&b=2"
    for header in (None, "", "Bearer a=1", "tma ", "tma"):
        with pytest.raises(InitDataError):
            init_data_from_header(header)


def test_failed_sign_ins_are_limited_per_address_for_a_minute() -> None:
    now = [1000.0]
    limit = FailedSignIns(3, clock=lambda: now[0])
    for _ in range(3):
        assert limit.retry_after("1.2.3.4") is None
        limit.failed("1.2.3.4")
    assert limit.retry_after("1.2.3.4") == 60
    assert limit.retry_after("5.6.7.8") is None  # another address is not held up
    now[0] += 59.5
    assert limit.retry_after("1.2.3.4") == 1
    now[0] += 0.5
    assert limit.retry_after("1.2.3.4") is None
