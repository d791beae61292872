"""A session kept for its bookings after its schedule changed takes no new bookings until staff
decide: not offered on public pages, refused by the booking form and by a move into it, not
offered to the waitlist, tentative in the feed; its bookings stay valid. Kept by staff, or had
again by the rule, it is an ordinary session again. The region's page lists such open-door days,
and the schedule preview shows the sessions as the save will leave them."""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from typing import Any

import pytest
import vobject
from flask_login import login_user
from sqlalchemy import select

from receptions.auth.models import Role
from receptions.booking import services as booking
from receptions.booking.models import Booking, WaitlistEntry
from receptions.errors import Conflict
from receptions.extensions import db
from receptions.notify.models import Notification
from receptions.schedules import services
from receptions.schedules.models import Schedule, ScheduledSession, Slot
from tests.conftest import csrf_from, sign_in, submit
from tests.factories import (
    PASSWORD,
    make_booking,
    make_district,
    make_institution,
    make_region,
    make_schedule,
    make_topic,
    make_user,
)
from tests.hostile import booking_with_token, send_booking_form
from tests.integration import test_schedule_changes as changes
from tests.integration.test_schedule_changes import NEXT_TUESDAY, TUESDAY, at, weekly
from tests.integration.test_schedules import form

# Its fixtures, here too: the clock at 08:00 on TUESDAY, and a head signed in for the services.
clock, head = changes.clock, changes.head

LATER_TUESDAY = TUESDAY + timedelta(days=14)  # 16 March 2027
EN = {"Accept-Language": "en"}


def reception(**overrides: Any) -> dict[str, Any]:
    """The head's reception hours: Tuesdays 15:00–18:00, a citizen every quarter of an hour."""
    values = dict(
        kind="reception",
        start_time=time(15),
        end_time=time(18),
        slot_minutes=15,
        capacity=1,
    )
    return weekly(**{**values, **overrides})


def session_on(day: date, schedule_id: int) -> ScheduledSession:
    db.session.expire_all()
    return db.session.scalars(
        select(ScheduledSession).where(
            ScheduledSession.schedule_id == schedule_id,
            ScheduledSession.local_date == day,
            ScheduledSession.status == "planned",
        )
    ).one()


def slot_at(session: ScheduledSession, hour: int, minute: int = 0) -> Slot:
    return next(s for s in session.slots if s.starts_at == at(session.local_date, hour, minute))


def ends_at_five(head, schedule: Schedule) -> services.MaterialiseResult:
    _, result = services.save_schedule(
        head, head.institution_id, reception(end_time=time(17)), schedule_id=schedule.id
    )
    return result


@pytest.fixture
def booked_at_17_45(head, clock):
    """The reception schedule, a citizen's booking (with its manage link) at 17:45 on a later
    Tuesday, and the schedule then made to end at 17:00: that Tuesday is kept as it was."""
    schedule, _ = services.save_schedule(head, head.institution_id, reception())
    kept = session_on(LATER_TUESDAY, schedule.id)
    held, token = booking_with_token(slot_at(kept, 17, 45))
    result = ends_at_five(head, schedule)
    assert [s.id for s in result.conflicts] == [kept.id]
    return schedule, session_on(LATER_TUESDAY, schedule.id), held, token


def book_links(page: str) -> set[int]:
    return {int(n) for n in re.findall(r'href="/book/(\d+)"', page)}


def test_a_kept_session_is_not_offered_and_its_times_cannot_be_booked(app, booked_at_17_45):
    schedule, kept, _, _ = booked_at_17_45
    client = app.test_client()
    page = client.get(f"/institutions/{schedule.institution_id}?from={LATER_TUESDAY}").get_data(
        as_text=True
    )
    offered = book_links(page)
    assert offered and not offered & {s.id for s in kept.slots}
    five = slot_at(kept, 17)
    refused = client.get(f"/book/{five.id}", headers=EN)
    assert refused.status_code == 409
    body = refused.get_data(as_text=True)
    assert "This session takes no new bookings: the institution has changed its schedule." in body
    # The nearest free times of the schedule, as for a full slot, none of the kept session's.
    nearest = book_links(body)
    assert nearest and not nearest & {s.id for s in kept.slots}
    # A submission (with a form opened for another time) is refused and books nothing.
    sent = send_booking_form(
        client,
        five.id,
        make_topic(),
        opened_for=min(nearest),
        headers=EN,
        full_name="Сәуле Ержанқызы",
        question="Когда отремонтируют отопление в подъезде?",
    )
    assert sent.status_code == 409
    assert "takes no new bookings" in sent.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Slot, five.id).booked == 0
    assert db.session.scalars(select(Booking.slot_id)).all() == [slot_at(kept, 17, 45).id]
    kept = db.session.get(ScheduledSession, kept.id)
    assert kept.awaiting_decision and kept.ends_at == at(LATER_TUESDAY, 18)


def test_a_session_a_calendar_change_kept_awaits_a_decision_until_staff_keep_it(
    app, head, clock
):
    """16 March made a day off: the open-door day moves to Friday the 12th, but the booked
    session of the 16th is kept; the calendar page lists it until its staff keep it."""
    schedule, _ = services.save_schedule(
        head, head.institution_id, weekly(day_off_policy="previous_working_day")
    )
    booked = session_on(LATER_TUESDAY, schedule.id)
    make_booking(booked.slots[0])
    admin, client = make_user(Role.admin), app.test_client()
    sign_in(client, admin.email, PASSWORD)
    page = submit(
        client,
        "/admin/calendar",
        {"day": LATER_TUESDAY.isoformat(), "kind": "day_off", "note": "Постановление"},
        headers=EN,
        follow_redirects=True,
    ).get_data(as_text=True)
    assert f'href="/staff/institutions/{head.institution_id}/schedules"' in page
    kept = session_on(LATER_TUESDAY, schedule.id)
    assert kept.id == booked.id and kept.awaiting_decision
    public = app.test_client()
    assert public.get(f"/book/{kept.slots[1].id}").status_code == 409
    services.keep_session(head, kept.id)
    assert public.get(f"/book/{kept.slots[1].id}").status_code == 200
    page = client.get("/admin/calendar", headers=EN).get_data(as_text=True)
    assert "All resolved" in page
    assert f'href="/staff/institutions/{head.institution_id}/schedules"' not in page


def test_a_kept_sessions_bookings_stay_and_can_leave_without_freeing_seats_for_others(
    app, head, booked_at_17_45
):
    schedule, kept, held, token = booked_at_17_45
    # A citizen booked for a later Tuesday waits for an earlier time.
    last = session_on(LATER_TUESDAY + timedelta(days=14), schedule.id)  # past Nauryz
    waiting = make_booking(slot_at(last, 15))
    db.session.add(WaitlistEntry(schedule_id=schedule.id, booking_id=waiting.id))
    db.session.commit()
    # The times to move to are not the kept session's; moving into it is refused.
    choices = {s.id for s in booking.times_to_move_to(db.session.get(Booking, held.id))}
    assert choices and not choices & {s.id for s in kept.slots}
    with pytest.raises(booking.SlotUnavailable, match="жаңа жазылу қабылданбайды"):
        booking.reschedule(token, slot_at(kept, 15).id)
    assert app.test_client().get(f"/m/{token}").status_code == 200
    # Its last booking moving away leaves nobody to keep it for: the day takes the rule's
    # times at once (15:00-17:00, bookable), not at the next nightly run, and staff have
    # nothing left to decide. The waitlist is not told of the freed 17:45, which is gone.
    seat_at_17_45 = slot_at(kept, 17, 45).id
    target = slot_at(session_on(NEXT_TUESDAY, schedule.id), 16)
    booking.reschedule(token, target.id)
    db.session.expire_all()
    assert db.session.get(Booking, held.id).slot_id == target.id
    settled = session_on(LATER_TUESDAY, schedule.id)
    assert not settled.awaiting_decision
    assert settled.ends_at == at(LATER_TUESDAY, 17)
    assert db.session.get(Slot, seat_at_17_45) is None
    assert app.test_client().get(f"/book/{slot_at(settled, 16, 45).id}").status_code == 200
    freed = select(Notification).where(Notification.template == "slot_freed")
    assert db.session.scalars(freed).all() == []
    page = signed_in(app, head).get(
        f"/staff/institutions/{head.institution_id}/schedules", headers=EN
    )
    assert "awaits your decision" not in page.get_data(as_text=True)


def signed_in(app, user):  # type: ignore[no-untyped-def]
    client = app.test_client()
    sign_in(client, user.email, PASSWORD)
    return client


def test_a_kept_session_whose_last_booking_is_cancelled_is_settled_at_once(
    app, head, booked_at_17_45
):
    schedule, kept, held, token = booked_at_17_45
    # A second booking there: one cancelled, the session still awaits a decision for the other.
    other, other_token = booking_with_token(slot_at(kept, 15))
    booking.cancel_by_citizen(token)
    assert session_on(LATER_TUESDAY, schedule.id).awaiting_decision
    assert app.test_client().get(f"/book/{slot_at(kept, 16).id}").status_code == 409
    # The last one cancelled: the day has the rule's times, bookable, straight away.
    booking.cancel_by_citizen(other_token)
    settled = session_on(LATER_TUESDAY, schedule.id)
    assert not settled.awaiting_decision and settled.ends_at == at(LATER_TUESDAY, 17)
    assert app.test_client().get(f"/book/{slot_at(settled, 16).id}").status_code == 200
    # The cancelled bookings keep their history: the manage links still show them.
    for link in (token, other_token):
        assert app.test_client().get(f"/m/{link}").status_code == 200
    assert db.session.get(Booking, held.id).status == "cancelled_by_citizen"
    assert db.session.get(Booking, other.id).status == "cancelled_by_citizen"


def test_a_kept_session_is_tentative_in_the_public_feed(app, booked_at_17_45):
    schedule, _, _, token = booked_at_17_45
    client = app.test_client()
    feed = vobject.readOne(
        client.get(f"/institutions/{schedule.institution_id}/calendar.ics").get_data(as_text=True)
    )
    statuses = {e.dtstart.value: e.status.value for e in feed.contents["vevent"]}
    assert statuses[at(LATER_TUESDAY, 15)] == "TENTATIVE"
    assert statuses[at(NEXT_TUESDAY, 15)] == "CONFIRMED"
    # The citizen's own meeting stays confirmed in its .ics.
    own = client.get(f"/m/{token}/booking.ics").get_data(as_text=True)
    assert "STATUS:CONFIRMED" in own


def test_kept_by_staff_it_takes_bookings_again_and_stays_as_it_is(app, head, booked_at_17_45):
    schedule, kept, _, _ = booked_at_17_45
    other = session_on(NEXT_TUESDAY, schedule.id)
    with pytest.raises(Conflict):
        services.keep_session(head, other.id)  # not awaiting a decision
    client = app.test_client()
    sign_in(client, head.email, PASSWORD)
    manage = f"/staff/institutions/{head.institution_id}/schedules"
    page = client.get(manage, headers=EN).get_data(as_text=True)
    assert f"/staff/sessions/{kept.id}/keep" in page
    assert "awaits your decision: takes no new bookings" in page
    response = client.post(
        f"/staff/sessions/{kept.id}/keep",
        data={"csrf_token": csrf_from(page)},
        headers=EN,
        follow_redirects=True,
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "The session is kept as it is and takes bookings again." in body
    assert f"/staff/sessions/{kept.id}/keep" not in body
    db.session.expire_all()
    again = db.session.get(ScheduledSession, kept.id)
    assert (again.awaiting_decision, again.kept_by_staff) == (False, True)
    public = app.test_client()
    assert public.get(f"/book/{slot_at(again, 17).id}").status_code == 200
    # Materialised again (the nightly run, another save), it is neither changed nor a conflict.
    with app.test_request_context():
        login_user(head)
        assert ends_at_five(head, db.session.get(Schedule, schedule.id)).conflicts == []
    same = session_on(LATER_TUESDAY, schedule.id)
    assert same.id == kept.id and same.ends_at == at(LATER_TUESDAY, 18)
    assert not same.awaiting_decision
    assert public.get(f"/book/{slot_at(same, 17).id}").status_code == 200


def test_the_rule_changed_back_makes_it_ordinary_again(app, head, booked_at_17_45):
    schedule, kept, _, _ = booked_at_17_45
    sequence = kept.sequence
    _, result = services.save_schedule(
        head, head.institution_id, reception(), schedule_id=schedule.id
    )
    assert result.conflicts == []
    again = session_on(LATER_TUESDAY, schedule.id)
    assert again.id == kept.id
    assert (again.awaiting_decision, again.kept_by_staff) == (False, False)
    assert again.sequence == sequence + 1  # subscribed calendars see it confirmed again
    client = app.test_client()
    assert client.get(f"/book/{slot_at(again, 17).id}").status_code == 200
    page = client.get(f"/institutions/{schedule.institution_id}?from={LATER_TUESDAY}")
    assert slot_at(again, 17).id in book_links(page.get_data(as_text=True))


# --- the region's open-door day moved while a Friday is booked ---------------------------------

LAST_FRIDAY, LAST_THURSDAY = date(2027, 3, 26), date(2027, 3, 25)


def unified_form(**overrides: Any) -> dict[str, Any]:
    values = form(
        **{
            "frequency": "MONTHLY",
            "weekdays": ["4"],
            "ordinal": "-1",
            "start_time": "10:00",
            "end_time": "13:00",
            "slot_minutes": "30",
            "capacity": "5",
            "walk_in_places": "10",
            "valid_from": TUESDAY.isoformat(),
            "day_off_policy": "skip",
            **overrides,
        }
    )
    own = ("kind", "host_name", "host_position", "location", "exclusions")
    window = ("booking_opens_days", "booking_closes_hours", "cancel_hours_before")
    return {k: v for k, v in values.items() if k not in (*own, *window)}


def test_a_moved_open_door_day_leaves_one_open_door_day_and_the_region_page_lists_the_kept_one(
    app, client, clock
):
    region = make_region()
    institution = make_institution(make_district(region), name_en="School No. 9")
    officer = make_user(Role.region_officer, region=region)
    sign_in(client, officer.email, PASSWORD)
    url = f"/staff/regions/{region.id}/open-door-day"
    assert submit(client, url, unified_form()).status_code == 302
    (schedule,) = db.session.scalars(select(Schedule)).all()
    friday = session_on(LAST_FRIDAY, schedule.id)
    make_booking(friday.slots[0])

    moved = submit(client, url, unified_form(weekdays=["3"]), headers=EN, follow_redirects=True)
    assert moved.status_code == 200
    page = moved.get_data(as_text=True)
    assert "It was kept for its bookings and takes no new ones until it is kept or cancelled" in (
        page
    )
    # Below: the institution, the day and its bookings, and where it is resolved.
    below = page[page.index("awaiting-heading") :]
    assert "School No. 9" in below and "26 March 2027, 10:00–13:00" in below
    assert "1 booking" in below
    assert f'href="/staff/institutions/{institution.id}/schedules"' in below

    kept = session_on(LAST_FRIDAY, schedule.id)
    assert kept.id == friday.id and kept.awaiting_decision
    public = app.test_client()
    detail = public.get(f"/institutions/{institution.id}", headers=EN).get_data(as_text=True)
    start = detail.index('id="next-open-door"')
    nearest = detail[start : detail.index("</section>", start)]
    assert "25 March 2027" in nearest and "26 March" not in nearest
    assert not book_links(detail) & {s.id for s in kept.slots}
    district = institution.district
    for listing in (f"/regions/{region.code}", f"/regions/{region.code}/{district.slug}"):
        announced = public.get(listing, headers=EN).get_data(as_text=True)
        assert "25 March 2027" in announced and "26 March 2027" not in announced
    refused = public.get(f"/book/{kept.slots[1].id}", headers=EN)
    assert refused.status_code == 409
    assert "takes no new bookings" in refused.get_data(as_text=True)


# --- the preview shows what the save will leave --------------------------------------------------


def test_the_preview_shows_kept_sessions_and_days_staff_cancelled(app, client, clock):
    head = make_user(Role.head)
    sign_in(client, head.email, PASSWORD)
    created = submit(
        client,
        f"/staff/institutions/{head.institution_id}/schedules/new",
        form(end_time="18:00", valid_from=TUESDAY.isoformat()),
    )
    assert created.status_code == 302
    schedule = db.session.scalars(select(Schedule)).one()
    make_booking(slot_at(session_on(NEXT_TUESDAY, schedule.id), 17, 45))
    cancelled = session_on(LATER_TUESDAY, schedule.id)
    cancel_url = f"/staff/sessions/{cancelled.id}/cancel"
    assert submit(client, cancel_url, {"reason": "Санитарный день"}).status_code == 302

    edit = f"/staff/schedules/{schedule.id}/edit"
    values = form(
        end_time="17:00", valid_from=TUESDAY.isoformat(), version=str(schedule.version)
    )
    values.pop("save")
    shown = submit(client, edit, {**values, "preview": "1"}, headers=EN)
    fragment = submit(
        client,
        f"/staff/institutions/{head.institution_id}/schedules/preview?schedule={schedule.id}",
        values,
        form_url=edit,
        headers=EN,
    )
    for response in (shown, fragment):
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        listed = page[page.index("preview-list") : page.index("</ol>", page.index("preview-list"))]
        items = re.findall(r"<li[^>]*>(.*?)</li>", listed, re.S)
        items = [" ".join(item.split()) for item in items]
        assert len(items) == 6
        assert items[0].startswith("Tuesday, 2 March 2027, 15:00–17:00")
        assert items[1].startswith("Tuesday, 9 March 2027, 15:00–18:00")
        assert "kept as it is for its bookings" in items[1] and "1 booking:" in items[1]
        assert items[2].startswith("Tuesday, 16 March 2027") and "cancelled by staff" in items[2]
        # 23 March is a holiday (Nauryz): the rule skips it.
        assert items[3].startswith("Tuesday, 30 March 2027, 15:00–17:00")
    db.session.expire_all()
    assert db.session.get(Schedule, schedule.id).end_time == time(18)  # nothing saved


def test_the_preview_of_another_institutions_schedule_is_404(client):
    head = make_user(Role.head)
    sign_in(client, head.email, PASSWORD)
    theirs = make_schedule(make_institution())
    response = submit(
        client,
        f"/staff/institutions/{head.institution_id}/schedules/preview?schedule={theirs.id}",
        form(),
        form_url=f"/staff/institutions/{head.institution_id}/schedules/new",
    )
    assert response.status_code == 404
