"""Browser harness: Playwright drives Debian's Chromium against the app served from a thread.

Every page runs under the app's real Content-Security-Policy (axe-core is served from the test
server's own origin, so it needs no `bypass_csp`). A test fails at teardown if a page asked for
anything outside the test server, broke the CSP, threw an uncaught script error or got a 5xx.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests.conftest import skip_unless_ci
from tests.factories import make_district, make_institution, make_region

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
AXE_PATH = "/__browser-tests__/axe.min.js"  # answered by the page fixture, never by the app
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
HERE = Path(__file__).resolve().parent

# For checks of markup, CSS and the harness itself, which no database can change: they run on
# SQLite only, to keep the browser suite fast. Flows that read or write data run on both backends.
one_database = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        skip_unless_ci("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def live_server_url(app: Any) -> Iterator[str]:
    """The test's app (SQLite or PostgreSQL) served over HTTP from a background thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},  # shutdown() waits up to one poll interval (default 0.5 s)
        name="live-server",
        daemon=True,
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def locale() -> str:
    """The browser's language; override with @pytest.mark.parametrize("locale", [...])."""
    return "kk-KZ"


@pytest.fixture
def places(app: Any) -> list[Any]:
    """One region with one district and three institutions named in Kazakh and Russian."""
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


@pytest.fixture(scope="session")
def axe_source() -> bytes:
    return AXE.read_bytes()


@pytest.fixture
def page(
    browser: Any,
    live_server_url: str,
    locale: str,
    request: pytest.FixtureRequest,
    artifacts_dir: Path,
    axe_source: bytes,
) -> Iterator[Any]:
    """A fresh context and page; the test fails if a page needed anything but the test server."""
    context = browser.new_context(
        locale=locale, extra_http_headers={"Accept-Language": locale.split("-")[0]}
    )
    problems: list[str] = []

    def block(route: Any) -> None:
        problems.append(f"outside request: {route.request.url}")
        route.abort("blockedbyclient")

    # Regular expressions are matched in Playwright's driver, so the app's own requests never
    # make a round trip through Python; only outside requests and axe-core reach the handlers.
    own = re.escape(live_server_url + "/")
    context.route(re.compile(f"^(?!{own})"), block)
    context.route(
        re.compile(f"^{re.escape(live_server_url + AXE_PATH)}$"),
        lambda route: route.fulfill(body=axe_source, content_type="application/javascript"),
    )

    def on_console(message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            problems.append(f"CSP violation: {message.text}")

    def on_response(response: Any) -> None:
        if response.status >= 500:
            problems.append(f"HTTP {response.status}: {response.url}")

    page = context.new_page()
    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"uncaught script error: {error}"))
    page.on("response", on_response)
    page.set_default_timeout(10_000)
    page.base_url = live_server_url  # type: ignore[attr-defined]
    page.browser_problems = problems  # type: ignore[attr-defined]
    failure_shot = artifacts_dir / f"failed-{request.node.name}.png"
    failure_shot.unlink(missing_ok=True)  # left by an earlier run; it would mislead
    try:
        yield page
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            page.screenshot(path=str(failure_shot), full_page=True)
    finally:
        context.close()
    assert problems == [], "the browser saw problems:\n" + "\n".join(problems)


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Serious and critical WCAG 2.0/2.1 A and AA violations on the current page (axe-core).

    The first call on a page loads axe-core from the test server's origin (so the app's CSP
    allows it) and registers it as an init script, so later pages of the test already have it.
    """
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(url=page.base_url + AXE_PATH)
        if not getattr(page.context, "axe_preloaded", False):
            page.context.add_init_script(path=str(AXE))
            page.context.axe_preloaded = True
    result = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {
                runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
            return result.violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => ({id: v.id, impact: v.impact, help: v.help,
                            nodes: v.nodes.slice(0, 5).map(n => ({
                                target: n.target.join(' '), html: n.html.slice(0, 200),
                                summary: n.failureSummary}))}));
        }""",
        AXE_TAGS,
    )
    return list(result)


def tab_to(page: Any, selector: str, limit: int = 80) -> None:
    """Press Tab until the first element matching the CSS `selector` has the focus, as a
    keyboard user would."""
    for _ in range(limit):
        if page.evaluate("s => document.activeElement === document.querySelector(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} never received the keyboard focus")


def in_viewport(locator: Any) -> bool:
    """Shown on screen: rendered, at least 2×2 px, and wholly inside the viewport."""
    return bool(
        locator.is_visible()
        and locator.evaluate(
            """el => { const r = el.getBoundingClientRect();
                return r.width >= 2 && r.height >= 2 && r.left >= 0 && r.top >= 0
                    && r.right <= window.innerWidth && r.bottom <= window.innerHeight; }"""
        )
    )


def sign_in(page: Any, user: Any) -> None:
    """Sign `user` in through the sign-in form (every factory user's password is PASSWORD)."""
    from tests.factories import PASSWORD

    page.goto(page.base_url + "/auth/sign-in")
    page.fill("#email", user.email)
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_url("**/staff/")
