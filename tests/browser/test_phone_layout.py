"""On a phone (390×844, Kazakh) the pages a citizen and the staff at the door use fit the screen:
no page-level sideways scrolling, every data table scrolls in its own named, focusable region,
table headers never break inside a word; a form shown again with errors focuses its summary."""

from __future__ import annotations

import pytest

from receptions.auth.models import Role
from receptions.extensions import db
from tests.browser.conftest import sign_in
from tests.factories import PASSWORD, make_open_session, make_topic, make_user
from tests.hostile import booking_with_token

PHONE = {"width": 390, "height": 844}
LONG_EMAIL = "qabyldau.bolimi.zhalpy.bilim.beretin.mektep.nomer.12@atyrau-bilim.example.kz"

PAGE_WIDTH = "() => [document.documentElement.scrollWidth, window.innerWidth]"
# Tables outside a region that scrolls, takes the keyboard focus and is named by the caption
# (after the heading it stands under, where captions repeat on the page).
TABLES_OUTSIDE_A_REGION = """() => [...document.querySelectorAll('main table')].filter(table => {
    const region = table.closest('.table-scroll');
    const caption = table.querySelector('caption');
    const names = (region && region.getAttribute('aria-labelledby') || '').split(' ');
    return !(region && region.getAttribute('role') === 'region' && region.tabIndex === 0
        && caption && caption.id && names[names.length - 1] === caption.id
        && getComputedStyle(region).overflowX === 'auto');
}).map(table => table.outerHTML.slice(0, 80))"""
# Words of header cells laid out on more than one line, i.e. broken inside the word.
HEADER_WORDS_BROKEN = """() => {
    const broken = [];
    for (const cell of document.querySelectorAll('main th')) {
        const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        while (walker.nextNode()) {
            const node = walker.currentNode;
            for (const word of node.textContent.matchAll(/\\S+/g)) {
                const range = document.createRange();
                range.setStart(node, word.index);
                range.setEnd(node, word.index + word[0].length);
                const lines = new Set([...range.getClientRects()].filter(r => r.width > 0)
                    .map(r => Math.round(r.top)));
                if (lines.size > 1) broken.push(word[0]);
            }
        }
    }
    return broken;
}"""
FOCUSED_ERROR_SUMMARY = "() => document.activeElement.matches('.error-summary')"


@pytest.fixture
def door(places):
    """A school with a long e-mail address, today's session with a booking at the door, coming
    sessions with free times, a head and a regional officer."""
    school = places[0]
    school.email = LONG_EMAIL
    topic = make_topic(name_kk="Тұрғын үй-коммуналдық шаруашылық", name_ru="ЖКХ")
    today = make_open_session(school, slots=2, earlier_today=True)
    booking_with_token(today.slots[0], topic=topic, name="Жұмабаев Ерлан Серікұлы")
    coming = make_open_session(school, slots=6, starts_in_hours=72)
    _, token = booking_with_token(coming.slots[0], topic=topic)
    head = make_user(Role.head, institution=school)
    officer = make_user(Role.region_officer, region=school.district.region)
    db.session.commit()
    return school, today, coming, token, head, officer


def _fits_the_phone(page, where: str) -> None:
    assert page.evaluate(HEADER_WORDS_BROKEN) == [], where
    width, screen = page.evaluate(PAGE_WIDTH)
    assert width <= screen, f"{where}: the page is {width} px wide on a {screen} px screen"
    assert page.evaluate(TABLES_OUTSIDE_A_REGION) == [], where


def test_door_and_citizen_pages_fit_a_phone_in_kazakh(page, door):
    school, _today, coming, token, head, officer = door
    page.set_viewport_size(PHONE)

    for where, path in (
        ("institution", f"/institutions/{school.id}"),
        ("booking form", f"/book/{coming.slots[1].id}"),
        ("reschedule", f"/m/{token}/reschedule"),
    ):
        page.goto(page.base_url + path)
        assert page.locator("html").get_attribute("lang") == "kk"
        _fits_the_phone(page, where)
    page.goto(page.base_url + f"/institutions/{school.id}")
    assert page.get_by_role("link", name=LONG_EMAIL).is_visible()

    sign_in(page, head)
    page.goto(page.base_url + f"/staff/institutions/{school.id}/agenda")
    _fits_the_phone(page, "agenda")
    came = page.locator("button[value=attended]").first
    box = came.bounding_box()
    assert box and box["x"] + box["width"] <= PHONE["width"], "check-in is off screen"
    came.click()
    page.wait_for_load_state()
    page.get_by_role("link", name="Жұмабаев Ерлан Серікұлы").click()
    page.wait_for_url("**/staff/visits/*")
    _fits_the_phone(page, "visit")
    page.goto(page.base_url + f"/staff/institutions/{school.id}/schedules")
    _fits_the_phone(page, "schedules")

    page.context.clear_cookies()
    page.goto(page.base_url + "/auth/sign-in")
    page.fill("#email", officer.email)
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_load_state()
    region = school.district.region
    for where, path in (
        ("dashboard", f"/reports/dashboard?scope=region:{region.id}"),
        ("rankings", f"/reports/rankings?scope=region:{region.id}"),
    ):
        page.goto(page.base_url + path)
        _fits_the_phone(page, where)


def test_a_failed_submit_focuses_the_error_summary(page, door):
    _school, today, coming, token, head, _officer = door
    page.set_viewport_size(PHONE)
    for path in (f"/book/{coming.slots[1].id}", f"/m/{token}/reschedule"):
        page.goto(page.base_url + path)
        page.locator("main form button[type=submit]").last.click()
        page.wait_for_load_state()
        summary = page.locator(".error-summary")
        assert summary.is_visible(), path
        assert page.evaluate(FOCUSED_ERROR_SUMMARY), path
        top = summary.bounding_box()["y"]
        assert 0 <= top < PHONE["height"], f"{path}: the summary is not on screen"

    sign_in(page, head)
    page.goto(page.base_url + f"/staff/sessions/{today.id}/walk-in")
    # Keyboard-first: the name field has the focus (Chromium may apply autofocus just after load).
    page.wait_for_function("() => document.activeElement.id === 'name'", timeout=5000)
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()
    assert page.evaluate(FOCUSED_ERROR_SUMMARY), "walk-in"
