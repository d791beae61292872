"""Security headers on every kind of response: pages, staff pages, errors, static files, feeds,
downloads and health checks; HSTS only under the production config."""

from __future__ import annotations

import pytest

from receptions import create_app
from receptions.auth.models import Role
from tests.conftest import app_settings, fresh_request_globals
from tests.factories import make_district, make_institution, make_open_session, make_region
from tests.hostile import booking_with_token, signed_in_client


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name.lower()] = values
    return directives


def header_problems(response) -> list[str]:
    """What a response lacks of the house policy (empty when it has everything)."""
    headers = response.headers
    problems = []
    csp = csp_directives(headers.get("Content-Security-Policy", ""))
    scripts = csp.get("script-src", csp.get("default-src"))
    if scripts is None:
        problems.append("no CSP for scripts")
    elif "'unsafe-inline'" in scripts or "'unsafe-eval'" in scripts:
        problems.append(f"script-src {scripts}")
    if csp.get("frame-ancestors") != ["'none'"]:
        problems.append(f"frame-ancestors {csp.get('frame-ancestors')}")
    if headers.get("X-Frame-Options") != "DENY":
        problems.append("X-Frame-Options")
    if headers.get("X-Content-Type-Options") != "nosniff":
        problems.append("X-Content-Type-Options")
    if headers.get("Referrer-Policy") not in ("same-origin", "no-referrer", "strict-origin"):
        problems.append(f"Referrer-Policy {headers.get('Referrer-Policy')}")
    return problems


@pytest.fixture
def site(app):
    region = make_region(code="KZ-HD")
    district = make_district(region, slug="headers-city")
    institution = make_institution(district)
    session = make_open_session(institution, slots=2, earlier_today=True)
    _booking, token = booking_with_token(session.slots[0])
    head, _ = signed_in_client(app, Role.head, institution=institution)
    officer, _ = signed_in_client(app, Role.district_officer, district=district)
    return {
        "institution": institution,
        "district": district,
        "session": session,
        "token": token,
        "head": head,
        "officer": officer,
        "public": app.test_client(),
    }


def responses(site) -> dict[str, object]:
    """One response of every kind the service sends, keyed by a readable name."""
    i, d, token = site["institution"].id, site["district"].id, site["token"]
    public, head, officer = site["public"], site["head"], site["officer"]
    month = f"{site['session'].local_date:%Y-%m}"
    scope = f"scope=district:{d}&month={month}"
    requests = {
        "home": (public, "GET", "/"),
        "search": (public, "GET", "/institutions?q=a"),
        "region": (public, "GET", "/regions/KZ-HD"),
        "district": (public, "GET", "/regions/KZ-HD/headers-city"),
        "institution": (public, "GET", f"/institutions/{i}"),
        "booking form": (public, "GET", f"/book/{site['session'].slots[1].id}"),
        "manage page": (public, "GET", f"/m/{token}"),
        "status lookup": (public, "GET", "/status"),
        "public results": (public, "GET", f"/results/institutions/{i}"),
        "sign-in": (public, "GET", "/auth/sign-in"),
        "language switch (redirect)": (public, "GET", "/language/ru?next=/"),
        "404 page": (public, "GET", "/no-such-page"),
        "405 page": (public, "PUT", "/"),
        "400 page": (public, "GET", "/institutions?type=casino"),
        "400 CSRF page": (public, "POST", "/auth/sign-in"),
        "static CSS": (public, "GET", "/static/css/app.css"),
        "static JS": (public, "GET", "/static/js/schedule-preview.js"),
        "institution .ics": (public, "GET", f"/institutions/{i}/calendar.ics"),
        "district .ics": (public, "GET", "/regions/KZ-HD/headers-city/calendar.ics"),
        "booking .ics": (public, "GET", f"/m/{token}/booking.ics"),
        "healthz": (public, "GET", "/healthz"),
        "readyz": (public, "GET", "/readyz"),
        "staff dashboard": (head, "GET", "/staff/"),
        "agenda": (head, "GET", f"/staff/institutions/{i}/agenda"),
        "register": (head, "GET", f"/staff/institutions/{i}/register"),
        "403 page": (head, "GET", "/admin/users"),
        "reports dashboard": (officer, "GET", f"/reports/dashboard?{scope}"),
        "CSV download": (officer, "GET", f"/reports/download?{scope}&format=csv"),
        "CSV for Excel download": (officer, "GET", f"/reports/download?{scope}&format=csv-excel"),
        "XLSX download": (officer, "GET", f"/reports/download?{scope}&format=xlsx"),
        "PDF download": (officer, "GET", f"/reports/download?{scope}&format=pdf"),
        # The chart sets its own CSP (matplotlib styles inline); it must keep frame-ancestors.
        "report chart SVG": (officer, "GET", f"/reports/chart/trend.svg?{scope}"),
    }
    out = {}
    for name, (client, method, url) in requests.items():
        response = client.open(url, method=method)
        assert response.status_code < 500, (name, response.status_code)
        response.get_data()  # streamed downloads finish before their headers are read
        out[name] = response
    return out


def test_every_kind_of_response_carries_the_security_headers(site):
    found = responses(site)
    expected = {
        "404 page": 404,
        "405 page": 405,
        "400 page": 400,
        "400 CSRF page": 400,
        "403 page": 403,
        "language switch (redirect)": 302,
    }
    assert {n: r.status_code for n, r in found.items() if n in expected} == expected
    problems = {name: header_problems(r) for name, r in found.items() if header_problems(r)}
    assert problems == {}
    assert not any("Strict-Transport-Security" in r.headers for r in found.values())


def test_production_config_sends_hsts_on_every_response(db_url):
    app = create_app(
        app_settings(
            db_url,
            ENV_NAME="production",
            TESTING=True,
            SECRET_KEY="production-test-secret",
            IIN_HASH_KEY="production-test-iin-key",
            PUBLIC_URL="https://ashyq-esik.kz",
        )
    )
    fresh_request_globals(app)
    client = app.test_client()
    with app.app_context():
        for url in ("/", "/no-such-page", "/static/css/app.css", "/healthz"):
            response = client.get(url, base_url="https://localhost")
            assert response.headers.get("Strict-Transport-Security", "").startswith(
                "max-age=31536000"
            ), url
            assert header_problems(response) == [], url
