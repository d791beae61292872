"""Running the day: every transition, including the forbidden ones, on both databases."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from receptions.audit.models import AuditEvent
from receptions.auth.models import Role
from receptions.booking.models import Booking, StatusEvent
from receptions.extensions import db
from receptions.schedules.models import ScheduledSession
from receptions.visits.models import MonthSignoff, Question, QuestionEvent, Visit
from tests.conftest import csrf_from, sign_in, submit
from tests.factories import (
    PASSWORD,
    make_booking,
    make_institution,
    make_open_session,
    make_topic,
    make_user,
)


def almaty_today() -> date:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("Asia/Almaty")).date()


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def day(app):
    """A session that started a few minutes ago, with three bookings."""
    session = make_open_session(slots=3, starts_in_hours=-0.1)
    topic = make_topic(name_ru="ЖКХ")
    bookings = [
        make_booking(
            slot, topic=topic, name=f"Гражданин {n}", accessibility=["wheelchair"] if n == 0 else []
        )
        for n, slot in enumerate(session.slots)
    ]
    head = make_user(Role.head, institution=session.institution)
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
    assert _check_in(client, session, booking, "attended").status_code == 400


def _visit_of(booking):
    return db.session.scalars(select(Visit).where(Visit.booking_id == booking.id)).one()


def _outcome(client, question, **data):
    page = client.get(f"/staff/visits/{question.visit_id}").get_data(as_text=True)
    prefix = f"q{question.id}-"
    payload = {"csrf_token": csrf_from(page), **{prefix + k: v for k, v in data.items()}}
    payload.setdefault(prefix + "version", str(question.version))
    return client.post(
        f"/staff/questions/{question.id}/outcome", data=payload, headers={"Accept-Language": "en"}
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
    ("data", "status"),
    [
        ({"outcome": "pending", "responsible": ""}, 400),
        ({"outcome": "pending", "responsible": "Иванов", "due_date": "2020-01-01"}, 400),
        ({"outcome": "maybe"}, 400),
        ({}, 400),
    ],
)
def test_bad_outcomes_are_refused_and_nothing_is_saved(client, day, data, status):
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _check_in(client, session, bookings[0], "attended")
    visit = _visit_of(bookings[0])
    submit(client, f"/staff/visits/{visit.id}", {"topic_id": str(topic.id), "summary": "Вопрос"})
    question = db.session.scalars(select(Question)).one()
    assert _outcome(client, question, **data).status_code == status
    db.session.expire_all()
    assert db.session.get(Question, question.id).outcome is None
    assert count(QuestionEvent) == 1


def test_stale_outcome_form_is_a_409(client, day):
    session, bookings, head, topic = day
    sign_in(client, head.email, PASSWORD)
    _check_in(client, session, bookings[0], "attended")
    visit = _visit_of(bookings[0])
    submit(client, f"/staff/visits/{visit.id}", {"topic_id": str(topic.id), "summary": "Вопрос"})
    question = db.session.scalars(select(Question)).one()
    response = _outcome(client, question, outcome="explained", version="99")
    assert response.status_code == 409


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
    _check_in(client, session, bookings[0], "attended")
    visit = _visit_of(bookings[0])
    for summary in ("Первый", "Второй"):
        submit(client, f"/staff/visits/{visit.id}", {"topic_id": str(topic.id), "summary": summary})
    first, second = db.session.scalars(select(Question).order_by(Question.id)).all()
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


def test_session_close_out_is_exact_and_happens_once(client, app):
    session = make_open_session(slots=2, starts_in_hours=-3)
    bookings = [make_booking(slot) for slot in session.slots]
    head = make_user(Role.head, institution=session.institution)
    sign_in(client, head.email, PASSWORD)
    _check_in(client, session, bookings[0], "attended")
    url = f"/staff/institutions/{session.institution_id}/close-out"
    assert str(session.id) in client.get(url).get_data(as_text=True)
    refused = submit(
        client, f"/staff/sessions/{session.id}/close", {"held": "no", "reason": "x"}, form_url=url
    )
    assert refused.status_code == 409  # someone was received: it was held
    assert (
        submit(
            client, f"/staff/sessions/{session.id}/close", {"held": "yes"}, form_url=url
        ).status_code
        == 303
    )
    db.session.expire_all()
    closed = db.session.get(ScheduledSession, session.id)
    assert closed.status == "held" and closed.received_count == 1
    assert db.session.get(Booking, bookings[1].id).status == "no_show"
    assert (
        submit(
            client, f"/staff/sessions/{session.id}/close", {"held": "yes"}, form_url=url
        ).status_code
        == 409
    )


def test_month_sign_off_freezes_figures_and_corrections_are_versions(client, app):
    session = make_open_session(slots=1, starts_in_hours=-24 * 40)
    head = make_user(Role.head, institution=session.institution)
    from zoneinfo import ZoneInfo

    month = session.starts_at.astimezone(ZoneInfo("Asia/Almaty")).strftime("%Y-%m")
    session.status, session.received_count = "held", 0
    db.session.commit()
    sign_in(client, head.email, PASSWORD)
    url = f"/staff/institutions/{session.institution_id}/months/{month}"
    assert submit(client, url, {}).status_code == 303
    assert submit(client, url, {"reason": ""}).status_code == 400  # a correction needs a reason
    assert submit(client, url, {"reason": "Исправлена ошибка"}).status_code == 303
    versions = db.session.scalars(select(MonthSignoff).order_by(MonthSignoff.version)).all()
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].figures["sessions_held"] >= 1 and versions[1].reason == "Исправлена ошибка"
    staff = make_user(Role.staff, institution=session.institution)
    client.post(
        "/auth/sign-out",
        data={"csrf_token": csrf_from(client.get("/staff/").get_data(as_text=True))},
    )
    sign_in(client, staff.email, PASSWORD)
    assert submit(client, url, {"reason": "x"}).status_code == 403


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
    _check_in(client, session, bookings[0], "attended")
    visit = _visit_of(bookings[0])
    submit(client, f"/staff/visits/{visit.id}", {"topic_id": str(topic.id), "summary": "Крыша"})
    question = db.session.scalars(select(Question)).one()
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
    assert bad.status_code == 400
