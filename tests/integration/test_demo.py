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
