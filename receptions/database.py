"""Database plumbing: SQLite pragmas and locking, UTC timestamps, and the one unit-of-work helper."""

from __future__ import annotations

import functools
import logging
import math
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from .extensions import db

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
_IMMEDIATE = "ashyq_immediate"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


@event.listens_for(Engine, "connect")
def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    # Take transaction control away from pysqlite so that the "begin" hook below decides.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()
    if mode and mode[0] == "wal":
        cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@event.listens_for(Engine, "begin")
def _begin_sqlite(conn: Connection) -> None:
    if conn.dialect.name != "sqlite":
        return
    # A write transaction takes SQLite's write lock up front: a deferred transaction that reads
    # and later writes fails at once with SQLITE_BUSY when another process wrote in between,
    # and busy_timeout cannot help it. Reads stay deferred so they never queue behind writers.
    immediate = conn.get_execution_options().get(_IMMEDIATE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_CHECKED_IN = "ashyq_checked_in"
_READ_ONLY = "ashyq_read_only"


def ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled connection before use only when it has been idle for `idle_seconds`.

    A server restart or failover ends connections while they wait in the pool; the one
    check-out after a quiet spell finds out with a `SELECT 1`, and the pool replaces all its
    connections, this one first (InvalidatePoolError: the others were ended too). A connection
    given back moments ago (a busy server: a rush reuses each one within milliseconds) goes
    straight to work, without the round trip that `pool_pre_ping` costs every request. If the
    server went away while the connections were busy, the statement that finds out fails (a 503
    with Retry-After: one per web worker) and SQLAlchemy replaces every connection of the pool.
    The pool hands out the connection given back last (`pool_use_lifo`), so a busy pool's
    connections stay busy and a quiet one's spares are the ones that wait.
    """
    if not math.isfinite(idle_seconds) or idle_seconds < 0:
        raise ValueError(f"DATABASE_PING_AFTER_IDLE_S must be 0 or more seconds, not {idle_seconds}")

    @event.listens_for(engine, "checkin")
    def _given_back(_dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _taken(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        given_back = record.info.get(_CHECKED_IN)
        # A connection that was never given back was opened for this check-out.
        if given_back is None or time.monotonic() - given_back < idle_seconds:
            return
        try:
            # What pool_pre_ping sends; the dialect runs it outside a transaction.
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise InvalidatePoolError(type(error).__name__) from error


@contextmanager
def write_transaction() -> Iterator[Session]:
    """Run a service's writes as one transaction: all of it is committed or none of it.

    Any read-only transaction the request already opened (loading the signed-in user, say) is
    ended first, so that the write transaction starts fresh and, on SQLite, holds the write lock
    from its first statement. On PostgreSQL (READ COMMITTED: every statement reads what is
    committed when it starts) the open transaction simply goes on, with everything read so far
    expired as a commit would: the same reads, without a COMMIT, a pool check-out (and its ping)
    and a BEGIN.
    """
    session = db.session()
    if session.in_transaction():
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("unflushed changes outside a write transaction")
        if session.info.pop(_READ_ONLY, False) or session.get_bind().dialect.name == "sqlite":
            session.commit()
        else:
            session.expire_all()
    if not session.in_transaction():
        session.connection(execution_options={_IMMEDIATE: True})
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


def _end_session(end: Callable[[], None]) -> None:
    """End the request's session (`end`: a rollback or a close) even if its connection is dead.

    PostgreSQL may terminate a backend (a restart, a failover) after the request's last query;
    the ROLLBACK that ends the session then raises. The connection is invalidated instead, so
    the pool never hands it to another request, and the session is ended without it.
    """
    try:
        end()
    except DBAPIError as error:
        log.warning(
            "database connection lost before the session ended: %s", type(error.orig).__name__
        )
        db.session().invalidate()
        end()


def close_request_session(_error: BaseException | None = None) -> None:
    """End the request's session without letting a dead connection turn a finished response
    into a bare 500 (the app context's teardown runs past every error handler)."""
    _end_session(db.session.remove)


def rollback_request_session() -> None:
    """Roll back what the request began before an error page is rendered: with a dead
    connection, the page for the error is still given, not a 500 raised by the rollback."""
    _end_session(db.session.rollback)


def read_only_request() -> None:
    """Run this request's reads without a transaction on PostgreSQL: each statement commits by
    itself (autocommit), so the pool's connection sends no BEGIN and no ROLLBACK, two of a read
    page's five round trips. A ROLLBACK costs more than its round trip there: psycopg forgets
    the connection's prepared statements on every ROLLBACK (and sends DEALLOCATE ALL), so the
    next requests' statements are planned again. For views that only read (`read_only_view`),
    and for what a request reads after its write transaction has ended; it does nothing while
    the request has a transaction, or on SQLite (whose BEGIN and ROLLBACK stay in the process).
    A write transaction later in the same request starts on a transactional connection of its
    own; a write on the reading connection is refused (`refuse_writes_outside_transactions`).

    The cost: a connection that the server ended after the request's last statement is found
    by the next request that takes it from a busy pool (a friendly 503), not by this request's
    ROLLBACK (see ping_when_idle).
    """
    session = db.session()
    if session.in_transaction() or session.get_bind().dialect.name != "postgresql":
        return
    session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    session.info[_READ_ONLY] = True


def end_reads_without_transaction(_error: BaseException | None = None) -> None:
    """After each request: a session that read without a transaction gives its reading
    connection back (a session that outlives the request, as in tests, must not write on it).
    Its rollback sends nothing: the connection is in autocommit."""
    if db.session.registry.has() and db.session().info.pop(_READ_ONLY, False):
        db.session.rollback()


View = TypeVar("View", bound=Callable[..., Any])


def read_only_view(view: View) -> View:
    """For a view that only reads: its reads run without a transaction on PostgreSQL
    (read_only_request). The pages of a citizen's way to a booking use it, so that none of them
    ends with a ROLLBACK that makes psycopg forget the prepared statements the booking uses."""

    @functools.wraps(view)
    def reading(*args: Any, **kwargs: Any) -> Any:
        read_only_request()
        return view(*args, **kwargs)

    return reading  # type: ignore[return-value]


_WRITES = ("INSERT", "UPDATE", "DELETE", "MERGE")
# A statement that begins with WITH writes if one of its parts does (a data-modifying CTE).
_WRITING_PART = re.compile(r"\b(INSERT\s+INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM|MERGE\s+INTO)\b", re.I)


def _writes(statement: str) -> bool:
    head = statement.lstrip()[:6].upper()
    return head.startswith(_WRITES) or (
        head.startswith("WITH") and _WRITING_PART.search(statement) is not None
    )


def refuse_writes_outside_transactions(engine: Engine) -> None:
    """Raise before a write runs on a connection that reads outside a transaction: each of its
    statements would commit at once, and a failure after the first would leave the rest done
    (nothing may be stored half-way). Writes belong in `write_transaction`."""

    @event.listens_for(engine, "before_cursor_execute")
    def _refuse(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if _writes(statement) and (
            conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
        ):
            raise RuntimeError(f"{statement.split()[0]} outside write_transaction")
