"""SQLite: several processes write read-modify-write transactions without "database is locked"."""

from __future__ import annotations

import multiprocessing

import pytest
from sqlalchemy import select

from receptions.extensions import db
from receptions.institutions.models import Institution
from tests.factories import make_institution

PROCESSES = 4
THREADS = 8
INCREMENTS = 5


def _writer(database_url: str, institution_id: int, queue) -> None:  # type: ignore[no-untyped-def]
    import threading

    from receptions import create_app
    from receptions.database import write_transaction
    from tests.conftest import app_settings

    app = create_app(app_settings(database_url))
    errors: list[str] = []

    def work() -> None:
        with app.app_context():
            for _ in range(INCREMENTS):
                try:
                    with write_transaction():
                        row = db.session.get(Institution, institution_id)
                        row.phone = str(int(row.phone or "0") + 1)
                except Exception as error:  # reported to the parent, which fails the test
                    errors.append(f"{type(error).__name__}: {error}")
                db.session.remove()

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put(errors)


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: this is about its BEGIN IMMEDIATE; PostgreSQL has row locks."""
    return sqlite_url


def test_concurrent_writers_across_processes_never_lose_an_update(app, db_url):
    institution = make_institution(phone="0")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [
        context.Process(target=_writer, args=(db_url, institution.id, queue))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    errors = [error for _ in processes for error in queue.get(timeout=120)]
    for process in processes:
        process.join(timeout=30)
    assert errors == []
    db.session.rollback()  # end this session's snapshot so the writers' commits are visible
    phone = db.session.scalar(select(Institution.phone).where(Institution.id == institution.id))
    assert int(phone) == PROCESSES * THREADS * INCREMENTS
