"""Test harness: every integration test runs on SQLite and on a throwaway PostgreSQL database."""

from __future__ import annotations

import atexit
import dataclasses
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask, g
from flask.testing import FlaskClient
from sqlalchemy import text

from receptions import create_app
from receptions.extensions import db

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
RUN_ID = f"{os.getpid()}_{secrets.token_hex(4)}"
# What the log channels write (the demo's mail and SMS outboxes): this run's own folder, never
# the checkout's instance/ (a test that sends without choosing a file wrote there).
OUTBOX_DIR = Path(tempfile.mkdtemp(prefix=f"ashyq-test-outbox-{RUN_ID}-"))
atexit.register(shutil.rmtree, OUTBOX_DIR, True)


def terminate_backend(pid: int) -> None:
    """End one PostgreSQL connection from the server's side (as a restart or failover does) and
    wait until it is gone."""
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 5
        while (
            time.monotonic() < deadline
            and admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        ):
            time.sleep(0.02)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_unless_ci(reason: str) -> None:
    """Skip on a developer's machine; under CI a missing part is a failure, never a skip."""
    if in_ci():
        pytest.fail(f"{reason} — CI=true, so this cannot be skipped", pytrace=False)
    pytest.skip(reason)


def empty_rq_queue(name: str, database: int) -> tuple[str, Any]:
    """The local Redis's URL (on a database of the test's own) and the RQ queue `name`, emptied;
    skipped outside CI when Redis is not reachable."""
    import redis
    from rq import Queue

    url = f"redis://127.0.0.1:6379/{database}"
    try:
        connection = redis.Redis.from_url(url)
        connection.ping()
    except redis.RedisError:
        skip_unless_ci("Redis is not reachable at 127.0.0.1:6379")
    queue = Queue(name, connection=connection)
    queue.empty()
    return url, queue


@pytest.fixture
def own_rq_queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., tuple[str, Any]]]:
    """`own_rq_queue(module, name)`: the local Redis's URL and an RQ queue of this test run's
    own, where the module's background jobs `name` (receptions.jobs.BackgroundJobs, or the name
    of the queue it enqueues on) now go.

    Parallel runs share that Redis and their jobs' ids collide (each run has its own database), so
    each run has its own queue; afterwards every key of the queue and of its jobs is deleted."""
    queues: list[Any] = []

    def own(module: ModuleType, name: str) -> tuple[str, Any]:
        jobs = getattr(module, name)
        if isinstance(jobs, str):
            queue_name = f"{jobs}-{RUN_ID}"
            monkeypatch.setattr(module, name, queue_name)
        else:
            queue_name = f"{jobs.queue}-{RUN_ID}"
            monkeypatch.setattr(module, name, dataclasses.replace(jobs, queue=queue_name))
        url, queue = empty_rq_queue(queue_name, 14)
        queues.append(queue)
        return url, queue

    yield own
    for queue in queues:
        registries = (
            queue.started_job_registry,
            queue.finished_job_registry,
            queue.failed_job_registry,
            queue.deferred_job_registry,
            queue.scheduled_job_registry,
            queue.canceled_job_registry,
        )
        job_ids = {*queue.job_ids, *(i for registry in registries for i in registry.get_job_ids())}
        for name in (queue.name, *job_ids):
            for key in queue.connection.scan_iter(f"*{name}*"):
                queue.connection.delete(key)
        queue.delete()  # and its name from RQ's list of queues


def app_settings(database_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "ENV_NAME": "testing",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "RATELIMIT_STORAGE_URI": "process://",
        "REDIS_URL": None,
        "SERVER_NAME": None,
        "MAIL_LOG_PATH": str(OUTBOX_DIR / "mail-outbox.log"),
        "SMS_LOG_PATH": str(OUTBOX_DIR / "sms-outbox.log"),
        **extra,
    }


def migrate_to_head(database_url: str) -> None:
    from flask_migrate import upgrade

    app = create_app(app_settings(database_url))
    with app.app_context():
        upgrade()
        db.engine.dispose()


class PostgresServer:
    """Creates and drops uniquely named databases on the local PostgreSQL server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def _admin(self):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=3)

    def available(self) -> str | None:
        try:
            with self._admin() as conn:
                conn.execute("SELECT 1")
        except Exception as error:
            return f"PostgreSQL is not reachable at {self.admin_url}: {type(error).__name__}"
        return None

    def create(self, label: str) -> str:
        name = f"ashyq_test_{label}_{RUN_ID}".lower()
        assert re.fullmatch(r"[a-z0-9_]+", name)
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base = self.admin_url.rsplit("/", 1)[0]
        return f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    server = PostgresServer(POSTGRES_ADMIN_URL)
    reason = server.available()
    if reason:
        skip_unless_ci(reason)
    return server


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "ashyq-test.sqlite3"
    url = f"sqlite:///{path}"
    migrate_to_head(url)
    return url


@pytest.fixture(scope="session")
def postgresql_url(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create("main")
    try:
        migrate_to_head(url)
        yield url
    finally:
        postgres_server.drop(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The database of an integration test; every such test runs once per backend."""
    return str(request.getfixturevalue(f"{request.param}_url"))


def empty_all_tables() -> None:
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    else:
        for table in tables:
            db.session.execute(text(f"DELETE FROM {table}"))
        db.session.execute(text("DELETE FROM sqlite_sequence")) if _has_sqlite_sequence() else None
    db.session.commit()


def _has_sqlite_sequence() -> bool:
    return bool(
        db.session.execute(
            text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")
        ).first()
    )


@pytest.fixture
def app_config() -> dict[str, Any]:
    """Override in a test module to change settings before the app is built."""
    return {}


def fresh_request_globals(app: Flask) -> None:
    """Give every test request its own `g`, as in production.

    pytest-flask keeps one app context for the whole test and Flask reuses it for each request,
    so without this the signed-in user, the locale and the CSRF token of the first request would
    stick to all later ones. URL value preprocessors run before any extension's before_request.
    """

    @app.url_value_preprocessor
    def _reset(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
        for name in list(vars(g)):
            delattr(g, name)


@pytest.fixture
def app(db_url: str, app_config: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(app_settings(db_url, **app_config))
    fresh_request_globals(app)
    with app.app_context():
        empty_all_tables()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def backend(db_url: str) -> str:
    return "postgresql" if db_url.startswith("postgresql") else "sqlite"


CSRF_RE = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"'
)


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1) or match.group(2)


def submit(
    client: FlaskClient,
    url: str,
    data: dict[str, Any],
    *,
    form_url: str | None = None,
    **kwargs: Any,
) -> Any:
    """POST a form the way a browser does: load the page for its CSRF token, then send."""
    page = client.get(form_url or url)
    assert page.status_code == 200, f"GET {form_url or url} gave {page.status_code}"
    return client.post(
        url, data={"csrf_token": csrf_from(page.get_data(as_text=True)), **data}, **kwargs
    )


def sign_in(client: FlaskClient, email: str, password: str) -> Any:
    return submit(client, "/auth/sign-in", {"email": email, "password": password})


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
