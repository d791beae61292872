"""Layout checks axe-core cannot make: pages reflow at 320 CSS px (WCAG 1.4.10) and the header,
navigation and content share one column.

Known failures (reported, to be fixed in static/css/app.css) make a test xfail; anything new
fails it, and once the known ones are fixed the test simply passes.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import one_database

# Horizontal scrolling at 320 px found when this test was written.
KNOWN_OVERFLOW = {
    "kk /": "the type <select> is as wide as its longest option",
    "kk /institutions": "the type <select> is as wide as its longest option",
    "ru /": "the type <select> is as wide as its longest option",
    "ru /institutions": "the type <select> is as wide as its longest option",
    "ru /institutions/<id>": "the h1 «Общеобразовательная …» does not wrap inside the word",
}

OVERFLOW = """() => {
    const width = window.innerWidth;
    if (document.documentElement.scrollWidth <= width) return null;
    const wide = [...document.querySelectorAll('body *')]
        .filter(el => el.getBoundingClientRect().right > width + 0.5)
        .map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : ''));
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        const range = document.createRange();
        range.selectNodeContents(walker.currentNode);
        if (range.getBoundingClientRect().right > width + 0.5)
            wide.push('text «' + walker.currentNode.textContent.trim().slice(0, 40) + '»');
    }
    return `scrollWidth ${document.documentElement.scrollWidth}: ${wide.slice(-3).join(', ')}`;
}"""


@one_database
def test_public_pages_reflow_at_320_px(page, places):
    page.set_viewport_size({"width": 320, "height": 640})
    found = {}
    for language in ("kk", "ru", "en"):
        page.goto(page.base_url + f"/language/{language}")  # the switcher's own link
        for label, path in (
            ("/", "/"),
            ("/institutions", "/institutions?q=мектеп"),
            ("/institutions/<id>", f"/institutions/{places[0].id}"),
            ("/auth/sign-in", "/auth/sign-in"),
        ):
            page.goto(page.base_url + path)
            assert page.locator("html").get_attribute("lang") == language
            problem = page.evaluate(OVERFLOW)
            if problem:
                found[f"{language} {label}"] = problem
    assert {k: v for k, v in found.items() if k not in KNOWN_OVERFLOW} == {}
    if found:
        pytest.xfail(f"known horizontal scrolling at 320 px (static/css/app.css): {found}")


@one_database
def test_navigation_lines_up_with_the_content(page, places):
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(page.base_url + "/")
    left = page.evaluate(
        """() => Object.fromEntries(['.brand', '.main-nav a', 'main h1'].map(
            sel => [sel, Math.round(document.querySelector(sel).getBoundingClientRect().left)]))"""
    )
    if left[".main-nav a"] != left["main h1"] and left[".brand"] == left["main h1"]:
        pytest.xfail(
            f"known: `.main-nav ul {{ margin: 0 }}` overrides `.wrap {{ margin: 0 auto }}`, "
            f"so the main navigation starts at the window edge: {left}"
        )
    assert left[".brand"] == left[".main-nav a"] == left["main h1"], left
