"""Hostile input: every public form and input-taking page is fuzzed and never gives a 5xx, a
refused request never changes a table, redirects stay on the site, XSS comes back escaped on
every page and export, and SQL metacharacters are inert."""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from receptions.auth.models import Role
from receptions.booking import services as booking_services
from receptions.booking.answer_links import Purpose, answer_link
from receptions.booking.models import Booking, Feedback
from receptions.extensions import db
from receptions.geography.models import District, Region
from tests.conftest import csrf_from
from tests.factories import (
    PASSWORD,
    make_district,
    make_iin,
    make_institution,
    make_open_session,
    make_region,
    make_topic,
    make_user,
)
from tests.hostile import (
    SQL_METACHARACTERS,
    book_over_http,
    booking_with_token,
    changed_tables,
    escaped_marker,
    fresh_csrf,
    is_same_origin_redirect,
    live_markup,
    outcome_long_ago,
    signed_in_client,
    table_snapshot,
    xss,
)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
SLOW_EXAMPLES = 2000
# A few examples per form by default; `make test-slow` runs 2,000 per form.
EXAMPLE_COUNTS = pytest.mark.parametrize(
    "examples",
    [
        pytest.param(EXAMPLES, id="quick"),
        pytest.param(SLOW_EXAMPLES, id="2000-cases", marks=pytest.mark.slow),
    ],
)

NASTY = [
    xss("fuzz"),
    SQL_METACHARACTERS,
    "",
    " ",
    "\x00",
    "٠١٢",
    "9" * 5000,
    "+7 701 123 45 67",
    "../../etc/passwd",
    "%00%0d%0a",
    "\r\nSet-Cookie: x=1",
    "2026-13",
    "-1",
    "99999999999999999999",
]
texts = st.one_of(st.text(max_size=300), st.sampled_from(NASTY))
OPEN_REDIRECTS = [
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    " //evil.example",
    "https://evil.example/",
    "http:evil.example",
    "javascript:alert(1)",
    "/%2F%2Fevil.example",
    "/ok\r\nLocation: https://evil.example",
    "/institutions?q=ok",
]


def choice(*valid: str) -> st.SearchStrategy[str]:
    """Mostly valid values, so that the fuzz also reaches the code behind the validation."""
    return st.one_of(st.sampled_from(valid), texts)


def fuzz_settings(examples: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture
def app_config():
    """High limits so the fuzz is not stopped by them (test_abuse and test_auth prove the limits)."""
    return {
        "BOOKING_RATE_LIMIT": "1000000 per hour",
        "BOOKING_IIN_RATE_LIMIT": "1000000 per hour",
        "STATUS_RATE_LIMIT": "1000000 per minute",
        "SIGN_IN_RATE_LIMIT": "1000000 per minute",
    }


# --- the public POST forms -----------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzForm:
    """What one public form needs: `prepare` builds its data and returns the URL and field strategies."""

    prepare: Callable[[], tuple[str, dict[str, st.SearchStrategy[Any]]]]


def _book():
    session = make_open_session(slots=2)
    topic = make_topic()
    return f"/book/{session.slots[0].id}", {
        "full_name": texts,
        "iin": choice(make_iin(7)),
        "phone": choice("+77011234567"),
        "email": choice("a@example.kz"),
        "locale": choice("kk", "ru", "en"),
        "topic_id": choice(str(topic.id)),
        "question": texts,
        "accessibility": st.lists(choice("wheelchair", "other"), max_size=3),
        "accessibility_note": texts,
        "consent": choice("y"),
        "website": st.sampled_from(["", "http://spam.example"]),
        # Issued keys (the form's) and forged ones alike.
        "idempotency_key": st.one_of(
            st.builds(booking_services.new_idempotency_key), choice(secrets.token_urlsafe(24))
        ),
    }


def _manage(action: str, fields: Callable[[Any, Any], dict[str, Any]], **booking: Any):
    def prepare():
        session = make_open_session(slots=3)
        record, token = booking_with_token(session.slots[0], **booking)
        return f"/m/{token}/{action}", fields(session, record)

    return prepare


def _resolved():
    session = make_open_session(slots=1, starts_in_hours=-24 * 40)
    record, token = booking_with_token(session.slots[0])
    outcome_long_ago(record)
    return f"/m/{token}/resolved", {"resolved": choice("yes", "no")}


def _answered_booking():
    """An attended booking whose question's outcome is a month old: both answers are due."""
    session = make_open_session(slots=1, starts_in_hours=-24 * 40)
    record, _token = booking_with_token(session.slots[0])
    outcome_long_ago(record)
    return record


def _answer_link(purpose: Purpose) -> str:
    return answer_link(_answered_booking().id, purpose)


def _answer(purpose: Purpose, fields: Callable[[], dict[str, Any]]):
    """The page of a signed answer link (booking.answer_links) and its form's fields."""

    def prepare():
        return f"/{purpose.value}/{_answer_link(purpose)}", fields()

    return prepare


def _sign_in():
    user = make_user(Role.staff)
    return "/auth/sign-in", {"email": choice(user.email), "password": choice(PASSWORD)}


def _set_password():
    from receptions.auth.services import issue_password_token

    token = issue_password_token(make_user(Role.staff, password=None))
    db.session.commit()
    password = "a-new-password-2026"
    return f"/auth/set-password/{token}", {
        "password": choice(password),
        "confirm": choice(password),
    }


PUBLIC_FORMS: dict[str, FuzzForm] = {
    "booking.book": FuzzForm(_book),
    "booking.cancel": FuzzForm(_manage("cancel", lambda s, b: {"confirm": choice("yes")})),
    "booking.reschedule": FuzzForm(
        _manage("reschedule", lambda s, b: {"slot_id": choice(*(str(x.id) for x in s.slots))})
    ),
    "booking.feedback": FuzzForm(
        _manage(
            "feedback",
            lambda s, b: {"rating": choice("1", "3", "5"), "comment": texts},
            status="attended",
        )
    ),
    "booking.resolved": FuzzForm(_resolved),
    "booking.waitlist": FuzzForm(_manage("waitlist", lambda s, b: {"confirm": choice("yes")})),
    "booking.leave_waitlist": FuzzForm(
        _manage("waitlist/leave", lambda s, b: {"confirm": choice("yes")})
    ),
    "booking.feedback_by_link": FuzzForm(
        _answer(Purpose.feedback, lambda: {"rating": choice("1", "3", "5"), "comment": texts})
    ),
    "booking.resolved_by_link": FuzzForm(
        _answer(Purpose.resolved, lambda: {"resolved": choice("yes", "no")})
    ),
    "auth.sign_in": FuzzForm(_sign_in),
    "auth.set_password": FuzzForm(_set_password),
}


def post_and_check(app, url: str, data: dict[str, Any]) -> Any:
    """POST like a browser (own session, valid CSRF token): never a 5xx; a 4xx changes no table."""
    client = app.test_client()
    token = fresh_csrf(client)
    before = table_snapshot()
    response = client.post(url, data={"csrf_token": token, **data})
    status = response.status_code
    assert status < 500, (url, status, data)
    if status >= 400:
        assert changed_tables(before) == [], (url, status, data)
    if 300 <= status < 400:
        assert is_same_origin_redirect(response.headers["Location"]), response.headers
    return response


def fuzz_form(app, endpoint: str, examples: int) -> None:
    url, fields = PUBLIC_FORMS[endpoint].prepare()

    @fuzz_settings(examples)
    @given(data=st.fixed_dictionaries({}, optional=fields))
    def run(data):
        post_and_check(app, url, data)

    run()


@EXAMPLE_COUNTS
@pytest.mark.parametrize("endpoint", sorted(PUBLIC_FORMS))
def test_fuzzed_public_form_never_fails_or_half_writes(app, endpoint, examples):
    fuzz_form(app, endpoint, examples)


def dummy_url(rule: Any) -> str:
    return re.sub(r"<(?:[a-z]+:)?[^>]+>", "1", rule.rule)


def is_public(app, rule: Any, method: str) -> bool:
    """Whether an anonymous visitor gets past sign-in (with a valid CSRF token, for POST)."""
    client = app.test_client()
    if method == "POST":
        response = client.post(dummy_url(rule), data={"csrf_token": fresh_csrf(client)})
    else:
        response = client.get(dummy_url(rule))
    return "/auth/sign-in" not in response.headers.get("Location", "")


def test_every_public_post_route_has_a_fuzz_entry(app):
    public = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods and is_public(app, rule, "POST")
    }
    assert public == set(PUBLIC_FORMS), "add the new public form to PUBLIC_FORMS"


# --- public pages that take input in the path or the query ----------------------------------------


@dataclass(frozen=True)
class FuzzPage:
    """A GET page: `path` has {placeholders} filled from `path_fields` (quoted) and a query."""

    path: str
    path_fields: Callable[[], dict[str, st.SearchStrategy[str]]]
    query_fields: Callable[[], dict[str, st.SearchStrategy[str]]] = dict


def _district():
    """Region KZ-FZ with district fuzz-city, made on first use."""
    region = db.session.scalars(select(Region).where(Region.code == "KZ-FZ")).first()
    if region is None:
        district = make_district(make_region(code="KZ-FZ"), slug="fuzz-city")
        return district.region, district
    district = db.session.scalars(select(District).where(District.region_id == region.id)).one()
    return region, district


def _reference():
    session = make_open_session(make_institution(_district()[1]), slots=1)
    return booking_with_token(session.slots[0])[0].reference


MONTHS = choice("2026-09", "2025-01")
PUBLIC_PAGES: dict[str, FuzzPage] = {
    "institutions.search": FuzzPage(
        "/institutions",
        dict,
        lambda: {
            "q": choice("мектеп", "school"),
            "type": choice("school", "polyclinic"),
            "page": choice("1", "2"),
        },
    ),
    "booking.status_lookup": FuzzPage(
        "/status", dict, lambda: {"reference": choice(_reference(), "fz-abc")}
    ),
    "booking.status": FuzzPage("/status/{reference}", lambda: {"reference": choice(_reference())}),
    "booking.feedback_by_link": FuzzPage(
        "/feedback/{link}", lambda: {"link": choice(_answer_link(Purpose.feedback))}
    ),
    "booking.resolved_by_link": FuzzPage(
        "/resolved/{link}", lambda: {"link": choice(_answer_link(Purpose.resolved))}
    ),
    "public.region": FuzzPage("/regions/{code}", lambda: {"code": choice("KZ-FZ", "kz-fz")}),
    "public.district": FuzzPage(
        "/regions/{code}/{slug}",
        lambda: {"code": choice(_district()[0].code), "slug": choice("fuzz-city")},
        lambda: {"page": choice("1", "3")},
    ),
    "public.set_language": FuzzPage(
        "/language/{code}",
        lambda: {"code": choice("kk", "ru", "en")},
        lambda: {"next": st.one_of(st.sampled_from(OPEN_REDIRECTS), choice("/status"))},
    ),
    "reports.public_district": FuzzPage(
        "/results/{code}/{slug}",
        lambda: {"code": choice(_district()[0].code), "slug": choice("fuzz-city")},
        lambda: {"month": MONTHS},
    ),
    "reports.public_institution": FuzzPage(
        "/results/institutions/{id}",
        lambda: {"id": st.just(str(make_institution(_district()[1]).id))},
        lambda: {"month": MONTHS},
    ),
    "schedules.district_feed": FuzzPage(
        "/regions/{code}/{slug}/calendar.ics",
        lambda: {"code": choice(_district()[0].code), "slug": choice("fuzz-city")},
    ),
}


def fuzz_page(app, endpoint: str, examples: int) -> None:
    page = PUBLIC_PAGES[endpoint]
    path_fields, query_fields = page.path_fields(), page.query_fields()
    client = app.test_client()
    before = table_snapshot()

    @fuzz_settings(examples)
    @given(
        path=st.fixed_dictionaries(path_fields),
        query=st.fixed_dictionaries({}, optional=query_fields),
    )
    def run(path, query):
        url = page.path.format(**{k: quote(v, safe="") for k, v in path.items()})
        response = client.get(url, query_string=query)
        assert response.status_code < 500, (url, query, response.status_code)
        if 300 <= response.status_code < 400:
            assert is_same_origin_redirect(response.headers["Location"]), (url, query)

    run()
    assert changed_tables(before) == [], "a public page wrote to the database"


@EXAMPLE_COUNTS
@pytest.mark.parametrize("endpoint", sorted(PUBLIC_PAGES))
def test_fuzzed_public_page_never_fails_nor_writes(app, endpoint, examples):
    fuzz_page(app, endpoint, examples)


def test_every_public_page_with_text_in_its_path_is_fuzzed(app):
    """int converters refuse text themselves; a new public page with a text argument needs an entry."""
    from werkzeug.routing import IntegerConverter

    text_arguments = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods
        and rule.endpoint != "static"
        and any(not isinstance(c, IntegerConverter) for c in rule._converters.values())
        and is_public(app, rule, "GET")
    }
    secret_links = {"booking.manage", "booking.booking_ics", "booking.cancel", "booking.reschedule"}
    assert text_arguments - secret_links - {"auth.set_password"} <= set(PUBLIC_PAGES)


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
def test_language_switch_and_sign_in_never_redirect_off_the_site(app, target):
    client = app.test_client()
    response = client.get("/language/ru", query_string={"next": target})
    assert response.status_code in (302, 303), response.status_code
    assert is_same_origin_redirect(response.headers["Location"]), response.headers["Location"]
    user = make_user(Role.staff)
    response = post_and_check(
        app,
        "/auth/sign-in?" + "next=" + quote(target, safe=""),
        {"email": user.email, "password": PASSWORD},
    )
    assert response.status_code in (302, 303)


# --- XSS ------------------------------------------------------------------------------------------


@pytest.fixture
def written_everywhere(app):
    """Every free-text field a citizen, staff member or officer can write holds a payload."""
    from receptions.schedules.services import cancel_session
    from receptions.visits import services as visits
    from receptions.visits.models import Outcome

    district = make_district(make_region(code="KZ-XS"), slug="xss-city")
    institution = make_institution(district)
    officer_client, _officer = signed_in_client(app, Role.district_officer, district=district)
    form_page = officer_client.get(f"/staff/institutions/{institution.id}/edit")
    fields = {
        name: xss(name)
        for name in (
            "name_kk", "name_ru", "name_en", "address_kk", "address_ru", "head_name",
            "head_position_kk", "head_position_ru", "head_position_en",
            "accessibility_kk", "accessibility_ru", "accessibility_en",
        )
    }  # fmt: skip
    response = officer_client.post(
        f"/staff/institutions/{institution.id}/edit",
        data={
            "csrf_token": csrf_from(form_page.get_data(as_text=True)),
            "district_id": str(district.id),
            "type": "school",
            "active": "y",
            **fields,
        },
    )
    assert response.status_code in (302, 303), response.status_code
    topic = make_topic(name_kk=xss("topic"), name_ru=xss("topic"), name_en=xss("topic"))
    schedule_text = {"host_name": xss("host_name"), "location": xss("location")}
    today = make_open_session(institution, slots=3, earlier_today=True, **schedule_text)
    future = make_open_session(institution, slots=3, starts_in_hours=72, **schedule_text)
    doomed = make_open_session(institution, slots=1, starts_in_hours=96, **schedule_text)

    citizen = app.test_client()
    token, booking = book_over_http(
        citizen,
        future.slots[0],
        topic,
        full_name=xss("full_name"),
        question=xss("question"),
        accessibility="other",
        accessibility_note=xss("accessibility_note"),
    )
    _attended, attended_token = booking_with_token(
        today.slots[0], topic=topic, name=xss("attended_name"), status="attended"
    )
    response = citizen.post(
        f"/m/{attended_token}/feedback",
        data={"csrf_token": fresh_csrf(citizen), "rating": "4", "comment": xss("comment")},
    )
    assert response.status_code == 303
    cancelled, cancelled_token = booking_with_token(doomed.slots[0], topic=topic)

    head = make_user(Role.head, institution=institution)
    walk_in = visits.register_walk_in(
        head,
        today.id,
        name=xss("walk_in_name"),
        topic_id=topic.id,
        summary=xss("summary"),
        received_by_name=xss("received_by_name"),
    )
    pending = walk_in.questions[0]
    visits.record_outcome(
        head, pending.id, outcome=Outcome.pending, responsible=xss("responsible"),
        note=xss("outcome_note"),
    )  # fmt: skip
    resolved = visits.add_question(head, walk_in.id, topic.id, xss("second_summary"))
    visits.record_outcome(head, resolved.id, outcome=Outcome.resolved, note=xss("resolution_note"))
    cancel_session(head, doomed.id, xss("cancel_reason"))
    db.session.commit()
    return {
        "institution": institution,
        "district": district,
        "today": today,
        "future": future,
        "token": token,
        "booking": booking,
        "cancelled_token": cancelled_token,
        "cancelled": cancelled,
        "walk_in": walk_in,
        "head": head,
        "officer_client": officer_client,
    }


def _pages(app, data) -> dict[str, str]:
    """Every page that shows what was written, as the person who may see it."""
    institution, district = data["institution"], data["district"]
    public = app.test_client()
    head_client = app.test_client()
    from tests.conftest import sign_in

    assert sign_in(head_client, data["head"].email, PASSWORD).status_code in (302, 303)
    officer = data["officer_client"]
    staff = f"/staff/institutions/{institution.id}"
    future_day = data["future"].local_date.isoformat()
    scope = f"scope=district:{district.id}&month={data['today'].local_date:%Y-%m}"
    urls = {
        "institution page": (public, f"/institutions/{institution.id}"),
        "search": (public, "/institutions?q=script"),
        "district page": (public, "/regions/KZ-XS/xss-city"),
        "booking form": (public, f"/book/{data['future'].slots[1].id}"),
        "manage page": (public, f"/m/{data['token']}?new=1"),
        "reschedule": (public, f"/m/{data['token']}/reschedule"),
        "cancel confirmation": (public, f"/m/{data['token']}/cancel"),
        "manage page (session cancelled)": (public, f"/m/{data['cancelled_token']}"),
        "status page": (public, f"/status/{data['booking'].reference}"),
        "status page (session cancelled)": (public, f"/status/{data['cancelled'].reference}"),
        "public results": (public, f"/results/institutions/{institution.id}"),
        "public district results": (public, "/results/KZ-XS/xss-city"),
        "agenda today": (head_client, f"{staff}/agenda"),
        "agenda future": (head_client, f"{staff}/agenda?date={future_day}"),
        "agenda week": (head_client, f"{staff}/agenda?date={future_day}&view=week"),
        "register today": (head_client, f"{staff}/register"),
        "register future": (head_client, f"{staff}/register?date={future_day}"),
        "visit page": (head_client, f"/staff/visits/{data['walk_in'].id}"),
        "follow-up": (head_client, f"{staff}/follow-up"),
        "close-out": (head_client, f"{staff}/close-out"),
        "schedules": (head_client, f"{staff}/schedules"),
        "institution form": (officer, f"{staff}/edit"),
        "reports dashboard": (officer, f"/reports/dashboard?{scope}&by=institution"),
        "reports rankings": (officer, f"/reports/rankings?{scope}"),
        "reports topics": (officer, f"/reports/topics?{scope}"),
    }
    pages = {}
    for name, (client, url) in urls.items():
        response = client.get(url, headers={"Accept-Language": "ru"})
        assert response.status_code == 200, (name, url, response.status_code)
        pages[name] = response.get_data(as_text=True)
    return pages


# Where each field must be seen (escaped); everywhere else it may be absent, never raw.
SHOWN_ON = {
    "name_ru": ["institution page", "search", "district page", "booking form", "manage page",
                "status page", "public results", "agenda today", "institution form",
                "reports dashboard"],
    "address_ru": ["institution page", "institution form"],
    "head_name": ["institution page", "institution form"],
    "head_position_ru": ["institution page", "institution form"],
    "accessibility_ru": ["institution page", "institution form"],
    "name_kk": ["institution form"],
    "accessibility_kk": ["institution form"],
    "host_name": ["institution page", "booking form", "register today", "schedules"],
    "location": ["booking form", "manage page"],
    "topic": ["booking form", "agenda future", "visit page", "reports topics"],
    "full_name": ["agenda future", "register future"],
    "question": ["agenda future", "register future"],
    "accessibility_note": ["agenda future"],
    "attended_name": ["agenda today"],
    "walk_in_name": ["agenda today", "visit page", "follow-up"],
    "summary": ["visit page", "follow-up"],
    "second_summary": ["visit page"],
    "responsible": ["visit page", "follow-up"],
    "resolution_note": ["visit page"],
}  # fmt: skip


def test_xss_in_every_free_text_field_comes_back_escaped_on_every_page(app, written_everywhere):
    pages = _pages(app, written_everywhere)
    leaks = {name: live_markup(html) for name, html in pages.items() if live_markup(html)}
    raw = [name for name, html in pages.items() if "<script>alert(" in html or "<img src=x" in html]
    assert leaks == {} and raw == []
    missing = [
        (tag, page)
        for tag, where in SHOWN_ON.items()
        for page in where
        if escaped_marker(tag) not in pages[page]
    ]
    assert missing == []
    db.session.rollback()
    comment = db.session.scalars(select(Feedback.comment)).one()
    assert comment == xss("comment")  # stored as typed; no page lists comments


def test_xss_in_institution_names_is_text_in_the_pdf(app, written_everywhere, tmp_path):
    officer = written_everywhere["officer_client"]
    district = written_everywhere["district"]
    month = f"{written_everywhere['today'].local_date:%Y-%m}"
    response = officer.get(
        f"/reports/download?scope=district:{district.id}&month={month}&format=pdf&by=institution",
        headers={"Accept-Language": "ru"},
    )
    assert response.status_code == 200
    (tmp_path / "report.pdf").write_bytes(response.get_data())
    text = subprocess.run(
        ["pdftotext", str(tmp_path / "report.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "<script>alert('name_ru')" in "".join(text.split("\n"))  # shown, not interpreted


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
FORMULAS = [
    '=HYPERLINK("http://evil.example")',
    "+1+1",
    "-2+3",
    "@SUM(A1)",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    '=1+1;=2+2,"=3+3"',  # both CSV separators and quotes: one cell, shown as text
]


@pytest.fixture
def formula_names(app):
    district = make_district(make_region(), slug="formula-city")
    institutions = [
        make_institution(district, name_kk=name, name_ru=name, name_en=name) for name in FORMULAS
    ]
    for institution in institutions:
        session = make_open_session(institution, slots=1, starts_in_hours=-1)
    client, _ = signed_in_client(app, Role.district_officer, district=district)
    return client, district, institutions, f"{session.local_date:%Y-%m}"


@pytest.mark.parametrize(("kind", "delimiter"), [("csv", ","), ("csv-excel", ";")])
def test_csv_download_neutralises_every_formula_prefix(formula_names, kind, delimiter):
    client, district, _, month = formula_names
    body = client.get(
        f"/reports/download?scope=district:{district.id}&month={month}&format={kind}&by=institution",
        headers={"Accept-Language": "ru"},
    ).get_data(as_text=True)
    rows = [
        row
        for row in csv.reader(io.StringIO(body.lstrip("\ufeff"), newline=""), delimiter=delimiter)
        if row
    ]
    assert {len(row) for row in rows} == {len(rows[0])}  # no name spilled into another cell
    labels = [row[0] for row in rows]
    assert [label for label in labels if label[:1] in FORMULA_PREFIXES] == []
    assert sorted(label for label in labels if label[1:] in FORMULAS) == sorted(
        "'" + name for name in FORMULAS
    )


def _xlsx_cells(response) -> list[Any]:
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(response.get_data()))
    return [cell for sheet in workbook for row in sheet.iter_rows() for cell in row]


def test_xlsx_download_neutralises_every_formula_prefix(formula_names):
    client, district, _, month = formula_names
    response = client.get(
        f"/reports/download?scope=district:{district.id}&month={month}&format=xlsx"
    )
    cells = _xlsx_cells(response)
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    texts = [c.value for c in cells if isinstance(c.value, str)]
    assert [text for text in texts if text[:1] in (*FORMULA_PREFIXES, "\n")] == []
    assert len([text for text in texts if text.startswith("'")]) == len(FORMULAS)


def test_xlsx_title_of_an_institution_report_is_not_a_formula(formula_names):
    client, _, institutions, month = formula_names
    response = client.get(
        f"/reports/download?scope=institution:{institutions[0].id}&month={month}&format=xlsx"
    )
    assert [c.coordinate for c in _xlsx_cells(response) if c.data_type == "f"] == []


# --- SQL metacharacters ---------------------------------------------------------------------------


def test_sql_metacharacters_in_search_and_forms_are_inert(app, client):
    odd = make_institution(name_ru="Школа O'Brien; -- 100%_", name_kk="O'Brien; -- 100%_ мектеп")
    plain = make_institution(name_ru="Школа №1", name_kk="№1 мектеп")
    for query, expected in (
        ("O'Brien", {odd}),
        ("; --", {odd}),
        ("100%", {odd}),
        ("%", {odd}),  # a literal per cent sign, not a wildcard
        ("Школа%1", set()),
        ("_", {odd}),
        ("' OR '1'='1", set()),
        (SQL_METACHARACTERS, set()),
    ):
        response = client.get("/institutions", query_string={"q": query})
        assert response.status_code == 200, query
        page = response.get_data(as_text=True)
        shown = {i for i in (odd, plain) if f'href="/institutions/{i.id}"' in page}
        assert shown == expected, query
    lookup = client.get("/status", query_string={"reference": "' OR 1=1 --"}, follow_redirects=True)
    assert lookup.status_code == 422  # no reference has that shape: never looked up
    session = make_open_session(slots=1)
    _, booking = book_over_http(
        app.test_client(),
        session.slots[0],
        make_topic(),
        full_name="O'Brien; DROP TABLE booking; --",
        question=SQL_METACHARACTERS,
    )
    assert booking.citizen_name == "O'Brien; DROP TABLE booking; --"
    assert booking.question == SQL_METACHARACTERS.strip()
    assert db.session.scalar(select(func.count()).select_from(Booking)) == 1


# --- CSRF and NUL ---------------------------------------------------------------------------------


def test_every_post_without_csrf_is_refused(app, client):
    posts = [rule for rule in app.url_map.iter_rules() if "POST" in rule.methods]
    assert len(posts) > 20
    for rule in posts:
        status = client.post(dummy_url(rule), data={"x": "1"}).status_code
        assert status == 400, (rule.rule, status)


def test_nul_bytes_are_refused_before_they_reach_the_database(app, client):
    assert client.get("/institutions", query_string={"q": "\x00"}).status_code == 400
    session = make_open_session(slots=1)
    before = table_snapshot()
    response = client.post(f"/book/{session.slots[0].id}", data={"full_name": "a\x00b"})
    assert response.status_code == 400
    assert changed_tables(before) == []
