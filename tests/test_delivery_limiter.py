"""The rate limiter with a hand-driven clock: global spacing, per-chat spacing, group window."""

from __future__ import annotations

from bot.delivery.limiter import Limits, RateLimiter


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_chat_waits_for_its_previous_request_and_then_a_full_interval() -> None:
    tick = Ticker()
    limiter = RateLimiter(Limits(private_interval=1.0), now=tick)
    assert limiter.chat_ready_at(7) <= tick.now
    limiter.reserve_chat(7)
    tick.now += 3.0  # the request is slow: still in flight three seconds later
    assert limiter.chat_ready_at(7) > tick.now, "nothing more while one is in flight"
    limiter.chat_done(7)
    assert limiter.chat_ready_at(7) >= tick.now + 1.0
    assert limiter.chat_ready_at(8) <= tick.now, "other chats are not held up"


def test_an_in_flight_chat_keeps_one_answer_until_it_is_due() -> None:
    # The sender re-queues a message whenever the chat's answer moved; an answer of
    # "now + poll" would move on every question and spin the sender without ever awaiting.
    tick = Ticker()
    limiter = RateLimiter(Limits(private_interval=0.0), now=tick)
    limiter.reserve_chat(-100)
    tick.now += 0.5  # a slow request: the spacing after it has passed, it is still in flight
    first = limiter.chat_ready_at(-100)
    assert first > tick.now
    tick.now += 0.001
    assert limiter.chat_ready_at(-100) == first
    tick.now = first + 0.001
    later = limiter.chat_ready_at(-100)
    assert later > tick.now, "still in flight: look again a little later"
    limiter.chat_done(-100)
    assert limiter.chat_ready_at(-100) <= tick.now + 0.1


def test_a_group_gets_at_most_its_per_minute_quota() -> None:
    tick = Ticker()
    limiter = RateLimiter(Limits(private_interval=0.0, group_per_minute=20), now=tick)
    start = tick.now
    for _ in range(20):
        assert limiter.chat_ready_at(-100) <= tick.now
        limiter.reserve_chat(-100)
        limiter.chat_done(-100)
        tick.now += 0.1
    assert limiter.chat_ready_at(-100) >= start + 60.0
    tick.now = start + 61.0
    assert limiter.chat_ready_at(-100) <= tick.now


def test_a_staff_press_edit_shares_the_group_window_with_the_outbox() -> None:
    tick = Ticker()
    limiter = RateLimiter(Limits(private_interval=0.0, group_per_minute=20), now=tick)
    start = tick.now
    for _ in range(19):  # the outbox's messages to the staff chat
        limiter.reserve_chat(-100)
        limiter.chat_done(-100)
        tick.now += 0.1
    assert limiter.group_has_room(-100)
    limiter.count_group_send(-100)  # an edit made in answer to a press
    assert not limiter.group_has_room(-100)
    assert limiter.chat_ready_at(-100) >= start + 60.0, "the outbox waits for it too"
    assert limiter.group_has_room(-200), "another group has its own window"
    tick.now = start + 61.0
    assert limiter.group_has_room(-100)


def test_the_global_rate_keeps_its_grid_but_saves_up_no_burst() -> None:
    tick = Ticker()
    limiter = RateLimiter(Limits(rate_per_second=100.0), now=tick)
    taken = 0
    end = tick.now + 1.0
    while tick.now < end:
        delay = limiter.global_delay()
        if delay:
            tick.now += delay + 0.0005  # sleeps overshoot a little
        else:
            limiter.take_global()
            taken += 1
    assert 95 <= taken <= 100, taken
    tick.now += 60.0  # a quiet minute
    limiter.take_global()
    assert limiter.global_delay() > 0, "no burst after a pause"


def test_a_429_pauses_everything_and_slows_down() -> None:
    tick = Ticker()
    limiter = RateLimiter(Limits(rate_per_second=10.0), now=tick)
    limiter.pause(3)
    assert limiter.global_delay() == 3.0
    tick.now += 3.0
    limiter.take_global()
    assert limiter.global_delay() > 1 / 10.0, "slower than the configured rate for a while"


def test_a_slot_taken_ahead_is_returned_and_spaces_its_chat_from_then() -> None:
    tick = Ticker()
    limiter = RateLimiter(Limits(rate_per_second=10.0, private_interval=1.0), now=tick)
    first = limiter.take_global()
    assert first == tick.now
    second = limiter.take_global()  # planned before the first slot has even passed
    assert second > first + 0.09, "the next slot on the grid, not now"
    limiter.reserve_chat(7, leaving_at=second)
    limiter.chat_done(7)  # came back at once (a test clock does not move by itself)
    assert limiter.chat_ready_at(7) >= second + 1.0, "spacing counts from when it leaves"


def test_a_429_holds_back_slots_taken_from_then_on() -> None:
    tick = Ticker()
    limiter = RateLimiter(Limits(rate_per_second=10.0), now=tick)
    limiter.pause(2)
    assert limiter.take_global() >= tick.now + 2.0


def test_late_requests_never_crowd_one_second_beyond_the_rate() -> None:
    # Requests that wake late leave together; the grid said nothing against it, the window does.
    tick = Ticker()
    limiter = RateLimiter(Limits(rate_per_second=100.0), now=tick)
    left = 0
    while limiter.departure_delay() == 0:
        limiter.depart()
        left += 1
    assert 95 <= left < 100, left
    first_gone = tick.now + 1.0
    assert limiter.departure_delay() == 1.0
    tick.now = first_gone + 0.0001
    assert limiter.departure_delay() == 0, "room again once the oldest is a second old"


def test_after_a_429_the_window_narrows_with_the_rate() -> None:
    tick = Ticker()
    limiter = RateLimiter(Limits(rate_per_second=100.0), now=tick)
    limiter.pause(0)
    left = 0
    while limiter.departure_delay() == 0:
        limiter.depart()
        left += 1
    assert left < 70, left
