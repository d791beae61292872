"""A user of one institution, district or region gets 403 or 404 on every other scope's pages."""

from __future__ import annotations

import pytest

from receptions.auth.models import Role
from tests.conftest import sign_in
from tests.factories import PASSWORD, make_district, make_institution, make_region, make_user


@pytest.fixture
def world():
    """Two regions, each with two districts, each with one institution."""
    regions = [make_region(), make_region()]
    districts = [make_district(r) for r in regions for _ in range(2)]
    institutions = [make_institution(d) for d in districts]
    return regions, districts, institutions


def _edit(i):
    return f"/staff/institutions/{i.id}/edit"


@pytest.mark.parametrize("role", [Role.staff, Role.head])
def test_institution_users_cannot_manage_institutions(client, world, role):
    _, _, institutions = world
    user = make_user(role, institution=institutions[0])
    sign_in(client, user.email, PASSWORD)
    for institution in institutions:
        assert client.get(_edit(institution)).status_code == 403
    assert client.get("/staff/institutions/new").status_code == 403
    assert client.get("/admin/users").status_code == 403
    assert client.get("/admin/audit").status_code == 403


def test_staff_cannot_invite_anyone(client, world):
    user = make_user(Role.staff, institution=world[2][0])
    sign_in(client, user.email, PASSWORD)
    assert client.get("/staff/invite").status_code == 403


def test_district_officer_sees_only_their_district(client, world):
    _, districts, institutions = world
    user = make_user(Role.district_officer, district=districts[0])
    sign_in(client, user.email, PASSWORD)
    assert client.get(_edit(institutions[0])).status_code == 200
    for other in institutions[1:]:
        assert client.get(_edit(other)).status_code == 404
    dashboard = client.get("/staff/").get_data(as_text=True)
    assert institutions[0].name_kk in dashboard
    assert all(i.name_kk not in dashboard for i in institutions[1:])
    assert client.get("/admin/users").status_code == 403


def test_region_officer_sees_only_their_region(client, world):
    regions, _, institutions = world
    user = make_user(Role.region_officer, region=regions[0])
    sign_in(client, user.email, PASSWORD)
    assert [client.get(_edit(i)).status_code for i in institutions] == [200, 200, 404, 404]
    invite_page = client.get("/staff/invite").get_data(as_text=True)
    assert institutions[0].name_kk in invite_page and institutions[2].name_kk not in invite_page


def test_admin_sees_everything(client, world):
    _, _, institutions = world
    user = make_user(Role.admin)
    sign_in(client, user.email, PASSWORD)
    assert {client.get(_edit(i)).status_code for i in institutions} == {200}
    assert client.get("/admin/users").status_code == 200
    assert client.get("/admin/audit").status_code == 200


def test_signed_out_visitors_are_sent_to_sign_in(client, world):
    response = client.get(_edit(world[2][0]))
    assert response.status_code == 302
    assert "/auth/sign-in" in response.headers["Location"]


def test_the_invite_page_preselects_only_an_institution_given_in_ascii_digits(client, world):
    regions, _, institutions = world
    user = make_user(Role.region_officer, region=regions[0])
    sign_in(client, user.email, PASSWORD)
    chosen = institutions[0].id
    page = client.get(f"/staff/invite?institution={chosen}").get_data(as_text=True)
    assert f'<option selected value="{chosen}">' in page
    arabic_indic = "".join(chr(0x0660 + int(digit)) for digit in str(chosen))
    for value in ("²", arabic_indic, "1" * 12):
        response = client.get(f"/staff/invite?institution={value}")
        assert response.status_code == 200, value
        assert f'<option selected value="{chosen}">' not in response.get_data(as_text=True)
