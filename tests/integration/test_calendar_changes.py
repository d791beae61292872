"""A date added to or removed from the working calendar brings the schedules it reaches in line at
once: in the administrator's request when they are few, else in a background job. Booked sessions
are kept and reported; a booking racing the change never lands in a withdrawn session."""

from __future__ import annotations

import logging
import threading
import time as clock_time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from receptions.audit.models import AuditEvent
from receptions.auth.models import Role, User
from receptions.booking import services as booking
from receptions.extensions import db
from receptions.schedules import services
from receptions.schedules.models import (
    SYSTEM_CANCEL_CODE,
    CalendarChange,
    CalendarDay,
    CalendarDayKind,
    ScheduledSession,
    SessionStatus,
)
from scheduling import WorkingCalendar
from tests.conftest import sign_in, submit
from tests.factories import PASSWORD, make_booking, make_iin, make_topic, make_user
from tests.integration.test_booking_race import _request as booking_request
from tests.integration.test_schedule_changes import TUESDAY, at, weekly

KZ = WorkingCalendar.for_years([2027])


@pytest.fixture
def app_config() -> dict[str, Any]:
    """A change reaching one schedule is followed in the request, two or more in the background."""
    return {"CALENDAR_CHANGE_INLINE_SCHEDULES": 1}


@pytest.fixture(autouse=True)
def frozen_clock(app) -> Iterator[None]:
    app.config["FROZEN_NOW"] = at(TUESDAY, 8)
    yield
    app.config.pop("FROZEN_NOW", None)


@pytest.fixture
def admin(client):
    user = make_user(Role.admin)
    sign_in(client, user.email, PASSWORD)
    return user


def schedule(head, **overrides: Any):
    """A weekly open-door day on Tuesdays from TUESDAY, moved to the working day before a day off."""
    values = weekly(day_off_policy="previous_working_day", **overrides)
    saved, _ = services.save_schedule(head, head.institution_id, values)
    return saved


def planned_dates(sched) -> set[date]:
    db.session.expire_all()
    return set(
        db.session.scalars(
            select(ScheduledSession.local_date).where(
                ScheduledSession.schedule_id == sched.id,
                ScheduledSession.status == SessionStatus.planned.value,
            )
        )
    )


def session_on(sched, day: date) -> ScheduledSession:
    db.session.expire_all()
    return db.session.scalars(
        select(ScheduledSession)
        .where(ScheduledSession.schedule_id == sched.id, ScheduledSession.local_date == day)
        .order_by(ScheduledSession.id)
    ).first()


def add_day(client, day: date, kind: str = "day_off", **headers: str):
    return submit(
        client,
        "/admin/calendar",
        {"day": day.isoformat(), "kind": kind, "note": "Постановление"},
        headers=headers or {"Accept-Language": "en"},
        follow_redirects=True,
    )


def remove_day(client, day: date):
    row = db.session.scalars(select(CalendarDay).where(CalendarDay.day == day)).one()
    return submit(
        client,
        f"/admin/calendar/{row.id}/delete",
        {},
        form_url="/admin/calendar",
        headers={"Accept-Language": "en"},
        follow_redirects=True,
    )


def last_change() -> CalendarChange:
    db.session.expire_all()
    return db.session.scalars(select(CalendarChange).order_by(CalendarChange.id.desc())).first()


# Tuesday 16 March 2027 is a working day; Monday 15 March is Constitution Day, so a session moved
# off the 16th goes back to Friday 12 March.
DAY = date(2027, 3, 16)
FRIDAY = date(2027, 3, 12)


def test_a_day_off_withdraws_the_free_session_at_once_and_removing_it_brings_it_back(client, admin):
    assert KZ.is_working_day(DAY) and KZ.previous_working_day(DAY) == FRIDAY
    head = make_user(Role.head)
    sched = schedule(head)
    session = session_on(sched, DAY)
    slot_id = session.slots[0].id
    assert client.get(f"/book/{slot_id}").status_code == 200

    page = add_day(client, DAY)
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "added 1, changed 0, withdrawn 1" in body
    withdrawn = session_on(sched, DAY)
    assert (withdrawn.status, withdrawn.cancel_code) == ("cancelled", SYSTEM_CANCEL_CODE)
    # The rule moves it to the working day before, past the holiday: a session there now.
    moved = session_on(sched, FRIDAY)
    assert moved.status == "planned" and moved.moved_from == DAY
    refused = client.get(f"/book/{slot_id}", headers={"Accept-Language": "en"})
    assert refused.status_code in (404, 409)
    assert "cancelled" in refused.get_data(as_text=True)

    body = remove_day(client, DAY).get_data(as_text=True)
    assert "added 0, changed 1, withdrawn 1" in body
    back = session_on(sched, DAY)
    assert back.id == session.id and back.status == "planned"  # the same session, its link too
    assert session_on(sched, FRIDAY).status == "cancelled"
    assert client.get(f"/book/{slot_id}").status_code == 200
    actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions[-4:] == [
        "calendar.day_added",
        "calendar.sessions_followed",
        "calendar.day_removed",
        "calendar.sessions_followed",
    ]


def test_a_transferred_working_day_gets_the_session_the_rule_moves_there(client, admin):
    # Monday 8 March 2027 is a public holiday: a Monday schedule meets on Friday 5 March; with
    # Saturday 6 March made a working day, it meets that Saturday instead.
    assert KZ.is_public_holiday(date(2027, 3, 8))
    friday, saturday = date(2027, 3, 5), date(2027, 3, 6)
    head = make_user(Role.head)
    sched = schedule(head, rrule="FREQ=WEEKLY;BYDAY=MO")
    assert friday in planned_dates(sched) and saturday not in planned_dates(sched)
    other = schedule(make_user(Role.head), rrule="FREQ=WEEKLY;BYDAY=WE")  # out of reach

    add_day(client, saturday, "working")
    dates = planned_dates(sched)
    assert saturday in dates and friday not in dates
    assert session_on(sched, saturday).moved_from == date(2027, 3, 8)
    change = last_change()
    assert (change.status, change.schedule_ids) == ("done", [sched.id])
    assert other.id not in change.schedule_ids


def test_a_first_working_monday_moves_later_in_its_month(client, admin):
    head = make_user(Role.head)
    sched = schedule(head, rrule="FREQ=MONTHLY;BYDAY=MO;X-WORKING=1")
    first, second = date(2027, 4, 5), date(2027, 4, 12)
    assert first in planned_dates(sched)
    add_day(client, first)
    dates = planned_dates(sched)
    assert first not in dates and second in dates
    remove_day(client, first)
    dates = planned_dates(sched)
    assert first in dates and second not in dates


def test_a_booked_session_on_a_new_day_off_is_kept_and_reported_where_it_is(client, admin):
    head = make_user(Role.head)
    sched = schedule(head)
    session = session_on(sched, DAY)
    make_booking(session.slots[0])

    body = add_day(client, DAY).get_data(as_text=True)
    kept = session_on(sched, DAY)
    assert kept.status == "planned" and kept.booked == 1
    assert last_change().conflict_ids == [session.id]
    assert "1 booked session does not match the calendar any more and was kept" in body
    institution = kept.institution
    assert institution.name_en in body
    assert f"/staff/institutions/{institution.id}/schedules" in body
    assert [s.id for s in services.conflicts(sched)] == [session.id]  # on the staff page too
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "calendar.sessions_followed")
    ).one()
    assert event.details["conflicts"] == 1

    # Cancelled by staff, it no longer needs attention.
    services.cancel_session(head, session.id, "Выходной день")
    page = client.get("/admin/calendar", headers={"Accept-Language": "en"})
    assert "All resolved" in page.get_data(as_text=True)


@pytest.mark.parametrize("locale", ["kk", "ru"])
def test_the_outcome_is_told_in_the_administrators_language(client, admin, locale):
    head = make_user(Role.head)
    sched = schedule(head)
    make_booking(session_on(sched, DAY).slots[0])
    english = (
        "Sessions brought in line with the calendar",
        "booked session does not match the calendar",
        "How sessions followed the calendar",
    )
    body = add_day(client, DAY, **{"Accept-Language": locale}).get_data(as_text=True)
    assert f'lang="{locale}"' in body
    assert not any(words in body for words in english)


def test_a_change_reaching_many_schedules_runs_in_the_background(app, client, admin):
    scheds = [schedule(make_user(Role.head)) for _ in range(2)]
    body = add_day(client, DAY).get_data(as_text=True)
    assert "The sessions of 2 schedules are being brought in line" in body
    assert "Waiting for the background job" in body
    change = last_change()
    assert change.status == "queued" and sorted(change.schedule_ids) == [s.id for s in scheds]
    # Bookable until the job runs (a booking then is kept as a conflict, never dropped).
    assert all(DAY in planned_dates(s) for s in scheds)

    result = app.test_cli_runner().invoke(args=["schedules", "calendar-changes"])
    assert result.exit_code == 0 and "calendar changes run: 1" in result.output
    assert all(DAY not in planned_dates(s) for s in scheds)
    change = last_change()
    assert (change.status, change.schedules_done, change.withdrawn) == ("done", 2, 2)
    again = app.test_cli_runner().invoke(args=["schedules", "calendar-changes"])
    assert "calendar changes run: 0" in again.output
    page = client.get("/admin/calendar", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Done" in page and "added 2, changed 0, withdrawn 2" in page


def test_an_abandoned_job_is_taken_over_where_it_stopped(app, client, admin):
    scheds = [schedule(make_user(Role.head)) for _ in range(3)]
    add_day(client, DAY)
    change = last_change()
    # A runner brought the first schedule in line, then its process died.
    change.status = "running"
    services.follow_calendar_in(change, change.schedule_ids[0])
    change.heartbeat_at = at(TUESDAY, 8) - timedelta(hours=1)
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["schedules", "materialise"])
    assert result.exit_code == 0
    change = last_change()
    assert (change.status, change.schedules_done, change.withdrawn) == ("done", 3, 3)
    assert all(DAY not in planned_dates(s) for s in scheds)


def test_with_redis_an_rq_worker_brings_the_schedules_in_line(
    app, client, admin, db_url, monkeypatch, own_rq_queue
):
    from rq import SimpleWorker

    from receptions.schedules import jobs

    redis_url, queue = own_rq_queue(jobs, "CHANGES")
    app.config["REDIS_URL"] = redis_url
    # The worker builds its own app from the environment, as `rq worker schedules` would, and
    # that app has the real clock: so has this test.
    monkeypatch.setenv("ASHYQ_ENV", "testing")
    monkeypatch.setenv("DATABASE_URL", db_url)
    app.config.pop("FROZEN_NOW")
    today = datetime.now(ZoneInfo("Asia/Almaty")).date()
    calendar = WorkingCalendar.for_years([today.year, today.year + 1])
    later = (today + timedelta(days=n) for n in range(14, 60))
    day = next(d for d in later if d.weekday() == TUESDAY.weekday() and calendar.is_working_day(d))
    scheds = [schedule(make_user(Role.head), valid_from=today) for _ in range(2)]
    assert all(day in planned_dates(s) for s in scheds)

    body = add_day(client, day).get_data(as_text=True)
    assert "Waiting for the background job" in body
    assert last_change().status == "queued" and queue.count == 1
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    db.session.rollback()
    change = last_change()
    assert (change.status, change.schedules_done, change.withdrawn) == ("done", 2, 2)
    assert all(day not in planned_dates(s) for s in scheds)
    assert jobs.run_pending() == 0


def test_with_redis_down_the_change_waits_for_the_cron(app, client, admin, caplog):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    scheds = [schedule(make_user(Role.head)) for _ in range(2)]
    with caplog.at_level(logging.WARNING, logger="receptions.jobs"):
        body = add_day(client, DAY).get_data(as_text=True)
    assert "Waiting for the background job" in body
    change = last_change()
    assert change.status == "queued"
    assert f"could not enqueue calendar change {change.id}" in caplog.text
    assert all(DAY in planned_dates(s) for s in scheds)

    result = app.test_cli_runner().invoke(args=["schedules", "calendar-changes"])
    assert result.exit_code == 0 and "calendar changes run: 1" in result.output
    change = last_change()
    assert (change.status, change.schedules_done, change.withdrawn) == ("done", 2, 2)
    assert all(DAY not in planned_dates(s) for s in scheds)


def test_bad_input_to_the_calendar_form_is_refused_with_a_message(client, admin):
    page = submit(
        client,
        "/admin/calendar",
        {"day": "16.03.2027x", "kind": "holiday"},
        headers={"Accept-Language": "ru"},
    )
    assert page.status_code == 422
    body = page.get_data(as_text=True)
    assert 'lang="ru"' in body and 'aria-invalid="true"' in body
    assert db.session.scalars(select(CalendarChange)).first() is None
    add_day(client, DAY)
    again = submit(client, "/admin/calendar", {"day": DAY.isoformat(), "kind": "working"})
    assert again.status_code == 409
    gone = client.post("/admin/calendar/999999/delete", data={})
    assert gone.status_code in (400, 404)


# --- a booking racing the change --------------------------------------------------------------


def _waiting_on_a_lock(backend: str, thread: threading.Thread) -> None:
    """Until `thread` waits for a lock held here (PostgreSQL shows it; SQLite waits in its busy
    handler, which shows nothing: it is given a moment) or has finished."""
    deadline = clock_time.monotonic() + (10 if backend == "postgresql" else 0.5)
    while thread.is_alive() and clock_time.monotonic() < deadline:
        if backend == "postgresql":
            with db.engine.connect() as connection:
                waiting = connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock'"
                    )
                ).scalar()
            if waiting:
                return
        clock_time.sleep(0.02)


def _in_thread(app, work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """`work` in a thread with an application context (and a database session) of its own."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        with app.test_request_context():
            try:
                outcome["value"] = work()
            except Exception as error:  # handed to the test, which names it
                outcome["error"] = error
            finally:
                db.session.remove()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _add_day_off(admin_id: int) -> CalendarChange:
    admin = db.session.get(User, admin_id)
    return services.add_calendar_day(admin, DAY, CalendarDayKind.day_off, "")


@pytest.mark.realtime  # threads waiting on each other's locks, in real time
def test_a_seat_taken_while_the_day_off_is_added_keeps_the_session(app, backend):
    admin_id = make_user(Role.admin).id
    sched = schedule(make_user(Role.head))
    session = session_on(sched, DAY)
    slot_id = session.slots[0].id
    db.session.commit()
    # A booking has taken its seat and not yet committed when the administrator adds the day.
    with db.engine.connect() as citizen:
        transaction = citizen.begin()
        assert citizen.execute(booking._TAKE_SEAT, {"slot_id": slot_id}).rowcount == 1
        thread, outcome = _in_thread(app, lambda: _add_day_off(admin_id))
        _waiting_on_a_lock(backend, thread)
        transaction.commit()
    thread.join(timeout=60)
    assert "error" not in outcome, outcome
    kept = session_on(sched, DAY)
    assert kept.status == "planned" and kept.booked == 1
    assert last_change().conflict_ids == [session.id]


@pytest.mark.realtime  # threads waiting on each other's locks, in real time
def test_a_booking_during_the_change_never_lands_in_a_withdrawn_session(app, backend, monkeypatch):
    admin = make_user(Role.admin)
    sched = schedule(make_user(Role.head))
    session = session_on(sched, DAY)
    slot_id, topic_id = session.slots[0].id, make_topic().id
    db.session.commit()
    finish = services.finish_calendar_change
    citizen: dict[str, Any] = {}

    def finish_while_a_citizen_books(change: CalendarChange) -> None:
        # The change has withdrawn the session and not yet committed: a citizen submits.
        finish(change)
        thread, outcome = _in_thread(
            app, lambda: booking.book_slot(booking_request(slot_id, make_iin(4242), topic_id))
        )
        citizen.update(thread=thread, outcome=outcome)
        _waiting_on_a_lock(backend, thread)

    monkeypatch.setattr(services, "finish_calendar_change", finish_while_a_citizen_books)
    services.add_calendar_day(admin, DAY, CalendarDayKind.day_off, "")
    citizen["thread"].join(timeout=60)
    assert isinstance(citizen["outcome"].get("error"), booking.SlotUnavailable)
    withdrawn = session_on(sched, DAY)
    assert withdrawn.status == "cancelled" and withdrawn.booked == 0
    assert db.session.scalars(select(CalendarChange.withdrawn)).one() == 1
