"""The links in the feedback request and the "really resolved?" question: each opens a page that
takes one answer about one booking, once, and shows nothing of the citizen's; a forged, expired
or other answer's link is refused."""

from __future__ import annotations

import time

import pytest
from flask_babel import force_locale, gettext
from itsdangerous import TimestampSigner
from sqlalchemy import select

from receptions.booking import services
from receptions.booking.answer_links import Purpose, answer_link, booking_id_of
from receptions.booking.models import Feedback, StatusEvent
from receptions.extensions import db
from receptions.notify.models import Notification
from tests.conftest import csrf_from
from tests.factories import make_open_session, make_topic
from tests.hostile import booking_with_token, outcome_long_ago

PUBLIC = "https://ashyq-esik.kz"
NO_STORE = "private, no-store"


@pytest.fixture
def app_config():
    return {"PUBLIC_URL": PUBLIC}


def _attended(**values):
    """A booking whose citizen came to a meeting that is over, and its manage token."""
    session = make_open_session(starts_in_hours=-3)
    booking, token = booking_with_token(
        session.slots[0],
        topic=make_topic(),
        status="attended",
        name="Сәуле Құпиякова",
        email="saule@example.kz",
        **values,
    )
    booking.question = "Менің жеке сұрағым туралы"
    db.session.commit()
    return booking, token


def _queued_link(booking, template: str, purpose: Purpose) -> str:
    """The link of the message `template` queued for `booking` (SMS and e-mail carry the same),
    as a path of this site."""
    messages = db.session.scalars(
        select(Notification).where(
            Notification.template == template, Notification.booking_id == booking.id
        )
    ).all()
    assert {m.channel for m in messages} == {"sms", "email"}
    urls = {m.payload["answer_url"] for m in messages}
    assert len(urls) == 1
    url = urls.pop()
    prefix = f"{PUBLIC}/{purpose.value}/"
    assert url.startswith(prefix), url
    assert booking_id_of(url.removeprefix(prefix), purpose) == booking.id
    return url.removeprefix(PUBLIC)


def _shows_nothing_of_the_citizens(page: str, booking, token: str) -> None:
    for personal in ("Сәуле", "Құпиякова", booking.iin_last4, booking.phone[-7:], "жеке сұрағым"):
        assert personal not in page, personal
    assert token not in page and booking.reference in page


def _send(client, path, data, csrf, lang="en"):
    return client.post(path, data={"csrf_token": csrf, **data}, headers={"Accept-Language": lang})


def test_the_feedback_request_links_a_page_that_records_the_rating_once(app, client):
    booking, token = _attended()
    assert services.queue_feedback_requests() == 1
    path = _queued_link(booking, "feedback_request", Purpose.feedback)

    page = client.get(path, headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == NO_STORE
    html = page.get_data(as_text=True)
    _shows_nothing_of_the_citizens(html, booking, token)
    assert "How was your meeting?" in html and 'name="rating"' in html
    assert 'name="resolved"' not in html and "/cancel" not in html  # this one answer only
    csrf = csrf_from(html)

    mistake = _send(client, path, {"comment": "Вежливо приняли"}, csrf)
    assert mistake.status_code == 422
    text = mistake.get_data(as_text=True)
    assert '<p class="error" id="rating-error">Choose a rating.</p>' in text
    assert "Вежливо приняли</textarea>" in text
    assert db.session.scalars(select(Feedback)).all() == []

    rated = _send(client, path, {"rating": "4", "comment": " Вежливо приняли "}, csrf)
    assert rated.status_code == 303 and rated.headers["Location"] == path
    after = client.get(path, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Thank you for your feedback." in after
    assert "Thank you, you rated the meeting 4 of 5." in after and 'name="rating"' not in after

    again = _send(client, path, {"rating": "1", "comment": "Передумал"}, csrf)
    assert again.status_code == 409
    assert "you have already rated this meeting" in again.get_data(as_text=True)
    db.session.expire_all()
    feedback = db.session.scalars(select(Feedback)).one()
    assert (feedback.booking_id, feedback.rating, feedback.comment) == (
        booking.id,
        4,
        "Вежливо приняли",
    )
    events = select(StatusEvent).where(StatusEvent.kind == "feedback")
    assert len(db.session.scalars(events).all()) == 1
    # The same record the manage page reads: it does not ask again.
    manage = client.get(f"/m/{token}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "you rated the meeting 4 of 5" in manage


def test_the_resolution_check_links_a_page_that_takes_one_answer(app, client):
    booking, token = _attended()
    outcome_long_ago(booking)
    assert services.queue_resolution_checks() == 1
    path = _queued_link(booking, "resolution_check", Purpose.resolved)

    page = client.get(path, headers={"Accept-Language": "ru"})
    assert page.status_code == 200 and page.headers["Cache-Control"] == NO_STORE
    html = page.get_data(as_text=True)
    _shows_nothing_of_the_citizens(html, booking, token)
    assert "Ваш вопрос действительно решён?" in html and 'name="resolved"' in html
    assert 'name="rating"' not in html
    csrf = csrf_from(html)

    assert _send(client, path, {}, csrf).status_code == 422
    answered = _send(client, path, {"resolved": "no"}, csrf)
    assert answered.status_code == 303
    after = client.get(path, headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert "Ваш ответ: Нет." in after and 'name="resolved"' not in after
    again = _send(client, path, {"resolved": "yes"}, csrf)
    assert again.status_code == 409
    assert "you have already told us whether your question was resolved" in again.get_data(
        as_text=True
    )
    db.session.expire_all()
    assert db.session.scalars(select(Feedback)).one().really_resolved is False


def test_a_resolution_link_opened_too_early_says_when_it_will_be_asked(app, client):
    """The rules are the manage page's: the answer is taken from 30 days after the outcome."""
    booking, _token = _attended()
    outcome_long_ago(booking, days=3)
    path = f"/resolved/{answer_link(booking.id, Purpose.resolved)}"
    page = client.get(path, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "30 days after" in page and 'name="resolved"' not in page
    refused = _send(client, path, {"resolved": "yes"}, csrf_from(_csrf_page(client)))
    assert refused.status_code == 409
    assert db.session.scalars(select(Feedback)).all() == []


def _csrf_page(client) -> str:
    """A page that always has a form, for a CSRF token of this client's session."""
    return client.get(f"/book/{make_open_session().slots[0].id}").get_data(as_text=True)


def _signed_days_ago(monkeypatch, days: float, booking_id: int, purpose: Purpose) -> str:
    then = int(time.time() - days * 86400)
    with monkeypatch.context() as patch:
        patch.setattr(TimestampSigner, "get_timestamp", lambda self: then)
        return answer_link(booking_id, purpose)


@pytest.mark.parametrize("lang", ["kk", "ru", "en"])
def test_forged_expired_or_other_answers_links_are_refused_in_the_readers_language(
    app, client, monkeypatch, lang
):
    booking, token = _attended()
    rate = answer_link(booking.id, Purpose.feedback)
    value, _stamp, signature = rate.split(".")
    with force_locale(lang):
        invalid = gettext("This booking link is not valid. Check that you copied the whole link.")
        expired = gettext("This link has expired")
    if lang != "en":
        assert invalid.isascii() is False and expired.isascii() is False  # translated

    refused = {
        "/feedback/" + rate[:-3] + ("AAA" if not rate.endswith("AAA") else "BBB"): 404,
        "/feedback/" + rate[: len(rate) // 2]: 404,  # cut short
        "/feedback/" + "A" * 200: 404,
        "/feedback/" + token: 404,  # the manage token is not an answer link
        "/resolved/" + rate: 404,  # signed for the rating, not for this answer
        # The purpose is signed: relabelling the value breaks the signature.
        "/resolved/" + ".".join((value.replace("feedback", "resolved"), _stamp, signature)): 404,
        "/feedback/" + answer_link(booking.id + 1000, Purpose.feedback): 404,  # no such booking
        "/feedback/" + _signed_days_ago(monkeypatch, 61, booking.id, Purpose.feedback): 410,
        "/resolved/" + _signed_days_ago(monkeypatch, 61, booking.id, Purpose.feedback): 404,
    }
    csrf = csrf_from(_csrf_page(client))
    for path, status in refused.items():
        for answer in (
            client.get(path, headers={"Accept-Language": lang}),
            _send(client, path, {"rating": "1", "resolved": "no"}, csrf, lang),
        ):
            assert answer.status_code == status, path
            assert answer.headers["Cache-Control"] == NO_STORE
            page = answer.get_data(as_text=True)
            assert f'<html lang="{lang}"' in page
            assert (expired if status == 410 else invalid) in page, path
            assert booking.reference not in page
    assert db.session.scalars(select(Feedback)).all() == []
    # Within the 60 days the link works.
    fresh = _signed_days_ago(monkeypatch, 59, booking.id, Purpose.feedback)
    assert client.get("/feedback/" + fresh).status_code == 200
