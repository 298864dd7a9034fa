"""Ids no Telegram user or row can have, typed or in forged buttons, get a clear answer in the
person's language, never "something went wrong" (issue 15.7), on both databases."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from aiogram.methods import AnswerCallbackQuery, SendMessage

from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from storage.database import Database
from tests.support.flow import Flow, build_flow
from tests.support.seed import member
from tests.support.updates import TgUser

ADMIN = TgUser(9001, first_name="Olga", language_code="en")
ADMIN_RU = TgUser(9003, first_name="Ольга", language_code="ru")
ANNA = TgUser(1001, first_name="Anna", language_code="uk")
TWENTY = "9" * 20
APOLOGY = "something went wrong"


@pytest.fixture
def flow(db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    return build_flow(
        db=db,
        clock=clock,
        i18n=i18n,
        renderer=renderer,
        admin_ids=(ADMIN.id, ADMIN_RU.id),
        staff_chat_id=-100500,
    )


def texts(calls: Sequence[object]) -> list[str]:
    return [
        call.text or "" for call in calls if isinstance(call, SendMessage | AnswerCallbackQuery)
    ]


@pytest.mark.parametrize(
    "command",
    [
        f"/bonus {TWENTY} +100 sorry",
        f"/bonus tg:{TWENTY} +100 sorry",
        f"/customer {TWENTY}",
        f"/customer tg:{TWENTY}",
        "/customer tg:4503599627370496",
    ],
)
async def test_i15_7_a_twenty_digit_id_in_an_admin_command_is_explained(
    flow: Flow, command: str
) -> None:
    await member(flow.db, ANNA.id)
    [answer] = texts(await flow.send(ADMIN, command))
    assert answer.startswith("I cannot read this customer reference."), answer
    assert answer.endswith("Nothing was changed.")
    [russian] = texts(await flow.send(ADMIN_RU, command))
    assert russian.startswith("Не понимаю, какой это клиент."), russian
    assert russian.endswith("Ничего не изменено."), russian


@pytest.mark.parametrize(
    ("who", "data"),
    [
        (ANNA, f"rate:{TWENTY}:5"),
        (ANNA, f"rate:1:{TWENTY}"),
        (ANNA, f"rskip:{TWENTY}"),
        (ANNA, f"rmd:order:{TWENTY}"),
        (ANNA, f"rmc:{TWENTY}"),
        (ANNA, f"hist:{TWENTY}"),
        (ANNA, f"alert:{TWENTY}:take"),
        (ANNA, f"comp:{TWENTY}:100"),
        (ADMIN, f"bctl:pause:{TWENTY}"),
        (ADMIN, f"alert:{TWENTY}:take"),
        (ANNA, "rate:-1:5"),
        (ANNA, "nobody:knows"),
    ],
)
async def test_i15_7_a_forged_button_with_a_huge_number_says_it_is_out_of_date(
    flow: Flow, who: TgUser, data: str
) -> None:
    await member(flow.db, ANNA.id)
    calls = await flow.press(who, data)
    answers = [call.text or "" for call in calls if isinstance(call, AnswerCallbackQuery)]
    expected = "Ця кнопка застаріла." if who is ANNA else "This button is out of date."
    assert len(answers) == 1 and answers[0].startswith(expected), texts(calls)
    assert not any(APOLOGY in text for text in texts(calls))


@pytest.mark.parametrize("command", ["/gift ¹ New Year", "/gift 1² New Year", "/bonus tg:¹ +1 x"])
async def test_a_superscript_digit_is_not_a_number(flow: Flow, command: str) -> None:
    # str.isdigit() says yes to "¹" while int() refuses it: the answer must still be the usage.
    await member(flow.db, ANNA.id)
    [answer] = texts(await flow.send(ADMIN, command))
    assert APOLOGY not in answer.lower()
    assert "Nothing was changed." in answer or answer.startswith("Usage"), answer
