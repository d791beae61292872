"""Changing a schedule after its sessions have a past: sessions under way, held or cancelled by
staff, sessions citizens booked and cancelled, paused and resumed schedules, the region's day
and its exceptions. Every change is saved; none of them fails on what is already stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from flask_login import login_user
from sqlalchemy import func, select

from receptions.auth.models import Role
from receptions.booking.models import Booking
from receptions.errors import DomainError
from receptions.extensions import db
from receptions.institutions import services as institutions
from receptions.schedules import services
from receptions.schedules.models import (
    SYSTEM_CANCEL_CODE,
    Schedule,
    ScheduledSession,
    ScheduleStatus,
    SessionStatus,
)
from receptions.visits.models import Visit
from tests.conftest import sign_in, submit
from tests.factories import (
    PASSWORD,
    make_booking,
    make_district,
    make_institution,
    make_region,
    make_user,
)

# Tuesday 2 March 2027 in Almaty (UTC+05), a working day; the Tuesdays after it are too.
TUESDAY = date(2027, 3, 2)
NEXT_TUESDAY = TUESDAY + timedelta(days=7)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """`hour` o'clock in Almaty on `day`, in UTC."""
    return datetime(day.year, day.month, day.day, hour - 5, minute, tzinfo=UTC)


def weekly(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "kind": "open_door",
        "host_name": "Айгүл Сериковна",
        "host_position": "Директор",
        "rrule": "FREQ=WEEKLY;BYDAY=TU",
        "start_time": time(10),
        "end_time": time(12),
        "slot_minutes": 30,
        "capacity": 5,
        "walk_in_places": 0,
        "breaks": [],
        "day_off_policy": "skip",
        "valid_from": TUESDAY,
        "valid_until": None,
        "location": "Кабинет 101",
        "exclusions": [],
        "booking_opens_days": 30,
        "booking_closes_hours": 2,
        "cancel_hours_before": 2,
    }
    values.update(overrides)
    return values


@pytest.fixture
def clock(app) -> Iterator[Any]:
    """Sets the application's clock: `clock(moment)`."""

    def set_to(moment: datetime) -> None:
        app.config["FROZEN_NOW"] = moment

    set_to(at(TUESDAY, 8))
    yield set_to
    app.config.pop("FROZEN_NOW", None)


@pytest.fixture
def head(app, client):
    user = make_user(Role.head)
    with app.test_request_context():
        login_user(user)
        yield user


def save(head, schedule_id: int | None = None, **overrides: Any) -> Schedule:
    schedule, _ = services.save_schedule(
        head, head.institution_id, weekly(**overrides), schedule_id=schedule_id
    )
    return schedule


def sessions_on(day: date, schedule: Schedule | None = None) -> list[ScheduledSession]:
    query = select(ScheduledSession).where(ScheduledSession.local_date == day)
    if schedule is not None:
        query = query.where(ScheduledSession.schedule_id == schedule.id)
    db.session.expire_all()
    return list(db.session.scalars(query.order_by(ScheduledSession.starts_at)))


def planned_on(day: date) -> list[ScheduledSession]:
    return [s for s in sessions_on(day) if s.status == SessionStatus.planned]


def test_a_held_session_settles_its_day(head, clock):
    schedule = save(head)
    (today,) = sessions_on(TUESDAY)
    clock(at(TUESDAY, 17))
    today.status, today.closed_at, today.received_count = SessionStatus.held.value, at(TUESDAY, 12), 4
    db.session.commit()
    save(head, schedule.id, location="Актовый зал")  # the same times: nothing to do today
    save(head, schedule.id, start_time=time(18), end_time=time(19))  # later than now, today
    (kept,) = sessions_on(TUESDAY)
    assert kept.id == today.id and kept.status == SessionStatus.held
    assert kept.starts_at == at(TUESDAY, 10) and kept.received_count == 4
    (next_week,) = planned_on(NEXT_TUESDAY)
    assert next_week.starts_at == at(NEXT_TUESDAY, 18)


def test_a_session_under_way_is_neither_withdrawn_nor_cancelled(head, clock):
    schedule = save(head)
    (today,) = sessions_on(TUESDAY)
    clock(at(TUESDAY, 10, 30))
    db.session.add(
        Visit(session_id=today.id, institution_id=today.institution_id, citizen_name="Әлия Қасым")
    )
    db.session.commit()
    services.set_schedule_status(head, schedule.id, ScheduleStatus.paused)
    assert [s.status for s in sessions_on(TUESDAY)] == [SessionStatus.planned]
    assert planned_on(NEXT_TUESDAY) == []
    with pytest.raises(DomainError, match="Басталған кездесуді болдырмауға болмайды"):
        services.cancel_session(head, today.id, "Директор заболел")
    assert sessions_on(TUESDAY)[0].status == SessionStatus.planned
    # A rule that puts today's session earlier than now makes none in the past.
    services.set_schedule_status(head, schedule.id, ScheduleStatus.active)
    save(head, schedule.id, start_time=time(15), end_time=time(17))
    assert [s.id for s in sessions_on(TUESDAY)] == [today.id]


def test_a_day_staff_cancelled_stays_cancelled_whatever_the_time(head, clock):
    schedule = save(head)
    (cancelled,) = sessions_on(NEXT_TUESDAY)
    services.cancel_session(head, cancelled.id, "Санитарный день")
    save(head, schedule.id, start_time=time(11), end_time=time(13))
    assert planned_on(NEXT_TUESDAY) == []
    save(head, schedule.id)  # back to 10:00
    assert planned_on(NEXT_TUESDAY) == []
    (still,) = sessions_on(NEXT_TUESDAY)
    assert still.id == cancelled.id and still.cancel_code != SYSTEM_CANCEL_CODE
    assert [s.starts_at for s in planned_on(NEXT_TUESDAY + timedelta(days=7))] == [
        at(NEXT_TUESDAY + timedelta(days=7), 10)
    ]


def test_pause_change_resume_and_change_back(head, clock):
    schedule = save(head)
    services.set_schedule_status(head, schedule.id, ScheduleStatus.paused)
    save(head, schedule.id, start_time=time(11), end_time=time(13))
    services.set_schedule_status(head, schedule.id, ScheduleStatus.active)
    assert [s.starts_at for s in planned_on(NEXT_TUESDAY)] == [at(NEXT_TUESDAY, 11)]
    save(head, schedule.id)
    assert [s.starts_at for s in planned_on(NEXT_TUESDAY)] == [at(NEXT_TUESDAY, 10)]
    planned = db.session.scalar(
        select(func.count()).select_from(ScheduledSession).where(ScheduledSession.status == "planned")
    )
    tuesdays = db.session.scalar(
        select(func.count(func.distinct(ScheduledSession.local_date))).where(
            ScheduledSession.local_date > TUESDAY
        )
    )
    assert planned == tuesdays + 1  # one a Tuesday, today's included


def cancelled_booking(session: ScheduledSession) -> Booking:
    booking = make_booking(session.slots[0])
    booking.status = "cancelled_by_citizen"
    session.slots[0].booked -= 1
    db.session.commit()
    return booking


def test_a_session_booked_and_cancelled_keeps_its_history_and_follows_the_rule(head, clock):
    schedule = save(head)
    (session,) = sessions_on(NEXT_TUESDAY)
    booking = cancelled_booking(session)
    first_slot = booking.slot_id
    save(head, schedule.id, start_time=time(11), end_time=time(13))
    old, new = sessions_on(NEXT_TUESDAY)
    assert (old.id, old.status, old.cancel_code) == (session.id, "cancelled", SYSTEM_CANCEL_CODE)
    assert old.slots[0].id == first_slot and db.session.get(Booking, booking.id).slot_id == first_slot
    assert new.status == "planned" and new.starts_at == at(NEXT_TUESDAY, 11)
    # Back to 10:00: the session the citizen had booked comes back, as it was.
    save(head, schedule.id)
    (again,) = planned_on(NEXT_TUESDAY)
    assert again.id == session.id and again.slots[0].id == first_slot
    # The same start with other slots: a new session at 10:00, the old one keeps its slots.
    save(head, schedule.id, end_time=time(13))
    (longer,) = planned_on(NEXT_TUESDAY)
    assert longer.id != session.id and len(longer.slots) == 6
    assert db.session.get(ScheduledSession, session.id).cancel_code == SYSTEM_CANCEL_CODE
    assert db.session.get(Booking, booking.id).slot_id == first_slot


def test_more_seats_reach_a_booked_session_and_fewer_make_a_conflict(head, clock):
    schedule = save(head)
    (session,) = sessions_on(NEXT_TUESDAY)
    booking = make_booking(session.slots[0])
    schedule, result = services.save_schedule(
        head, head.institution_id, weekly(capacity=10), schedule_id=schedule.id
    )
    assert result.conflicts == []
    (same,) = planned_on(NEXT_TUESDAY)
    assert same.id == session.id and {s.capacity for s in same.slots} == {10}
    assert db.session.get(Booking, booking.id).status == "booked"
    _, fewer = services.save_schedule(
        head, head.institution_id, weekly(capacity=3), schedule_id=schedule.id
    )
    assert [s.id for s in fewer.conflicts] == [session.id]
    assert {s.capacity for s in planned_on(NEXT_TUESDAY)[0].slots} == {10}


def test_sessions_beyond_the_horizon_follow_a_pause(app, head, clock):
    schedule = save(head)
    services.materialise_all(days=200)
    db.session.commit()
    last = db.session.scalar(select(func.max(ScheduledSession.local_date)))
    assert last > TUESDAY + timedelta(days=services.horizon_days())
    services.set_schedule_status(head, schedule.id, ScheduleStatus.paused)
    assert [s.local_date for s in sessions_on(last) if s.status == "planned"] == []
    future = db.session.scalars(
        select(ScheduledSession).where(
            ScheduledSession.status == "planned", ScheduledSession.local_date > TUESDAY
        )
    ).all()
    assert future == []


def test_a_booking_window_that_closes_before_it_opens_is_refused(client, head, clock):
    with pytest.raises(services.ScheduleRejected) as refused:
        save(head, booking_opens_days=1, booking_closes_hours=48)
    assert [e.field for e in refused.value.invalid.errors] == ["booking_closes_hours"]
    assert db.session.scalar(select(func.count()).select_from(Schedule)) == 0


def test_the_form_says_why_the_booking_window_is_refused(client, app):
    head = make_user(Role.head)
    sign_in(client, head.email, PASSWORD)
    from tests.integration.test_schedules import form

    response = submit(
        client,
        f"/staff/institutions/{head.institution_id}/schedules/new",
        form(booking_opens_days="1", booking_closes_hours="48"),
        headers={"Accept-Language": "ru"},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="booking_closes_hours-error"' in page
    assert "Запись не может закрыться раньше, чем откроется" in page


def rule_values(**overrides: Any) -> dict[str, Any]:
    values = {
        k: v
        for k, v in weekly(rrule="FREQ=MONTHLY;BYDAY=-1FR", start_time=time(10), end_time=time(13))
        .items()
        if k in services.SPEC_FIELDS
    }
    values.update(overrides)
    return values


@pytest.fixture
def region_officer(app):
    region = make_region()
    officer = make_user(Role.region_officer, region=region)
    with app.test_request_context():
        login_user(officer)
        yield officer


def open_door_schedules(institution_id: int) -> list[Schedule]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(Schedule).where(
                Schedule.institution_id == institution_id,
                Schedule.kind == "open_door",
                Schedule.status == "active",
            )
        )
    )


def test_withdrawing_an_exception_gives_one_open_door_day_again(region_officer, clock):
    institution = make_institution(make_district(region_officer.region))
    services.set_unified_rule(region_officer, region_officer.region_id, rule_values())
    (inherited,) = open_door_schedules(institution.id)
    services.allow_exception(region_officer, institution.id, "Работает по сменам")
    own_extra, _ = services.save_schedule(
        region_officer,
        institution.id,
        weekly(rrule="FREQ=MONTHLY;BYDAY=1MO", host_name="Ерлан Болатұлы"),
    )
    assert len(open_door_schedules(institution.id)) == 2
    services.withdraw_exception(region_officer, institution.id)
    (following,) = open_door_schedules(institution.id)
    assert following.id == inherited.id and following.unified_rule_id is not None
    assert db.session.get(Schedule, own_extra.id).status == "paused"
    last_fridays = db.session.scalars(
        select(ScheduledSession.local_date).where(
            ScheduledSession.institution_id == institution.id,
            ScheduledSession.status == "planned",
        )
    ).all()
    assert len(last_fridays) == len(set(last_fridays))
    assert all(d.weekday() == 4 for d in last_fridays)
    with pytest.raises(DomainError):
        services.withdraw_exception(region_officer, institution.id)


def test_an_institution_new_to_the_region_gets_its_open_door_day(region_officer, clock):
    district = make_district(region_officer.region)
    services.set_unified_rule(region_officer, region_officer.region_id, rule_values())
    values = {
        "type": "school",
        "name_kk": "№7 мектеп",
        "name_ru": "Школа №7",
        "name_en": "School No. 7",
        "active": True,
    }
    created = institutions.create_institution(region_officer, district.id, values)
    (schedule,) = open_door_schedules(created.id)
    assert schedule.unified_rule_id is not None and schedule.sessions
    # Moved to a region with another rule (or none), it leaves the first region's day.
    elsewhere = make_district(make_region())
    admin = make_user(Role.admin)
    institutions.update_institution(admin, created.id, elsewhere.id, values)
    assert open_door_schedules(created.id) == []


def test_only_the_akimat_pauses_the_region_s_open_door_day(app, region_officer, clock):
    institution = make_institution(make_district(region_officer.region))
    services.set_unified_rule(region_officer, region_officer.region_id, rule_values())
    (inherited,) = open_door_schedules(institution.id)
    staff = make_user(Role.head, institution=institution)
    with app.test_request_context():
        login_user(staff)
        with pytest.raises(DomainError, match="облыс әкімдігі"):
            services.set_schedule_status(staff, inherited.id, ScheduleStatus.paused)
    assert db.session.get(Schedule, inherited.id).status == "active"
    client = app.test_client()
    sign_in(client, staff.email, PASSWORD)
    page = client.get(f"/staff/institutions/{institution.id}/schedules").get_data(as_text=True)
    assert f"/staff/schedules/{inherited.id}/status" not in page


def test_a_session_that_is_no_longer_moved_stops_saying_so(head, clock):
    """Monday 8 March 2027 is a holiday: the Monday session moves to Friday the 5th. Made a
    Friday schedule, that session is simply Friday's, at the same time."""
    schedule = save(head, rrule="FREQ=WEEKLY;BYDAY=MO", day_off_policy="previous_working_day")
    (moved,) = sessions_on(date(2027, 3, 5))
    assert moved.moved_from == date(2027, 3, 8)
    save(head, schedule.id, rrule="FREQ=WEEKLY;BYDAY=FR", day_off_policy="previous_working_day")
    (same,) = sessions_on(date(2027, 3, 5))
    assert same.id == moved.id and same.moved_from is None
