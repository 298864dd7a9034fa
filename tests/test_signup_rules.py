"""Sign-up rules without a database: whose phone is accepted, and how it is stored."""

from __future__ import annotations

import pytest

from locales.rendering import Renderer
from scenarios.referrals import invite_link, new_invite_code, valid_code
from scenarios.signup import PhoneRefusal, SignupRefused, own_phone


def refusal(**kwargs: object) -> PhoneRefusal:
    with pytest.raises(SignupRefused) as caught:
        own_phone(**kwargs)  # type: ignore[arg-type]
    return caught.value.reason


def test_only_the_senders_own_contact_is_accepted() -> None:
    assert (
        refusal(contact_user_id=2, sender_id=1, phone_number="79991234567", currency="RUB")
        is PhoneRefusal.NOT_OWN
    )
    # A contact typed into the address book has no Telegram user at all.
    assert (
        refusal(contact_user_id=None, sender_id=1, phone_number="79991234567", currency="RUB")
        is PhoneRefusal.NOT_OWN
    )


def test_phones_are_stored_as_e164() -> None:
    for sent in ("79991234567", "+79991234567", "+7 999 123-45-67"):
        assert (
            own_phone(contact_user_id=1, sender_id=1, phone_number=sent, currency="RUB")
            == "+79991234567"
        )
    assert (
        own_phone(contact_user_id=1, sender_id=1, phone_number="380501234567", currency="UAH")
        == "+380501234567"
    )
    assert (
        refusal(contact_user_id=1, sender_id=1, phone_number="12345", currency="RUB")
        is PhoneRefusal.INVALID
    )


def test_invite_codes_fit_a_start_payload() -> None:
    codes = {new_invite_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(valid_code(code) and len(code) <= 64 for code in codes)
    assert not valid_code("with space")
    assert not valid_code("x" * 65)
    assert not valid_code(None)
    assert invite_link("lapki_bot", "abc_-1") == "https://t.me/lapki_bot?start=abc_-1"


def test_the_invite_and_gift_texts_read_well_in_each_language(renderer: Renderer) -> None:
    invite = {
        "link": "https://t.me/lapki_bot?start=abc",
        "friend_points": 1,
        "referrer_points": 2,
        "min_order": 100000,
        "hold_days": 14,
    }
    ru = renderer.render("invite.html", locale="ru", **invite)
    assert "он получит 1 бонус, а вы — 2 бонуса" in ru
    assert "когда с заказа пройдут 14 дней (срок возврата)" in ru
    uk = renderer.render("invite.html", locale="uk", **{**invite, "hold_days": 0})
    assert "Бали нараховуються одразу після оплати замовлення." in uk
    gift = renderer.render("birthday_gift.html", locale="uk", name="<b>Olha</b>", points=5)
    assert gift == (
        "З днем народження, &lt;b&gt;Olha&lt;/b&gt;! 🎂\n"
        "Наш подарунок — 5 балів уже на вашій картці. Витратьте їх на щось приємне."
    )
