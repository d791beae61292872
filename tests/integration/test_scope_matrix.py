"""Every staff, akimat and admin route, read from the URL map, answers 403 or 404 to a user of
another institution, district or region; a new route with an id nobody maps here fails the test."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from werkzeug.routing import Rule

from receptions.auth.models import Role
from receptions.extensions import db
from receptions.geography.models import District, Region
from receptions.institutions.models import Institution
from receptions.reports.models import ReportExport
from receptions.visits import services as visits
from tests.conftest import csrf_from, sign_in
from tests.factories import (
    PASSWORD,
    make_booking,
    make_district,
    make_institution,
    make_open_session,
    make_region,
    make_topic,
    make_user,
)

# Routes anyone may open: public pages, feeds, the citizen's own links, signing in.
PUBLIC_ENDPOINTS = {
    "static",
    "public.home",
    "public.region",
    "public.district",
    "public.healthz",
    "public.readyz",
    "public.set_language",
    "institutions.detail",
    "institutions.search",
    "schedules.institution_feed",
    "schedules.district_feed",
    "reports.public_district",
    "reports.public_institution",
    "reports.chart",
    "auth.sign_in",
    "auth.sign_out",
    "auth.set_password",
    "booking.book",
    "booking.manage",
    "booking.booking_ics",
    "booking.cancel",
    "booking.feedback",
    "booking.reschedule",
    "booking.resolved",
    "booking.waitlist",
    "booking.leave_waitlist",
    "booking.feedback_by_link",
    "booking.resolved_by_link",
    "booking.status",
    "booking.status_lookup",
}
# One body that every staff POST form would accept, so that a refusal is the scope's, not the
# form's ("400: choose the outcome" says nothing about whose record it was).
VALID_FORM = {
    "mark": "attended",
    "outcome": "explained",
    "note": "Түсіндірілді",
    "held": "yes",
    "status": "paused",
    "received_by": "head",
    "received_by_name": "Жумагалиева Г.",
    "reason": "Тексеру",
}
REPORT_PAGES = ("/reports/dashboard", "/reports/rankings", "/reports/topics", "/reports/download")


@dataclass
class Unit:
    """One institution's world: the objects its staff work on."""

    region_id: int
    district_id: int
    institution_id: int
    session_id: int
    schedule_id: int
    booking_id: int
    visit_id: int
    question_id: int
    token: str  # of a report export the region's officer asked for


def _unit(district) -> Unit:
    institution = make_institution(district)
    head = make_user(Role.head, institution=institution)
    session = make_open_session(institution, slots=3, earlier_today=True)  # walk-ins: today
    booking = make_booking(session.slots[0])
    topic = make_topic()
    visit = visits.register_walk_in(
        head, session.id, name="Ерлан Тестов", topic_id=topic.id, summary="Жылу беру"
    )
    question = visit.questions[0]
    export = ReportExport(
        token=secrets.token_urlsafe(32),
        user_id=make_user(Role.region_officer, region=district.region).id,
        scope_key=f"region:{district.region_id}",
        first_month="2026-11",
        grouping="district",
        kind="xlsx",
        locale="kk",
        expires_at=datetime.now(UTC) + timedelta(days=1),
    )
    db.session.add(export)
    db.session.flush()
    return Unit(
        region_id=district.region_id,
        district_id=district.id,
        institution_id=institution.id,
        session_id=session.id,
        schedule_id=session.schedule_id,
        booking_id=booking.id,
        visit_id=visit.id,
        question_id=question.id,
        token=export.token,
    )


@pytest.fixture
def world():
    """Two regions with two districts each, one working institution per district."""
    regions = [make_region(), make_region()]
    districts = [make_district(r) for r in regions for _ in range(2)]
    units = [_unit(d) for d in districts]
    db.session.commit()
    return units


def _scoped_rules(app: Flask) -> list[Rule]:
    rules = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        rules.append(rule)
    return rules


def _url(rule: Rule, unit: Unit, admin_ids: dict[str, int]) -> str:
    values: dict[str, object] = {}
    for name in rule.arguments:
        if name == "month":
            values[name] = "2026-11"
        elif name == "name":
            values[name] = "trend"
        elif hasattr(unit, name):
            values[name] = getattr(unit, name)
        elif name in admin_ids:
            values[name] = admin_ids[name]
        else:
            pytest.fail(f"{rule.endpoint}: no object for <{name}>; add it to the scope matrix")
    return rule.build(values, append_unknown=False)[1]


def _other_scope_urls(app: Flask, others: list[Unit], admin_ids: dict[str, int]) -> list[tuple]:
    urls = []
    for rule in _scoped_rules(app):
        method = "GET" if "GET" in rule.methods else "POST"
        for unit in others:
            scoped = rule.arguments - {"month", "name"}
            if scoped or (unit is others[0] and rule.rule.startswith("/admin")):
                urls.append((method, _url(rule, unit, admin_ids)))
    for unit in others:
        for page in REPORT_PAGES:
            for level in ("institution", "district", "region"):
                ident = getattr(unit, f"{level}_id")
                urls.append(("GET", f"{page}?scope={level}:{ident}&month=2026-11"))
    return sorted(set(urls))


def _admin_ids() -> dict[str, int]:
    admin = make_user(Role.admin)
    return {"user_id": admin.id, "notification_id": 1, "day_id": 1, "topic_id": make_topic().id}


@pytest.mark.parametrize(
    ("role", "own", "others"),
    [
        (Role.staff, 0, [1, 2, 3]),
        (Role.head, 0, [1, 2, 3]),
        (Role.district_officer, 0, [1, 2, 3]),
        (Role.region_officer, 0, [2, 3]),
    ],
    ids=["staff", "head", "district-officer", "region-officer"],
)
def test_every_scoped_route_refuses_other_scopes(app, client, world, role, own, others):
    unit = world[own]
    if role in (Role.staff, Role.head):
        scope = {"institution": db.session.get(Institution, unit.institution_id)}
    elif role is Role.district_officer:
        scope = {"district": db.session.get(District, unit.district_id)}
    else:
        scope = {"region": db.session.get(Region, unit.region_id)}
    user = make_user(role, **scope)
    sign_in(client, user.email, PASSWORD)
    token = csrf_from(client.get("/staff/").get_data(as_text=True))
    outcomes = {f"q{u.question_id}-{k}": v for u in world for k, v in VALID_FORM.items()}
    leaks = []
    urls = _other_scope_urls(app, [world[i] for i in others], _admin_ids())
    assert len(urls) > 40, "the matrix lost its routes"
    for method, url in urls:
        if method == "GET":
            response = client.get(url)
        else:
            response = client.post(url, data={"csrf_token": token, **VALID_FORM, **outcomes})
        if response.status_code not in (403, 404):
            leaks.append(f"{method} {url} -> {response.status_code}")
    assert leaks == [], "\n".join(leaks)


OFFICER_ONLY = {"institutions.edit", "schedules.unified"}


def test_the_matrix_reaches_the_users_own_pages(app, client, world):
    """The control: the same routes open for the head of the institution they belong to."""
    unit = world[0]
    head = make_user(Role.head, institution=db.session.get(Institution, unit.institution_id))
    sign_in(client, head.email, PASSWORD)
    ids = {"institution_id", "session_id", "visit_id", "schedule_id"}
    opened = {}
    for rule in _scoped_rules(app):
        if "GET" in rule.methods and rule.arguments & ids:
            opened[rule.endpoint] = client.get(_url(rule, unit, {})).status_code
    refused = {endpoint for endpoint, status in opened.items() if status in (403, 404)}
    assert len(opened) >= 10
    assert refused == OFFICER_ONLY & set(opened)
