"""axe-core finds no serious or critical WCAG 2.1 A/AA violation on any public page or the staff
agenda, follow-up list and close-out, in Kazakh, Russian and English (markup only, so on SQLite)."""

from __future__ import annotations

import pytest

from receptions.auth.models import Role
from receptions.auth.services import issue_password_token
from receptions.booking.answer_links import Purpose, answer_link
from receptions.extensions import db
from tests.browser.conftest import axe_violations, one_database, sign_in
from tests.factories import make_open_session, make_topic, make_user
from tests.hostile import booking_with_token, outcome_long_ago


def follow_up_questions(booking, topic) -> None:
    """One question pending and one with no outcome yet at the booking's visit."""
    from datetime import date, timedelta

    from receptions.visits.models import Question, Visit

    visit = db.session.query(Visit).filter_by(booking_id=booking.id).one()
    due = date.today() + timedelta(days=10)
    for outcome in ("pending", None):
        db.session.add(
            Question(
                visit_id=visit.id,
                institution_id=visit.institution_id,
                topic_id=topic.id,
                summary="Жол жөндеу",
                outcome=outcome,
                responsible="Әкім орынбасары" if outcome else "",
                due_date=due if outcome else None,
            )
        )
    db.session.commit()


LOCALES = ["kk-KZ", "ru-RU", "en-GB"]


@pytest.fixture
def visited(places):
    """Bookings in every state a public page can show, and a head with a day to run."""
    school = places[0]
    topic = make_topic(name_kk="Білім беру", name_ru="Образование", name_en="Education")
    future = make_open_session(school, slots=3, starts_in_hours=72, kind="open_door")
    booking, token = booking_with_token(future.slots[0], topic=topic)
    booking_with_token(future.slots[2], topic=topic)  # a full slot: the "taken" page
    past = make_open_session(school, slots=1, starts_in_hours=-24 * 40)
    attended, attended_token = booking_with_token(past.slots[0], topic=topic)
    outcome_long_ago(attended)
    rate, resolved = (answer_link(attended.id, purpose) for purpose in Purpose)
    follow_up_questions(attended, topic)  # the follow-up list and close-out have work to show
    today = make_open_session(school, slots=2, earlier_today=True)
    booking_with_token(today.slots[0], topic=topic, accessibility=["wheelchair"])
    head = make_user(Role.head, institution=school)
    invite = issue_password_token(make_user(Role.staff, institution=school, password=None))
    db.session.commit()
    return (
        {
            "/": "/",
            "search": "/institutions?q=мектеп",
            "search, nothing found": "/institutions?q=жоқ-нәрсе",
            "region": "/regions/KZ-97",
            "district": "/regions/KZ-97/qala",
            "institution": f"/institutions/{school.id}",
            "booking form": f"/book/{future.slots[1].id}",
            "slot taken": f"/book/{future.slots[2].id}",
            "manage page": f"/m/{token}?new=1",
            "reschedule": f"/m/{token}/reschedule",
            "cancel confirmation": f"/m/{token}/cancel",
            "manage page after the meeting": f"/m/{attended_token}",
            "rating by the link in a message": f"/feedback/{rate}",
            "'really resolved?' by the link in a message": f"/resolved/{resolved}",
            "answer link for another answer": f"/resolved/{rate}",
            "status lookup": "/status",
            "status": f"/status/{booking.reference}",
            "status not found": "/status/ZZZ-999999",
            "district results": "/results/KZ-97/qala",
            "institution results": f"/results/institutions/{school.id}",
            "sign-in": "/auth/sign-in",
            "set password": f"/auth/set-password/{invite}",
            "404 page": "/no-such-page",
        },
        head,
        f"/staff/institutions/{school.id}/agenda",
    )


@one_database
@pytest.mark.parametrize("locale", LOCALES)
def test_every_public_page_and_the_agenda_pass_axe(page, visited, locale):
    public, head, agenda = visited
    language = locale.split("-")[0]
    found = {}

    def check(name: str) -> None:
        assert page.locator("html").get_attribute("lang") == language, name
        found[name] = axe_violations(page)

    for name, path in public.items():
        page.goto(page.base_url + path)
        check(name)
    page.goto(page.base_url + public["booking form"])
    with page.expect_navigation():  # an empty form, as a citizen who pressed Enter too early
        page.locator("form button[type=submit]").last.click()
    check("booking form with errors")
    sign_in(page, head)
    page.goto(page.base_url + agenda)
    check("staff agenda")
    page.goto(page.base_url + agenda + "?view=week")
    check("staff agenda, week")
    page.goto(page.base_url + agenda.replace("agenda", "follow-up"))
    page.locator("details.reassign summary").first.click()
    check("staff follow-up, a change form open")
    page.goto(page.base_url + agenda.replace("agenda", "close-out"))
    check("staff close-out")
    page.locator("input[name=held][value=yes]").first.check()
    with page.expect_navigation():  # held, with what is left neither recorded nor confirmed
        page.locator("form[action$='/close'] button[type=submit]").first.click()
    check("staff close-out with errors")
    assert {name: v for name, v in found.items() if v} == {}
