"""The harness itself: the app's CSP applies in the browser, outside requests are blocked, and
both are reported (so a page that wants a CDN fails its test)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.browser.conftest import axe_violations, one_database


def _wait_for(page, predicate, timeout_ms: int = 3000) -> None:
    for _ in range(timeout_ms // 50):
        if predicate():
            return
        page.wait_for_timeout(50)


@one_database
def test_csp_violations_and_outside_requests_are_caught(page, app):
    problems = page.browser_problems
    page.goto(page.base_url + "/")
    assert problems == []

    page.evaluate(
        """() => {
            const img = document.createElement('img');
            img.src = 'https://cdn.example.com/logo.png';
            document.body.append(img);
            const script = document.createElement('script');
            script.textContent = 'window.inlineRan = true';
            document.head.append(script);
        }"""
    )
    _wait_for(page, lambda: len(problems) >= 2)
    assert page.evaluate("window.inlineRan === undefined"), "inline script ran: CSP not enforced"
    assert any("inline script" in p for p in problems), problems
    assert any("https://cdn.example.com/logo.png" in p for p in problems), problems

    # What the CSP does not cover (a navigation) the request guard stops.
    problems.clear()
    with pytest.raises(PlaywrightError):
        page.goto("https://cdn.example.com/")
    assert problems == ["outside request: https://cdn.example.com/"]
    problems.clear()  # seen and expected: don't fail this test at teardown


@one_database
def test_axe_reports_a_serious_violation(page, app):
    page.goto(page.base_url + "/")
    assert axe_violations(page) == []
    page.evaluate(
        """() => { const a = document.createElement('a');
                   a.href = '/'; a.className = 'icon-only'; document.querySelector('main').append(a); }"""
    )
    found = axe_violations(page)
    assert [v["id"] for v in found] == ["link-name"], found
    assert found[0]["nodes"][0]["target"] == ".icon-only"
