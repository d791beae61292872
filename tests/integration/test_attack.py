"""Hostile input: fuzzed public forms never cause a 5xx or a partial write; XSS comes back escaped."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from receptions.booking.models import Booking, StatusEvent
from receptions.extensions import db
from receptions.notify.models import Notification
from receptions.schedules.models import Slot
from tests.conftest import csrf_from
from tests.factories import make_open_session, make_topic

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
SQL = "'; DROP TABLE booking; --"

texts = st.one_of(
    st.text(max_size=300),
    st.sampled_from([XSS, SQL, "", " ", "\x00", "٠١٢", "9" * 5000, "+7 701 123 45 67"]),
)


def tables_snapshot() -> tuple[int, ...]:
    db.session.rollback()
    return tuple(
        db.session.scalar(select(func.count()).select_from(model))
        for model in (Booking, StatusEvent, Notification)
    )


@pytest.fixture
def app_config():
    return {
        "BOOKING_RATE_LIMIT": "100000 per hour",
        "BOOKING_IIN_RATE_LIMIT": "100000 per hour",
        "STATUS_RATE_LIMIT": "100000 per minute",
    }


@pytest.fixture
def target(app):
    return make_open_session(slots=2), make_topic()


def _fuzz_booking(client, target, data):
    session, _topic = target
    page = client.get(f"/book/{session.slots[0].id}")
    html = page.get_data(as_text=True)
    key = re.search(r'name="idempotency_key" type="hidden" value="([^"]+)"', html).group(1)
    before = tables_snapshot()
    form = {"csrf_token": csrf_from(html), "idempotency_key": key, **data}
    response = client.post(f"/book/{session.slots[0].id}", data=form)
    assert response.status_code < 500, response.status_code
    if response.status_code >= 400:
        assert tables_snapshot() == before, "a refused request changed the database"
        db.session.expire_all()
        assert db.session.get(Slot, session.slots[0].id).booked == before[0]


@pytest.mark.parametrize("examples", [EXAMPLES])
def test_fuzzed_booking_form_never_fails_or_half_writes(client, target, examples):
    @settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(
        full_name=texts,
        iin=texts,
        phone=texts,
        email=texts,
        question=texts,
        topic_id=texts,
        locale=texts,
        consent=st.sampled_from(["y", "", "n", XSS]),
        accessibility=st.lists(texts, max_size=3),
    )
    def run(**data):
        _fuzz_booking(client, target, data)

    run()


@pytest.mark.slow
def test_fuzzed_booking_form_2000_cases(client, target):
    @settings(
        max_examples=2000, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(
        full_name=texts,
        iin=texts,
        phone=texts,
        email=texts,
        question=texts,
        topic_id=texts,
        locale=texts,
        consent=st.sampled_from(["y", "", XSS]),
    )
    def run(**data):
        _fuzz_booking(client, target, data)

    run()


@pytest.mark.parametrize("examples", [EXAMPLES])
def test_fuzzed_public_queries_never_fail(client, examples):
    @settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(q=texts, type_=texts, page=texts, reference=texts)
    def run(q, type_, page, reference):
        for url, params in (
            ("/institutions", {"q": q, "type": type_, "page": page}),
            ("/status", {"reference": reference}),
        ):
            assert client.get(url, query_string=params).status_code < 500

    run()


def test_xss_in_free_text_comes_back_escaped_everywhere(client, target):
    session, topic = target
    page = client.get(f"/book/{session.slots[0].id}").get_data(as_text=True)
    key = re.search(r'name="idempotency_key" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post(
        f"/book/{session.slots[0].id}",
        data={
            "csrf_token": csrf_from(page),
            "idempotency_key": key,
            "full_name": XSS,
            "iin": "900101390002",
            "phone": "+77011234567",
            "locale": "ru",
            "topic_id": str(topic.id),
            "question": XSS + " " + SQL,
            "accessibility": ["other"],
            "accessibility_note": XSS,
            "consent": "y",
        },
    )
    assert response.status_code == 303
    manage = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "<script>alert" not in manage and "onerror=alert" not in manage.replace(
        "onerror=alert(1)&gt;", ""
    )
    assert "&lt;script&gt;" in manage
    assert db.session.scalar(select(func.count()).select_from(Booking)) == 1  # SQL text is inert
    echoed = client.get("/institutions", query_string={"q": XSS}).get_data(as_text=True)
    assert "<script>alert" not in echoed


def test_every_post_without_csrf_is_refused(app, client):
    posts = [rule for rule in app.url_map.iter_rules() if "POST" in rule.methods]
    assert len(posts) > 20
    for rule in posts:
        url = re.sub(r"<(?:int:)?[^>]+>", "1", rule.rule)
        status = client.post(url, data={"x": "1"}).status_code
        assert status == 400, (rule.rule, status)


def test_nul_bytes_are_refused_before_they_reach_the_database(client, target):
    assert client.get("/institutions", query_string={"q": "\x00"}).status_code == 400
    session, _ = target
    response = client.post(f"/book/{session.slots[0].id}", data={"full_name": "a\x00b"})
    assert response.status_code == 400
    assert tables_snapshot() == (0, 0, 0)
