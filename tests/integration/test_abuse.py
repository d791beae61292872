"""Rate limits on booking and status lookup are on under test, per address and per IIN."""

from __future__ import annotations

import logging

import pytest

from receptions.booking.identity import iin_hash
from receptions.booking.models import Booking
from receptions.extensions import db
from tests.factories import make_open_session, make_topic
from tests.integration.test_booking import IIN, book


@pytest.fixture
def app_config():
    return {
        "BOOKING_IIN_RATE_LIMIT": "2 per hour",
        "BOOKING_RATE_LIMIT": "4 per hour",
        "STATUS_RATE_LIMIT": "3 per minute",
        "PROXY_COUNT": 1,
    }


def _from(client, address):
    client.environ_base["HTTP_X_FORWARDED_FOR"] = address
    return client


def test_booking_attempts_are_limited_per_iin(client):
    # Valid forms with one IIN, each from another address: the booking, the month's limit
    # refusing a second one, and then the citizen's limit.
    session = make_open_session(slots=4)
    topic = make_topic()
    statuses = [
        book(_from(client, f"10.0.1.{n}"), session.slots[n].id, topic)[0].status_code
        for n in range(3)
    ]
    assert statuses == [303, 409, 429]


def test_the_per_iin_limit_is_logged_without_the_citizens_iin(app, client, caplog):
    """Flask-Limiter logs every limit it finds exceeded, with the limit's key: for the per-IIN
    limit that key holds the keyed hash stored in booking.iin_hash. The line is kept, the
    citizen is not in it."""
    session = make_open_session(slots=4)
    topic = make_topic()
    with caplog.at_level(logging.DEBUG):
        statuses = [
            book(_from(client, f"10.0.3.{n}"), session.slots[n].id, topic)[0].status_code
            for n in range(3)
        ]
    assert statuses == [303, 409, 429]
    stored = db.session.scalars(db.select(Booking.iin_hash)).one()
    assert stored == iin_hash(IIN, app.config["IIN_HASH_KEY"])
    breaches = [r.getMessage() for r in caplog.records if r.name == "flask-limiter"]
    assert [line for line in breaches if "(iin:[redacted]) exceeded" in line], breaches
    personal = (IIN, stored, stored[:16], IIN[-4:])
    assert [
        r.getMessage() for r in caplog.records if any(p in r.getMessage() for p in personal)
    ] == []
    assert not any(p in caplog.text for p in personal)


def test_mistaken_forms_with_someones_iin_do_not_lock_them_out(client):
    """Anyone may type a citizen's IIN: a form that is refused for its mistakes counts toward the
    sender's address only, never toward the IIN."""
    session = make_open_session(slots=2)
    topic = make_topic()
    prankster = _from(client, "10.0.2.1")
    statuses = [book(prankster, session.slots[0].id, topic, question="")[0].status_code]
    statuses += [book(prankster, session.slots[0].id, topic, phone="1")[0].status_code]
    statuses += [book(prankster, session.slots[0].id, topic, consent=None)[0].status_code]
    assert statuses == [422, 422, 422]
    assert book(_from(client, "10.0.2.2"), session.slots[1].id, topic)[0].status_code == 303


def test_booking_attempts_are_limited_per_address_behind_the_proxy(client):
    session = make_open_session(slots=2)
    topic = make_topic()
    from tests.factories import make_iin

    def attempt(n, address):
        client.environ_base["HTTP_X_FORWARDED_FOR"] = address
        return book(client, session.slots[0].id, topic, iin=make_iin(500 + n), question="")[0]

    assert [attempt(n, "10.0.0.1").status_code for n in range(5)] == [422] * 4 + [429]
    assert attempt(9, "10.0.0.2").status_code == 422  # another citizen is not blocked


@pytest.mark.parametrize(
    ("language", "wait"),
    [("kk", "1 сағаттан кейін"), ("ru", "через 1 час"), ("en", "in 1 hour")],
)
def test_the_429_page_says_how_long_to_wait(client, language, wait):
    session = make_open_session(slots=1)
    topic = make_topic()
    for _ in range(4):
        book(client, session.slots[0].id, topic, lang=language, question="")
    refused, _data = book(client, session.slots[0].id, topic, lang=language, question="")
    assert refused.status_code == 429
    assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
    text = refused.get_data(as_text=True)
    assert wait in text and "minute" not in text and "минут" not in text


def test_status_lookup_is_limited(client):
    statuses = [client.get("/status/ATY-ABCDEF").status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    assert "Retry-After" in client.get("/status/ATY-ABCDEF").headers


def test_opening_the_form_and_other_pages_count_against_no_limit(client):
    # The limits are on the submissions only: opening a form (which the booking tests above do
    # before each attempt) or any other page never spends the citizen's allowance.
    session = make_open_session(slots=1)
    topic = make_topic()
    for _ in range(10):
        assert client.get(f"/book/{session.slots[0].id}").status_code == 200
        assert client.get("/healthz").status_code == 200
    # The address's four attempts an hour are all still there, and then the limit holds.
    statuses = [book(client, session.slots[0].id, topic, question="")[0].status_code for _ in "abcde"]
    assert statuses == [422, 422, 422, 422, 429]
    assert client.get("/status/ATY-ABCDEF").status_code == 404


def test_limits_declared_elsewhere_keep_flask_limiters_own_check():
    """The app takes Flask-Limiter's before_request check out only while every limit sits on
    the function it guards; a default limit (here, by configuration) brings the check back,
    and with it that limit."""
    from receptions import create_app
    from receptions.extensions import limiter
    from tests.conftest import app_settings

    plain = create_app(app_settings("sqlite://"))
    assert limiter._check_request_limit not in plain.before_request_funcs[None]
    limited = create_app(app_settings("sqlite://", RATELIMIT_DEFAULT="2 per minute"))
    try:
        assert limiter._check_request_limit in limited.before_request_funcs[None]
        client = limited.test_client()
        assert [client.get("/healthz").status_code for _ in range(3)] == [200, 200, 429]
    finally:
        limiter.limit_manager.set_default_limits([])


def test_limits_are_counted_in_process_without_redis_and_in_redis_with_it(monkeypatch, tmp_path):
    from limits.storage import RedisStorage

    from receptions import create_app
    from receptions.extensions import limiter
    from receptions.ratelimit import ProcessStorage
    from tests.conftest import app_settings, empty_rq_queue

    redis_url, _queue = empty_rq_queue("ratelimit-storage", 14)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'limits.sqlite3'}")
    try:
        monkeypatch.delenv("REDIS_URL", raising=False)
        create_app("testing")  # the configuration as it is, read from the environment
        assert isinstance(limiter.storage, ProcessStorage)
        monkeypatch.setenv("REDIS_URL", redis_url)
        create_app("testing")
        assert isinstance(limiter.storage, RedisStorage) and limiter.storage.check()
    finally:
        create_app(app_settings("sqlite://"))  # the limiter is shared: give it back


def test_retry_after_is_the_pages_own_on_a_limited_view():
    """Flask-Limiter dates Retry-After to the end of the citizen's window on every answer of a
    limited view; only the 429 keeps that. The 503 of a database that is away says 5 seconds,
    and an ordinary page says nothing."""
    from receptions import create_app
    from tests.conftest import app_settings

    away = create_app(
        app_settings(
            "postgresql+psycopg://postgres@127.0.0.1:1/nowhere",
            SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 1}},
            STATUS_RATE_LIMIT="2 per hour",
        )
    )
    client = away.test_client()
    unavailable = client.get("/status/ATY-ABCDEF")
    assert unavailable.status_code == 503
    assert unavailable.headers["Retry-After"] == "5"
    assert unavailable.headers["X-RateLimit-Limit"] == "2"  # the limit was counted and told
    client.get("/status/ATY-ABCDEF")
    refused = client.get("/status/ATY-ABCDEF")
    assert refused.status_code == 429
    assert 3500 <= int(refused.headers["Retry-After"]) <= 3600


def test_an_ordinary_answer_of_a_limited_view_carries_no_retry_after(client):
    missing = client.get("/status/ATY-ABCDEF")
    assert missing.status_code == 404
    assert "X-RateLimit-Remaining" in missing.headers
    assert "Retry-After" not in missing.headers
