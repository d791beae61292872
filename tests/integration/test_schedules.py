"""Publishing schedules: sessions and slots follow the rule, booked sessions are never dropped."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from receptions.audit.models import AuditEvent
from receptions.auth.models import Role
from receptions.booking.models import Booking
from receptions.clock import now as clock_now
from receptions.errors import DomainError
from receptions.extensions import db
from receptions.institutions.models import Institution
from receptions.notify.models import Notification
from receptions.schedules import services
from receptions.schedules.models import (
    CalendarDay,
    Schedule,
    ScheduledSession,
    SessionStatus,
    Slot,
)
from scheduling import WorkingCalendar
from tests.conftest import sign_in, submit
from tests.factories import (
    PASSWORD,
    make_booking,
    make_district,
    make_institution,
    make_region,
    make_user,
)

ALMATY = ZoneInfo("Asia/Almaty")


def today() -> date:
    return datetime.now(ALMATY).date()


def next_weekday(weekday: int, after: date | None = None) -> date:
    start = (after or today()) + timedelta(days=1)
    return start + timedelta(days=(weekday - start.weekday()) % 7)


def _working_tuesdays_in_horizon() -> list[date]:
    """Every Tuesday of the materialisation horizon that is not a day off, by the calendar."""
    start = today()
    end = start + timedelta(days=services.horizon_days())
    kz = WorkingCalendar.for_years(range(start.year, end.year + 1))
    days = (start + timedelta(days=n) for n in range((end - start).days + 1))
    return [d for d in days if d.weekday() == 1 and kz.is_working_day(d)]


def form(**overrides):
    values = {
        "kind": "reception",
        "host_name": "Айгүл Сериковна",
        "host_position": "Директор",
        "frequency": "WEEKLY",
        "weekdays": ["1"],
        "ordinal": "-1",
        "interval": "1",
        "start_time": "15:00",
        "end_time": "17:00",
        "slot_minutes": "15",
        "capacity": "1",
        "walk_in_places": "0",
        "break_start": "",
        "break_end": "",
        "valid_from": today().isoformat(),
        "valid_until": "",
        "exclusions": "",
        "day_off_policy": "skip",
        "location": "Кабинет 101",
        "booking_opens_days": "30",
        "booking_closes_hours": "2",
        "cancel_hours_before": "2",
        "save": "1",
    }
    values.update(overrides)
    return values


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def head(client):
    user = make_user(Role.head)
    sign_in(client, user.email, PASSWORD)
    return user


def _new(client, institution_id, **overrides):
    return submit(
        client,
        f"/staff/institutions/{institution_id}/schedules/new",
        form(**overrides),
        headers={"Accept-Language": "en"},
    )


def _edit(client, schedule, **overrides):
    """Send the schedule's edit form, with the version it was read at unless one is given."""
    overrides.setdefault("version", str(schedule.version))
    return submit(client, f"/staff/schedules/{schedule.id}/edit", form(**overrides))


def test_one_host_cannot_receive_in_two_schedules_at_once(client, head):
    assert _new(client, head.institution_id).status_code == 302
    # Same person (spelt with other spaces and case), Tuesdays 16:00-18:00: overlaps 15:00-17:00.
    clash = _new(
        client,
        head.institution_id,
        host_name="  айгүл  сериковна ",
        start_time="16:00",
        end_time="18:00",
    )
    assert clash.status_code == 422
    assert "already receives citizens at this time" in clash.get_data(as_text=True)
    assert count(Schedule) == 1
    # Right after the first one, or another person at the same time, is fine.
    assert _new(client, head.institution_id, start_time="17:00", end_time="18:00").status_code == 302
    assert _new(client, head.institution_id, host_name="Ерлан Болатұлы").status_code == 302
    assert count(Schedule) == 3


def test_weekly_reception_is_materialised_into_sessions_and_slots(client, head):
    response = _new(client, head.institution_id, break_start="16:00", break_end="16:15")
    assert response.status_code == 302
    schedule = db.session.scalars(select(Schedule)).one()
    sessions = db.session.scalars(
        select(ScheduledSession).order_by(ScheduledSession.starts_at)
    ).all()
    assert [s.local_date for s in sessions] == _working_tuesdays_in_horizon()
    first = sessions[0]
    assert first.local_date.weekday() == 1
    assert first.starts_at.astimezone(ALMATY).time() == time(15)
    assert first.starts_at.utcoffset() == timedelta(0)
    assert first.starts_at.astimezone(ALMATY).utcoffset() == timedelta(hours=5)
    starts = [s.starts_at.astimezone(ALMATY).strftime("%H:%M") for s in first.slots]
    assert starts == ["15:00", "15:15", "15:30", "15:45", "16:15", "16:30", "16:45"]
    assert {s.capacity for s in first.slots} == {1}
    assert count(AuditEvent, AuditEvent.action == "schedule.saved") == 1
    # Materialising again changes nothing.
    assert services.materialise_schedule(schedule).created == 0


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"start_time": "18:00", "end_time": "17:00"}, "end_time", "later than the start time"),
        ({"capacity": "0"}, "capacity", ""),
        ({"capacity": "3"}, "capacity", "exactly one citizen"),
        ({"slot_minutes": "180"}, "slot_minutes", "longer than the session"),
        ({"weekdays": []}, "weekdays", ""),
        ({"valid_until": "2020-01-01"}, "valid_until", "cannot be before the first"),
        ({"break_start": "19:00", "break_end": "19:30"}, "break_start", "inside the session"),
        ({"exclusions": "31.12.2026"}, "exclusions", "2026-12-31"),
        ({"start_time": "25:99"}, "start_time", ""),
    ],
)
def test_bad_schedule_gets_a_field_message_and_saves_nothing(
    client, head, overrides, field, message
):
    response = _new(client, head.institution_id, **overrides)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'id="{field}-error"' in page
    assert message in page
    assert count(Schedule) == 0 and count(ScheduledSession) == 0 and count(AuditEvent) == 0


def test_preview_shows_the_next_six_sessions_without_saving(client, head):
    response = _new(client, head.institution_id, save=None, preview="1")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert page.count("<li>", page.index("preview-list")) >= 6
    assert count(Schedule) == 0


def test_live_preview_fragment_reports_errors(client, head):
    url = f"/staff/institutions/{head.institution_id}/schedules/preview"
    bad = submit(
        client,
        url,
        form(end_time="14:00"),
        form_url=f"/staff/institutions/{head.institution_id}/schedules/new",
    )
    assert bad.status_code == 422


def test_editing_keeps_booked_sessions_and_lists_them_as_conflicts(client, head):
    _new(client, head.institution_id)
    schedule = db.session.scalars(select(Schedule)).one()
    booked_session = db.session.scalars(
        select(ScheduledSession).order_by(ScheduledSession.starts_at)
    ).first()
    booked_session.slots[0].booked = 1  # a citizen holds the first slot
    db.session.commit()
    response = _edit(client, schedule, start_time="10:00", end_time="12:00")
    assert response.status_code == 302
    db.session.expire_all()
    kept = db.session.get(ScheduledSession, booked_session.id)
    assert kept.status == SessionStatus.planned
    assert kept.starts_at.astimezone(ALMATY).time() == time(15)  # untouched
    others = db.session.scalars(
        select(ScheduledSession).where(
            ScheduledSession.id != kept.id, ScheduledSession.status == "planned"
        )
    ).all()
    assert others and all(s.starts_at.astimezone(ALMATY).time() == time(10) for s in others)
    page = client.get(f"/staff/institutions/{head.institution_id}/schedules").get_data(as_text=True)
    assert f"/staff/sessions/{kept.id}/cancel" in page
    assert "conflict-row" in page


def test_stale_edit_is_a_409(client, head):
    _new(client, head.institution_id)
    schedule = db.session.scalars(select(Schedule)).one()
    assert _edit(client, schedule, version=str(schedule.version - 1 or 99)).status_code == 409


def test_an_edit_with_a_version_in_other_digits_is_saved_without_the_check(client, head):
    _new(client, head.institution_id)
    schedule = db.session.scalars(select(Schedule)).one()
    response = _edit(client, schedule, start_time="10:00", end_time="12:00", version="²")
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Schedule, schedule.id).start_time == time(10)


def test_pause_withdraws_unbooked_sessions_and_resume_brings_them_back(client, head):
    _new(client, head.institution_id)
    schedule = db.session.scalars(select(Schedule)).one()
    planned = count(ScheduledSession, ScheduledSession.status == "planned")
    manage = f"/staff/institutions/{head.institution_id}/schedules"
    assert (
        submit(
            client, f"/staff/schedules/{schedule.id}/status", {"status": "paused"}, form_url=manage
        ).status_code
        == 302
    )
    assert count(ScheduledSession, ScheduledSession.status == "planned") == 0
    submit(client, f"/staff/schedules/{schedule.id}/status", {"status": "active"}, form_url=manage)
    assert count(ScheduledSession, ScheduledSession.status == "planned") == planned
    assert (
        submit(
            client, f"/staff/schedules/{schedule.id}/status", {"status": "gone"}, form_url=manage
        ).status_code
        == 400
    )


def test_cancelling_a_session_needs_a_reason_and_shows_in_the_feed(client, head):
    _new(client, head.institution_id)
    # The first session still to come: on a Tuesday evening today's has ended already, and a
    # session in the past cannot be cancelled.
    session = db.session.scalars(
        select(ScheduledSession)
        .where(ScheduledSession.starts_at > clock_now())
        .order_by(ScheduledSession.starts_at)
    ).first()
    booking = make_booking(session.slots[0], email="saule@example.kz")
    url = f"/staff/sessions/{session.id}/cancel"
    assert submit(client, url, {"reason": ""}).status_code == 422
    assert count(Notification) == 0
    assert submit(client, url, {"reason": "Директор в командировке"}).status_code == 302
    db.session.expire_all()
    cancelled = db.session.get(ScheduledSession, session.id)
    assert cancelled.status == "cancelled" and cancelled.sequence == 1
    # The citizen who booked is told, by SMS and e-mail, with the reason.
    assert db.session.get(Booking, booking.id).status == "cancelled_by_institution"
    told = db.session.scalars(select(Notification).where(Notification.booking_id == booking.id))
    assert {(n.channel, n.template) for n in told} == {
        ("sms", "session_cancelled"),
        ("email", "session_cancelled"),
    }
    feed = client.get(f"/institutions/{head.institution_id}/calendar.ics").get_data(as_text=True)
    assert "STATUS:CANCELLED" in feed and "SEQUENCE:1" in feed
    # Cancelled by staff, it stays cancelled when the schedule is materialised again.
    services.materialise_schedule(cancelled.schedule)
    db.session.commit()
    assert db.session.get(ScheduledSession, session.id).status == "cancelled"
    assert submit(client, url, {"reason": "again"}).status_code == 409


def test_other_institutions_schedules_are_out_of_reach(client, head):
    other = make_institution()
    assert client.get(f"/staff/institutions/{other.id}/schedules").status_code == 404
    assert _new_status(client, other.id) == 404


def _new_status(client, institution_id):
    return client.get(f"/staff/institutions/{institution_id}/schedules/new").status_code


def test_extra_day_off_moves_the_session_to_the_previous_working_day(app, client):
    admin = make_user(Role.admin)
    institution = make_institution()
    # A Thursday that is a working day with a working Wednesday before it, whatever today is.
    kz = WorkingCalendar.for_years(range(today().year, today().year + 2))
    thursday = next_weekday(3, today() + timedelta(days=7))
    while not (kz.is_working_day(thursday) and kz.is_working_day(thursday - timedelta(days=1))):
        thursday = next_weekday(3, thursday)
    sign_in(client, admin.email, PASSWORD)
    response = submit(
        client,
        "/admin/calendar",
        {"day": thursday.isoformat(), "kind": "day_off", "note": "Постановление"},
    )
    assert response.status_code == 302
    assert count(CalendarDay) == 1
    _new(client, institution.id, weekdays=["3"], day_off_policy="previous_working_day")
    dates = set(db.session.scalars(select(ScheduledSession.local_date)))
    assert thursday not in dates
    moved = db.session.scalars(
        select(ScheduledSession).where(ScheduledSession.moved_from == thursday)
    ).one()
    assert moved.local_date == thursday - timedelta(days=1)
    # Adding the same date twice is a conflict, not a crash.
    again = submit(client, "/admin/calendar", {"day": thursday.isoformat(), "kind": "working"})
    assert again.status_code == 409


def test_materialise_command_is_idempotent(app, client, head):
    _new(client, head.institution_id)
    runner = app.test_cli_runner()
    first = runner.invoke(args=["schedules", "materialise", "--days", "200"])
    assert first.exit_code == 0, first.output
    assert "created" in first.output and "conflicts 0" in first.output
    second = runner.invoke(args=["schedules", "materialise", "--days", "200"])
    assert "created 0, updated 0, withdrawn 0, conflicts 0" in second.output
    assert count(Slot) > 0


def test_region_officer_sets_the_unified_open_door_day(client):
    region, other_region = make_region(), make_region()
    institutions = [make_institution(make_district(region)) for _ in range(3)]
    outsider = make_institution(make_district(other_region))
    officer = make_user(Role.region_officer, region=region)
    sign_in(client, officer.email, PASSWORD)
    url = f"/staff/regions/{region.id}/open-door-day"
    values = {
        k: v
        for k, v in form(
            frequency="MONTHLY",
            weekdays=["4"],
            ordinal="-1",
            start_time="10:00",
            end_time="13:00",
            slot_minutes="30",
            capacity="5",
            walk_in_places="10",
        ).items()
        if k
        not in (
            "kind",
            "host_name",
            "host_position",
            "location",
            "exclusions",
            "booking_opens_days",
            "booking_closes_hours",
            "cancel_hours_before",
        )
    }
    assert submit(client, url, values).status_code == 302
    schedules = db.session.scalars(select(Schedule)).all()
    assert {s.institution_id for s in schedules} == {i.id for i in institutions}
    assert all(s.kind == "open_door" and s.unified_rule_id for s in schedules)
    sessions = db.session.scalars(select(ScheduledSession)).all()
    assert sessions
    for session in sessions:  # the last Friday of its month, or moved from it before a holiday
        rule_date = session.moved_from or session.local_date
        assert rule_date.weekday() == 4 and (rule_date + timedelta(days=7)).month != rule_date.month
        assert session.walk_in_places == 10
    assert count(ScheduledSession, ScheduledSession.institution_id == outsider.id) == 0
    # The district page announces the region's open-door days.
    district = institutions[0].district
    page = client.get(f"/regions/{region.code}/{district.slug}").get_data(as_text=True)
    assert institutions[0].name_kk in page

    # An exception detaches the institution's schedule so its staff may edit it.
    exempt = institutions[0]
    response = submit(
        client,
        f"/staff/institutions/{exempt.id}/unified-exception",
        {"reason": "Работает по сменам"},
        form_url=url,
    )
    assert response.status_code == 302
    db.session.expire_all()
    own = db.session.scalars(select(Schedule).where(Schedule.institution_id == exempt.id)).one()
    assert own.unified_rule_id is None
    # Changing the rule now leaves the exempt institution alone.
    submit(client, url, {**values, "start_time": "11:00", "end_time": "14:00"})
    db.session.expire_all()
    assert db.session.get(Schedule, own.id).start_time == time(10)
    assert {
        s.start_time
        for s in db.session.scalars(select(Schedule).where(Schedule.unified_rule_id.isnot(None)))
    } == {time(11)}


def test_staff_cannot_edit_an_inherited_open_door_day(client):
    region = make_region()
    institution = make_institution(make_district(region))
    admin = make_user(Role.admin)
    services_values = {
        "rrule": "FREQ=MONTHLY;BYDAY=-1FR",
        "start_time": time(10),
        "end_time": time(13),
        "slot_minutes": 30,
        "capacity": 5,
        "walk_in_places": 0,
        "breaks": [],
        "day_off_policy": "skip",
        "valid_from": today(),
        "valid_until": None,
    }
    from flask_login import login_user

    with client.application.test_request_context():
        login_user(admin)
        services.set_unified_rule(admin, region.id, services_values)
    staff = make_user(Role.staff, institution=institution)
    sign_in(client, staff.email, PASSWORD)
    schedule = db.session.scalars(select(Schedule)).one()
    response = client.get(f"/staff/schedules/{schedule.id}/edit")
    assert response.status_code == 302
    forced = submit(
        client,
        f"/staff/schedules/{schedule.id}/edit",
        form(start_time="08:00"),
        form_url=f"/staff/institutions/{institution.id}/schedules/new",
    )
    assert forced.status_code == 302
    db.session.expire_all()
    assert db.session.get(Schedule, schedule.id).start_time == time(10)
    with pytest.raises(DomainError):
        services.save_schedule(
            staff, institution.id, {**services_values, "kind": "open_door"}, schedule_id=schedule.id
        )


@pytest.mark.parametrize("role", [Role.district_officer, Role.staff])
def test_only_regional_officers_set_the_unified_day(client, role):
    region = make_region()
    user = make_user(role)
    sign_in(client, user.email, PASSWORD)
    assert client.get(f"/staff/regions/{region.id}/open-door-day").status_code == 403


def test_region_officer_of_another_region_gets_404(client):
    officer = make_user(Role.region_officer)
    other = make_region()
    sign_in(client, officer.email, PASSWORD)
    assert client.get(f"/staff/regions/{other.id}/open-door-day").status_code == 404


def test_every_scheduling_error_code_has_a_message():
    from receptions.schedules.forms import CODE_MESSAGES
    from scheduling.errors import ALL_CODES

    assert set(CODE_MESSAGES) == set(ALL_CODES)


def test_a_new_schedule_leaves_the_room_empty_so_citizens_read_the_address_in_their_language(
    client, head
):
    """The form no longer copies the institution's address, in the head's language, into the
    one-language room field: every citizen then read it in that language."""
    institution = db.session.get(Institution, head.institution_id)
    institution.address_kk, institution.address_ru = "Сәтбаев даңғылы, 41", "пр. Сатпаева, 41"
    db.session.commit()
    page = client.get(
        f"/staff/institutions/{head.institution_id}/schedules/new",
        headers={"Accept-Language": "ru"},
    ).get_data(as_text=True)
    room = re.search(r'<input[^>]*name="location"[^>]*>', page).group(0)
    assert 'value="' not in room or 'value=""' in room
    assert "пр. Сатпаева" not in room
