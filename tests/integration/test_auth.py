"""Sign-in, sign-out, CSRF, rate limits and cookie flags."""

from __future__ import annotations

import pytest

from receptions import create_app
from receptions.auth.models import Role
from tests.conftest import csrf_from, sign_in, submit
from tests.factories import PASSWORD, make_user


def test_staff_signs_in_and_lands_on_the_workspace(client):
    user = make_user(Role.staff)
    response = sign_in(client, user.email.upper(), PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/"
    page = client.get("/staff/").get_data(as_text=True)
    assert user.institution.name_ru in page or user.institution.name_kk in page


def test_wrong_password_and_unknown_email_get_the_same_answer(client):
    user = make_user(Role.staff)
    wrong = sign_in(client, user.email, "not-the-password")
    unknown = sign_in(client, "nobody@example.kz", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401

    def strip(response):
        text = response.get_data(as_text=True)
        return text.replace(user.email, "").replace("nobody@example.kz", "")

    assert strip(wrong).split("csrf_token")[0] == strip(unknown).split("csrf_token")[0]


def test_inactive_and_invited_accounts_cannot_sign_in(client):
    inactive = make_user(Role.staff, active=False)
    invited = make_user(Role.staff, password=None)
    assert sign_in(client, inactive.email, PASSWORD).status_code == 401
    assert sign_in(client, invited.email, PASSWORD).status_code == 401


def test_sign_in_without_csrf_token_is_refused(client):
    user = make_user(Role.staff)
    response = client.post(
        "/auth/sign-in",
        data={"email": user.email, "password": PASSWORD},
        headers={"Accept-Language": "ru"},
    )
    assert response.status_code == 400
    assert 'lang="ru"' in response.get_data(as_text=True)
    assert client.get("/staff/").status_code == 302  # still signed out


def test_sign_out_is_a_post(client):
    user = make_user(Role.staff)
    sign_in(client, user.email, PASSWORD)
    assert client.get("/auth/sign-out").status_code == 405
    page = client.get("/staff/").get_data(as_text=True)
    response = client.post("/auth/sign-out", data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302


def test_sign_in_is_rate_limited_per_address(client):
    user = make_user(Role.staff)
    statuses = [sign_in(client, user.email, "wrong-password").status_code for _ in range(11)]
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429
    # Even the right password is refused while the limit holds.
    assert sign_in(client, user.email, PASSWORD).status_code == 429


def test_session_cookie_is_httponly_and_samesite_lax(client):
    user = make_user(Role.staff)
    response = sign_in(client, user.email, PASSWORD)
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_config_marks_cookies_secure_and_needs_real_secrets(monkeypatch, db_url):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"ENV_NAME": "production", "SQLALCHEMY_DATABASE_URI": db_url})
    app = create_app(
        {
            "ENV_NAME": "production",
            "SQLALCHEMY_DATABASE_URI": db_url,
            "SECRET_KEY": "x" * 40,
            "IIN_HASH_KEY": "y" * 40,
            "PUBLIC_URL": "https://ashyq-esik.kz",
        }
    )
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    response = app.test_client().get("/healthz")
    assert "max-age=" in response.headers["Strict-Transport-Security"]


def test_sign_in_redirect_only_follows_local_paths(client):
    user = make_user(Role.staff)
    page = client.get("/auth/sign-in").get_data(as_text=True)
    response = client.post(
        "/auth/sign-in?next=https://evil.example/x",
        data={"csrf_token": csrf_from(page), "email": user.email, "password": PASSWORD},
    )
    assert response.headers["Location"] == "/staff/"


def test_empty_sign_in_form_is_a_422_with_field_messages(client):
    response = submit(
        client, "/auth/sign-in", {"email": "", "password": ""}, headers={"Accept-Language": "en"}
    )
    assert response.status_code == 422
    assert 'aria-invalid="true"' in response.get_data(as_text=True)
