"""A citizen finds an institution in Kazakh with the keyboard; pages pass axe-core in kk/ru/en."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from receptions.auth.models import Role
from tests.browser.conftest import axe_violations, in_viewport, one_database, tab_to
from tests.factories import PASSWORD, make_user


def test_home_in_kazakh_with_keyboard_only(page, places, artifacts_dir):
    page.goto(page.base_url + "/")
    assert page.locator("html").get_attribute("lang") == "kk"
    assert page.locator("h1").inner_text() == (
        "Мемлекеттік ұйымдардағы ашық есік күндері және қабылдаулар"
    )
    assert page.get_by_role("link", name="Сынақ облысы").is_visible()
    page.screenshot(path=str(artifacts_dir / "home-kk.png"), full_page=True)

    skip = page.locator(".skip-link")
    assert not in_viewport(skip), "the skip link should stay off screen until it has the focus"
    page.keyboard.press("Tab")
    assert skip.evaluate("el => el === document.activeElement")
    assert in_viewport(skip), "the focused skip link is not on screen"
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused(timeout=2000)

    tab_to(page, "#q")
    page.keyboard.type("ЕМХАНА")  # upper case; the name is stored as «№2 қалалық емхана»
    page.keyboard.press("Enter")
    page.wait_for_url("**/institutions?**")
    results = page.locator(".institution-list").inner_text()
    assert "№2 қалалық емхана" in results
    assert "мектеп" not in results and "балабақша" not in results


def test_language_switch_is_remembered(page, places):
    page.goto(page.base_url + "/")
    tab_to(page, "nav.languages a[hreflang=ru]")
    with page.expect_navigation():  # /language/ru?next=/ redirects back to the same URL
        page.keyboard.press("Enter")
    assert page.locator("html").get_attribute("lang") == "ru"
    assert page.locator("h1").inner_text() == (
        "Дни открытых дверей и приёмы в государственных организациях"
    )
    assert page.locator(".skip-link").inner_text() == "Перейти к основному содержанию"
    assert page.get_by_role("link", name="Тестовая область").is_visible()
    assert "Сынақ облысы" not in page.locator("main").inner_text()

    page.get_by_role("link", name="Тестовая область").click()
    page.wait_for_url("**/regions/KZ-97")
    assert page.locator("html").get_attribute("lang") == "ru"
    assert page.get_by_role("link", name="город Тест").is_visible()
    # A fresh visit still sends Accept-Language: kk; the remembered choice wins.
    page.goto(page.base_url + "/auth/sign-in")
    assert page.locator("html").get_attribute("lang") == "ru"
    assert page.locator("h1").inner_text() == "Вход для сотрудников"


def test_staff_sign_in_with_the_keyboard(page, places):
    staff = make_user(Role.staff, institution=places[0])
    page.goto(page.base_url + "/auth/sign-in")
    tab_to(page, "#email")
    page.keyboard.type(staff.email)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/staff/")
    assert "№5 жалпы білім беретін мектеп" in page.locator("main").inner_text()


@one_database
@pytest.mark.parametrize("locale", ["kk-KZ", "ru-RU", "en-GB"])
def test_public_pages_have_no_serious_accessibility_violations(page, places, locale):
    language = locale.split("-")[0]
    found = {}
    for path in (
        "/",
        "/institutions?q=мектеп",
        "/regions/KZ-97",
        "/regions/KZ-97/qala",
        f"/institutions/{places[0].id}",
        "/auth/sign-in",
        "/status",
    ):
        page.goto(page.base_url + path)
        assert page.locator("html").get_attribute("lang") == language, path
        found[path] = axe_violations(page)
    # The sign-in form with its error summary, as a user who pressed Enter too early sees it.
    page.goto(page.base_url + "/auth/sign-in")
    with page.expect_navigation():  # the form posts back to its own URL
        page.locator("form.narrow button[type=submit]").click()
    assert page.locator(".error-summary").is_visible()
    found["/auth/sign-in (errors)"] = axe_violations(page)
    assert {path: v for path, v in found.items() if v} == {}
