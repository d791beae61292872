"""Public pages: home, search, region and district pages, health checks."""

from __future__ import annotations

from tests.factories import make_district, make_institution, make_region


def test_home_lists_regions_with_institution_counts(client):
    region = make_region(name_kk="Атырау облысы", name_ru="Атырауская область")
    make_institution(make_district(region))
    make_institution(make_district(region), active=False)
    page = client.get("/", headers={"Accept-Language": "kk"}).get_data(as_text=True)
    assert "Атырау облысы" in page
    assert f'href="/regions/{region.code}"' in page


def test_search_finds_cyrillic_names_whatever_the_case(client):
    make_institution(
        name_ru="Городская поликлиника №3", name_kk="№3 қалалық емхана", type="polyclinic"
    )
    make_institution(name_ru="Школа №12", name_kk="№12 мектеп")
    for query in ("ЕМХАНА", "поликлиника", "ПОЛИКЛИНИКА №3", "Емхана"):
        page = client.get("/institutions", query_string={"q": query}).get_data(as_text=True)
        assert "поликлиника №3" in page or "емхана" in page, query
        assert "Школа №12" not in page and "№12 мектеп" not in page


def test_search_filters_by_type_and_escapes_wildcards(client):
    make_institution(name_ru="Детский сад «Балапан»", type="kindergarten")
    make_institution(name_ru="Школа №5", type="school")
    page = client.get("/institutions?type=kindergarten", headers={"Accept-Language": "ru"})
    text = page.get_data(as_text=True)
    assert "Балапан" in text and "Школа №5" not in text
    assert "Балапан" not in client.get("/institutions?q=%25").get_data(as_text=True)


def test_unknown_type_filter_is_a_400_in_the_readers_language(client):
    response = client.get("/institutions?type=casino", headers={"Accept-Language": "ru"})
    assert response.status_code == 400
    assert 'lang="ru"' in response.get_data(as_text=True)


def test_region_and_district_pages_list_institutions(client):
    region = make_region(code="KZ-99")
    district = make_district(region, slug="test-city", name_ru="город Тест")
    school = make_institution(district, name_ru="Школа №77", name_kk="№77 мектеп")
    region_page = client.get("/regions/kz-99", headers={"Accept-Language": "ru"})
    assert "город Тест" in region_page.get_data(as_text=True)
    district_page = client.get("/regions/KZ-99/test-city", headers={"Accept-Language": "ru"})
    assert "Школа №77" in district_page.get_data(as_text=True)
    detail = client.get(f"/institutions/{school.id}", headers={"Accept-Language": "ru"})
    assert detail.status_code == 200 and "Школа №77" in detail.get_data(as_text=True)


def test_missing_and_hidden_pages_are_404(client):
    hidden = make_institution(active=False)
    assert client.get("/regions/KZ-00").status_code == 404
    assert client.get(f"/institutions/{hidden.id}").status_code == 404
    assert client.get("/institutions/999999").status_code == 404


def test_health_and_readiness(client):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ok", "database": "ok"}


# Security headers on every kind of response: tests/integration/test_headers.py


def test_the_header_kept_for_visitors_is_the_header_rendered_for_them(app, client):
    """Visitors who are not signed in get the header kept per language with their own page put
    into the language switcher: byte for byte what rendering it for that page gives."""
    import re

    from flask import render_template

    from receptions.layout import request_path

    paths = [
        "/",
        "/institutions?q=%D0%BC%D0%B5%D0%BA%D1%82%D0%B5%D0%BF&type=school",
        "/status?x=%3Cscript%3E%22%27&y=1",
        "/institutions?q=ASHYQNEXTPAGE",
    ]
    for language in ("kk", "ru", "en", "kk"):
        for path in paths:
            headers = {"Accept-Language": language}
            page = client.get(path, headers=headers).get_data(as_text=True)
            with app.test_request_context(path, headers=headers):
                expected = render_template(
                    "_header.html", signed_in=False, next_path=request_path()
                ).strip()
            assert expected in page, (language, path)
            switcher = re.findall(r'href="(/language/[a-z]{2}\?next=[^"]*)"', page)
            assert len(switcher) == 3


def test_signed_in_staff_get_their_own_header(client):
    from tests.conftest import sign_in
    from tests.factories import PASSWORD, make_user

    user = make_user(full_name="Айгерім Сапарова")
    assert "Айгерім Сапарова" not in client.get("/").get_data(as_text=True)
    sign_in(client, user.email, PASSWORD)
    page = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Айгерім Сапарова" in page and "My workspace" in page and "Staff sign-in" not in page
    client.post("/auth/sign-out", data={})  # without its token: refused, still signed in
    assert "My workspace" in client.get("/", headers={"Accept-Language": "en"}).get_data(
        as_text=True
    )
    # Meanwhile another visitor gets the header kept for visitors, without that name.
    with client.application.test_client() as visitor:
        page = visitor.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
        assert "Айгерім Сапарова" not in page and "Staff sign-in" in page


def test_pages_link_an_icon_that_is_served_from_here(client):
    # Without one a browser asks for /favicon.ico on every first visit and logs a 404.
    import re

    page = client.get("/").get_data(as_text=True)
    icon = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', page).group(1)
    response = client.get(icon)
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml" and b"<svg" in response.data


def test_the_institution_page_pages_through_free_times_three_weeks_at_a_time(client):
    """Booking opens 30 days ahead, the page shows three weeks: "Later times" shows the weeks
    after, "Earlier times" goes back; a date before today is today's page, a bad one a 400."""
    import re

    from tests.factories import make_open_session

    institution = make_institution()
    soon = make_open_session(institution, starts_in_hours=5 * 24)
    later = make_open_session(institution, starts_in_hours=26 * 24)
    en = {"Accept-Language": "en"}

    def slot_ids(html: str) -> set[int]:
        return {int(n) for n in re.findall(r'href="/book/(\d+)"', html)}

    first = client.get(f"/institutions/{institution.id}", headers=en).get_data(as_text=True)
    assert soon.slots[0].id in slot_ids(first) and later.slots[0].id not in slot_ids(first)
    assert "Earlier times" not in first
    link = re.search(r'<a href="([^"]+)#free-slots" rel="next">Later times</a>', first)
    second = client.get(link.group(1).replace("&amp;", "&"), headers=en).get_data(as_text=True)
    assert later.slots[0].id in slot_ids(second) and soon.slots[0].id not in slot_ids(second)
    assert "Later times" not in second  # nothing is planned after it
    back = re.search(r'<a href="([^"]+)#free-slots" rel="prev">Earlier times</a>', second)
    assert back.group(1) == f"/institutions/{institution.id}"  # three weeks back is today
    past = client.get(f"/institutions/{institution.id}?from=2020-01-01", headers=en)
    assert past.status_code == 200 and slot_ids(past.get_data(as_text=True)) == slot_ids(first)
    assert client.get(f"/institutions/{institution.id}?from=2026-13-45").status_code == 400


def test_the_host_is_named_with_the_heads_position_in_the_readers_language(client):
    """A schedule whose host is the head shows the head's position in the reader's language (it
    showed the one-language copy the form had filled in); a position staff typed is shown."""
    from tests.factories import make_open_session

    institution = make_institution(
        head_name="Айгүл Тестова",
        head_position_kk="Мектеп директоры",
        head_position_ru="Директор школы",
    )
    session = make_open_session(institution, host_name="Айгүл Тестова", host_position="")
    pages = {
        lang: (
            client.get(f"/institutions/{institution.id}", headers={"Accept-Language": lang}),
            client.get(f"/book/{session.slots[0].id}", headers={"Accept-Language": lang}),
        )
        for lang in ("kk", "ru", "en")
    }
    for lang, position in (
        ("kk", "Мектеп директоры"),
        ("ru", "Директор школы"),
        ("en", "Директор школы"),
    ):
        for page in pages[lang]:
            assert f"Айгүл Тестова, {position}" in page.get_data(as_text=True), lang
    typed = make_open_session(
        institution, host_name="Ерлан Тестов", host_position="Орынбасар", starts_in_hours=96
    )
    form = client.get(f"/book/{typed.slots[0].id}", headers={"Accept-Language": "ru"})
    assert "Ерлан Тестов, Орынбасар" in form.get_data(as_text=True)


def test_consecutive_pages_of_free_times_share_no_session(client):
    """A page ends at local midnight, where the next one starts: no session is on both."""
    import re
    from datetime import UTC, datetime, time, timedelta
    from zoneinfo import ZoneInfo

    from tests.factories import make_open_session

    institution = make_institution()
    sessions = [make_open_session(institution, starts_in_hours=h) for h in range(6, 60 * 24, 22)]
    # One at local midnight three weeks ahead, where the second page starts.
    zone = ZoneInfo(institution.district.region.timezone)
    now = datetime.now(UTC)
    boundary = datetime.combine(now.astimezone(zone).date() + timedelta(days=21), time(), zone)
    hours = (boundary - now).total_seconds() / 3600
    sessions.append(make_open_session(institution, starts_in_hours=hours))
    assert sessions[-1].starts_at == boundary
    seen: list[int] = []
    path = f"/institutions/{institution.id}"
    while path:
        html = client.get(path, headers={"Accept-Language": "en"}).get_data(as_text=True)
        seen += [int(n) for n in re.findall(r'href="/book/(\d+)"', html)]
        link = re.search(r'<a href="([^"]+)#free-slots" rel="next">', html)
        path = link.group(1).replace("&amp;", "&") if link else None
    bookable = {slot.id for session in sessions for slot in session.slots}
    assert len(seen) == len(set(seen))
    assert set(seen) <= bookable and len(set(seen)) > 10
