"""Rate limits on booking and status lookup are on under test, per address and per IIN."""

from __future__ import annotations

import pytest

from tests.factories import make_open_session, make_topic
from tests.integration.test_booking import book


@pytest.fixture
def app_config():
    return {
        "BOOKING_IIN_RATE_LIMIT": "2 per hour",
        "BOOKING_RATE_LIMIT": "4 per hour",
        "STATUS_RATE_LIMIT": "3 per minute",
        "PROXY_COUNT": 1,
    }


def test_booking_attempts_are_limited_per_iin(client):
    session = make_open_session(slots=4)
    topic = make_topic()
    statuses = [
        book(client, session.slots[n].id, topic, question="")[0].status_code for n in range(3)
    ]
    assert statuses == [422, 422, 429]


def test_booking_attempts_are_limited_per_address_behind_the_proxy(client):
    session = make_open_session(slots=2)
    topic = make_topic()
    from tests.factories import make_iin

    def attempt(n, address):
        client.environ_base["HTTP_X_FORWARDED_FOR"] = address
        return book(client, session.slots[0].id, topic, iin=make_iin(500 + n), question="")[0]

    assert [attempt(n, "10.0.0.1").status_code for n in range(5)] == [422] * 4 + [429]
    assert attempt(9, "10.0.0.2").status_code == 422  # another citizen is not blocked


def test_status_lookup_is_limited(client):
    statuses = [client.get("/status/ATY-ABCDEF").status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    assert "Retry-After" in client.get("/status/ATY-ABCDEF").headers
