"""Pooled PostgreSQL connections: checked after a quiet spell, not before every request.

The server can end a connection while it waits in the pool (a restart, a failover, an idle
timeout). A connection idle for DATABASE_PING_AFTER_IDLE_S is checked with a SELECT 1 and
replaced when it is gone; one given back moments ago goes straight to work.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from receptions import create_app
from receptions.database import read_only_request
from receptions.extensions import db
from tests.conftest import app_settings, terminate_backend

# The pool's idle clock and the server's run on real time: not for `make test-clock`.
pytestmark = pytest.mark.realtime


def _app(postgresql_url: str, idle_seconds: float) -> Flask:
    app = create_app(app_settings(postgresql_url, DATABASE_PING_AFTER_IDLE_S=idle_seconds))

    @app.route("/backend")
    def backend():  # type: ignore[no-untyped-def]
        return str(db.session.execute(text("SELECT pg_backend_pid()")).scalar())

    @app.route("/backend/read-only")
    def backend_read_only():  # type: ignore[no-untyped-def]
        read_only_request()
        return str(db.session.execute(text("SELECT pg_backend_pid()")).scalar())

    return app


def _pids_of_connections_held_together(app: Flask, count: int) -> list[int]:
    """Check `count` connections out of the pool at once (as the threads of a worker would)."""
    with app.app_context():
        held = [db.engine.connect() for _ in range(count)]
        try:
            return [conn.execute(text("SELECT pg_backend_pid()")).scalar_one() for conn in held]
        finally:
            for conn in held:
                conn.close()


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every ping the pool sends, counted; the real ping still goes to the server."""
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    sent: list[int] = []
    real = PGDialect_psycopg.do_ping

    def counted(self: Any, dbapi_connection: Any) -> bool:
        sent.append(1)
        return real(self, dbapi_connection)

    monkeypatch.setattr(PGDialect_psycopg, "do_ping", counted)
    return sent


@pytest.fixture
def dispose() -> Iterator[list[Flask]]:
    apps: list[Flask] = []
    yield apps
    for app in apps:
        with app.app_context():
            db.engine.dispose()


def test_a_connection_given_back_moments_ago_is_not_pinged(postgresql_url, pings, dispose):
    app = _app(postgresql_url, idle_seconds=60)
    dispose.append(app)
    client = app.test_client()
    first = client.get("/backend").get_data(as_text=True)
    assert [client.get("/backend").get_data(as_text=True) for _ in range(3)] == [first] * 3
    assert pings == []


def test_a_connection_idle_past_the_limit_is_pinged_once(postgresql_url, pings, dispose):
    app = _app(postgresql_url, idle_seconds=0.05)
    dispose.append(app)
    client = app.test_client()
    first = client.get("/backend").get_data(as_text=True)
    assert pings == []  # a new connection needs no check
    time.sleep(0.1)
    assert client.get("/backend").get_data(as_text=True) == first
    assert pings == [1]


def test_a_connection_ended_while_idle_is_replaced_before_use(postgresql_url, pings, dispose):
    app = _app(postgresql_url, idle_seconds=0)
    dispose.append(app)
    client = app.test_client()
    first = int(client.get("/backend").get_data(as_text=True))
    terminate_backend(first)
    response = client.get("/backend")
    assert response.status_code == 200
    assert int(response.get_data(as_text=True)) != first
    assert pings  # the dead connection was found by the ping, not by the page's query


def test_a_connection_ended_before_the_quiet_limit_costs_one_friendly_503(
    postgresql_url, pings, dispose
):
    """The price of not pinging a busy pool: the request that meets the dead connection gets the
    503 page (Retry-After, in the reader's language), and the pool is renewed for the next."""
    app = _app(postgresql_url, idle_seconds=60)
    dispose.append(app)
    client = app.test_client()
    first = int(client.get("/backend").get_data(as_text=True))
    terminate_backend(first)
    refused = client.get("/backend", headers={"Accept-Language": "en"})
    assert refused.status_code == 503
    assert refused.headers["Retry-After"]
    assert "temporarily unavailable" in refused.get_data(as_text=True)
    again = client.get("/backend")
    assert again.status_code == 200 and int(again.get_data(as_text=True)) != first
    assert pings == []


def test_the_quiet_limit_comes_from_the_environment(postgresql_url, monkeypatch, pings, dispose):
    monkeypatch.setenv("DATABASE_URL", postgresql_url)
    monkeypatch.setenv("DATABASE_PING_AFTER_IDLE_S", "0")
    app = create_app("testing")
    dispose.append(app)
    assert app.config["DATABASE_PING_AFTER_IDLE_S"] == 0.0
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert pings == [1]  # the second check-out, of the connection the first one gave back


def test_one_failed_ping_replaces_every_connection_of_the_pool(postgresql_url, pings, dispose):
    """A restart ended all of them: the first check-out finds out, and the pool's other
    connections are replaced without a ping (and a failure) of their own."""
    app = _app(postgresql_url, idle_seconds=0)
    dispose.append(app)
    before = _pids_of_connections_held_together(app, 3)
    assert len(set(before)) == 3 and pings == []
    for pid in before:
        terminate_backend(pid)
    after = _pids_of_connections_held_together(app, 3)
    assert not set(after) & set(before)
    assert pings == [1]


def test_a_pinged_connection_can_read_without_a_transaction(postgresql_url, pings, dispose):
    """The ping runs outside a transaction, so the page that reads in autocommit next (the
    booking form) still can."""
    app = _app(postgresql_url, idle_seconds=0)
    dispose.append(app)
    client = app.test_client()
    first = client.get("/backend/read-only")
    again = client.get("/backend/read-only")
    assert first.status_code == again.status_code == 200
    assert first.get_data() == again.get_data()  # the same connection, pinged once
    assert pings == [1]
    assert client.get("/backend").status_code == 200  # and a transaction after it


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_a_quiet_limit_that_means_nothing_is_refused(postgresql_url, value):
    with pytest.raises(ValueError, match="DATABASE_PING_AFTER_IDLE_S"):
        create_app(app_settings(postgresql_url, DATABASE_PING_AFTER_IDLE_S=value))
