"""`flask demo load`: all regions, real districts, institutions of every type, one account per role."""

from __future__ import annotations

from sqlalchemy import func, select

from receptions.auth.models import Role, User
from receptions.demo.services import DEMO_PASSWORD
from receptions.extensions import db
from receptions.geography.models import District, Region
from receptions.institutions.models import Institution, InstitutionType
from tests.conftest import sign_in


def test_demo_load_is_complete_and_idempotent(app, client):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "load"])
    assert first.exit_code == 0, first.output
    assert "regions: 20 new" in first.output
    second = runner.invoke(args=["demo", "load"])
    assert "regions: 0 new, districts: 0 new, institutions: 0 new, users: 0 new" in second.output

    assert db.session.scalar(select(func.count()).select_from(Region)) == 20
    codes = set(db.session.scalars(select(Region.code)))
    assert {"KZ-71", "KZ-75", "KZ-79", "KZ-23", "KZ-35", "KZ-15"} <= codes
    for code in ("KZ-23", "KZ-35", "KZ-15"):
        count = db.session.scalar(
            select(func.count()).select_from(District).join(Region).where(Region.code == code)
        )
        assert count >= 8, code
    types = set(db.session.scalars(select(Institution.type)))
    assert types == {t.value for t in InstitutionType}
    assert db.session.scalar(select(func.count()).select_from(Institution)) >= 60
    assert {u.role for u in db.session.scalars(select(User))} == {r.value for r in Role}
    assert sign_in(client, "admin@example.kz", DEMO_PASSWORD).status_code == 302


def test_demo_history_falls_on_the_days_the_schedules_give_with_matching_topics(app):
    """The demo's past open-door days are where their rule puts them (a last Friday, or the
    working day before it), and each question's topic is the one its text is about."""
    from dataclasses import replace
    from datetime import timedelta

    from receptions.booking.models import Topic
    from receptions.demo.services import DEMO_QUESTIONS
    from receptions.schedules.models import Schedule, ScheduledSession
    from receptions.schedules.services import spec_from, working_calendar
    from receptions.visits.models import Question
    from scheduling import plan_sessions

    result = app.test_cli_runner().invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    past = db.session.scalars(
        select(ScheduledSession).where(ScheduledSession.status.in_(("held", "cancelled")))
    ).all()
    assert len(past) > 50
    for session in past:
        schedule = db.session.get(Schedule, session.schedule_id)
        tz = schedule.institution.district.region.timezone
        first = session.local_date.replace(day=1)
        last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        spec = replace(spec_from(schedule, tz), valid_from=first, valid_until=None)
        planned = plan_sessions(spec, first, last, working_calendar([first.year]))
        assert session.local_date == planned[0].date, (schedule.id, session.local_date)
        assert session.starts_at == planned[0].start
    slugs = {topic.id: topic.slug for topic in db.session.scalars(select(Topic))}
    about = dict((summary, slug) for slug, summary in DEMO_QUESTIONS)
    questions = db.session.scalars(select(Question)).all()
    assert questions and all(about[q.summary] == slugs[q.topic_id] for q in questions)
    again = app.test_cli_runner().invoke(args=["demo", "load"])
    assert "past sessions: 0 new" in again.output
