"""The report filter in a browser: a month in progress says so, a period that cannot be shown
comes back with its message at the field and the error summary focused; both pass axe and fit
a phone, in Kazakh."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from receptions.auth.models import Role
from tests.browser.conftest import axe_violations, one_database, sign_in
from tests.browser.test_phone_layout import FOCUSED_ERROR_SUMMARY, PHONE, _fits_the_phone
from tests.factories import make_open_session, make_user

# 8 December 2026, 14:00 in Almaty.
NOW = datetime(2026, 12, 8, 14, 0, tzinfo=ZoneInfo("Asia/Almaty"))


@one_database
def test_a_month_in_progress_and_a_refused_period_read_well_on_a_phone(app, page, places):
    app.config["FROZEN_NOW"] = NOW.astimezone(UTC)
    make_open_session(places[0], kind="open_door")  # three days after the real now: to come
    officer = make_user(Role.district_officer, district=places[0].district)
    page.set_viewport_size(PHONE)
    sign_in(page, officer)
    scope = f"scope=district:{places[0].district_id}"

    page.goto(page.base_url + f"/reports/dashboard?{scope}&month=2026-12")
    notice = page.locator("#progress-notice")
    assert "желтоқсан әлі аяқталған жоқ: көрсеткіштер 8 желтоқсан 2026, сағ. 14:00" in (
        notice.inner_text()
    )
    assert axe_violations(page) == []
    _fits_the_phone(page, "dashboard of a month in progress")

    page.locator("#from").fill("2026-12")
    page.locator("#to").fill("2026-09")
    page.locator("#month").fill("")
    with page.expect_navigation():
        page.get_by_role("button", name="Көрсету").click()
    assert page.evaluate(FOCUSED_ERROR_SUMMARY)
    assert page.locator("#to-error").inner_text() == "Кезең басталмай тұрып аяқтала алмайды."
    assert page.locator("#to").input_value() == "2026-09"
    assert page.locator("#to").get_attribute("aria-describedby") == "to-error"
    assert axe_violations(page) == []
    _fits_the_phone(page, "refused period")
    app.config.pop("FROZEN_NOW")
