"""A full open-door day in the browser: three bookings, one no-show, one walk-in, four questions
with all three outcomes, the session closed, and the citizen's status page shows the outcome."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import expect
from sqlalchemy import select

from receptions.auth.models import Role
from receptions.booking.models import Booking
from receptions.extensions import db
from receptions.schedules.models import ScheduledSession
from receptions.visits.models import Question
from tests.browser.conftest import axe_violations, one_database, sign_in
from tests.factories import make_booking, make_open_session, make_topic, make_user


def _add_question_and_outcome(page, summary, outcome, *, responsible="", due=""):
    page.fill("#summary", summary)
    page.locator("form:has(#summary) button[type=submit]").click()
    page.wait_for_load_state()
    card = page.locator("section.question-card", has_text=summary)
    card.locator(f"input[type=radio][value={outcome}]").check()
    if responsible:
        card.locator("input[name$='responsible']").fill(responsible)
    if due:
        card.locator("input[name$='due_date']").fill(due)
    card.locator("button[type=submit]").click()
    page.wait_for_load_state()


def test_a_full_open_door_day(page, app):
    session = make_open_session(slots=3, capacity=2, earlier_today=True, kind="open_door")
    topic = make_topic(name_kk="Білім беру", name_ru="Образование")
    bookings = [
        make_booking(slot, topic=topic, name=name)
        for slot, name in zip(
            session.slots, ("Айгерім Сынақова", "Бауыржан Сынақов", "Ольга Тестова"), strict=True
        )
    ]
    topic_id = topic.id
    head = make_user(Role.head, institution=session.institution)
    # Just after local midnight the later slots have not begun, and a no-show may be marked only
    # once its slot has: the app's clock then stands just after the last slot's start.
    last_start = session.slots[-1].starts_at
    if last_start > datetime.now(UTC):
        app.config["FROZEN_NOW"] = last_start + timedelta(minutes=1)
    sign_in(page, head)

    agenda = f"/staff/institutions/{session.institution_id}/agenda"
    page.goto(page.base_url + agenda)
    assert axe_violations(page) == []
    rows = {b.citizen_name: page.locator("tr", has_text=b.citizen_name) for b in bookings}
    rows["Айгерім Сынақова"].locator("button[value=attended]").click()
    page.wait_for_load_state()
    page.locator("tr", has_text="Бауыржан Сынақов").locator("button[value=attended]").click()
    page.wait_for_load_state()
    page.locator("tr", has_text="Ольга Тестова").locator("button[value=no_show]").click()
    page.wait_for_load_state()

    page.get_by_role("link", name="Жазылусыз келген азаматты тіркеу").click()
    page.wait_for_url("**/walk-in")
    # Keyboard only: the cursor is already in the name; Tab to the topic (it starts on "choose a
    # topic": the arrow key picks the first) and the question, Tab again into the IIN line,
    # where Enter registers the visitor.
    expect(page.locator("#name")).to_be_focused()
    page.keyboard.type("Серік Жаяу")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "topic_id"
    page.keyboard.press("ArrowDown")
    expect(page.locator("#topic_id")).to_have_value(str(topic_id))
    page.keyboard.press("Tab")
    page.keyboard.type("Мектеп алаңын жарықтандыру")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "iin"
    page.keyboard.press("Enter")
    page.wait_for_url("**/staff/visits/*")
    walk_in_card = page.locator("section.question-card").first
    walk_in_card.locator("input[type=radio][value=resolved]").check()
    walk_in_card.locator("button[type=submit]").click()
    page.wait_for_load_state()

    due = (datetime.now(ZoneInfo("Asia/Almaty")).date() + timedelta(days=15)).isoformat()
    page.goto(page.base_url + agenda)
    page.locator("tr", has_text="Айгерім Сынақова").get_by_role("link").first.click()
    page.wait_for_url("**/staff/visits/*")
    _add_question_and_outcome(page, "Оқулықтар жетіспейді", "resolved")
    _add_question_and_outcome(
        page, "Спорт залын жөндеу", "pending", responsible="Шаруашылық меңгерушісі", due=due
    )
    page.goto(page.base_url + agenda)
    page.locator("tr", has_text="Бауыржан Сынақов").get_by_role("link").first.click()
    page.wait_for_url("**/staff/visits/*")
    _add_question_and_outcome(page, "Мектеп формасы туралы", "explained")

    db.session.rollback()
    outcomes = sorted(q.outcome for q in db.session.scalars(select(Question)))
    assert outcomes == ["explained", "pending", "resolved", "resolved"]

    # The session is over: close it out.
    db.session.get(ScheduledSession, session.id).ends_at = datetime.now(ZoneInfo("UTC"))
    db.session.commit()
    page.goto(page.base_url + f"/staff/institutions/{session.institution_id}/close-out")
    page.locator(f"#held-yes-{session.id}").check()
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()
    assert "Барлық өткен сеанстар жабылған" in page.locator("main").inner_text()
    db.session.rollback()
    closed = db.session.get(ScheduledSession, session.id)
    assert closed.status == "held" and closed.received_count == 3

    page.goto(page.base_url + f"/status/{bookings[0].reference}")
    status = page.locator("main").inner_text()
    assert "Оң шешілді" in status and "Шешілу үстінде" in status
    assert "Айгерім" not in status
    db.session.rollback()
    assert db.session.get(Booking, bookings[2].id).status == "no_show"


@one_database
def test_the_printed_register_has_one_page_per_session(page, app):
    session = make_open_session(slots=2, earlier_today=True, kind="open_door")
    other = make_open_session(session.institution, slots=2, earlier_today=True)
    for slot in session.slots + other.slots:
        make_booking(slot)
    head = make_user(Role.head, institution=session.institution)
    sign_in(page, head)
    page.goto(page.base_url + f"/staff/institutions/{session.institution_id}/register")
    assert page.locator("section.register-page").count() == 2
    pdf = page.pdf(format="A4", landscape=True, prefer_css_page_size=True)
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pages == 2
