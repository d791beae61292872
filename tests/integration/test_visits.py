"""Running the day: every transition, including the forbidden ones, on both databases."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, timedelta
from html.parser import HTMLParser

import pytest
from flask_babel import force_locale, gettext
from sqlalchemy import func, select

from receptions.audit.models import AuditEvent
from receptions.auth.models import Role
from receptions.booking.models import Booking, StatusEvent
from receptions.errors import DomainError
from receptions.extensions import db
from receptions.schedules.models import ScheduledSession
from receptions.visits import services
from receptions.visits.models import MonthSignoff, Outcome, Question, QuestionEvent, Visit
from tests.conftest import csrf_from, sign_in, submit
from tests.factories import (
    PASSWORD,
    make_booking,
    make_institution,
    make_notification,
    make_open_session,
    make_topic,
    make_user,
)


def almaty_today() -> date:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("Asia/Almaty")).date()


def utc_now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def day(app):
    """A session that started earlier today (local time, whatever the hour), with three bookings."""
    session = make_open_session(slots=3, earlier_today=True)
    topic = make_topic(name_ru="ЖКХ")
    bookings = [
        make_booking(
            slot, topic=topic, name=f"Гражданин {n}", accessibility=["wheelchair"] if n == 0 else []
        )
        for n, slot in enumerate(session.slots)
    ]
    head = make_user(Role.head, institution=session.institution)
    # Just after local midnight the later slots have not begun, and a no-show may be marked only
    # once its slot has: the app's clock then stands just after the last slot's start.
    last_start = session.slots[-1].starts_at
    if last_start > utc_now():
        app.config["FROZEN_NOW"] = last_start + timedelta(minutes=1)
    return session, bookings, head, topic


def _agenda_url(session):
    return f"/staff/institutions/{session.institution_id}/agenda"


def _check_in(client, session, booking, mark):
    page = client.get(_agenda_url(session)).get_data(as_text=True)
    return client.post(
        f"/staff/bookings/{booking.id}/check-in", data={"csrf_token": csrf_from(page), "mark": mark}
    )


def test_agenda_shows_bookings_masked_and_highlights_needs(client, day):
    session, bookings, head, _ = day
    sign_in(client, head.email, PASSWORD)
    page = client.get(_agenda_url(session), headers={"Accept-Language": "en"}).get_data(
        as_text=True
    )
    assert "Гражданин 0" in page and "needs-help" in page and "Wheelchair access" in page
    assert bookings[0].iin_last4 in page
    assert "Вопрос о ремонте крыши" in page
    assert count(AuditEvent, AuditEvent.action == "personal_data.viewed") == 1
    register = client.get(f"/staff/institutions/{session.institution_id}/register")
    assert register.status_code == 200 and "Гражданин 2" in register.get_data(as_text=True)
    week = client.get(_agenda_url(session) + "?view=week")
    assert week.status_code == 200
    assert client.get(_agenda_url(session) + "?date=2026-13-45").status_code == 400


def test_the_week_view_keeps_the_day_it_was_opened_from(client, day):
    session, _, head, _ = day
    sign_in(client, head.email, PASSWORD)
    thursday = date(2026, 11, 26)
    week = client.get(f"{_agenda_url(session)}?view=week&date={thursday.isoformat()}")
    page = week.get_data(as_text=True).replace("&amp;", "&")
    assert week.status_code == 200
    assert "view=day&date=2026-11-26" in page  # not Monday the 23rd
    assert "date=2026-11-19&view=week" in page and "date=2026-12-03&view=week" in page


def test_check_in_creates_a_visit_and_can_be_undone_the_same_day(client, day):
    session, bookings, head, _ = day
    sign_in(client, head.email, PASSWORD)
    assert _check_in(client, session, bookings[0], "attended").status_code == 303
    assert _check_in(client, session, bookings[1], "no_show").status_code == 303
    db.session.expire_all()
    assert db.session.get(Booking, bookings[0].id).status == "attended"
    assert count(Visit) == 1
    assert _check_in(client, session, bookings[0], "attended").status_code == 409  # twice
    assert _check_in(client, session, bookings[1], "undo").status_code == 303
    db.session.expire_all()
    assert db.session.get(Booking, bookings[1].id).status == "booked"
    kinds = [e.kind for e in db.session.scalars(select(StatusEvent).order_by(StatusEvent.id))]
    assert kinds == ["attended", "no_show", "check_in_undone"]
    assert count(AuditEvent, AuditEvent.action == "booking.check_in") == 3


def test_check_in_of_another_institutions_booking_is_404(client, day):
    session, bookings, _, _ = day
    stranger = make_user(Role.staff, institution=make_institution())
    sign_in(client, stranger.email, PASSWORD)
    page = client.get(f"/staff/institutions/{stranger.institution_id}/agenda").get_data(
        as_text=True
    )
    response = client.post(
        f"/staff/bookings/{bookings[0].id}/check-in",
        data={"csrf_token": csrf_from(page), "mark": "attended"},
    )
    assert response.status_code == 404
    assert count(Visit) == 0
    assert client.get(_agenda_url(session)).status_code == 404


def test_officers_do_not_run_an_institutions_day(client, day):
    session, *_ = day
    officer = make_user(Role.admin)
    sign_in(client, officer.email, PASSWORD)
    assert client.get(_agenda_url(session)).status_code == 403


def test_future_session_cannot_be_checked_in(client, app):
    session = make_open_session(starts_in_hours=48)
    booking = make_booking(session.slots[0])
    head = make_user(Role.head, institution=session.institution)
    sign_in(client, head.email, PASSWORD)
    assert _check_in(client, session, booking, "attended").status_code == 409
    assert count(Visit) == 0


def _afternoon_reception(app):
    """A reception with two 30-minute slots, each booked, about half a day from now."""
    session = make_open_session(slots=2, slot_minutes=30, starts_in_hours=12)
    bookings = [make_booking(slot, name=f"Гражданка {n}") for n, slot in enumerate(session.slots)]
    head = make_user(Role.head, institution=session.institution)
    return session, bookings, head


def _set_clock(app, session, minutes):
    """The application's clock `minutes` after the session starts (negative: before)."""
    app.config["FROZEN_NOW"] = session.starts_at + timedelta(minutes=minutes)


def _local_time(moment) -> str:
    from zoneinfo import ZoneInfo

    return f"{moment.astimezone(ZoneInfo('Asia/Almaty')):%H:%M}"


def _walk_in(client, session, topic, csrf):
    return client.post(
        f"/staff/sessions/{session.id}/walk-in",
        data={
            "csrf_token": csrf,
            "name": "Ерте Келген",
            "topic_id": str(topic.id),
            "summary": "Жол жөндеу",
            "received_by": "head",
        },
        headers={"Accept-Language": "en"},
    )


def test_nobody_is_checked_in_marked_or_registered_hours_before_the_session(client, app):
    """The reviewer's morning: at 03:35 a 15:00 session's citizens were marked and a walk-in
    registered. Now nothing is stored before the desk opens half an hour before the start, and a
    booking is marked as not come only once its time has begun."""
    session, bookings, head = _afternoon_reception(app)
    topic = make_topic()
    _set_clock(app, session, -(11 * 60 + 25))
    sign_in(client, head.email, PASSWORD)
    en = {"Accept-Language": "en"}
    agenda_url = f"{_agenda_url(session)}?date={session.local_date.isoformat()}"
    agenda = client.get(agenda_url, headers=en).get_data(as_text=True)
    opens = _local_time(session.starts_at - timedelta(minutes=30))
    assert 'value="attended"' not in agenda and 'value="no_show"' not in agenda
    assert "Register a walk-in" not in agenda and f"Check-in from {opens}" in agenda
    assert f"Check-ins and walk-ins open at {opens}" in agenda
    csrf = csrf_from(agenda)

    def mark(booking, value):
        return client.post(
            f"/staff/bookings/{booking.id}/check-in",
            data={"csrf_token": csrf, "mark": value},
            headers=en,
        )

    no_show = mark(bookings[0], "no_show")
    assert no_show.status_code == 409
    text = no_show.get_data(as_text=True)
    assert "can be marked as not come once their time has begun: from " in text
    assert _local_time(session.starts_at) in text and "Гражданка 0" in text  # the agenda again
    attended = mark(bookings[1], "attended")
    assert attended.status_code == 409
    assert f"Citizens are received at this session from {opens}" in attended.get_data(as_text=True)
    walk_in_page = client.get(f"/staff/sessions/{session.id}/walk-in", headers=en)
    assert walk_in_page.status_code == 409
    assert f"from {opens}" in walk_in_page.get_data(as_text=True)
    assert _walk_in(client, session, topic, csrf).status_code == 409
    with pytest.raises(services.NotYet):
        services.register_walk_in(head, session.id, name="Х", topic_id=topic.id, summary="Y")
    db.session.expire_all()
    assert [db.session.get(Booking, b.id).status for b in bookings] == ["booked", "booked"]
    assert (count(Visit), count(StatusEvent)) == (0, 0)
    assert count(AuditEvent, AuditEvent.action == "booking.check_in") == 0

    # Half an hour before the start a citizen who came early is received, whatever her time,
    # and walk-ins are registered; the first slot's citizen is not "not come" before 15:00.
    _set_clock(app, session, -30)
    agenda = client.get(agenda_url, headers=en).get_data(as_text=True)
    assert 'value="attended"' in agenda and 'value="no_show"' not in agenda
    assert "Register a walk-in" in agenda
    assert mark(bookings[1], "attended").status_code == 303
    assert mark(bookings[0], "no_show").status_code == 409
    assert _walk_in(client, session, topic, csrf).status_code == 303
    _set_clock(app, session, 0)
    assert 'value="no_show"' in client.get(agenda_url).get_data(as_text=True)
    assert mark(bookings[0], "no_show").status_code == 303
    db.session.expire_all()
    assert [db.session.get(Booking, b.id).status for b in bookings] == ["no_show", "attended"]
    assert count(Visit) == 2


def test_a_session_with_a_citizen_received_cannot_be_cancelled(client, app):
    from receptions.notify.models import Notification
    from receptions.schedules import services as schedules

    session, bookings, head = _afternoon_reception(app)
    _set_clock(app, session, -20)
    sign_in(client, head.email, PASSWORD)
    assert _check_in(client, session, bookings[1], "attended").status_code == 303
    cancel_url = f"/staff/sessions/{session.id}/cancel"
    page = client.get(cancel_url, headers={"Accept-Language": "ru"})
    text = page.get_data(as_text=True)
    assert page.status_code == 409 and 'name="reason"' not in text
    assert "поэтому его нельзя отменить" in text and "будут уведомлены" not in text
    csrf = csrf_from(client.get(_agenda_url(session)).get_data(as_text=True))
    refused = client.post(
        cancel_url,
        data={"csrf_token": csrf, "reason": "Директор в командировке"},
        headers={"Accept-Language": "en"},
    )
    assert refused.status_code == 409
    assert "so it cannot be cancelled" in refused.get_data(as_text=True)
    with pytest.raises(services.CitizensReceived):
        schedules.cancel_session(head, session.id, "Директор в командировке")
    db.session.expire_all()
    assert db.session.get(ScheduledSession, session.id).status == "planned"
    assert [db.session.get(Booking, b.id).status for b in bookings] == ["booked", "attended"]
    assert count(Notification) == 0

    # The check-in was a mistake: once undone, the session can be cancelled and both told.
    assert _check_in(client, session, bookings[1], "undo").status_code == 303
    assert submit(client, cancel_url, {"reason": "Директор в командировке"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(ScheduledSession, session.id).status == "cancelled"
    assert [db.session.get(Booking, b.id).status for b in bookings] == [
        "cancelled_by_institution",
        "cancelled_by_institution",
    ]


def test_a_walk_in_registered_before_the_start_keeps_the_session_from_being_cancelled(client, app):
    from receptions.schedules import services as schedules

    session, _bookings, head = _afternoon_reception(app)
    _set_clock(app, session, -10)
    topic = make_topic()
    services.register_walk_in(head, session.id, name="Ерте Келген", topic_id=topic.id, summary="Y")
    with pytest.raises(services.CitizensReceived):
        schedules.cancel_session(head, session.id, "Карантин")
    db.session.expire_all()
    assert db.session.get(ScheduledSession, session.id).status == "planned"
    assert count(Visit) == 1


def _visit_of(booking):
    return db.session.scalars(select(Visit).where(Visit.booking_id == booking.id)).one()


def _questions_at_visit(client, session, booking, topic, *summaries):
    """Check the booking in and raise these questions at its visit, as staff do on the page."""
    _check_in(client, session, booking, "attended")
    visit = _visit_of(booking)
    for summary in summaries:
        response = submit(
            client, f"/staff/visits/{visit.id}", {"topic_id": str(topic.id), "summary": summary}
        )
        assert response.status_code == 303
    questions = db.session.scalars(
        select(Question).where(Question.visit_id == visit.id).order_by(Question.id)
    ).all()
    return visit, questions


def _outcome(client, question, *, language="en", **data):
    page = client.get(f"/staff/visits/{question.visit_id}").get_data(as_text=True)
    prefix = f"q{question.id}-"
    payload = {"csrf_token": csrf_from(page), **{prefix + k: v for k, v in data.items()}}
    payload.setdefault(prefix + "version", str(question.version))
    return client.post(
        f"/staff/questions/{question.id}/outcome",
        data=payload,
        headers={"Accept-Language": language},
    )


def test_questions_get_each_outcome_and_the_citizen_sees_it(client, day):
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _check_in(client, session, bookings[0], "attended")
    visit = _visit_of(bookings[0])
    for summary in ("Протекает крыша", "Нет горячей воды", "Вопрос о тарифах"):
        response = submit(
            client, f"/staff/visits/{visit.id}", {"topic_id": str(topic.id), "summary": summary}
        )
        assert response.status_code == 303
    q1, q2, q3 = db.session.scalars(select(Question).order_by(Question.id)).all()
    assert _outcome(client, q1, outcome="resolved", note="Крышу починили").status_code == 303
    assert _outcome(client, q2, outcome="explained").status_code == 303
    pending = _outcome(
        client,
        q3,
        outcome="pending",
        responsible="Завхоз Иванов",
        due_date=(almaty_today() + timedelta(days=10)).isoformat(),
    )
    assert pending.status_code == 303
    db.session.expire_all()
    assert [q.outcome for q in db.session.scalars(select(Question).order_by(Question.id))] == [
        "resolved",
        "explained",
        "pending",
    ]
    status = client.get(f"/status/{bookings[0].reference}", headers={"Accept-Language": "en"})
    text = status.get_data(as_text=True)
    assert "Resolved positively" in text and "Being resolved" in text and "due by" in text
    assert "Гражданин" not in text and "крыша" not in text.lower()
    assert count(QuestionEvent) == 6  # three raised, three outcomes


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"outcome": "pending", "responsible": ""}, {"responsible"}),
        (
            {"outcome": "pending", "responsible": "", "due_date": "2020-01-01"},
            {"responsible", "due_date"},
        ),
        ({"outcome": "pending", "responsible": "Иванов", "due_date": "2020-01-01"}, {"due_date"}),
        ({"outcome": "maybe"}, {"outcome"}),
        ({}, {"outcome"}),
    ],
)
def test_a_mistake_in_an_outcome_shows_the_visit_page_again_with_each_error_at_its_field(
    client, day, data, errors
):
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _visit, (question,) = _questions_at_visit(client, session, bookings[0], topic, "Вопрос")
    response = _outcome(client, question, note="Позвонить в акимат", **data)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Please correct the following:" in page and "<h1>Гражданин 0</h1>" in page
    assert "Позвонить в акимат</textarea>" in page  # what was typed is kept
    prefix = f"q{question.id}-"
    for name in errors:
        assert f'id="{prefix}{name}-error"' in page
        assert f'href="#{prefix}{name}"' in page
    for name in {"responsible", "due_date"} - errors:
        assert f'id="{prefix}{name}-error"' not in page
    if "responsible" in errors:
        assert "Name the person responsible for a pending question." in page
        field = re.search(rf'<input[^>]*id="{prefix}responsible"[^>]*>', page).group(0)
        assert 'aria-invalid="true"' in field and f"{prefix}responsible-error" in field
    if "due_date" in errors:
        assert "The due date cannot be in the past." in page
        assert 'value="2020-01-01"' in page
    if "outcome" in errors:
        assert f'<fieldset id="{prefix}outcome"' in page
    db.session.expire_all()
    assert db.session.get(Question, question.id).outcome is None
    assert count(QuestionEvent) == 1


def test_a_due_date_in_the_past_or_beyond_a_year_is_refused_at_its_field(client, day):
    """From today to the same day next year; the page comes back with what was typed."""
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _visit, (first, second) = _questions_at_visit(
        client, session, bookings[0], topic, "Первый", "Второй"
    )
    today = almaty_today()
    last = services.years_after(today, 1)
    prefix = f"q{first.id}-"
    for due, language, message in [
        (today - timedelta(days=1), "en", "The due date cannot be in the past."),
        (
            last + timedelta(days=1),
            "en",
            f"The due date can be at most a year ahead: {last.day} {last:%B %Y} or earlier.",
        ),
        (services.years_after(today, 2), "ru", "Срок — не более года вперёд"),
        (services.years_after(today, 2), "kk", "Мерзім бір жылдан аспауы тиіс"),
    ]:
        response = _outcome(
            client,
            first,
            language=language,
            outcome="pending",
            responsible="Завхоз Иванов",
            due_date=due.isoformat(),
        )
        page = response.get_data(as_text=True)
        assert response.status_code == 422
        assert message in page
        assert f'id="{prefix}due_date-error"' in page and f'href="#{prefix}due_date"' in page
        assert f'value="{due.isoformat()}"' in page and 'value="Завхоз Иванов"' in page
    db.session.expire_all()
    assert db.session.get(Question, first.id).outcome is None
    assert count(QuestionEvent, QuestionEvent.kind != "raised") == 0

    for question, due in ((first, today), (second, last)):
        response = _outcome(
            client, question, outcome="pending", responsible="Б", due_date=due.isoformat()
        )
        assert response.status_code == 303
        db.session.expire_all()
        assert db.session.get(Question, question.id).due_date == due


def test_the_latest_due_date_of_a_29_february_is_28_february_next_year(app):
    from datetime import date

    leap = date(2028, 2, 29)
    assert services.years_after(leap, 1) == date(2029, 2, 28)
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert services.due_date_problem(date(2029, 2, 28), leap) is None
        assert services.due_date_problem(date(2029, 3, 1), leap) == (
            "The due date can be at most a year ahead: 28 February 2029 or earlier."
        )


def test_a_mistake_in_closing_from_the_follow_up_list_shows_that_list_again(client, day):
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _visit, (question,) = _questions_at_visit(client, session, bookings[0], topic, "Вопрос")
    due = (almaty_today() + timedelta(days=5)).isoformat()
    assert (
        _outcome(client, question, outcome="pending", responsible="А", due_date=due).status_code
        == 303
    )
    db.session.expire_all()
    question = db.session.get(Question, question.id)
    url = f"/staff/institutions/{session.institution_id}/follow-up"
    prefix = f"q{question.id}-"
    data = {prefix + "outcome": "resolved", prefix + "version": str(question.version)}
    sent = submit(
        client,
        f"/staff/questions/{question.id}/outcome",
        {**data, "back": "follow-up"},
        form_url=url,
        headers={"Accept-Language": "en"},
    )
    page = sent.get_data(as_text=True)
    assert sent.status_code == 422
    assert "Pending questions" in page and 'name="back" value="follow-up"' in page
    assert f'id="{prefix}note-error"' in page and f'href="#{prefix}note"' in page
    chosen = re.search(rf'<input[^>]*id="{prefix}outcome-0"[^>]*>', page).group(0)
    assert "checked" in chosen  # the choice made is kept
    # `back` names a page, never an address: anything else is the visit page.
    sent = submit(
        client,
        f"/staff/questions/{question.id}/outcome",
        {**data, "back": "https://example.com/"},
        form_url=url,
        headers={"Accept-Language": "en"},
    )
    assert sent.status_code == 422 and "<h1>Гражданин 0</h1>" in sent.get_data(as_text=True)
    assert "example.com" not in sent.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Question, question.id).closed_at is None


def test_stale_outcome_form_is_a_409(client, day):
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _visit, (question,) = _questions_at_visit(client, session, bookings[0], topic, "Вопрос")
    response = _outcome(client, question, outcome="explained", version="99")
    assert response.status_code == 409


def test_a_version_in_other_digits_is_no_version_and_the_outcome_is_recorded(client, day):
    """A version of "²" passes str.isdigit() but not int(): the form has no version."""
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _visit, (question,) = _questions_at_visit(client, session, bookings[0], topic, "Вопрос")
    assert _outcome(client, question, outcome="explained", version="²").status_code == 303
    db.session.expire_all()
    assert db.session.get(Question, question.id).outcome == "explained"


def test_outcome_on_a_cancelled_booking_is_refused(client, day):
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _check_in(client, session, bookings[0], "attended")
    visit = _visit_of(bookings[0])
    submit(client, f"/staff/visits/{visit.id}", {"topic_id": str(topic.id), "summary": "Вопрос"})
    booking = db.session.get(Booking, bookings[0].id)
    booking.status = "cancelled_by_institution"
    db.session.commit()
    question = db.session.scalars(select(Question)).one()
    assert _outcome(client, question, outcome="resolved").status_code == 409


def test_walk_in_is_registered_with_its_question(client, day):
    session, _, head, topic = day
    sign_in(client, head.email, PASSWORD)
    response = submit(
        client,
        f"/staff/sessions/{session.id}/walk-in",
        {
            "name": "Прохожий Гражданин",
            "topic_id": str(topic.id),
            "summary": "Про детскую площадку",
            "iin": "",
            "phone": "",
            "received_by": "deputy",
            "received_by_name": "Зам. Петров",
        },
    )
    assert response.status_code == 303
    visit = db.session.scalars(select(Visit)).one()
    assert visit.booking_id is None and visit.received_by == "deputy" and len(visit.questions) == 1
    bad = submit(
        client,
        f"/staff/sessions/{session.id}/walk-in",
        {"name": "", "topic_id": str(topic.id), "summary": "", "iin": "123"},
    )
    assert bad.status_code == 422
    assert count(Visit) == 1


def test_follow_up_lists_overdue_first_and_closing_records_a_note(client, day):
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _visit, (first, second) = _questions_at_visit(
        client, session, bookings[0], topic, "Первый", "Второй"
    )
    _outcome(
        client,
        first,
        outcome="pending",
        responsible="А",
        due_date=(almaty_today() + timedelta(days=20)).isoformat(),
    )
    _outcome(
        client, second, outcome="pending", responsible="Б", due_date=almaty_today().isoformat()
    )
    db.session.get(Question, second.id).due_date = almaty_today() - timedelta(days=2)  # overdue now
    db.session.commit()
    page = client.get(
        f"/staff/institutions/{session.institution_id}/follow-up", headers={"Accept-Language": "en"}
    ).get_data(as_text=True)
    assert page.index("Второй") < page.index("Первый") and "Overdue" in page
    db.session.expire_all()
    second = db.session.get(Question, second.id)
    response = _outcome(client, second, outcome="resolved", note="Сделано")
    assert response.status_code == 303
    db.session.expire_all()
    closed = db.session.get(Question, second.id)
    assert closed.closed_at is not None and closed.resolution_note == "Сделано"
    assert _outcome(client, closed, outcome="explained").status_code == 409  # closed already


def _close(client, session, **data):
    url = f"/staff/institutions/{session.institution_id}/close-out"
    return submit(
        client,
        f"/staff/sessions/{session.id}/close",
        data,
        form_url=url,
        headers={"Accept-Language": "en"},
    )


CONFIRMATIONS = {
    "unmarked": "mark_no_shows",
    "without_outcome": "confirm_without_outcome",
    "without_question": "confirm_no_question",
}


def _confirming(**listed):
    """The close-out form's confirmations ticked for these counts, e.g. unmarked=2."""
    return {
        **{CONFIRMATIONS[name]: "y" for name in listed},
        **{name: str(n) for name, n in listed.items()},
    }


def _checkbox_refused(page, box):
    """The confirmation `box` carries its error, tied to it, and the summary links to it."""
    assert f'href="#{box}"' in page and f'id="{box}-error"' in page
    checkbox = re.search(rf'<input[^>]*id="{box}"[^>]*>', page).group(0)
    assert 'aria-invalid="true"' in checkbox and f"{box}-error" in checkbox
    return checkbox


def test_a_mistake_in_the_received_by_form_shows_the_visit_page_again(client, day):
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    visit, _questions = _questions_at_visit(client, session, bookings[0], topic, "Вопрос")
    response = submit(
        client,
        f"/staff/visits/{visit.id}/received-by",
        {"received_by": "deputy", "received_by_name": "  "},
        form_url=f"/staff/visits/{visit.id}",
        headers={"Accept-Language": "en"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "Please correct the following:" in page
    assert 'id="received_by_name-error"' in page and 'href="#received_by_name"' in page
    assert re.search(
        r'<option[^>]*selected[^>]*value="deputy"|<option[^>]*value="deputy"[^>]*selected', page
    )


def test_a_mistake_in_closing_a_session_shows_the_close_out_page_again(client, app):
    session = make_open_session(slots=1, starts_in_hours=-3)
    head = make_user(Role.head, institution=session.institution)
    sign_in(client, head.email, PASSWORD)
    nothing = _close(client, session, reason="Свет отключили")
    page = nothing.get_data(as_text=True)
    assert nothing.status_code == 422 and "Please correct the following:" in page
    assert (
        f'id="close-{session.id}-held-error"' in page and f'href="#close-{session.id}-held"' in page
    )
    assert 'value="Свет отключили"' in page  # what was typed is kept
    no_reason = _close(client, session, held="no", reason=" ")
    page = no_reason.get_data(as_text=True)
    assert no_reason.status_code == 422
    assert "Give the reason why the session did not take place." in page
    assert f'id="close-{session.id}-reason-error"' in page
    assert re.search(rf'id="held-no-{session.id}"[^>]*checked', page)
    db.session.expire_all()
    assert db.session.get(ScheduledSession, session.id).status == "planned"


def test_session_close_out_is_exact_and_happens_once(client, app):
    session = make_open_session(slots=2, starts_in_hours=-3)
    bookings = [make_booking(slot) for slot in session.slots]
    head = make_user(Role.head, institution=session.institution)
    sign_in(client, head.email, PASSWORD)
    _check_in(client, session, bookings[0], "attended")
    _check_in(client, session, bookings[1], "no_show")
    url = f"/staff/institutions/{session.institution_id}/close-out"
    assert str(session.id) in client.get(url).get_data(as_text=True)
    assert _close(client, session, held="yes", **_confirming(without_question=1)).status_code == 303
    db.session.expire_all()
    closed = db.session.get(ScheduledSession, session.id)
    assert closed.status == "held" and closed.received_count == 1
    # Closed twice (from a page left open): the close-out page again, saying why.
    again = _close(client, session, held="yes", **_confirming(without_question=1))
    page = again.get_data(as_text=True)
    assert again.status_code == 409 and "This session is already closed." in page
    assert "<h1>Sessions to close" in page and "data-error-summary" in page


def test_closing_as_not_held_a_session_where_citizens_were_received_keeps_what_was_typed(
    client, app
):
    session = make_open_session(slots=1, starts_in_hours=-3)
    booking = make_booking(session.slots[0])
    head = make_user(Role.head, institution=session.institution)
    sign_in(client, head.email, PASSWORD)
    _check_in(client, session, booking, "attended")
    refused = _close(client, session, held="no", reason="Свет отключили")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "Please correct the following:" in page
    assert "Citizens were received at this session: close it as held." in page
    assert (
        f'id="close-{session.id}-held-error"' in page and f'href="#close-{session.id}-held"' in page
    )
    assert re.search(rf'id="held-no-{session.id}"[^>]*checked[^>]*aria-invalid="true"', page)
    assert 'value="Свет отключили"' in page  # the reason is not lost
    db.session.expire_all()
    assert db.session.get(ScheduledSession, session.id).status == "planned"


def test_the_head_reopens_a_session_closed_by_mistake_with_a_reason(client, app):
    session = make_open_session(slots=2, starts_in_hours=-3)
    bookings = [make_booking(slot) for slot in session.slots]
    head = make_user(Role.head, institution=session.institution)
    sign_in(client, head.email, PASSWORD)
    _check_in(client, session, bookings[0], "attended")
    _check_in(client, session, bookings[1], "attended")
    assert _close(client, session, held="yes", **_confirming(without_question=2)).status_code == 303
    agenda = client.get(
        f"{_agenda_url(session)}?date={session.local_date.isoformat()}",
        headers={"Accept-Language": "en"},
    ).get_data(as_text=True)
    assert "Reopen the session" in agenda
    url = f"/staff/sessions/{session.id}/reopen"
    agenda_url = f"{_agenda_url(session)}?date={session.local_date.isoformat()}"

    def reopen(reason):
        return submit(
            client, url, {"reason": reason}, form_url=agenda_url, headers={"Accept-Language": "en"}
        )

    refused = reopen("  ")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "Please correct the following:" in page
    assert (
        f'id="reopen-{session.id}-reason-error"' in page and '<details class="reopen" open>' in page
    )
    db.session.expire_all()
    assert db.session.get(ScheduledSession, session.id).status == "held"

    assert reopen("Бір азамат тіркелмей қалды").status_code == 303
    db.session.expire_all()
    reopened = db.session.get(ScheduledSession, session.id)
    assert reopened.status == "planned" and reopened.closed_at is None
    assert reopened.received_count is None
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "session.reopened")
    ).one()
    assert event.user_id == head.id and event.details["previous"] == "held"
    assert event.details["reason"] == "Бір азамат тіркелмей қалды"
    assert count(Visit, Visit.session_id == session.id) == 2  # nothing received is lost
    assert reopen("again").status_code == 409  # not closed any more
    # Closed again, it counts its citizens afresh.
    assert _close(client, session, held="yes", **_confirming(without_question=2)).status_code == 303
    db.session.expire_all()
    assert db.session.get(ScheduledSession, session.id).received_count == 2


def test_only_the_head_reopens_and_never_a_session_cancelled_in_advance(client, app):
    session = make_open_session(slots=1, starts_in_hours=-3)
    staff = make_user(Role.staff, institution=session.institution)
    sign_in(client, staff.email, PASSWORD)
    assert _close(client, session, held="no", reason="Су құбыры жарылды").status_code == 303
    url = f"/staff/sessions/{session.id}/reopen"
    agenda_url = f"{_agenda_url(session)}?date={session.local_date.isoformat()}"
    assert submit(client, url, {"reason": "қате"}, form_url=agenda_url).status_code == 403
    cancelled = make_open_session(session.institution, slots=1, starts_in_hours=48)
    head = make_user(Role.head, institution=session.institution)
    with app.test_request_context():
        from receptions.schedules import services as schedules

        schedules.cancel_session(head, cancelled.id, "Карантин")
    db.session.expire_all()
    with pytest.raises(DomainError) as refused:
        services.reopen_session(head, cancelled.id, "қате")
    assert refused.value.status_code == 409
    assert db.session.get(ScheduledSession, cancelled.id).status == "cancelled"


def test_closing_as_not_held_cancels_the_bookings_and_tells_the_citizens(client, app):
    from zoneinfo import ZoneInfo

    from receptions.notify.models import Notification
    from receptions.reports.scope import Scope
    from receptions.reports.services import rollup

    session = make_open_session(slots=3, starts_in_hours=-3)
    booked = [
        make_booking(session.slots[0], email="citizen@example.kz"),
        make_booking(session.slots[1]),
    ]
    withdrawn = make_booking(session.slots[2], status="cancelled_by_citizen")
    head = make_user(Role.head, institution=session.institution)
    sign_in(client, head.email, PASSWORD)
    assert _close(client, session, held="no", reason="Су құбыры жарылды").status_code == 303
    db.session.expire_all()
    assert [db.session.get(Booking, b.id).status for b in booked] == [
        "cancelled_by_institution"
    ] * 2
    assert db.session.get(Booking, withdrawn.id).status == "cancelled_by_citizen"
    assert [s.booked for s in db.session.get(ScheduledSession, session.id).slots] == [0, 0, 0]
    events = db.session.scalars(select(StatusEvent).order_by(StatusEvent.booking_id)).all()
    assert [(e.booking_id, e.kind) for e in events] == [
        (b.id, "cancelled_by_institution") for b in booked
    ]
    messages = db.session.scalars(
        select(Notification).where(Notification.template == "session_cancelled")
    ).all()
    assert sorted((m.booking_id, m.channel) for m in messages) == [
        (booked[0].id, "email"),
        (booked[0].id, "sms"),
        (booked[1].id, "sms"),
    ]
    assert all(m.payload["reason"] == "Су құбыры жарылды" for m in messages)
    month = session.starts_at.astimezone(ZoneInfo("Asia/Almaty")).strftime("%Y-%m")
    figures = rollup(Scope("institution", session.institution_id), month, live=True).total
    assert figures["citizens_booked"] == 0 and figures["sessions_cancelled"] == 1


def test_a_session_closed_as_not_held_is_on_the_agenda_and_the_head_reopens_it_there(client, app):
    session = make_open_session(slots=1, starts_in_hours=-3)
    # Another of the same day, cancelled in advance as schedules.cancel_session leaves it.
    in_advance = make_open_session(session.institution, slots=1, starts_in_hours=-3)
    in_advance.status, in_advance.cancel_reason = "cancelled", "Карантин"
    db.session.commit()
    head = make_user(Role.head, institution=session.institution)
    sign_in(client, head.email, PASSWORD)
    assert _close(client, session, held="no", reason="Су құбыры жарылды").status_code == 303
    agenda_url = f"{_agenda_url(session)}?date={session.local_date.isoformat()}"
    page = client.get(agenda_url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert f'id="s{session.id}"' in page and f'id="s{in_advance.id}"' not in page
    assert "Did not take place" in page and "Су құбыры жарылды" in page
    assert f'action="/staff/sessions/{session.id}/reopen"' in page
    register = client.get(
        f"/staff/institutions/{session.institution_id}/register?date={session.local_date}",
        headers={"Accept-Language": "en"},
    ).get_data(as_text=True)
    assert "<strong>Did not take place</strong>. Reason: Су құбыры жарылды" in register
    assert register.count('<section class="register-page">') == 1
    reopened = submit(
        client, f"/staff/sessions/{session.id}/reopen", {"reason": "Өтті"}, form_url=agenda_url
    )
    assert reopened.status_code == 303
    db.session.expire_all()
    assert db.session.get(ScheduledSession, session.id).status == "planned"
    assert db.session.get(ScheduledSession, in_advance.id).status == "cancelled"


def test_close_out_refuses_unmarked_bookings_and_lists_them(client, app):
    session = make_open_session(slots=3, starts_in_hours=-3)
    bookings = [
        make_booking(slot, name=name)
        for slot, name in zip(
            session.slots, ("Келді Бірінші", "Белгісіз Екінші", "Белгісіз Үшінші"), strict=True
        )
    ]
    head = make_user(Role.head, institution=session.institution)
    sign_in(client, head.email, PASSWORD)
    _check_in(client, session, bookings[0], "attended")
    page = client.get(
        f"/staff/institutions/{session.institution_id}/close-out",
        headers={"Accept-Language": "en"},
    ).get_data(as_text=True)
    assert "Белгісіз Екінші" in page and "Белгісіз Үшінші" in page
    assert "remaining bookings did not come (2) and mark them as no-show" in page

    # Not confirmed: the close-out page again, the message at the confirmation.
    refused = _close(client, session, held="yes", reason="Жарық болды")
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "Please correct the following:" in text
    box = f"close-{session.id}-mark_no_shows"
    checkbox = _checkbox_refused(text, box)
    assert "checked" not in checkbox
    error = re.search(rf'id="{box}-error">([^<]*)<', text).group(1)
    assert "Белгісіз Екінші" in error and "Белгісіз Үшінші" in error and "Келді" not in error
    assert re.search(rf'id="held-yes-{session.id}"[^>]*checked', text)
    assert 'value="Жарық болды"' in text
    db.session.expire_all()
    assert db.session.get(ScheduledSession, session.id).status == "planned"
    assert [db.session.get(Booking, b.id).status for b in bookings[1:]] == ["booked", "booked"]

    # A confirmation for a different number of bookings than are left is stale.
    stale = _close(client, session, held="yes", **_confirming(unmarked=1))
    assert stale.status_code == 409 and f'id="{box}-error"' in stale.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(ScheduledSession, session.id).status == "planned"

    done = _close(client, session, held="yes", **_confirming(without_question=1, unmarked=2))
    assert done.status_code == 303
    db.session.expire_all()
    closed = db.session.get(ScheduledSession, session.id)
    assert closed.status == "held" and closed.received_count == 1
    assert [db.session.get(Booking, b.id).status for b in bookings[1:]] == ["no_show", "no_show"]
    marked = db.session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "booking.check_in",
            AuditEvent.record_id.in_([b.id for b in bookings[1:]]),
        )
    ).all()
    assert len(marked) == 2 and {e.user_id for e in marked} == {head.id}
    assert all(e.details == {"mark": "no_show", "close_out": True} for e in marked)
    closing = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "session.closed")
    ).one()
    assert closing.user_id == head.id and closing.details["marked_no_show"] == 2


def test_a_booking_marked_on_the_agenda_while_close_out_was_open_shows_the_page_read_again(
    client, app
):
    """The reviewer's case (c): a citizen checked in from the agenda while the close-out page,
    confirming two no-shows, was open. The page is read again: the one left is listed, the
    confirmation asked anew, and the choice and the reason typed are kept."""
    session = make_open_session(slots=2, starts_in_hours=-3)
    bookings = [make_booking(slot, name=f"Азамат {n}") for n, slot in enumerate(session.slots)]
    head = make_user(Role.head, institution=session.institution)
    sign_in(client, head.email, PASSWORD)
    url = f"/staff/institutions/{session.institution_id}/close-out"
    shown = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "did not come (2)" in shown
    _check_in(client, session, bookings[0], "attended")  # from the agenda, meanwhile
    response = client.post(
        f"/staff/sessions/{session.id}/close",
        data={
            "csrf_token": csrf_from(shown),
            "held": "yes",
            "reason": "Бәрі келді",
            "mark_no_shows": "y",
            "unmarked": "2",
        },
        headers={"Accept-Language": "en"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and "Please correct the following:" in page
    box = f"close-{session.id}-mark_no_shows"
    error = re.search(rf'id="{box}-error">([^<]*)<', page).group(1)
    assert "changed while the page was open" in error and "Not marked now: 1." in error
    checkbox = _checkbox_refused(page, box)
    assert "checked" not in checkbox
    assert "did not come (1)" in page and 'name="unmarked" value="1"' in page
    listed = page[page.index("Not marked as attended or no-show:") :]
    assert "Азамат 1" in listed and "Азамат 0" not in listed.split("</ul>")[0]
    assert re.search(rf'id="held-yes-{session.id}"[^>]*checked', page)
    assert 'value="Бәрі келді"' in page
    # The citizen checked in meanwhile is listed too, with no question recorded yet.
    assert re.search(
        r"Received, with no question recorded:</p>\s*<ul[^>]*><li><a[^>]*>Азамат 0<", page
    )
    db.session.expire_all()
    assert db.session.get(ScheduledSession, session.id).status == "planned"
    assert db.session.get(Booking, bookings[1].id).status == "booked"
    # Confirmed anew for what is listed now, it closes.
    done = _close(client, session, held="yes", **_confirming(without_question=1, unmarked=1))
    assert done.status_code == 303
    db.session.expire_all()
    assert db.session.get(ScheduledSession, session.id).received_count == 1
    assert db.session.get(Booking, bookings[1].id).status == "no_show"


def test_a_confirmation_left_with_nothing_to_cover_does_not_hold_the_close_out_back(client, app):
    session = make_open_session(slots=1, starts_in_hours=-3)
    booking = make_booking(session.slots[0])
    head = make_user(Role.head, institution=session.institution)
    sign_in(client, head.email, PASSWORD)
    url = f"/staff/institutions/{session.institution_id}/close-out"
    shown = client.get(url).get_data(as_text=True)
    _check_in(client, session, booking, "no_show")  # marked on the agenda meanwhile
    response = client.post(
        f"/staff/sessions/{session.id}/close",
        data={"csrf_token": csrf_from(shown), "held": "yes", "mark_no_shows": "y", "unmarked": "1"},
    )
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).status == "no_show"
    assert db.session.get(ScheduledSession, session.id).status == "held"


def test_close_out_asks_for_the_outcomes_and_questions_left_unrecorded(client, app):
    """The reviewer's case: the head reopens a past session and registers a walk-in with a
    question and no outcome; a booked citizen checked in has no question at all. Close-out lists
    both and asks either to record them or to confirm; the question then waits on the follow-up
    list under "No outcome recorded"."""
    session = make_open_session(slots=1, starts_in_hours=-3)
    booking = make_booking(session.slots[0], name="Сұрақсыз Азамат")
    topic = make_topic(name_en="Roads")
    head = make_user(Role.head, institution=session.institution)
    sign_in(client, head.email, PASSWORD)
    _check_in(client, session, booking, "attended")
    assert (
        _close(
            client, session, **{"held": "yes", "confirm_no_question": "y", "without_question": "1"}
        ).status_code
        == 303
    )
    agenda_url = f"{_agenda_url(session)}?date={session.local_date.isoformat()}"
    reopened = submit(
        client,
        f"/staff/sessions/{session.id}/reopen",
        {"reason": "Бір азамат"},
        form_url=agenda_url,
    )
    assert reopened.status_code == 303
    walk_in = submit(
        client,
        f"/staff/sessions/{session.id}/walk-in",
        {"name": "Жаяу Келген", "topic_id": str(topic.id), "summary": "Жол", "received_by": "head"},
    )
    assert walk_in.status_code == 303
    question = db.session.scalars(select(Question)).one()

    url = f"/staff/institutions/{session.institution_id}/close-out"
    page = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert re.search(
        r"Questions without an outcome:</p>\s*<ul[^>]*><li><a[^>]*>Жаяу Келген</a> — Roads", page
    )
    assert re.search(
        r"Received, with no question recorded:</p>\s*<ul[^>]*><li><a[^>]*>Сұрақсыз Азамат<", page
    )
    assert "Close with the questions without an outcome (1)" in page
    assert "Confirm that these citizens raised no question (1)" in page

    refused = _close(client, session, held="yes")
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "Please correct the following:" in text
    for box in (
        f"close-{session.id}-confirm_without_outcome",
        f"close-{session.id}-confirm_no_question",
    ):
        _checkbox_refused(text, box)
    assert "Without an outcome: Жаяу Келген (Roads)." in text
    assert "or confirm that they raised none: Сұрақсыз Азамат." in text
    db.session.expire_all()
    assert db.session.get(ScheduledSession, session.id).status == "planned"

    confirmed = _close(
        client, session, held="yes", **_confirming(without_outcome=1, without_question=1)
    )
    assert confirmed.status_code == 303
    db.session.expire_all()
    closed = db.session.get(ScheduledSession, session.id)
    assert closed.status == "held" and closed.received_count == 2
    closing = db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == "session.closed")
        .order_by(AuditEvent.id.desc())
    ).first()
    assert closing.user_id == head.id
    assert closing.details["without_outcome"] == 1 and closing.details["without_question"] == 1

    # The follow-up list shows the question in a section of its own, and records its outcome.
    follow_up_url = f"/staff/institutions/{session.institution_id}/follow-up"
    page = client.get(follow_up_url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    section = page[
        page.index("<h2>No outcome recorded</h2>") : page.index("<h2>Being resolved</h2>")
    ]
    assert "Жаяу Келген" in section and "Жол" in section
    assert re.search(rf"<input[^>]*name=\"q{question.id}-outcome\"[^>]*value=\"pending\"", section)
    prefix = f"q{question.id}-"
    recorded = submit(
        client,
        f"/staff/questions/{question.id}/outcome",
        {
            prefix + "outcome": "explained",
            prefix + "version": str(question.version),
            "back": "follow-up",
        },
        form_url=follow_up_url,
    )
    assert recorded.status_code == 303 and recorded.location.endswith(follow_up_url)
    db.session.expire_all()
    assert db.session.get(Question, question.id).outcome == "explained"
    page = client.get(follow_up_url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "No outcome recorded" not in page


def _held_and_month_over(session):
    """Close the session as held (one citizen received) and move the app's clock a day past the
    end of its month, when the month can be signed: its page's address and the clock's time."""
    from zoneinfo import ZoneInfo

    from flask import current_app

    closed = db.session.get(ScheduledSession, session.id)
    closed.status, closed.received_count = "held", 1
    db.session.commit()
    month = session.starts_at.astimezone(ZoneInfo("Asia/Almaty")).strftime("%Y-%m")
    _start, end = services.month_bounds(month, ZoneInfo("Asia/Almaty"))
    current_app.config["FROZEN_NOW"] = end + timedelta(days=1)
    return f"/staff/institutions/{session.institution_id}/months/{month}", end + timedelta(days=1)


def test_a_month_with_questions_without_an_outcome_is_not_signed_off(client, day):

    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _visit, (first, second) = _questions_at_visit(
        client, session, bookings[0], topic, "Первый", "Второй"
    )
    _outcome(client, first, outcome="explained")
    url, app_clock = _held_and_month_over(session)
    page = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Questions of the month without an outcome: 1." in page
    assert f'href="/staff/institutions/{session.institution_id}/follow-up"' in page
    refused = submit(client, url, {"confirm": "y"}, headers={"Accept-Language": "en"})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "Please correct the following:" in text
    assert 'id="confirm-error"' in text and 'href="#confirm"' in text
    error = re.search(r'id="confirm-error">([^<]*)<', text).group(1)
    assert "without an outcome: 1." in error
    assert count(MonthSignoff) == 0
    db.session.expire_all()
    _outcome(
        client,
        db.session.get(Question, second.id),
        outcome="pending",
        responsible="Завхоз",
        due_date=(app_clock.date() + timedelta(days=5)).isoformat(),
    )
    assert submit(client, url, {"confirm": "y"}).status_code == 303
    assert count(MonthSignoff) == 1


def test_changes_since_sign_off_include_the_questions_without_an_outcome(client, day):

    from receptions.reports.services import changes_since_signoff

    signed = {"questions": 2, "resolved": 1, "explained": 0, "pending": 0}
    now = {"questions": 2, "resolved": 2, "explained": 0, "pending": 0}
    assert changes_since_signoff(signed, now) == {"resolved": (1, 2), "without_outcome": (1, 0)}

    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _visit, (first,) = _questions_at_visit(client, session, bookings[0], topic, "Первый")
    _outcome(client, first, outcome="explained")
    url, _clock = _held_and_month_over(session)
    assert submit(client, url, {"confirm": "y"}).status_code == 303
    # A question recorded later (the session reopened) has no outcome yet.
    visit = _visit_of(bookings[0])
    db.session.add(
        Question(
            visit_id=visit.id,
            institution_id=visit.institution_id,
            topic_id=topic.id,
            summary="Кейін",
        )
    )
    db.session.commit()
    page = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    changes = page[page.index("Changes since version 1 was signed") :]
    assert "Questions: 1 signed, 2 now" in changes
    assert "No outcome recorded: 0 signed, 1 now" in changes


def test_a_closed_session_refuses_check_ins_walk_ins_and_new_questions(client, day):
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    visit, (question,) = _questions_at_visit(client, session, bookings[0], topic, "Первый")
    _check_in(client, session, bookings[1], "no_show")
    due = (almaty_today() + timedelta(days=10)).isoformat()
    assert (
        _outcome(client, question, outcome="pending", responsible="Б", due_date=due).status_code
        == 303
    )
    walk_in_form = client.get(f"/staff/sessions/{session.id}/walk-in").get_data(as_text=True)
    closed = db.session.get(ScheduledSession, session.id)
    closed.status, closed.received_count = "held", 1  # closed as held (by another user, say)
    db.session.commit()
    writes = AuditEvent.action != "personal_data.viewed"
    before = (count(Visit), count(Question), count(StatusEvent), count(AuditEvent, writes))

    assert _check_in(client, session, bookings[2], "attended").status_code == 409
    assert _check_in(client, session, bookings[1], "undo").status_code == 409
    response = client.post(
        f"/staff/sessions/{session.id}/walk-in",
        data={
            "csrf_token": csrf_from(walk_in_form),
            "name": "Кешіккен Азамат",
            "topic_id": str(topic.id),
            "summary": "Сұрақ",
            "received_by": "head",
        },
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 409 and "This session is closed" in response.get_data(
        as_text=True
    )
    assert client.get(f"/staff/sessions/{session.id}/walk-in").status_code == 409
    visit_page = client.get(f"/staff/visits/{visit.id}", headers={"Accept-Language": "en"})
    assert "This session is closed" in visit_page.get_data(as_text=True)
    late = client.post(
        f"/staff/visits/{visit.id}",
        data={
            "csrf_token": csrf_from(visit_page.get_data(as_text=True)),
            "topic_id": str(topic.id),
            "summary": "Ещё",
        },
    )
    assert late.status_code == 409
    received = client.post(
        f"/staff/visits/{visit.id}/received-by",
        data={
            "csrf_token": csrf_from(visit_page.get_data(as_text=True)),
            "received_by": "deputy",
            "received_by_name": "Орынбасар",
        },
    )
    assert received.status_code == 409
    db.session.expire_all()
    assert db.session.get(Booking, bookings[2].id).status == "booked"
    assert db.session.get(Booking, bookings[1].id).status == "no_show"
    assert (count(Visit), count(Question), count(StatusEvent), count(AuditEvent, writes)) == before

    # Following up the pending question is the normal flow and still works after close.
    question = db.session.get(Question, question.id)
    done = _outcome(client, question, outcome="resolved", note="Жөнделді")
    assert done.status_code == 303
    db.session.expire_all()
    assert db.session.get(Question, question.id).closed_at is not None
    agenda = client.get(_agenda_url(session), headers={"Accept-Language": "en"}).get_data(
        as_text=True
    )
    assert '<span class="tag">Held</span>' in agenda and ">held<" not in agenda
    assert "Register a walk-in" not in agenda and 'value="attended"' not in agenda


def test_closing_a_pending_question_needs_a_note_and_saves_nothing_without_one(client, day):
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _visit, (question,) = _questions_at_visit(client, session, bookings[0], topic, "Вопрос")
    due = (almaty_today() + timedelta(days=5)).isoformat()
    _outcome(client, question, outcome="pending", responsible="Иванов", due_date=due)
    db.session.expire_all()
    question = db.session.get(Question, question.id)
    events = count(QuestionEvent)
    follow_up = client.get(f"/staff/institutions/{session.institution_id}/follow-up").get_data(
        as_text=True
    )
    for note in ("", "   "):
        response = client.post(
            f"/staff/questions/{question.id}/outcome",
            data={
                "csrf_token": csrf_from(follow_up),
                f"q{question.id}-outcome": "resolved",
                f"q{question.id}-note": note,
                f"q{question.id}-version": str(question.version),
                "back": "follow-up",
            },
            headers={"Accept-Language": "en"},
        )
        assert response.status_code == 422  # the follow-up list again, with the error at the note
    db.session.expire_all()
    unchanged = db.session.get(Question, question.id)
    assert unchanged.outcome == "pending" and unchanged.closed_at is None
    assert unchanged.resolution_note == "" and count(QuestionEvent) == events
    # The service holds the same rule for any caller.
    with pytest.raises(DomainError):
        services.record_outcome(head, question.id, outcome=Outcome.resolved, note=" ")
    assert count(QuestionEvent) == events


def test_month_sign_off_freezes_figures_and_corrections_are_versions(client, app):
    session = make_open_session(slots=1, starts_in_hours=-24 * 40)
    head = make_user(Role.head, institution=session.institution)
    from zoneinfo import ZoneInfo

    month = session.starts_at.astimezone(ZoneInfo("Asia/Almaty")).strftime("%Y-%m")
    session.status, session.received_count = "held", 0
    db.session.commit()
    sign_in(client, head.email, PASSWORD)
    url = f"/staff/institutions/{session.institution_id}/months/{month}"
    assert submit(client, url, {"confirm": "y"}).status_code == 303
    late = make_open_session(session.institution, slots=1, starts_in_hours=-24 * 40 + 1)
    late.status, late.received_count = "held", 0
    db.session.commit()
    refused = submit(
        client, url, {"reason": " ", "confirm": "y"}, headers={"Accept-Language": "en"}
    )
    assert refused.status_code == 422  # a correction needs a reason
    assert 'id="reason-error"' in refused.get_data(as_text=True)
    corrected = submit(client, url, {"reason": "Исправлена ошибка", "confirm": "y"})
    assert corrected.status_code == 303
    versions = db.session.scalars(select(MonthSignoff).order_by(MonthSignoff.version)).all()
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].figures["sessions_held"] >= 1 and versions[1].reason == "Исправлена ошибка"
    staff = make_user(Role.staff, institution=session.institution)
    client.post(
        "/auth/sign-out",
        data={"csrf_token": csrf_from(client.get("/staff/").get_data(as_text=True))},
    )
    sign_in(client, staff.email, PASSWORD)
    assert submit(client, url, {"reason": "x", "confirm": "y"}).status_code == 403


def test_retention_purge_keeps_the_counts(app, client, day):
    _session, _bookings, _head, topic = day
    runner = app.test_cli_runner()
    result = runner.invoke(args=["retention", "purge", "--older-than-days", "1"])
    assert "anonymised bookings: 0" in result.output
    for booking in db.session.scalars(select(Booking)):
        booking.created_at = booking.created_at - timedelta(days=2000)
    db.session.commit()
    result = runner.invoke(args=["retention", "purge"])
    assert "anonymised bookings: 3" in result.output
    db.session.expire_all()
    for booking in db.session.scalars(select(Booking)):
        assert booking.citizen_name == "—" and booking.phone == "" and booking.question == ""
        assert (
            booking.iin_hash == "" and booking.status == "booked" and booking.topic_id == topic.id
        )
    assert count(Booking) == 3


def test_citizen_rates_the_meeting_and_is_asked_30_days_later_if_it_was_resolved(app, client, day):
    from receptions.booking import services as booking_services
    from receptions.booking.models import Feedback
    from receptions.notify.models import Notification

    session, bookings, head, topic = day
    token = "manage-token-for-feedback-test"
    booking = db.session.get(Booking, bookings[0].id)
    booking.manage_token_hash = booking_services.token_hash(token)
    db.session.commit()
    sign_in(client, head.email, PASSWORD)
    _visit, (question,) = _questions_at_visit(client, session, bookings[0], topic, "Крыша")
    _outcome(client, question, outcome="resolved", note="Готово")

    manage = client.get(f"/m/{token}", headers={"Accept-Language": "en"})
    page = manage.get_data(as_text=True)
    assert "How was your meeting?" in page and "actually resolved" not in page
    response = client.post(
        f"/m/{token}/feedback",
        data={"csrf_token": csrf_from(page), "rating": "5", "comment": "Спасибо"},
    )
    assert response.status_code == 303
    again = client.post(f"/m/{token}/feedback", data={"csrf_token": csrf_from(page), "rating": "1"})
    assert again.status_code == 409
    too_early = client.post(
        f"/m/{token}/resolved", data={"csrf_token": csrf_from(page), "resolved": "no"}
    )
    assert too_early.status_code == 409

    db.session.expire_all()
    question = db.session.get(Question, question.id)
    question.outcome_at = question.outcome_at - timedelta(days=31)
    db.session.commit()
    with app.test_request_context():
        assert booking_services.queue_resolution_checks() == 1
        assert booking_services.queue_resolution_checks() == 0
    assert count(Notification, Notification.template == "resolution_check") == 1  # SMS only
    page = client.get(f"/m/{token}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "actually resolved" in page
    answer = client.post(
        f"/m/{token}/resolved", data={"csrf_token": csrf_from(page), "resolved": "no"}
    )
    assert answer.status_code == 303
    db.session.expire_all()
    feedback = db.session.scalars(select(Feedback)).one()
    assert feedback.rating == 5 and feedback.really_resolved is False


def test_open_sessions_remind_the_head_and_district_officer_after_one_and_three_days(app):
    from receptions.notify.models import Notification
    from receptions.visits.services import queue_closeout_reminders

    session = make_open_session(starts_in_hours=-30)
    make_user(Role.head, institution=session.institution)
    make_user(Role.district_officer, district=session.institution.district)
    make_user(Role.staff, institution=session.institution)  # staff are not reminded
    assert queue_closeout_reminders() == 2
    assert queue_closeout_reminders() == 0  # the first reminder went out once
    session = db.session.get(ScheduledSession, session.id)
    session.starts_at -= timedelta(days=3)
    session.ends_at -= timedelta(days=3)
    db.session.commit()
    assert queue_closeout_reminders() == 2  # the three-day reminder
    assert queue_closeout_reminders() == 0
    assert count(Notification, Notification.template == "closeout_reminder") == 4


def test_close_out_reminders_name_the_institution_in_each_readers_language(app):
    from receptions.notify.models import Notification
    from receptions.notify.services import render
    from receptions.visits.services import queue_closeout_reminders

    session = make_open_session(starts_in_hours=-30)
    institution = session.institution
    make_user(Role.head, institution=institution, locale="kk")
    make_user(Role.district_officer, district=institution.district, locale="en")
    assert queue_closeout_reminders() == 2
    with app.test_request_context():
        bodies = {
            n.locale: render(n).body
            for n in db.session.scalars(
                select(Notification).where(Notification.template == "closeout_reminder")
            )
        }
    assert institution.name_kk in bodies["kk"] and institution.name_ru not in bodies["kk"]
    assert institution.name_en in bodies["en"] and institution.name_ru not in bodies["en"]


def test_viewing_a_visit_is_audited(client, day):
    session, bookings, head, _ = day
    sign_in(client, head.email, PASSWORD)
    _check_in(client, session, bookings[0], "attended")
    visit = _visit_of(bookings[0])
    before = count(AuditEvent, AuditEvent.action == "personal_data.viewed")
    client.get(f"/staff/visits/{visit.id}")
    assert count(AuditEvent, AuditEvent.action == "personal_data.viewed") == before + 1


def test_staff_record_that_a_deputy_received_the_citizen(client, day):
    session, bookings, head, _ = day
    sign_in(client, head.email, PASSWORD)
    _check_in(client, session, bookings[0], "attended")
    visit = _visit_of(bookings[0])
    response = submit(
        client,
        f"/staff/visits/{visit.id}/received-by",
        {"received_by": "deputy", "received_by_name": "Орынбасар Тестов"},
        form_url=f"/staff/visits/{visit.id}",
    )
    assert response.status_code == 303
    db.session.expire_all()
    visit = db.session.get(Visit, visit.id)
    assert visit.received_by == "deputy" and visit.received_by_name == "Орынбасар Тестов"
    bad = submit(
        client,
        f"/staff/visits/{visit.id}/received-by",
        {"received_by": "janitor", "received_by_name": "X"},
        form_url=f"/staff/visits/{visit.id}",
    )
    assert bad.status_code == 422  # not a choice: the visit page again


@pytest.mark.parametrize(
    "path",
    [
        "agenda?date=9999-12-31",
        "agenda?date=0001-01-01",
        "agenda?date=0001-01-01&view=week",
        "agenda?date=9999-12-31&view=week",
        "agenda?date=1999-12-31",
        "register?date=9999-12-31",
        "register?date=0001-01-01",
        "months/0001-01",
        "months/9999-12",
        "months/1999-12",
    ],
)
def test_dates_outside_the_sane_range_are_a_400_with_a_message(client, day, path):
    session, _, head, _ = day
    sign_in(client, head.email, PASSWORD)
    response = client.get(
        f"/staff/institutions/{session.institution_id}/{path}", headers={"Accept-Language": "en"}
    )
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Choose a date between 1 January 2000 and" in text or (
        "Choose a month between 2000-01 and" in text
    )


def test_dates_inside_the_range_and_malformed_ones(client, day):
    session, _, head, _ = day
    sign_in(client, head.email, PASSWORD)
    base = f"/staff/institutions/{session.institution_id}"
    in_two_years = almaty_today().replace(year=almaty_today().year + 2, day=1)
    assert client.get(f"{base}/agenda?date=2000-01-01&view=week").status_code == 200
    assert client.get(f"{base}/agenda?date={in_two_years.isoformat()}").status_code == 200
    assert client.get(f"{base}/months/2000-01").status_code == 200
    for bad in ("agenda?date=yesterday", "months/2026-13", "months/26-1"):
        assert client.get(f"{base}/{bad}").status_code == 400


@pytest.mark.parametrize("month", ["٢٠٢٦-10", "2026-10%0A"])
def test_a_month_in_other_digits_or_with_a_newline_is_a_400_and_never_signed(client, app, month):
    session = make_open_session(slots=1, starts_in_hours=-24 * 40)
    head = make_user(Role.head, institution=session.institution)
    sign_in(client, head.email, PASSWORD)
    base = f"/staff/institutions/{session.institution_id}/months"
    page = client.get(f"{base}/2026-10").get_data(as_text=True)
    response = client.get(f"{base}/{month}", headers={"Accept-Language": "ru"})
    assert response.status_code == 400
    assert "Месяц должен выглядеть как 2026-11." in response.get_data(as_text=True)
    signed = client.post(
        f"{base}/{month}", data={"csrf_token": csrf_from(page)}, headers={"Accept-Language": "ru"}
    )
    assert signed.status_code == 400
    assert count(MonthSignoff) == 0


def test_the_workspace_links_the_month_just_ended_in_almaty_not_in_utc(client, app):
    from datetime import UTC, datetime

    head = make_user(Role.head)
    # 01:30 on 1 December in Almaty, still 30 November in UTC: November has just ended.
    app.config["FROZEN_NOW"] = datetime(2026, 11, 30, 20, 30, tzinfo=UTC)
    sign_in(client, head.email, PASSWORD)
    page = client.get("/staff/").get_data(as_text=True)
    assert f"/staff/institutions/{head.institution_id}/months/2026-11" in page


def _signed_month(client):
    from zoneinfo import ZoneInfo

    session = make_open_session(slots=1, starts_in_hours=-24 * 40)
    head = make_user(Role.head, institution=session.institution)
    month = session.starts_at.astimezone(ZoneInfo("Asia/Almaty")).strftime("%Y-%m")
    session.status, session.received_count = "held", 0
    db.session.commit()
    sign_in(client, head.email, PASSWORD)
    return session, f"/staff/institutions/{session.institution_id}/months/{month}"


def test_the_month_page_links_the_months_before_and_after_up_to_the_current_one(client, app):
    from datetime import UTC, datetime

    head = make_user(Role.head)
    app.config["FROZEN_NOW"] = datetime(2026, 12, 15, 6, 0, tzinfo=UTC)
    sign_in(client, head.email, PASSWORD)
    base = f"/staff/institutions/{head.institution_id}/months"
    october = client.get(f"{base}/2026-10").get_data(as_text=True)
    assert f'href="{base}/2026-09"' in october and f'href="{base}/2026-11"' in october
    december = client.get(f"{base}/2026-12").get_data(as_text=True)
    assert f'href="{base}/2026-11"' in december and f"{base}/2027-01" not in december
    first = client.get(f"{base}/2000-01").get_data(as_text=True)
    assert f"{base}/1999-12" not in first and f'href="{base}/2000-02"' in first


def test_signing_a_month_asks_for_an_explicit_confirmation(client, app):
    _session, url = _signed_month(client)
    page = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'type="checkbox"' in page and "I confirm these figures" in page
    refused = submit(client, url, {}, headers={"Accept-Language": "en"})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "Please correct the following:" in text
    assert "Confirm the figures before signing them off." in text
    assert 'id="confirm-error"' in text and 'href="#confirm"' in text
    assert db.session.scalar(select(func.count()).select_from(MonthSignoff)) == 0
    assert submit(client, url, {"confirm": "y"}).status_code == 303
    assert db.session.scalar(select(func.count()).select_from(MonthSignoff)) == 1


def test_a_correction_is_offered_only_when_the_figures_changed(client, app):
    session, url = _signed_month(client)
    assert submit(client, url, {"confirm": "y"}).status_code == 303
    page = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "The figures have not changed since they were signed." in page
    assert "Sign a corrected version" not in page and "I confirm these figures" not in page
    same = submit(
        client, url, {"reason": "Ничего", "confirm": "y"}, headers={"Accept-Language": "en"}
    )
    assert same.status_code == 409
    assert "nothing to correct" in same.get_data(as_text=True)
    late = make_open_session(session.institution, slots=1, starts_in_hours=-24 * 40 + 1)
    late.status, late.received_count = "held", 0
    db.session.commit()
    page = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Sign a corrected version" in page
    assert db.session.scalar(select(func.count()).select_from(MonthSignoff)) == 1


def test_the_current_month_is_not_offered_for_signing_and_says_from_when(client, app):
    head = make_user(Role.head, institution=make_institution())
    sign_in(client, head.email, PASSWORD)
    today = almaty_today()
    url = f"/staff/institutions/{head.institution_id}/months/{today:%Y-%m}"
    page = client.get(url, headers={"Accept-Language": "en"})
    text = page.get_data(as_text=True)
    first = (today.replace(day=28) + timedelta(days=4)).replace(day=1)
    assert page.status_code == 200 and "Sign off the month" not in text
    assert "I confirm these figures" not in text
    assert f"once it is over, from {first.day} {first:%B %Y}" in text
    kk = client.get(url, headers={"Accept-Language": "kk"}).get_data(as_text=True)
    assert "Айды растау" not in kk


def test_the_month_page_counts_questions_without_an_outcome(client, day):
    from zoneinfo import ZoneInfo

    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _visit, (first, _second) = _questions_at_visit(
        client, session, bookings[0], topic, "Первый", "Второй"
    )
    _outcome(client, first, outcome="explained")
    month = session.starts_at.astimezone(ZoneInfo("Asia/Almaty")).strftime("%Y-%m")
    page = client.get(
        f"/staff/institutions/{session.institution_id}/months/{month}",
        headers={"Accept-Language": "en"},
    ).get_data(as_text=True)
    row = re.search(r"No outcome recorded</th>\s*<td>(\d+)</td>", page)
    assert row and row.group(1) == "1"


def test_month_page_shows_each_signed_version_and_what_changed_since(client, app):
    from zoneinfo import ZoneInfo

    session = make_open_session(slots=1, starts_in_hours=-24 * 40)
    institution = session.institution
    head = make_user(Role.head, institution=institution, full_name="Сәуле Директорова")
    month = session.starts_at.astimezone(ZoneInfo("Asia/Almaty")).strftime("%Y-%m")
    session.status, session.received_count = "held", 0
    db.session.commit()
    sign_in(client, head.email, PASSWORD)
    url = f"/staff/institutions/{institution.id}/months/{month}"
    assert submit(client, url, {"confirm": "y"}).status_code == 303
    page = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Version 1 signed on" in page and "by Сәуле Директорова" in page
    assert "The figures have not changed since they were signed." in page

    # A session of that month is recorded later: the page shows it against the frozen figures.
    late = make_open_session(institution, slots=1, starts_in_hours=-24 * 40 + 1)
    late.status, late.received_count = "held", 0
    db.session.commit()
    page = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Changes since version 1 was signed" in page
    assert "Sessions planned: 1 signed, 2 now" in page and "Sessions held: 1 signed, 2 now" in page
    assert submit(client, url, {"reason": "Забытый приём", "confirm": "y"}).status_code == 303
    page = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Version 1" in page and "Version 2 signed on" in page and "Reason: Забытый приём" in page
    assert "The figures have not changed since they were signed." in page
    versions = db.session.scalars(select(MonthSignoff).order_by(MonthSignoff.version)).all()
    assert [v.figures["sessions_planned"] for v in versions] == [1, 2]
    assert {v.signed_by_id for v in versions} == {head.id}


def test_the_month_page_shows_every_signed_figure_that_changed_and_says_ratings_are_not_signed(
    client, app
):
    from zoneinfo import ZoneInfo

    from receptions.reports.services import SIGNED_FIGURES
    from receptions.visits.labels import MONTH_FIGURES

    assert set(SIGNED_FIGURES) <= {key for key, _label in MONTH_FIGURES}
    session, url = _signed_month(client)
    assert submit(client, url, {"confirm": "y"}).status_code == 303
    # An open-door day closed as held after sign-off (the month had one reception): the totals
    # and the split both changed.
    late = make_open_session(
        session.institution, slots=1, starts_in_hours=-24 * 40 + 1, kind="open_door"
    )
    late.status, late.received_count = "held", 0
    db.session.commit()
    month = session.starts_at.astimezone(ZoneInfo("Asia/Almaty")).strftime("%Y-%m")
    assert url.endswith(month)
    page = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Open-door days planned: 0 signed, 1 now" in page
    assert "Open-door days held: 0 signed, 1 now" in page
    assert "Receptions planned" in page and "Citizens booked" in page
    assert "Receptions planned: " not in page  # unchanged, so not listed
    assert "Sign a corrected version" in page
    assert "are not among the signed figures" in page
    ru = client.get(url, headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert "не входят в подписанные показатели" in ru


def test_follow_up_and_register_views_are_audited_under_their_own_page(client, day):
    session, _, head, _ = day
    sign_in(client, head.email, PASSWORD)
    base = f"/staff/institutions/{session.institution_id}"
    assert client.get(f"{base}/register").status_code == 200
    assert client.get(f"{base}/follow-up").status_code == 200
    views = db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == "personal_data.viewed")
        .order_by(AuditEvent.id)
    ).all()
    assert [e.details["page"] for e in views] == ["register", "follow_up"]
    assert all(e.user_id == head.id and e.record_id == session.institution_id for e in views)


def test_register_shows_outcomes_and_prints_one_page_per_session(client, day):
    from pathlib import Path

    session, bookings, head, topic = day
    second = make_open_session(session.institution, slots=1, earlier_today=True, kind="open_door")
    make_booking(second.slots[0], topic=topic, name="Екінші Сеанс")
    sign_in(client, head.email, PASSWORD)
    _check_in(client, session, bookings[0], "attended")
    _check_in(client, session, bookings[1], "no_show")
    visit = _visit_of(bookings[0])
    for summary in ("Бірінші", "Екінші"):
        submit(client, f"/staff/visits/{visit.id}", {"topic_id": str(topic.id), "summary": summary})
    first, other = db.session.scalars(select(Question).order_by(Question.id)).all()
    _outcome(client, first, outcome="resolved", note="Шешілді")
    due = almaty_today() + timedelta(days=7)
    _outcome(client, other, outcome="pending", responsible="Б", due_date=due.isoformat())
    page = client.get(
        f"/staff/institutions/{session.institution_id}/register", headers={"Accept-Language": "en"}
    ).get_data(as_text=True)
    cells = re.findall(r'<td class="outcome">(.*?)</td>', page)
    assert cells[0] == f"Resolved positively; Being resolved (due by {due.day}.{due:%m.%Y})"
    assert cells[1] == "Did not come"
    assert page.count('<section class="register-page">') == 2 and "Екінші Сеанс" in page
    css = (Path(__file__).resolve().parents[2] / "static/css/app.css").read_text()
    print_rules = re.search(r"@media print \{(.*?)\n\}", css[css.index(".register {") :], re.S)
    assert print_rules, "the register has its own print rules"
    rules = print_rules.group(1)
    assert re.search(r"\.register-page \{ page-break-after: always; \}", rules)
    assert re.search(r"\.register-page:last-child \{ page-break-after: auto; \}", rules)


def test_status_page_shows_each_questions_history_from_question_events(client, day):
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _visit, (roof, water) = _questions_at_visit(
        client, session, bookings[0], topic, "Протекает крыша", "Нет горячей воды"
    )
    due = almaty_today() + timedelta(days=10)
    _outcome(client, roof, outcome="explained", note="Объяснили порядок")
    _outcome(client, water, outcome="pending", responsible="Завхоз", due_date=due.isoformat())

    def status_text():
        return client.get(
            f"/status/{bookings[0].reference}", headers={"Accept-Language": "en"}
        ).get_data(as_text=True)

    text = status_text()
    assert "Question 1: Explained" in text and "Question 2: Being resolved" in text
    assert text.count("Question recorded") == 2
    assert f"due by {due:%-d %B %Y}" in text
    assert "крыша" not in text.lower() and "Объяснили" not in text and "Завхоз" not in text
    kinds = {e.kind for e in db.session.scalars(select(StatusEvent))}
    assert kinds == {"attended"}  # the question steps come from question_event alone

    db.session.expire_all()
    water = db.session.get(Question, water.id)
    _outcome(client, water, outcome="resolved", note="Трубу заменили")
    text = status_text()
    assert "Question 2: Resolved positively" in text and "Closed: Resolved positively" in text
    assert "Трубу" not in text
    # A second visitor's page shows nothing of this one.
    other = client.get(f"/status/{bookings[1].reference}", headers={"Accept-Language": "en"})
    assert "Question 1" not in other.get_data(as_text=True)


def test_retention_purge_blanks_comments_notes_and_messages_and_keeps_every_figure(
    app, client, day
):
    from zoneinfo import ZoneInfo

    from receptions.booking.models import Feedback
    from receptions.notify.models import Notification
    from receptions.reports.scope import Scope
    from receptions.reports.services import rollup

    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _visit, (question,) = _questions_at_visit(client, session, bookings[0], topic, "Крыша")
    _check_in(client, session, bookings[1], "no_show")
    due = (almaty_today() + timedelta(days=3)).isoformat()
    _outcome(client, question, outcome="pending", responsible="Б", due_date=due, note="Позвонить")
    db.session.expire_all()
    question = db.session.get(Question, question.id)
    _outcome(client, question, outcome="resolved", note="Гражданке Ивановой сообщили по телефону")
    db.session.add(Feedback(booking_id=bookings[0].id, rating=4, comment="Мой номер 87015550101"))
    for notification in db.session.scalars(select(Notification)):
        notification.status = "sent"
    make_notification("+77015550199", payload={"reference": "X"}, booking_id=bookings[2].id)
    db.session.commit()
    assert count(Notification, Notification.recipient != "") >= 2
    # Everything happened long ago.
    for booking in db.session.scalars(select(Booking)):
        booking.created_at -= timedelta(days=2000)
    for old in db.session.scalars(select(Visit)):
        old.at -= timedelta(days=2000)
    for notification in db.session.scalars(select(Notification)):
        notification.created_at -= timedelta(days=2000)
    db.session.commit()

    month = session.starts_at.astimezone(ZoneInfo("Asia/Almaty")).strftime("%Y-%m")
    scopes = [Scope("institution", session.institution_id), Scope("nation")]

    def figures():
        db.session.expire_all()
        result = []
        for scope in scopes:
            for live in (True, False):
                report = rollup(scope, month, grouping="institution", live=live)
                result.append(
                    (
                        dict(report.total.counts),
                        [dict(r.counts) for r in report.rows],
                        report.top_topics,
                    )
                )
        return result

    before = figures()
    assert before[0][0]["resolved"] == 1 and before[0][0]["ratings"] == 1
    result = app.test_cli_runner().invoke(args=["retention", "purge"])
    assert "anonymised bookings: 3, visits: 1" in result.output
    assert "feedback comments: 1, question notes: 2" in result.output
    assert figures() == before

    feedback = db.session.scalars(select(Feedback)).one()
    assert feedback.comment == "" and feedback.rating == 4
    assert {e.note for e in db.session.scalars(select(QuestionEvent))} == {""}
    assert [
        e.outcome for e in db.session.scalars(select(QuestionEvent).order_by(QuestionEvent.id))
    ] == [None, "pending", "resolved"]
    for notification in db.session.scalars(select(Notification)):
        if notification.status == "pending":  # still to be sent: keeps its address for now
            assert notification.recipient == "+77015550199"
        else:
            assert notification.recipient == "" and notification.payload == {}
    again = app.test_cli_runner().invoke(args=["retention", "purge"])
    assert (
        "anonymised bookings: 0, visits: 0, feedback comments: 0, question notes: 0" in again.output
    )


def test_sending_a_failed_message_again_is_audited(client, app):
    failed = make_notification("citizen@example.kz", status="failed", attempts=5)
    sent = make_notification("+77015550101", status="sent", attempts=1)
    admin = make_user(Role.admin)
    sign_in(client, admin.email, PASSWORD)
    outbox = "/admin/notifications/?status=failed"
    assert (
        submit(client, f"/admin/notifications/{failed.id}/retry", {}, form_url=outbox).status_code
        == 303
    )
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "notification.retried")
    ).one()
    assert (event.user_id, event.record_type, event.record_id) == (
        admin.id,
        "notification",
        failed.id,
    )
    assert event.details == {"channel": "email", "template": "reminder", "attempts": 5}
    assert "citizen@" not in str(event.details)
    # Only an undelivered message can be sent again; a missing one is a 404.
    assert (
        submit(client, f"/admin/notifications/{sent.id}/retry", {}, form_url=outbox).status_code
        == 409
    )
    assert (
        submit(client, "/admin/notifications/999999/retry", {}, form_url=outbox).status_code == 404
    )
    assert count(AuditEvent, AuditEvent.action == "notification.retried") == 1


def _audit_event(user, action, record_type, record_id, at, **details):
    event = AuditEvent(
        user_id=user.id if user else None,
        action=action,
        record_type=record_type,
        record_id=record_id,
        at=at,
        details=details,
    )
    db.session.add(event)
    return event


def test_admin_filters_the_audit_log_by_user_record_and_dates(client, app):
    from datetime import UTC, datetime

    admin = make_user(Role.admin)
    head = make_user(Role.head, email="head.audit@example.kz")
    staff = make_user(Role.staff, institution=head.institution)
    base = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)  # 11:00 in Kazakhstan
    _audit_event(head, "booking.check_in", "booking", 7, base, mark="attended")
    _audit_event(
        head, "question.outcome", "question", 3, base + timedelta(days=1), outcome="pending"
    )
    _audit_event(staff, "booking.check_in", "booking", 8, base + timedelta(days=2), mark="no_show")
    # 23:30 on 12 March in Kazakhstan, though still 12 March 18:30 in UTC: belongs to 12 March.
    _audit_event(staff, "visit.walk_in", "visit", 9, datetime(2026, 3, 12, 18, 30, tzinfo=UTC))
    db.session.commit()
    sign_in(client, admin.email, PASSWORD)

    def shown(query):
        response = client.get(f"/admin/audit?{query}", headers={"Accept-Language": "en"})
        assert response.status_code == 200, query
        text = response.get_data(as_text=True)
        return text, sorted(
            int(n) for n in re.findall(r"(?:Booking|Question|Visit) #(\d+)</a>", text)
        )

    text, ids = shown("user=HEAD.audit@example.kz")
    assert ids == [3, 7] and "mark=attended" in text and "outcome=pending" in text
    assert shown("record_type=booking")[1] == [7, 8]
    assert shown("record_type=booking&record_id=8")[1] == [8]
    assert shown("date_from=2026-03-11&date_to=2026-03-12")[1] == [3, 8, 9]
    assert shown("date_from=2026-03-13")[1] == []
    assert shown("action=booking.&user=head.audit@example.kz")[1] == [7]
    assert "Details" in shown("")[0]
    # Actions and kinds of record in the reader's words, the action's code beside it.
    assert "Citizen checked in" in shown("")[0] and "booking.check_in" in shown("")[0]
    kazakh = client.get("/admin/audit", headers={"Accept-Language": "kk"}).get_data(as_text=True)
    with force_locale("kk"):
        assert gettext("Citizen checked in") in kazakh and gettext("Walk-in registered") in kazakh
        assert f"{gettext('Booking')} #7" in kazakh
        assert gettext("Citizen checked in") != "Citizen checked in"


@pytest.mark.parametrize(
    "query",
    [
        "user=nobody@example.kz",
        "record_type=no-such-kind",
        "record_id=abc",
        "record_id=0",
        "record_id=99999999999999999999",
        "date_from=2026-02-30",
        "date_from=0001-01-01",
        "date_to=9999-12-31",
        "date_from=2026-03-12&date_to=2026-03-11",
        "action=" + "x" * 61,
    ],
)
def test_bad_audit_filters_are_a_400_with_the_reason(client, app, query):
    admin = make_user(Role.admin)
    _audit_event(admin, "booking.check_in", "booking", 1, utc_now())
    db.session.commit()
    sign_in(client, admin.email, PASSWORD)
    response = client.get(f"/admin/audit?{query}", headers={"Accept-Language": "en"})
    assert response.status_code == 400
    assert "Please correct the following" in response.get_data(as_text=True)


def test_audit_log_is_paginated_and_pages_keep_the_filters(client, app):
    from datetime import UTC, datetime

    admin = make_user(Role.admin)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for n in range(150):
        _audit_event(admin, "booking.check_in", "booking", n + 1, start + timedelta(minutes=n))
    _audit_event(admin, "visit.walk_in", "visit", 1, start)
    db.session.commit()
    sign_in(client, admin.email, PASSWORD)
    first = client.get("/admin/audit?record_type=booking", headers={"Accept-Language": "en"})
    text = first.get_data(as_text=True)
    assert "Events found: 150" in text and "Page 1 of 2" in text
    assert "record_type=booking" in re.search(r'href="([^"]+)" rel="next"', text).group(1)
    second = client.get(
        "/admin/audit?record_type=booking&page=2", headers={"Accept-Language": "en"}
    ).get_data(as_text=True)
    assert len(re.findall(r"Booking #\d+</a>", second)) == 50 and "Visit #" not in second


def test_kazakh_staff_pages_put_no_case_ending_after_a_date_and_name_the_undo_apart(client, day):
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _visit, (question,) = _questions_at_visit(client, session, bookings[0], topic, "Сұрақ")
    due = almaty_today().isoformat()
    _outcome(client, question, outcome="pending", responsible="Әлия", due_date=due)
    db.session.get(Question, question.id).due_date = almaty_today() - timedelta(days=2)
    db.session.commit()
    kk = {"Accept-Language": "kk"}
    base = f"/staff/institutions/{session.institution_id}"
    page = client.get(f"{base}/follow-up", headers=kk).get_data(as_text=True)
    assert "Мерзімі өтіп кетті: " in page
    status = re.search(r'<p><strong class="overdue-label">.*?</p>', page).group(0)
    assert "дейін" not in page and status.count("ерзімі") == 1
    agenda = client.get(_agenda_url(session), headers=kk).get_data(as_text=True)
    assert "Белгіні алып тастау" in agenda and ">Болдырмау<" not in agenda
    empty = make_open_session(session.institution, slots=1, starts_in_hours=48)
    cancel = client.get(f"/staff/sessions/{empty.id}/cancel", headers=kk).get_data(as_text=True)
    assert "Бұл сеансқа әзірге ешкім жазылмаған." in cancel and "0 азамат" not in cancel


def test_the_visit_page_starts_the_first_question_with_what_the_citizen_wrote_when_booking(
    client, day
):
    """Staff no longer retype the booked question: the first question's text is the booking's,
    to edit or keep; once a question is recorded the form is blank for the next one."""
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _check_in(client, session, bookings[0], "attended")
    visit = _visit_of(bookings[0])
    page = client.get(f"/staff/visits/{visit.id}").get_data(as_text=True)
    textarea = re.search(r'<textarea[^>]*name="summary"[^>]*>([^<]*)</textarea>', page).group(1)
    assert textarea.strip() == bookings[0].question
    submit(client, f"/staff/visits/{visit.id}", {"topic_id": str(topic.id), "summary": "Бірінші"})
    page = client.get(f"/staff/visits/{visit.id}").get_data(as_text=True)
    textarea = re.search(r'<textarea[^>]*name="summary"[^>]*>([^<]*)</textarea>', page).group(1)
    assert textarea.strip() == ""


def test_staff_forms_ask_for_a_topic_rather_than_file_under_the_first(client, day):
    """The walk-in and question forms started on the first topic (housing and utilities), so a
    question staff did not file was counted under it. They start on an empty prompt, refused as
    no answer; a visit from a booking starts on the booking's topic."""
    session, bookings, head, topic = day
    make_topic(name_en="Aaa first topic")
    sign_in(client, head.email, PASSWORD)
    en = {"Accept-Language": "en"}
    form = client.get(f"/staff/sessions/{session.id}/walk-in", headers=en).get_data(as_text=True)
    assert re.search(r'<option selected value="">Choose a topic</option>', form)
    before = count(Visit)
    refused = client.post(
        f"/staff/sessions/{session.id}/walk-in",
        data={
            "csrf_token": csrf_from(form),
            "name": "Ерте Келген",
            "topic_id": "",
            "summary": "Жол жөндеу",
            "received_by": "head",
        },
        headers=en,
    )
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "Choose the topic of the question." in page
    assert "Жол жөндеу" in page  # what was typed is kept
    assert count(Visit) == before

    _check_in(client, session, bookings[0], "attended")
    visit = _visit_of(bookings[0])
    page = client.get(f"/staff/visits/{visit.id}", headers=en).get_data(as_text=True)
    assert re.search(rf'<option selected value="{topic.id}">', page)  # the booking's topic
    refused = submit(client, f"/staff/visits/{visit.id}", {"topic_id": "", "summary": "Ещё один"})
    assert refused.status_code == 422
    assert count(Question, Question.visit_id == visit.id) == 0


class PageOutline(HTMLParser):
    """The ids of a page and the names of its landmarks (sections, navigation, regions and forms
    named by aria-label or aria-labelledby), as assistive technology lists them."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
    ROLES = {"section": "region", "nav": "navigation", "aside": "complementary", "form": "form"}

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.text: dict[str, str] = {}
        self.open: list[tuple[str, str | None]] = []
        self.named: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        if "id" in attributes:
            self.ids.append(attributes["id"])
            self.text[attributes["id"]] = ""
        role = attributes.get("role") or self.ROLES.get(tag)
        if role and ("aria-label" in attributes or "aria-labelledby" in attributes):
            self.named.append((role, attributes))
        if tag not in self.VOID:
            self.open.append((tag, attributes.get("id")))

    def handle_endtag(self, tag):
        while self.open:
            if self.open.pop()[0] == tag:
                break

    def handle_data(self, data):
        for _tag, id_ in self.open:
            if id_ is not None:
                self.text[id_] += data

    @property
    def duplicate_ids(self) -> list[str]:
        return [id_ for id_, n in Counter(self.ids).items() if n > 1]

    @property
    def duplicate_landmarks(self) -> list[tuple[str, str]]:
        names = Counter(
            (
                role,
                " ".join(
                    attributes.get("aria-label")
                    or " ".join(self.text[i] for i in attributes["aria-labelledby"].split()).split()
                ),
            )
            for role, attributes in self.named
        )
        return [landmark for landmark, n in names.items() if n > 1]


def test_the_agenda_and_the_visit_page_repeat_no_id_and_no_landmark_name(client, day):
    """WCAG 4.1.1 and landmark names: the agenda's check-in forms (one per booking), reopen forms
    and booking tables, and a visit's questions on the same topic, each have ids and names of
    their own."""
    session, bookings, head, topic = day
    other = make_open_session(session.institution, slots=2, earlier_today=True, kind="open_door")
    for slot in other.slots:
        make_booking(slot, topic=topic)
    other.status, other.received_count, other.closed_at = "held", 0, utc_now()
    db.session.commit()
    sign_in(client, head.email, PASSWORD)
    visit, _questions = _questions_at_visit(client, session, bookings[0], topic, "Бір", "Екі")

    agenda = PageOutline(
        client.get(_agenda_url(session), headers={"Accept-Language": "en"}).get_data(as_text=True)
    )
    assert agenda.ids.count("main") == 1 and len(agenda.named) >= 4
    assert f"checkin-{bookings[1].id}-csrf_token" in agenda.ids
    assert agenda.duplicate_ids == [] and agenda.duplicate_landmarks == []

    page = client.get(f"/staff/visits/{visit.id}", headers={"Accept-Language": "en"})
    outline = PageOutline(page.get_data(as_text=True))
    names = [
        " ".join(outline.text[a["aria-labelledby"]].split())
        for role, a in outline.named
        if role == "region" and "aria-labelledby" in a and a["aria-labelledby"].startswith("q")
    ]
    assert names == [f"Question 1: {topic.name}", f"Question 2: {topic.name}"]
    assert outline.duplicate_landmarks == [] and outline.duplicate_ids == []


def _pending(client, session, booking, topic, *, responsible="Завхоз", days=5):
    """A question raised at the booking's visit and left pending with `responsible`."""
    _visit, (question,) = _questions_at_visit(client, session, booking, topic, "Шатыр ағып тұр")
    due = (almaty_today() + timedelta(days=days)).isoformat()
    sent = _outcome(client, question, outcome="pending", responsible=responsible, due_date=due)
    assert sent.status_code == 303
    db.session.expire_all()
    return db.session.get(Question, question.id)


def _change_follow_up(client, question, *, version=None, **data):
    url = f"/staff/institutions/{question.institution_id}/follow-up"
    prefix = f"c{question.id}-"
    payload = {prefix + k: v for k, v in data.items()}
    payload[prefix + "version"] = str(version or question.version)
    return submit(
        client,
        f"/staff/questions/{question.id}/follow-up",
        payload,
        form_url=url,
        headers={"Accept-Language": "en"},
    )


def test_a_pending_question_is_handed_over_and_given_a_later_due_date_with_a_reason(client, day):
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    question = _pending(client, session, bookings[0], topic)
    url = f"/staff/institutions/{session.institution_id}/follow-up"
    page = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert f'action="/staff/questions/{question.id}/follow-up"' in page
    assert "Change the responsible person or the due date" in page
    assert re.search(rf'id="c{question.id}-responsible"[^>]*value="Завхоз"', page)

    later = almaty_today() + timedelta(days=40)
    sent = _change_follow_up(
        client,
        question,
        responsible="Инженер Сейітов",
        due_date=later.isoformat(),
        reason="Мердігер материал күтуде",
    )
    assert sent.status_code == 303 and sent.location.endswith(url)
    db.session.expire_all()
    changed = db.session.get(Question, question.id)
    assert changed.responsible == "Инженер Сейітов" and changed.due_date == later
    assert changed.outcome == "pending" and changed.closed_at is None
    steps = [(e.kind, e.responsible, e.due_date, e.note, e.user_id) for e in changed.events][2:]
    assert steps == [
        ("reassigned", "Инженер Сейітов", None, "Мердігер материал күтуде", head.id),
        ("due_date_changed", "", later, "Мердігер материал күтуде", head.id),
    ]
    audit = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "question.follow_up_changed")
    ).one()
    assert audit.details["steps"] == ["reassigned", "due_date_changed"]
    page = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "handed to Инженер Сейітов: Мердігер материал күтуде" in page
    assert f"due date moved to {later.day} {later:%B %Y}" in page

    # The citizen sees the new due date and that it changed; no name, no reason.
    status = client.get(
        f"/status/{bookings[0].reference}", headers={"Accept-Language": "en"}
    ).get_data(as_text=True)
    assert f"due by {later.day} {later:%B %Y}" in status and "Due date changed" in status
    assert "Сейітов" not in status and "Завхоз" not in status and "Мердігер" not in status

    # Only the responsible person changes: one step, the due date stays.
    again = db.session.get(Question, question.id)
    sent = _change_follow_up(
        client, again, responsible="Бекзат", due_date=later.isoformat(), reason="Демалыста"
    )
    assert sent.status_code == 303
    db.session.expire_all()
    assert [e.kind for e in db.session.get(Question, question.id).events][-1] == "reassigned"
    assert count(QuestionEvent, QuestionEvent.kind == "due_date_changed") == 1


def test_a_mistake_in_changing_a_pending_question_shows_the_list_again_with_errors_at_fields(
    client, day
):
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    question = _pending(client, session, bookings[0], topic)
    prefix = f"c{question.id}-"
    events = count(QuestionEvent)

    sent = _change_follow_up(
        client,
        question,
        responsible="Инженер",
        due_date=(almaty_today() - timedelta(days=1)).isoformat(),
        reason=" ",
    )
    page = sent.get_data(as_text=True)
    assert sent.status_code == 422 and "Please correct the following:" in page
    assert f'id="{prefix}reason-error"' in page and f'href="#{prefix}reason"' in page
    assert '<details class="reassign" open>' in page
    assert re.search(rf'id="{prefix}responsible"[^>]*value="Инженер"', page)  # typed, kept
    yesterday, beyond = almaty_today() - timedelta(days=1), almaty_today() + timedelta(days=400)
    for responsible, due, field, message in (
        ("Инженер", yesterday.isoformat(), "due_date", "The due date cannot be in the past."),
        ("Завхоз", beyond.isoformat(), "due_date", "at most a year ahead"),
        ("Завхоз", "31.02.2027", "due_date", "Not a valid date value."),
        (
            "Завхоз",
            question.due_date.isoformat(),
            "responsible",
            "Change the responsible person or the due date.",
        ),
    ):
        sent = _change_follow_up(
            client, question, responsible=responsible, due_date=due, reason="Себеп"
        )
        page = sent.get_data(as_text=True)
        assert sent.status_code == 422 and message in page, due
        box = re.search(rf'<input[^>]*id="{prefix}{field}"[^>]*>', page).group(0)
        assert 'aria-invalid="true"' in box and f"{prefix}{field}-error" in box
    no_csrf = client.post(
        f"/staff/questions/{question.id}/follow-up",
        data={
            prefix + "responsible": "X",
            prefix + "reason": "Y",
            prefix + "due_date": "2030-01-01",
        },
    )
    assert no_csrf.status_code == 400
    db.session.expire_all()
    unchanged = db.session.get(Question, question.id)
    assert unchanged.responsible == "Завхоз" and count(QuestionEvent) == events

    stranger = make_user(Role.staff, institution=make_institution())
    client.post(
        "/auth/sign-out",
        data={"csrf_token": csrf_from(client.get("/staff/").get_data(as_text=True))},
    )
    sign_in(client, stranger.email, PASSWORD)
    page = client.get(f"/staff/institutions/{stranger.institution_id}/follow-up").get_data(
        as_text=True
    )
    other = client.post(
        f"/staff/questions/{question.id}/follow-up",
        data={
            "csrf_token": csrf_from(page),
            prefix + "responsible": "Бөгде",
            prefix + "due_date": (almaty_today() + timedelta(days=9)).isoformat(),
            prefix + "reason": "Бөгде",
            prefix + "version": str(question.version),
        },
    )
    assert other.status_code == 404
    db.session.expire_all()
    assert db.session.get(Question, question.id).responsible == "Завхоз"


def test_a_pending_question_changed_meanwhile_shows_the_list_again_as_it_is_now(client, day):
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    question = _pending(client, session, bookings[0], topic)
    shown_version = question.version
    later = almaty_today() + timedelta(days=20)
    # Someone else hands it over first, from another page.
    services.change_follow_up(
        head, question.id, responsible="Бірінші", due_date=question.due_date, reason="Ауысты"
    )
    sent = _change_follow_up(
        client,
        question,
        version=shown_version,
        responsible="Екінші",
        due_date=later.isoformat(),
        reason="Мерзім ұзартылды",
    )
    page = sent.get_data(as_text=True)
    assert sent.status_code == 409 and "Please correct the following:" in page
    assert "Someone else changed this question while the page was open" in page
    assert "Responsible: Бірінші" in page  # as it is now
    prefix = f"c{question.id}-"
    assert re.search(rf'id="{prefix}responsible"[^>]*value="Екінші"', page)  # typed, kept
    db.session.expire_all()
    now = db.session.get(Question, question.id)
    assert re.search(rf'id="{prefix}version"[^>]*value="{now.version}"', page) or re.search(
        rf'value="{now.version}"[^>]*id="{prefix}version"', page
    )
    assert now.responsible == "Бірінші" and now.due_date != later
    # Sent again at the version now shown, it is saved.
    sent = _change_follow_up(
        client, now, responsible="Екінші", due_date=later.isoformat(), reason="Мерзім ұзартылды"
    )
    assert sent.status_code == 303
    db.session.expire_all()
    assert db.session.get(Question, question.id).responsible == "Екінші"

    # Closed meanwhile: no longer on the list, and said so above it.
    stale = db.session.get(Question, question.id)
    services.record_outcome(head, question.id, outcome=Outcome.resolved, note="Жөнделді")
    sent = _change_follow_up(
        client,
        stale,
        version=stale.version,
        responsible="Үшінші",
        due_date=later.isoformat(),
        reason="Кеш",
    )
    page = sent.get_data(as_text=True)
    assert sent.status_code == 409 and "no longer being resolved" in page
    assert "<h1>Pending questions" in page
    db.session.expire_all()
    assert db.session.get(Question, question.id).responsible == "Екінші"
