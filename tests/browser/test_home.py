"""A citizen finds an institution in Kazakh with the keyboard; pages pass axe-core."""

from __future__ import annotations

import pytest

from receptions.auth.models import Role
from tests.browser.conftest import axe_violations
from tests.factories import PASSWORD, make_district, make_institution, make_region, make_user


@pytest.fixture
def places(app):
    region = make_region(code="KZ-97", name_kk="Сынақ облысы", name_ru="Тестовая область")
    district = make_district(region, slug="qala", name_kk="Сынақ қаласы", name_ru="город Тест")
    return [
        make_institution(
            district,
            name_kk="№5 жалпы білім беретін мектеп",
            name_ru="Общеобразовательная школа №5",
        ),
        make_institution(
            district,
            type="polyclinic",
            name_kk="№2 қалалық емхана",
            name_ru="Городская поликлиника №2",
        ),
        make_institution(
            district,
            type="kindergarten",
            name_kk="«Айгөлек» балабақшасы",
            name_ru="Детский сад «Айгөлек»",
        ),
    ]


def test_home_in_kazakh_with_keyboard_only(page, places, artifacts_dir):
    page.goto(page.base_url + "/")
    assert page.locator("html").get_attribute("lang") == "kk"
    assert page.get_by_text("Сынақ облысы").is_visible()
    page.screenshot(path=str(artifacts_dir / "home-kk.png"), full_page=True)

    page.keyboard.press("Tab")
    skip = page.locator(".skip-link")
    assert skip.evaluate("el => el === document.activeElement")
    assert skip.is_visible()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    search = page.locator("#q")
    while not search.evaluate("el => el === document.activeElement"):
        page.keyboard.press("Tab")
    page.keyboard.type("ЕМХАНА")
    page.keyboard.press("Enter")
    page.wait_for_url("**/institutions?**")
    results = page.locator(".institution-list")
    assert "№2 қалалық емхана" in results.inner_text()
    assert "мектеп" not in results.inner_text()


def test_language_switch_is_remembered(page, places):
    page.goto(page.base_url + "/")
    page.get_by_role("link", name="Русский").click()
    assert page.locator("html").get_attribute("lang") == "ru"
    assert page.get_by_text("Тестовая область").is_visible()
    page.get_by_role("link", name="Тестовая область").click()
    assert page.locator("html").get_attribute("lang") == "ru"
    assert page.get_by_text("город Тест").is_visible()


def test_staff_sign_in_with_the_keyboard(page, places):
    staff = make_user(Role.staff, institution=places[0])
    page.goto(page.base_url + "/auth/sign-in")
    page.locator("#email").focus()
    page.keyboard.type(staff.email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/staff/")
    assert "№5 жалпы білім беретін мектеп" in page.locator("main").inner_text()


@pytest.mark.parametrize("locale", ["kk-KZ", "ru-RU", "en-GB"])
def test_public_pages_have_no_serious_accessibility_violations(page, places, locale):
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
        assert axe_violations(page) == [], path
