"""The process:// rate-limit storage, through limits' own fixed-window limiter."""

from __future__ import annotations

import threading
import time

import pytest
from limits import RateLimitItemPerSecond, parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from receptions import ratelimit
from receptions.ratelimit import ProcessStorage

# Rate windows that open and close on the real clock: not for `make test-clock`.
pytestmark = pytest.mark.realtime


@pytest.fixture
def storage() -> ProcessStorage:
    made = storage_from_string("process://")
    assert isinstance(made, ProcessStorage)
    return made


def test_counts_to_the_limit_then_refuses_per_key(storage):
    limiter = FixedWindowRateLimiter(storage)
    three = parse("3 per hour")
    assert [limiter.hit(three, "10.0.0.1") for _ in range(4)] == [True, True, True, False]
    assert limiter.hit(three, "10.0.0.2")  # another visitor has an allowance of their own
    stats = limiter.get_window_stats(three, "10.0.0.1")
    assert stats.remaining == 0
    assert 3590 < stats.reset_time - time.time() <= 3600


def test_a_window_that_ended_starts_again(storage):
    limiter = FixedWindowRateLimiter(storage)
    one = RateLimitItemPerSecond(1, 1)
    assert limiter.hit(one, "k") and not limiter.hit(one, "k")
    time.sleep(1.05)
    assert limiter.test(one, "k")
    assert limiter.hit(one, "k")


@pytest.mark.parametrize(("uri", "starts_timers"), [("process://", False), ("memory://", True)])
def test_counts_without_starting_a_thread(uri, starts_timers, monkeypatch):
    """limits' memory:// starts a sweeping timer when it counts; process:// never does."""
    started: list[threading.Timer] = []

    class CountedTimer(threading.Timer):
        def start(self) -> None:
            started.append(self)
            super().start()

    monkeypatch.setattr(threading, "Timer", CountedTimer)
    limiter = FixedWindowRateLimiter(storage_from_string(uri))
    started.clear()  # memory:// starts one when it is made
    item = parse("100 per minute")
    for n in range(5):
        time.sleep(0.02)  # memory://'s last timer (10 ms) has run: counting starts another
        limiter.hit(item, f"visitor-{n}")
    assert bool(started) is starts_timers


def test_visitors_who_never_came_back_are_swept(storage, monkeypatch):
    limiter = FixedWindowRateLimiter(storage)
    for n in range(20):
        limiter.hit(RateLimitItemPerSecond(5, 1), f"gone-{n}")
    limiter.hit(parse("5 per hour"), "stays")
    time.sleep(1.05)
    monkeypatch.setattr(storage, "_next_sweep", 0.0)  # the minute has passed
    limiter.hit(parse("5 per hour"), "arrives")
    assert storage.reset() == 2  # "stays" and "arrives": the twenty ended windows are gone
    assert storage._next_sweep > time.time() + ratelimit.SWEEP_EVERY_S - 5


def test_clear_and_reset_give_the_allowance_back(storage):
    limiter = FixedWindowRateLimiter(storage)
    one = parse("1 per hour")
    assert limiter.hit(one, "a") and not limiter.hit(one, "a")
    limiter.clear(one, "a")
    assert limiter.hit(one, "a")
    assert storage.reset() == 1
    assert limiter.hit(one, "a")
    assert storage.check()


def test_other_strategies_are_refused_when_built(storage):
    with pytest.raises(NotImplementedError):
        MovingWindowRateLimiter(storage)
