"""Public schedule pages, the accessible slot picker and calendar feeds read by another parser."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import vobject
from flask_login import login_user

from receptions.auth.models import Role
from receptions.extensions import db
from receptions.schedules import services
from tests.factories import make_district, make_institution, make_region, make_user

ALMATY = ZoneInfo("Asia/Almaty")


def _publish(
    app,
    institution,
    *,
    kind="reception",
    rrule="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
    start=time(9),
    end=time(10),
    slot=20,
    capacity=1,
    walk_ins=0,
):
    admin = make_user(Role.admin)
    values = {
        "kind": kind,
        "rrule": rrule,
        "start_time": start,
        "end_time": end,
        "slot_minutes": slot,
        "capacity": capacity,
        "walk_in_places": walk_ins,
        "breaks": [],
        "exclusions": [],
        "day_off_policy": "skip",
        "valid_from": datetime.now(ALMATY).date(),
        "valid_until": None,
        "host_name": "Бекзат Тестов",
        "host_position": "Директор",
        "location": "Каб. 5",
        "booking_opens_days": 30,
        "booking_closes_hours": 2,
        "cancel_hours_before": 2,
    }
    with app.test_request_context():
        login_user(admin)
        schedule, _ = services.save_schedule(admin, institution.id, values)
    return schedule


@pytest.fixture
def institution(app):
    region = make_region(code="KZ-98")
    return make_institution(
        make_district(region, slug="town"), name_kk="№7 мектеп", name_ru="Школа №7"
    )


def test_institution_page_lists_bookable_slots_as_plain_links(app, client, institution):
    _publish(app, institution)
    page = client.get(f"/institutions/{institution.id}", headers={"Accept-Language": "ru"})
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "по понедельникам" in text or "понедельник" in text
    assert 'class="slot-picker"' in text
    assert "09:00" in text and "09:40" in text
    assert "<script" not in text  # the picker needs no JavaScript


def test_open_door_day_is_announced_on_district_and_region_pages(app, client, institution):
    _publish(
        app,
        institution,
        kind="open_door",
        rrule="FREQ=MONTHLY;BYDAY=-1FR",
        start=time(10),
        end=time(13),
        slot=30,
        capacity=5,
        walk_ins=10,
    )
    district = client.get("/regions/KZ-98/town", headers={"Accept-Language": "kk"})
    assert "№7 мектеп" in district.get_data(as_text=True)
    region = client.get("/regions/KZ-98", headers={"Accept-Language": "kk"})
    assert "№7 мектеп" in region.get_data(as_text=True)
    detail = client.get(f"/institutions/{institution.id}", headers={"Accept-Language": "en"})
    text = detail.get_data(as_text=True)
    assert "last friday of every month" in text.lower()
    assert "10 places are kept for citizens without a booking" in text


def test_institution_feed_parses_with_an_independent_parser(app, client, institution):
    schedule = _publish(app, institution)
    response = client.get(f"/institutions/{institution.id}/calendar.ics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert "max-age=900" in response.headers["Cache-Control"]
    calendar = vobject.readOne(response.get_data(as_text=True))
    events = calendar.contents["vevent"]
    stored = sorted(s.starts_at for s in schedule.sessions)
    assert len(events) == len(stored)
    first = min(events, key=lambda e: e.dtstart.value)
    start = first.dtstart.value
    assert start.tzinfo is not None
    assert start.utcoffset() == timedelta(hours=5)
    assert start == stored[0]
    assert (first.dtend.value - start) == timedelta(hours=1)
    assert "DTSTART;TZID=Asia/Almaty:" in response.get_data(as_text=True)
    assert "vtimezone" in calendar.contents
    assert len({e.uid.value for e in events}) == len(events)


@pytest.mark.parametrize("feed", ["institution", "district"])
def test_feeds_answer_conditional_requests_until_a_session_changes(
    app, client, institution, feed
):
    schedule = _publish(app, institution, kind="open_door", rrule="FREQ=MONTHLY;BYDAY=-1FR")
    url = {
        "institution": f"/institutions/{institution.id}/calendar.ics",
        "district": "/regions/KZ-98/town/calendar.ics",
    }[feed]
    etag = client.get(url).headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    session = min(schedule.sessions, key=lambda s: s.starts_at)
    with app.test_request_context():
        login_user(make_user(Role.admin))
        services.cancel_session(make_user(Role.admin), session.id, "Карантин")
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert "STATUS:CANCELLED" in changed.get_data(as_text=True)


def test_institution_page_offers_a_webcal_subscription(client, institution):
    page = client.get(f"/institutions/{institution.id}", headers={"Accept-Language": "en"})
    text = page.get_data(as_text=True)
    assert f'href="webcal://localhost/institutions/{institution.id}/calendar.ics"' in text


def test_district_feed_lists_open_door_days_only(app, client, institution):
    _publish(app, institution)  # receptions
    _publish(
        app,
        institution,
        kind="open_door",
        rrule="FREQ=MONTHLY;BYDAY=-1FR",
        start=time(10),
        end=time(13),
        slot=30,
        capacity=5,
    )
    body = client.get("/regions/KZ-98/town/calendar.ics").get_data(as_text=True)
    events = vobject.readOne(body).contents.get("vevent", [])
    assert events
    assert all(e.dtstart.value.astimezone(ALMATY).time() == time(10) for e in events)
    assert client.get("/regions/KZ-98/nowhere/calendar.ics").status_code == 404



@pytest.mark.parametrize(
    ("language", "name"),
    [("kk", ": ашық есік күндері"), ("ru", ": дни открытых дверей"), ("en", ": open-door days")],
)
def test_district_feed_is_named_in_the_readers_language(app, client, institution, language, name):
    _publish(app, institution, kind="open_door", rrule="FREQ=MONTHLY;BYDAY=-1FR")
    body = client.get("/regions/KZ-98/town/calendar.ics", headers={"Accept-Language": language})
    calendar = vobject.readOne(body.get_data(as_text=True))
    assert calendar.x_wr_calname.value.endswith(name)


def test_feed_uids_are_the_same_whichever_name_the_site_is_reached_by(app, client, institution):
    _publish(app, institution)
    url = f"/institutions/{institution.id}/calendar.ics"

    def uids(host):
        response = client.get(url, headers={"Host": host})
        assert response.status_code == 200, (host, response.status_code)
        events = vobject.readOne(response.get_data(as_text=True)).contents["vevent"]
        return sorted(event.uid.value for event in events)

    bare = uids("ashyq-esik.kz")
    assert bare and all(uid.endswith("@ashyq-esik.kz") for uid in bare)
    assert uids("www.ashyq-esik.kz:443") == bare
    assert [uid.split("@")[1] for uid in uids("[::1]:5000")] == ["localhost"] * len(bare)

def test_feed_of_unknown_or_hidden_institution_is_404(client):
    hidden = make_institution(active=False)
    assert client.get(f"/institutions/{hidden.id}/calendar.ics").status_code == 404
    assert client.get("/institutions/424242/calendar.ics").status_code == 404
    db.session.rollback()
