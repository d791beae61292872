"""The schedule form previews the next six sessions while staff type, and without JavaScript."""

from __future__ import annotations

import pytest

from receptions.auth.models import Role
from tests.browser.conftest import axe_violations
from tests.factories import PASSWORD, make_institution, make_user


def _sign_in(page, user):
    page.goto(page.base_url + "/auth/sign-in")
    page.fill("#email", user.email)
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_url("**/staff/")


@pytest.mark.parametrize("locale", ["en-GB"])
def test_preview_follows_the_form_as_it_changes(page, app, locale):
    head = make_user(Role.head, institution=make_institution())
    _sign_in(page, head)
    page.goto(f"{page.base_url}/staff/institutions/{head.institution_id}/schedules/new")
    page.select_option("#kind", "reception")
    page.check("input[name=weekdays][value='1']")  # Tuesday
    page.fill("#start_time", "15:00")
    page.fill("#end_time", "17:00")
    page.fill("#slot_minutes", "20")
    page.locator("#end_time").dispatch_event("change")
    items = page.locator("#preview .preview-list li")
    items.first.wait_for()
    assert items.count() == 6
    assert all("Tuesday" in text and "15:00" in text for text in items.all_inner_texts())
    assert "6 slots" in items.first.inner_text()

    # Moving the start changes the preview in place, without a page load.
    page.evaluate("window.__same_page = true")
    page.fill("#start_time", "16:00")
    page.locator("#start_time").dispatch_event("change")
    page.locator("#preview li", has_text="16:00").first.wait_for()
    assert page.evaluate("window.__same_page") is True
    assert "3 slots" in items.first.inner_text()
    assert axe_violations(page) == []

    # A broken entry says so instead of showing stale sessions.
    page.fill("#end_time", "14:00")
    page.locator("#end_time").dispatch_event("change")
    page.locator("#preview .error").wait_for()
    assert page.locator("#preview .preview-list").count() == 0
