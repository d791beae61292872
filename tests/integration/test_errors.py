"""Friendly error pages in the user's language; no traceback ever reaches the browser."""

from __future__ import annotations

import logging

import pytest
from flask import abort
from sqlalchemy import text

from receptions import create_app
from receptions.auth.models import Role
from receptions.errors import DomainError
from receptions.extensions import db
from tests.conftest import app_settings, csrf_from, sign_in, terminate_backend
from tests.factories import PASSWORD, make_open_session, make_user


@pytest.fixture
def app_with_broken_page(db_url):
    app = create_app(app_settings(db_url))

    @app.route("/boom")
    def boom():
        raise RuntimeError("secret internal detail")

    return app


def test_internal_error_shows_the_friendly_page(app_with_broken_page):
    client = app_with_broken_page.test_client()
    response = client.get("/boom", headers={"Accept-Language": "ru"})
    body = response.get_data(as_text=True)
    assert response.status_code == 500
    assert 'lang="ru"' in body
    assert "На нашей стороне что-то пошло не так" in body  # the friendly page, in Russian
    assert "secret internal detail" not in body and "Traceback" not in body


def test_a_failed_query_is_logged_without_the_citizens_data(db_url, caplog):
    app = create_app(app_settings(db_url))
    phone = "+77015550199"

    @app.route("/bad-query")
    def bad_query():
        db.session.execute(text("SELECT * FROM no_such_table WHERE phone = :p"), {"p": phone})
        return "unreachable"

    with caplog.at_level(logging.DEBUG):
        response = app.test_client().get("/bad-query")
    assert response.status_code in (500, 503)
    assert caplog.records, "the failure was not logged at all"
    assert phone not in caplog.text
    assert phone not in response.get_data(as_text=True)


def test_unreachable_database_gives_503_with_retry_after():
    app = create_app(
        app_settings(
            "postgresql+psycopg://postgres@127.0.0.1:1/nowhere",
            SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 1}},
        )
    )
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.headers["Retry-After"]
    page = client.get("/", headers={"Accept-Language": "en"})
    assert page.status_code == 503
    assert page.headers["Retry-After"] == "5"
    assert "temporarily unavailable" in page.get_data(as_text=True)
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("language", ["kk", "ru", "en"])
def test_404_page_is_in_the_readers_language(client, language):
    response = client.get("/no/such/page", headers={"Accept-Language": language})
    assert response.status_code == 404
    assert f'<html lang="{language}">' in response.get_data(as_text=True)


@pytest.mark.realtime  # the pool's idle clock decides whether the next request pings
def test_connection_terminated_before_the_session_closes_keeps_the_response(postgresql_url):
    """PostgreSQL may end a backend (a restart, a failover) between a request's last query and
    the ROLLBACK that closes its session: the finished page is still sent, never a bare 500, and
    the dead connection is not handed to the next request."""
    app = create_app(app_settings(postgresql_url))

    @app.route("/terminated")
    def terminated():
        terminate_backend(db.session.execute(text("SELECT pg_backend_pid()")).scalar())
        return "page built"

    client = app.test_client()
    response = client.get("/terminated")
    assert response.status_code == 200 and response.get_data(as_text=True) == "page built"
    assert client.get("/readyz").status_code == 200
    with app.app_context():
        db.engine.dispose()


class _Refused(DomainError):
    status_code = 409


@pytest.mark.realtime  # the pool's idle clock decides whether the next request pings
@pytest.mark.parametrize(
    ("failure", "status", "title"),
    [
        (_Refused, 409, "This cannot be done"),
        (lambda: abort(404), 404, "Page not found"),
        (lambda: 1 / 0, 500, "Something went wrong on our side"),
    ],
)
def test_connection_lost_before_an_error_page_still_gives_the_page(db_url, failure, status, title):
    """The error handlers roll the session back before rendering; when the connection is gone
    (PostgreSQL ended the request's backend in a restart or a failover; on SQLite, the file's
    connection is closed) that ROLLBACK fails, and it must not take the error page with it: the
    reader gets the page for what went wrong, and the dead connection is not handed to the next
    request."""
    app = create_app(app_settings(db_url))

    @app.route("/terminated-then-failed")
    def terminated_then_failed():
        if db.engine.dialect.name == "postgresql":
            terminate_backend(db.session.execute(text("SELECT pg_backend_pid()")).scalar())
        else:
            db.session.execute(text("SELECT 1"))
            db.session.connection().connection.dbapi_connection.close()
        if isinstance(failure, type):
            raise failure()
        failure()
        return "unreachable"

    client = app.test_client()
    response = client.get("/terminated-then-failed", headers={"Accept-Language": "en"})
    assert response.status_code == status
    assert f'<h1 id="error-title">{title}</h1>' in response.get_data(as_text=True)
    assert client.get("/readyz").status_code == 200
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("row_id", [2**31, 2**63])  # past PostgreSQL's integer; past SQLite's
@pytest.mark.parametrize(
    ("role", "method", "path"),
    [
        (None, "GET", "/book/{}"),
        (None, "POST", "/book/{}"),
        (None, "GET", "/institutions/{}/calendar.ics"),
        (Role.admin, "GET", "/admin/users/{}"),
        (Role.admin, "POST", "/admin/topics/{}/active"),
        (Role.staff, "GET", "/staff/institutions/{}/agenda"),
        (Role.staff, "POST", "/staff/bookings/{}/check-in"),
    ],
)
def test_a_path_id_beyond_the_databases_integers_is_the_translated_404(
    client, role, method, path, row_id
):
    if role is None:
        csrf_page = f"/book/{make_open_session().slots[0].id}"
    else:
        sign_in(client, make_user(role).email, PASSWORD)
        csrf_page = "/"
    token = csrf_from(client.get(csrf_page).get_data(as_text=True))
    response = client.open(
        path.format(row_id),
        method=method,
        data={"csrf_token": token, "mark": "attended"} if method == "POST" else None,
        headers={"Accept-Language": "ru"},
    )
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert '<html lang="ru">' in body and "Страница не найдена" in body


@pytest.mark.parametrize(
    ("status", "language", "title"),
    [
        (422, "kk", "Енгізгеніңізді тексеріңіз"),
        (422, "ru", "Проверьте введённые данные"),
        (422, "en", "Please check what you entered"),
        (409, "kk", "Мұны орындау мүмкін емес"),
        (409, "ru", "Это сделать нельзя"),
        (409, "en", "This cannot be done"),
    ],
)
def test_refusals_are_titled_in_words_a_citizen_understands(db_url, status, language, title):
    app = create_app(app_settings(db_url))

    class Refused(DomainError):
        status_code = status

    @app.route("/refused")
    def refused():
        raise Refused("Why it was refused.")

    response = app.test_client().get("/refused", headers={"Accept-Language": language})
    body = response.get_data(as_text=True)
    assert response.status_code == status
    assert f"<title>{title} — " in body and f'<h1 id="error-title">{title}</h1>' in body
    assert "Why it was refused." in body
