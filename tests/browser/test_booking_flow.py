"""A citizen books, reschedules and cancels in Kazakh, leaves the waitlist and rates a meeting
by the link in a message in Russian, using only the keyboard."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from receptions.booking.answer_links import Purpose, answer_link
from receptions.booking.models import Booking, Feedback, WaitlistEntry
from receptions.extensions import db
from tests.browser.conftest import axe_violations, tab_to
from tests.factories import make_iin, make_institution, make_open_session, make_topic
from tests.hostile import booking_with_token


def test_book_reschedule_and_cancel_with_the_keyboard_in_kazakh(page, app):
    institution = make_institution(
        name_kk="№9 қалалық емхана", name_ru="Городская поликлиника №9", type="polyclinic"
    )
    session = make_open_session(institution, slots=4, starts_in_hours=72)
    topic = make_topic(name_kk="Денсаулық сақтау", name_ru="Здравоохранение")

    page.goto(page.base_url + "/")
    tab_to(page, "#q")
    page.keyboard.type("емхана №9")
    page.keyboard.press("Enter")
    page.wait_for_url("**/institutions?**")
    tab_to(page, f'a[href="/institutions/{institution.id}"]')
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/institutions/{institution.id}")
    assert axe_violations(page) == []

    tab_to(page, "a.slot")
    page.keyboard.press("Enter")
    page.wait_for_url("**/book/*")
    assert page.locator("html").get_attribute("lang") == "kk"
    assert axe_violations(page) == []
    tab_to(page, "#full_name")
    page.keyboard.type("Ержан Сынақов")
    page.keyboard.press("Tab")
    page.keyboard.type(make_iin(42))
    page.keyboard.press("Tab")
    page.keyboard.type("+7 701 555 12 34")
    tab_to(page, "#topic_id")  # it starts on "Choose a topic": the first topic is the next one
    assert page.locator("#topic_id").input_value() == ""
    page.keyboard.press("ArrowDown")
    tab_to(page, "#question")
    page.keyboard.type("Жазылу кезегі туралы сұрақ")
    tab_to(page, "#accessibility-0")
    page.keyboard.press("Space")
    tab_to(page, "#consent")
    page.keyboard.press("Space")
    tab_to(page, "form button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url("**/m/**")

    reference = page.locator(".reference").inner_text()
    assert reference.count("-") == 1
    assert "Кездесуге жазылдыңыз" in page.locator("main").inner_text()
    assert axe_violations(page) == []
    manage_url = page.url.split("?")[0]
    db.session.rollback()  # a new snapshot: the server wrote from another connection
    booking = db.session.scalars(select(Booking)).one()
    assert booking.accessibility == ["wheelchair"] and booking.slot_id == session.slots[0].id
    assert booking.topic_id == topic.id

    tab_to(page, 'a[href$="/reschedule"]')
    page.keyboard.press("Enter")
    page.wait_for_url("**/reschedule")
    tab_to(page, "input[type=radio]")
    page.keyboard.press("ArrowDown")  # the second free time
    tab_to(page, "form button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url(manage_url)
    db.session.rollback()
    moved = db.session.scalars(select(Booking)).one()
    assert moved.slot_id not in (session.slots[0].id,)

    tab_to(page, 'a[href$="/cancel"]')
    page.keyboard.press("Enter")
    page.wait_for_url("**/cancel")
    tab_to(page, "form button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url(manage_url)
    assert "Сіз бас тарттыңыз" in page.locator("main").inner_text()
    db.session.rollback()
    assert db.session.scalars(select(Booking)).one().status == "cancelled_by_citizen"

    page.goto(page.base_url + f"/status/{reference}")
    text = page.locator("main").inner_text()
    assert "Жазылды" in text and "Ержан" not in text


@pytest.mark.parametrize("locale", ["ru-RU"])
def test_leave_the_waitlist_and_rate_by_the_link_in_a_message_with_the_keyboard(page, app):
    institution = make_institution()
    topic = make_topic()
    session = make_open_session(institution, slots=2, starts_in_hours=72)
    booking_with_token(session.slots[0], topic=topic)  # the earlier time is taken
    _later, token = booking_with_token(session.slots[1], topic=topic)
    manage_url = page.base_url + f"/m/{token}"

    page.goto(manage_url)
    tab_to(page, 'form[action$="/waitlist"] button')
    page.keyboard.press("Enter")
    page.wait_for_url(manage_url)
    assert "Вы в листе ожидания" in page.locator("main").inner_text()
    tab_to(page, 'form[action$="/waitlist/leave"] button')
    with page.expect_navigation():
        page.keyboard.press("Enter")
    text = page.locator("main").inner_text()
    assert "Вы вышли из листа ожидания" in text and "Вы в листе ожидания" not in text
    assert page.locator('form[action$="/waitlist"] button').is_visible()  # to join again
    assert axe_violations(page) == []
    db.session.rollback()  # a new snapshot: the server wrote from another connection
    assert db.session.scalars(select(WaitlistEntry)).one().active is False

    past = make_open_session(institution, slots=1, starts_in_hours=-24)
    attended, _ = booking_with_token(past.slots[0], topic=topic, status="attended")
    link_url = page.base_url + "/feedback/" + answer_link(attended.id, Purpose.feedback)
    page.goto(link_url)
    assert page.locator("html").get_attribute("lang") == "ru"
    assert axe_violations(page) == []
    tab_to(page, "#rating-0")  # the first choice: 5
    page.keyboard.press("Space")
    tab_to(page, "#comment")
    page.keyboard.type("Всё объяснили")
    tab_to(page, "form button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == link_url
    assert "вы оценили встречу на 5 из 5" in page.locator("main").inner_text()
    db.session.rollback()
    feedback = db.session.scalars(select(Feedback)).one()
    assert (feedback.booking_id, feedback.rating, feedback.comment) == (
        attended.id,
        5,
        "Всё объяснили",
    )
