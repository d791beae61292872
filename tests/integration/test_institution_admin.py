"""Officers create and edit institutions in their scope; invitations; admins manage accounts."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from receptions.audit.models import AuditEvent
from receptions.auth.models import Role, User
from receptions.extensions import db
from receptions.institutions.models import Institution
from tests.conftest import csrf_from, sign_in, submit
from tests.factories import PASSWORD, make_district, make_institution, make_user

NEW_INSTITUTION = {
    "type": "kindergarten",
    "name_kk": "«Айгөлек» бөбекжайы",
    "name_ru": "Ясли-сад «Айгөлек»",
    "name_en": "Aigolek Kindergarten",
    "address_kk": "Абай көшесі, 5",
    "address_ru": "улица Абая, 5",
    "phone": "+7 7122 55 00 11",
    "email": "aigolek@example.kz",
    "active": "y",
}


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_district_officer_creates_an_institution_in_their_district(client):
    officer = make_user(Role.district_officer)
    sign_in(client, officer.email, PASSWORD)
    response = submit(
        client, "/staff/institutions/new", {**NEW_INSTITUTION, "district_id": officer.district_id}
    )
    assert response.status_code == 302
    institution = db.session.scalars(select(Institution)).one()
    assert (
        institution.name_ru == "Ясли-сад «Айгөлек»"
        and institution.district_id == officer.district_id
    )
    assert db.session.scalars(select(AuditEvent.action)).all() == ["institution.created"]
    assert "Айгөлек" in client.get("/institutions?q=айгөлек").get_data(as_text=True)


def test_invalid_institution_form_saves_nothing(client):
    officer = make_user(Role.district_officer)
    sign_in(client, officer.email, PASSWORD)
    response = submit(
        client,
        "/staff/institutions/new",
        {
            **NEW_INSTITUTION,
            "name_ru": "",
            "email": "not-an-email",
            "district_id": officer.district_id,
        },
        headers={"Accept-Language": "ru"},
    )
    assert response.status_code == 422
    assert 'lang="ru"' in response.get_data(as_text=True)
    assert _count(Institution) == 0 and _count(AuditEvent) == 0


def test_officer_cannot_place_an_institution_in_another_district(client):
    officer = make_user(Role.district_officer)
    other = make_district()
    sign_in(client, officer.email, PASSWORD)
    response = submit(
        client, "/staff/institutions/new", {**NEW_INSTITUTION, "district_id": other.id}
    )
    assert response.status_code == 422  # not among the offered choices
    assert _count(Institution) == 0


def test_officer_edits_an_institution(client):
    officer = make_user(Role.region_officer)
    institution = make_institution(make_district(officer.region), name_ru="Старое имя")
    sign_in(client, officer.email, PASSWORD)
    url = f"/staff/institutions/{institution.id}/edit"
    response = submit(
        client,
        url,
        {**NEW_INSTITUTION, "name_ru": "Новое имя", "district_id": institution.district_id},
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Institution, institution.id).name_ru == "Новое имя"
    event = db.session.scalars(select(AuditEvent)).one()
    assert event.action == "institution.updated" and "name_ru" in event.details["fields"]


def test_invitation_creates_a_one_time_set_password_link(client, app):
    head = make_user(Role.head)
    sign_in(client, head.email, PASSWORD)
    response = submit(
        client,
        "/staff/invite",
        {
            "full_name": "Жаңа Қызметкер",
            "email": "New.Staff@example.kz",
            "role": "staff",
            "locale": "kk",
            "institution_id": head.institution_id,
            "district_id": "",
            "region_id": "",
        },
    )
    assert response.status_code == 201
    link = re.search(r"/auth/set-password/[A-Za-z0-9_\-]+", response.get_data(as_text=True)).group(
        0
    )
    invited = db.session.scalars(select(User).where(User.email == "new.staff@example.kz")).one()
    assert invited.password_hash is None and invited.institution_id == head.institution_id
    # A head may only hand out the staff role.
    assert "district_officer" not in client.get("/staff/invite").get_data(as_text=True)
    client.post(
        "/auth/sign-out",
        data={"csrf_token": csrf_from(client.get("/staff/").get_data(as_text=True))},
    )

    short = submit(client, link, {"password": "short", "confirm": "short"})
    assert short.status_code == 422
    done = submit(
        client, link, {"password": "a-long-new-password", "confirm": "a-long-new-password"}
    )
    assert done.status_code == 302
    assert client.get(link).status_code == 404  # used once
    assert sign_in(client, "new.staff@example.kz", "a-long-new-password").status_code == 302


def _invitation(**typed: object) -> dict[str, object]:
    """The invitation form as sent, no place chosen unless `typed` says."""
    return {
        "full_name": "Х",
        "email": "x@example.kz",
        "role": "staff",
        "locale": "ru",
        "institution_id": "",
        "district_id": "",
        "region_id": "",
        **typed,
    }


def test_invitation_outside_scope_or_duplicate_is_refused(client):
    officer = make_user(Role.district_officer)
    foreign = make_institution()
    sign_in(client, officer.email, PASSWORD)
    base = _invitation()
    assert (
        submit(client, "/staff/invite", {**base, "institution_id": foreign.id}).status_code == 422
    )
    own = make_institution(officer.district)
    duplicate = submit(
        client, "/staff/invite", {**base, "email": officer.email.upper(), "institution_id": own.id}
    )
    assert duplicate.status_code == 422
    assert _count(User) == 1


def test_a_refused_invitation_shows_the_form_again_with_the_error_at_its_field(client):
    """No district for a district officer, or an e-mail already taken: the form comes back with
    what was typed and the reason next to the field, not a bare error page."""
    admin = make_user(Role.admin)
    district = make_district()
    sign_in(client, admin.email, PASSWORD)
    typed = _invitation(
        full_name="Сәуле Жаңаева", email="saule@example.kz", role="district_officer"
    )
    no_district = submit(client, "/staff/invite", typed, headers={"Accept-Language": "en"})
    page = no_district.get_data(as_text=True)
    assert no_district.status_code == 422 and "Please correct the following:" in page
    assert 'id="district_id-error"' in page and "Choose the district for this account." in page
    assert 'value="Сәуле Жаңаева"' in page and 'value="saule@example.kz"' in page
    assert '<option selected value="district_officer">' in page
    taken = submit(
        client,
        "/staff/invite",
        {**typed, "email": admin.email.upper(), "district_id": district.id},
        headers={"Accept-Language": "ru"},
    )
    page = taken.get_data(as_text=True)
    assert taken.status_code == 422 and 'id="email-error"' in page
    assert "Учётная запись с этим адресом электронной почты уже существует." in page
    assert 'value="Сәуле Жаңаева"' in page
    assert _count(User) == 1


def test_admin_changes_a_role_but_cannot_demote_themself(client):
    admin = make_user(Role.admin)
    staff = make_user(Role.staff)
    sign_in(client, admin.email, PASSWORD)
    response = submit(
        client,
        f"/admin/users/{staff.id}",
        {
            "full_name": staff.full_name,
            "role": "head",
            "locale": "kk",
            "active": "y",
            "institution_id": staff.institution_id,
            "district_id": "",
            "region_id": "",
        },
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, staff.id).role == "head"
    self_demote = submit(
        client,
        f"/admin/users/{admin.id}",
        {
            "full_name": admin.full_name,
            "role": "staff",
            "locale": "kk",
            "active": "y",
            "institution_id": staff.institution_id,
            "district_id": "",
            "region_id": "",
        },
    )
    assert self_demote.status_code == 400
    db.session.expire_all()
    assert db.session.get(User, admin.id).role == "admin"


def test_a_role_without_its_place_comes_back_at_the_field_on_the_user_page(client):
    """Making an account a district officer without choosing the district was a bare error
    page that lost the form: the user page comes back (422) with the error at the district."""
    admin = make_user(Role.admin)
    staff = make_user(Role.staff, full_name="Айгүл Тестова")
    sign_in(client, admin.email, PASSWORD)
    refused = submit(
        client,
        f"/admin/users/{staff.id}",
        {
            "full_name": "Айгүл Жаңа",
            "role": "district_officer",
            "locale": "kk",
            "active": "y",
            "institution_id": "",
            "district_id": "",
            "region_id": "",
        },
        headers={"Accept-Language": "ru"},
    )
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="district_id-error"' in page
    assert "Выберите район для этой учётной записи." in page
    assert 'value="Айгүл Жаңа"' in page
    db.session.expire_all()
    assert db.session.get(User, staff.id).role == "staff"


def test_institutions_with_the_same_name_say_where_they_are_in_the_invite_form(client):
    """"City polyclinic No. 1" exists in many cities: the institution list of the invitation
    (and of the user page, which fills it the same way) names each one's region and district."""
    admin = make_user(Role.admin)
    first, second = make_institution(name_ru="Поликлиника №1"), make_institution(
        name_ru="Поликлиника №1"
    )
    sign_in(client, admin.email, PASSWORD)
    page = client.get("/staff/invite", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    labels = {
        institution.id: re.search(
            rf'<option value="{institution.id}">([^<]*)</option>', page
        ).group(1)
        for institution in (first, second)
    }
    assert labels[first.id] != labels[second.id]
    district = first.district
    assert labels[first.id] == f"Поликлиника №1 ({district.region.name_ru} — {district.name_ru})"
