"""What the benchmark and fault scripts share: an HTTP client, throwaway databases, gunicorn, checks.

Used by `booking_rush.py`, `faults.py` and the short invariant tests in `tests/load/`:

- `http` — a small asyncio HTTP/1.1 client (one connection per request; it keeps its own cookie
  jar and ignores the Secure flag of the production session cookie, so the app runs with its
  real production config over plain HTTP);
- `create_database` / `drop_database` — a temporary SQLite file or a uniquely named PostgreSQL
  database (on the shared server or on a `PrivateCluster` that a script may stop and start);
- `seed`, `check_invariants`, `check_acknowledged` — the data a load needs, and what must hold
  in the database afterwards;
- `start_gunicorn` / `Server` — `gunicorn -c gunicorn.conf.py wsgi:app` with production
  settings, its log, its workers' CPU and RSS from /proc;
- `booking_load` — citizens booking through the real form (optionally resubmitting the same form
  after a transport error or a 503, and cancelling each booking again so that seats come back).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import uvloop

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _postgres_bin() -> Path:
    """PostgreSQL's server programs: $POSTGRES_BIN, else Debian's newest /usr/lib/postgresql/N/bin."""
    if os.environ.get("POSTGRES_BIN"):
        return Path(os.environ["POSTGRES_BIN"])
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    found.sort(key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0)
    return found[-1] if found else Path("/usr/lib/postgresql/15/bin")


POSTGRES_BIN = _postgres_bin()
CAPACITY = 2
SLOTS_PER_SESSION = 25
REQUEST_TIMEOUT_S = 60.0
HIGH_LIMIT = "1000000 per hour"
RETRY_PAUSE_S = 0.25  # a resubmitting client waits this long (not the full Retry-After)
RETRY_FOR_S = 30.0  # and gives a submission up after this long without an answer

INPUT_RE = re.compile(r"<input\b[^>]*>", re.IGNORECASE)
ATTR_RE = re.compile(r'(\w[\w-]*)="([^"]*)"')
ACCESS_LINE_RE = re.compile(r'^\S+ "[A-Z]+ [^"]*" (\d{3}) ')  # gunicorn.conf.py's access format
MANAGE_RE = re.compile(r"/m/([A-Za-z0-9_-]+)")
LIMIT_MESSAGE = "already have a booking at this institution"
UNAVAILABLE_TEXT = "temporarily unavailable"  # the English title of the friendly 503 page


# --- a small HTTP/1.1 client ---------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: str

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)

    def cookies(self) -> dict[str, str]:
        jar = {}
        for name, value in self.headers:
            if name == "set-cookie":
                pair = value.split(";", 1)[0]
                if "=" in pair:
                    key, val = pair.split("=", 1)
                    jar[key.strip()] = val.strip()
        return jar


class TransportError(Exception):
    pass


def run_clients(main: Any) -> Any:
    """Run the clients' coroutine on uvloop's event loop. The clients share the machine's cores
    with the server they measure: on asyncio's own loop a rush's 128 clients took 28 % of a core,
    on uvloop's 22 %, and `/healthz`'s 61 % against 49 %."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def http(
    port: int,
    method: str,
    path: str,
    *,
    cookies: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT_S,
) -> Response:
    """One request on its own connection; reads until the server closes it."""
    body = urlencode(form).encode() if form is not None else b""
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Connection: close",
        "Accept-Language: en",
        "User-Agent: ashyq-booking-rush",
    ]
    if cookies:
        lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in cookies.items()))
    if form is not None:
        lines.append("Content-Type: application/x-www-form-urlencoded")
        lines.append(f"Content-Length: {len(body)}")
    raw_request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(raw_request)
            await writer.drain()
            raw = await reader.read()
    except (OSError, TimeoutError) as error:
        raise TransportError(f"{type(error).__name__}: {error}") from error
    finally:
        if writer is not None:
            writer.close()
    if not raw:
        raise TransportError("connection closed without an answer")
    head, _, payload = raw.partition(b"\r\n\r\n")
    head_lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(head_lines[0].split(" ", 2)[1])
    except (IndexError, ValueError) as error:
        raise TransportError(f"malformed response: {head_lines[0]!r}") from error
    headers = []
    for line in head_lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return Response(status, headers, payload.decode("utf-8", "replace"))


def hidden_fields(html: str) -> dict[str, str]:
    fields = {}
    for tag in INPUT_RE.findall(html):
        attrs = dict(ATTR_RE.findall(tag))
        if attrs.get("name") in ("csrf_token", "idempotency_key") and "value" in attrs:
            fields[attrs["name"]] = attrs["value"]
    return fields


def unfriendly(response: Response) -> str | None:
    """Why an answer is not what a citizen may see when something fails, or None when it is.

    Only 503 is allowed among the 5xx, and only with Retry-After and the friendly page; no
    answer at all may carry a traceback.
    """
    if "Traceback (most recent call last)" in response.body:
        return f"{response.status} with a traceback"
    if response.status == 503:
        if not response.header("retry-after"):
            return "503 without Retry-After"
        if UNAVAILABLE_TEXT not in response.body and '"unavailable"' not in response.body:
            return "503 without the friendly page"
        return None
    if response.status >= 500:
        return f"{response.status}"
    return None


# --- database set-up and checks ------------------------------------------------------------------


@dataclass
class Database:
    backend: str
    url: str  # SQLAlchemy URL
    env_url: str  # what DATABASE_URL gets
    tmpdir: Path
    admin_url: str = POSTGRES_ADMIN_URL
    # One deployment's keys: every gunicorn instance serving this database gets the same ones.
    keys: dict[str, str] = field(
        default_factory=lambda: {
            "SECRET_KEY": secrets.token_urlsafe(32),
            "IIN_HASH_KEY": secrets.token_urlsafe(32),
        }
    )


def create_database(
    backend: str, tmpdir: Path, *, admin_url: str = POSTGRES_ADMIN_URL, label: str = "rush"
) -> Database:
    if backend == "sqlite":
        url = f"sqlite:///{tmpdir / f'{label}.sqlite3'}"
        return Database(backend, url, url, tmpdir)
    from tests.conftest import PostgresServer

    server = PostgresServer(admin_url)
    reason = server.available()
    if reason:
        raise RuntimeError(reason)
    url = server.create(label)
    return Database(backend, url, url, tmpdir, admin_url)


def drop_database(database: Database) -> None:
    if database.backend == "postgresql":
        from tests.conftest import PostgresServer

        PostgresServer(database.admin_url).drop(database.url)


def discard_database(database: Database | None, tmpdir: Path) -> None:
    """Drop the throwaway database (if it was created) and delete its directory; never raises."""
    if database is not None:
        try:
            drop_database(database)
        except Exception as error:  # keep cleaning up
            print(f"could not drop the {database.backend} database: {error}")
    shutil.rmtree(tmpdir, ignore_errors=True)


def setup_app(database: Database):  # type: ignore[no-untyped-def]
    from receptions import create_app
    from tests.conftest import app_settings

    return create_app(app_settings(database.url))


def seed(database: Database, seats: int, *, warm_up_slots: int = 0) -> dict[str, Any]:
    """Migrate, then one region/district/institution, a topic and `seats` seats of open slots;
    with `warm_up_slots`, another institution with that many one-seat slots for `warm_up`'s
    bookings, which the checks leave out (`warm_up_slot_ids`)."""
    from receptions.extensions import db
    from tests.conftest import migrate_to_head
    from tests.factories import make_institution, make_open_session, make_topic

    migrate_to_head(database.url)
    app = setup_app(database)
    with app.app_context():
        institution = make_institution()
        topic = make_topic()
        full_slots, remainder = divmod(seats, CAPACITY)
        slot_ids: list[int] = []
        day = 0
        while full_slots > 0:
            count = min(SLOTS_PER_SESSION, full_slots)
            session = make_open_session(
                institution, slots=count, capacity=CAPACITY, starts_in_hours=72 + 24 * day
            )
            slot_ids += [slot.id for slot in session.slots]
            full_slots -= count
            day += 1
        if remainder:
            session = make_open_session(
                institution, slots=1, capacity=remainder, starts_in_hours=72 + 24 * day
            )
            slot_ids += [slot.id for slot in session.slots]
        seeded = {"slot_ids": slot_ids, "topic_id": topic.id, "institution_id": institution.id}
        seeded["warm_up_slot_ids"] = []
        if warm_up_slots:
            session = make_open_session(make_institution(), slots=warm_up_slots, capacity=1)
            seeded["warm_up_slot_ids"] = [slot.id for slot in session.slots]
        db.session.remove()
        db.engine.dispose()
    return seeded


def check_invariants(database: Database, slot_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """Seats, counters and bookings as stored: `overbooked` counts the slots where they disagree
    (every slot), `duplicates` the citizens (keyed IIN hashes) holding more than one booking.
    With `slot_ids`, seats, bookings and citizens are those of these slots only (a warm-up's
    bookings elsewhere are not the load's)."""
    from sqlalchemy import func, select

    from receptions.booking.models import ACTIVE_STATUSES, Booking
    from receptions.extensions import db
    from receptions.notify.models import Notification
    from receptions.schedules.models import Slot

    counted = set(slot_ids) if slot_ids is not None else None
    app = setup_app(database)
    with app.app_context():
        active = dict(
            db.session.execute(
                select(Booking.slot_id, func.count())
                .where(Booking.status.in_(ACTIVE_STATUSES))
                .group_by(Booking.slot_id)
            ).all()
        )
        overbooked = 0
        seats = 0
        for slot in db.session.scalars(select(Slot)):
            held = active.get(slot.id, 0)
            if held > slot.capacity or slot.booked != held or slot.booked > slot.capacity:
                overbooked += 1
            if counted is None or slot.id in counted:
                seats += slot.capacity
            else:
                active.pop(slot.id, None)
        bookings = select(Booking)
        if counted is not None:
            bookings = bookings.where(Booking.slot_id.in_(counted))
        booked = bookings.subquery()
        per_citizen = (
            select(booked.c.iin_hash)
            .group_by(booked.c.iin_hash)
            .having(func.count() > 1)
            .subquery()
        )
        result = {
            "overbooked": overbooked,
            "seats": seats,
            "stored": db.session.scalar(select(func.count()).select_from(booked)) or 0,
            "active": sum(active.values()),
            "citizens": db.session.scalar(select(func.count(func.distinct(booked.c.iin_hash))))
            or 0,
            "duplicates": db.session.scalar(select(func.count()).select_from(per_citizen)) or 0,
            "notifications": dict(
                db.session.execute(
                    select(Notification.status, func.count())
                    .where(Notification.booking_id.in_(select(booked.c.id)))
                    .group_by(Notification.status)
                ).all()
            ),
        }
        db.session.remove()
        db.engine.dispose()
    return result


@dataclass(frozen=True)
class Acknowledgement:
    """A 303 to a manage link: the booking the citizen was told they have."""

    key: str  # the form's idempotency key
    token: str  # from the Location header
    retried: bool  # the same form was sent more than once
    sent_at: float  # wall clock when the answered attempt was sent


def check_acknowledged(
    database: Database, acknowledged: Sequence[Acknowledgement], cancelled: set[str]
) -> dict[str, int]:
    """Every acknowledged booking is stored under its form's key with the manage link the citizen
    got, and is active unless the load cancelled it. `repeats` counts resubmissions answered with
    the booking an earlier, unanswered attempt had made (created before the answered attempt)."""
    from sqlalchemy import select

    from receptions.booking.models import ACTIVE_STATUSES, Booking
    from receptions.booking.services import idempotency_hash, token_hash
    from receptions.extensions import db

    app = setup_app(database)
    with app.app_context():
        stored = {
            row.idempotency_hash: row
            for row in db.session.execute(
                select(
                    Booking.idempotency_hash,
                    Booking.manage_token_hash,
                    Booking.status,
                    Booking.created_at,
                )
            )
        }
        app.config["SECRET_KEY"] = database.keys["SECRET_KEY"]  # the servers' key
        hashes = {ack.key: idempotency_hash(ack.key) for ack in acknowledged}
        db.session.remove()
        db.engine.dispose()
    lost = wrong_status = repeats = 0
    for ack in acknowledged:
        row = stored.get(hashes[ack.key])
        if row is None or row.manage_token_hash != token_hash(ack.token):
            lost += 1
            continue
        if (row.status in ACTIVE_STATUSES) == (ack.key in cancelled):
            wrong_status += 1
        if ack.retried and row.created_at.timestamp() < ack.sent_at:
            repeats += 1
    keys = {ack.key for ack in acknowledged}
    told = set(hashes.values())
    return {
        "acknowledged": len(acknowledged),
        "distinct": len(keys),
        "lost": lost,
        "wrong_status": wrong_status,
        "retried": sum(ack.retried for ack in acknowledged),
        "repeats": repeats,
        "unacknowledged": sum(key not in told for key in stored),
    }


class PrivateCluster:
    """A PostgreSQL cluster of its own (temporary directory, free loopback port, trust auth),
    which a fault script may stop and start without touching the machine's shared server.

    PostgreSQL refuses to run as root, so as root its programs run as the `postgres` user.
    """

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ashyq-pg-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgresql.log"
        self.port = free_port()
        self.admin_url = f"postgresql://postgres@{HOST}:{self.port}/postgres"

    @staticmethod
    def unavailable() -> str | None:
        """Why no private cluster can be made here, or None."""
        if not (POSTGRES_BIN / "initdb").exists():
            return f"PostgreSQL server programs are not installed in {POSTGRES_BIN}"
        if os.geteuid() == 0 and (shutil.which("runuser") is None or not _user_exists("postgres")):
            return "running as root without runuser or a postgres user"
        return None

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        command = [str(POSTGRES_BIN / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode:
            raise RuntimeError(f"{program} {' '.join(args)} failed: {done.stderr or done.stdout}")

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
            "--no-instructions",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '{HOST}'\n"
                f"unix_socket_directories = '{self.dir}'\nshared_buffers = 32MB\n"
            )

    def start(self, *, wait: bool = True) -> None:
        """Start the server; with `wait`, return once it accepts connections."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_path),
            "-w" if wait else "-W", "-t", "60", "start",
        )  # fmt: skip

    def wait_until_accepting(self, timeout: float = 60) -> float:
        """Poll the server every 20 ms; the monotonic time of the first accepted connection."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return time.monotonic()
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def remove(self) -> None:
        """Stop the server if it runs and delete the cluster; safe to call more than once."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


# --- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _proc_stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (Linux /proc); 0 when it is gone or unreadable."""
    try:
        fields = _proc_stat(pid)
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (Linux /proc); 0 when it is gone."""
    try:
        fields = _proc_stat(pid)
    except (OSError, IndexError):
        return 0
    return int(fields[21]) * os.sysconf("SC_PAGE_SIZE")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(_proc_stat(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def database_backends_cpu(database: Database) -> dict[int, float] | None:
    """CPU used so far by each PostgreSQL backend serving the benchmark database (same host),
    by pid; None on SQLite."""
    if database.backend != "postgresql":
        return None
    import psycopg

    name = database.url.rsplit("/", 1)[1]
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)
            ).fetchall()
        ]
    return {pid: cpu_seconds(pid) for pid in pids}


def database_cpu_since(database: Database, before: dict[int, float] | None) -> float | None:
    """CPU the benchmark database's backends used since `before` (database_backends_cpu); a
    backend that started since counts from zero."""
    now = database_backends_cpu(database)
    if now is None:
        return None
    return sum(cpu - (before or {}).get(pid, 0.0) for pid, cpu in now.items())


# --- gunicorn ------------------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log_lines(self) -> list[str]:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return []

    def tail(self, lines: int = 60) -> str:
        """The end of the log without the access lines of answered requests (< 500)."""
        if not self.log_path.exists():
            return "(no log)"
        kept = []
        for line in self.log_lines():
            access = ACCESS_LINE_RE.match(line)
            if access is None or int(access.group(1)) >= 500:
                kept.append(line)
        return "\n".join(kept[-lines:])

    def warnings(self) -> list[str]:
        """Log lines at WARNING or above (the app's and gunicorn's), and tracebacks."""
        markers = (" WARNING ", " ERROR ", " CRITICAL ", "[WARNING]", "[ERROR]", "[CRITICAL]")
        return [
            line
            for line in self.log_lines()
            if line.startswith("Traceback") or any(marker in line for marker in markers)
        ]

    def access_statuses(self, request_prefix: str = "") -> Counter[int]:
        """Statuses in the access log of the requests whose line starts with `request_prefix`
        (such as "POST /book/")."""
        statuses: Counter[int] = Counter()
        for line in self.log_lines():
            access = ACCESS_LINE_RE.match(line)
            if access is not None and line.split('"', 2)[1].startswith(request_prefix):
                statuses[int(access.group(1))] += 1
        return statuses

    def tracebacks(self) -> list[str]:
        """Each traceback in the log with the line before it (what was logged) and its last line."""
        lines = self.log_lines()
        found = []
        for number, line in enumerate(lines):
            if line.startswith("Traceback"):
                end = number + 1
                while end < len(lines) and lines[end].startswith((" ", "\t")):
                    end += 1
                last = lines[end] if end < len(lines) else ""
                found.append(" / ".join([lines[number - 1] if number else "", last]))
        return found

    def count(self, text: str) -> int:
        """Log lines that contain `text` (a traceback, "database is locked", ...)."""
        return sum(text in line for line in self.log_lines())

    def workers(self) -> list[int]:
        return children_of(self.process.pid)

    def workers_cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.workers())

    def workers_rss(self) -> dict[int, int]:
        return {pid: rss_bytes(pid) for pid in self.workers()}

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def start_gunicorn(
    database: Database, workers: int, *, name: str = "gunicorn", extra_args: Sequence[str] = ()
) -> Server:
    """`gunicorn -c gunicorn.conf.py -w <workers> wsgi:app` on a free port, production settings,
    the database's keys; the log goes to `<tmpdir>/<name>.log`."""
    port = free_port()
    log_path = database.tmpdir / f"{name}.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "PROXY_COUNT", "WEB_CONCURRENCY", "BIND", "MAIL_SERVER")
    }
    env.update(
        ASHYQ_ENV="production",
        PUBLIC_URL=f"https://{HOST}",
        DATABASE_URL=database.env_url,
        **database.keys,
        BOOKING_RATE_LIMIT=HIGH_LIMIT,
        BOOKING_IIN_RATE_LIMIT=HIGH_LIMIT,
        STATUS_RATE_LIMIT=HIGH_LIMIT,
        MAIL_BACKEND="log",
        MAIL_LOG_PATH=str(database.tmpdir / "mail-outbox.log"),
        SMS_LOG_PATH=str(database.tmpdir / "sms-outbox.log"),
        PYTHONUNBUFFERED="1",
    )
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(ROOT / "gunicorn.conf.py"),
        "-w",
        str(workers),
        "-b",
        f"{HOST}:{port}",
        *extra_args,
        "wsgi:app",
    ]
    log = log_path.open("wb")
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    server = Server(process, port, log_path)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{server.tail()}")
            try:
                response = run_clients(http(port, "GET", "/healthz"))
                if response.status == 200 and len(server.workers()) >= workers:
                    return server
            except TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer /healthz within 60 s:\n{server.tail()}")
    except BaseException:
        server.stop()
        raise


# --- load ----------------------------------------------------------------------------------------


@dataclass
class Stats:
    post_latencies: list[float] = field(default_factory=list)
    post_finished: list[float] = field(default_factory=list)  # seconds from the start, per latency
    post_status: Counter[int] = field(default_factory=Counter)
    get_status: Counter[int] = field(default_factory=Counter)
    cancel_status: Counter[int] = field(default_factory=Counter)  # POST /m/<token>/cancel
    transport_errors: Counter[str] = field(default_factory=Counter)
    limit_conflicts: int = 0  # 409 "already have a booking": a repeated IIN, a benchmark bug
    samples: dict[int, str] = field(default_factory=dict)
    unfriendly: Counter[str] = field(default_factory=Counter)  # see `unfriendly`
    acknowledged: list[Acknowledgement] = field(default_factory=list)
    cancelled: set[str] = field(default_factory=set)  # idempotency keys of cancelled bookings
    abandoned: int = 0  # submissions given up without an answer (outcome unknown to the client)
    resubmitted: int = 0  # acknowledged forms sent once more, as after a lost answer
    resubmit_mismatch: int = 0  # ... and not answered with the same manage link
    accepted: int = 0
    elapsed: float = 0.0
    last_accept: float = 0.0  # seconds from the start to the last 303
    client_cpu: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses().items() if s >= 500)

    def statuses(self) -> Counter[int]:
        return self.post_status + self.get_status + self.cancel_status


class Citizens:
    """Distinct valid IINs from tests.factories.make_iin (which can repeat itself: skip repeats)."""

    def __init__(self, first: int = 1) -> None:
        from tests.factories import make_iin

        self._make_iin = make_iin
        self._seen: set[str] = set()
        self._seed = itertools.count(first)
        self._number = itertools.count(first)

    def next(self) -> tuple[int, str]:
        while True:
            iin = self._make_iin(next(self._seed))
            if iin not in self._seen:
                self._seen.add(iin)
                return next(self._number), iin


def booking_form(
    hidden: dict[str, str], number: int, iin: str, topic_id: int, locale: str
) -> dict[str, str]:
    """What citizen `number` fills in on a form whose hidden fields are `hidden`."""
    return {
        "full_name": f"Бенчмарк Азамат {number}",
        "iin": iin,
        "phone": f"+7701{number % 10_000_000:07d}",
        "email": f"citizen{number}@example.kz",
        "locale": locale,
        "topic_id": str(topic_id),
        "question": f"Жол жөндеу туралы сұрақ №{number}",
        "consent": "y",
        "csrf_token": hidden["csrf_token"],
        "idempotency_key": hidden["idempotency_key"],
    }


async def booking_load(
    ports: Sequence[int],
    slot_ids: list[int],
    topic_id: int,
    clients: int,
    cap: float,
    *,
    retry: bool = False,
    churn: bool = False,
    resubmit: float = 0.0,
    seed: int = 20261,
) -> Stats:
    """`clients` citizens book until every slot answers 409 or `cap` seconds have passed.

    Each citizen opens `/book/<slot>` (CSRF token and idempotency key from the form) and posts the
    booking; after a 303 the next citizen takes over. Requests go round-robin to `ports`, so with
    several instances a form drawn by one is posted to another. With `retry`, a transport error or
    a 503 sends the same request again (the same form, so the same idempotency key) after a short
    pause. With `churn`, each booking is cancelled through its manage link, so seats come back and
    the load can run for as long as wanted. `resubmit` is the share of acknowledged forms sent
    once more, which must be answered with the same manage link and create nothing.
    """
    stats = Stats()
    open_slots = set(slot_ids)
    citizens = Citizens()
    started = time.monotonic()
    deadline = started + cap
    rng = random.Random(seed)
    turn = itertools.count()

    def sample(status: int, path: str, body: str) -> None:
        text = " ".join(body.split())[:400]
        stats.samples.setdefault(status, f"{path}: {text}")

    async def send(
        method: str, path: str, jar: dict[str, str], form: dict[str, str] | None = None
    ) -> tuple[Response | None, bool, float]:
        """The answer (None after a transport error without retry, or when given up), whether
        the request was sent more than once, and when the answered attempt was sent."""
        attempts = 0
        give_up = time.monotonic() + RETRY_FOR_S
        while True:
            attempts += 1
            sent_at, t0 = time.time(), time.perf_counter()
            try:
                response = await http(
                    ports[next(turn) % len(ports)], method, path, cookies=jar, form=form
                )
            except TransportError as error:
                stats.transport_errors[f"{method} {error}"] += 1
                if not retry or time.monotonic() > give_up:
                    if retry and method == "POST":
                        stats.abandoned += 1
                    return None, attempts > 1, sent_at
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            if method == "GET":
                stats.get_status[response.status] += 1
            elif path.startswith("/book/"):
                stats.post_latencies.append(time.perf_counter() - t0)
                stats.post_finished.append(time.monotonic() - started)
                stats.post_status[response.status] += 1
            else:
                stats.cancel_status[response.status] += 1
            problem = unfriendly(response)
            if problem:
                stats.unfriendly[problem] += 1
                sample(response.status, f"{method} {path}", response.body)
            jar.update(response.cookies())
            if retry and response.status == 503 and time.monotonic() < give_up:
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            return response, attempts > 1, sent_at

    async def cancel(token: str, key: str, jar: dict[str, str]) -> None:
        page, _, _ = await send("GET", f"/m/{token}", jar)
        hidden = hidden_fields(page.body) if page is not None and page.status == 200 else {}
        if "csrf_token" not in hidden:
            if page is not None:
                sample(page.status, "GET manage page", page.body)
            return
        form = {"csrf_token": hidden["csrf_token"], "confirm": "yes"}
        answer, retried, _ = await send("POST", f"/m/{token}/cancel", jar, form)
        # A resubmitted cancel finds the booking cancelled already: 409.
        if answer is not None and (answer.status == 303 or (retried and answer.status == 409)):
            stats.cancelled.add(key)
        elif answer is not None:
            sample(answer.status, "POST cancel", answer.body)

    async def client() -> None:
        number, iin = citizens.next()
        jar: dict[str, str] = {}
        while open_slots and time.monotonic() < deadline:
            slot_id = rng.choice(tuple(open_slots))
            path = f"/book/{slot_id}"
            page, _, _ = await send("GET", path, jar)
            if page is None:
                continue
            if page.status == 409:
                if not churn:
                    open_slots.discard(slot_id)
                continue
            if page.status != 200:
                sample(page.status, f"GET {path}", page.body)
                continue
            hidden = hidden_fields(page.body)
            if "csrf_token" not in hidden or "idempotency_key" not in hidden:
                sample(-1, f"GET {path} (no hidden fields)", page.body)
                stats.get_status[-1] += 1
                continue
            form = booking_form(hidden, number, iin, topic_id, rng.choice(("kk", "ru", "en")))
            answer, retried, sent_at = await send("POST", path, jar, form)
            if answer is None:
                continue
            if answer.status == 303:
                stats.accepted += 1
                stats.last_accept = time.monotonic() - started
                location = MANAGE_RE.search(answer.header("location") or "")
                if location is None:
                    sample(-2, f"POST {path} (303 without a manage link)", str(answer.headers))
                else:
                    ack = Acknowledgement(
                        form["idempotency_key"], location.group(1), retried, sent_at
                    )
                    stats.acknowledged.append(ack)
                    if resubmit and rng.random() < resubmit:
                        again, _, _ = await send("POST", path, jar, form)
                        link = MANAGE_RE.search(again.header("location") or "") if again else None
                        stats.resubmitted += 1
                        stats.resubmit_mismatch += link is None or link.group(1) != ack.token
                    if churn:
                        await cancel(ack.token, ack.key, jar)
                number, iin = citizens.next()
                jar = {}
            elif answer.status == 409 and LIMIT_MESSAGE in answer.body:
                stats.limit_conflicts += 1
                sample(4091, f"POST {path}", answer.body)
                number, iin = citizens.next()
                jar = {}
            elif answer.status == 409:
                if not churn:
                    open_slots.discard(slot_id)
            else:
                sample(answer.status, f"POST {path}", answer.body)
                if answer.status == 429:
                    await asyncio.sleep(1)

    cpu0 = time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    stats.elapsed = time.monotonic() - started
    stats.client_cpu = time.process_time() - cpu0
    return stats


async def warm_up(port: int, slot_ids: list[int], workers: int) -> None:
    """Let every worker compile the form's templates and load catalogues before measuring
    (GETs only: they take no seat)."""

    async def client(n: int) -> None:
        for _ in range(8):
            with contextlib.suppress(TransportError):
                await http(port, "GET", f"/book/{slot_ids[n % len(slot_ids)]}")

    await asyncio.gather(*(client(n) for n in range(2 * workers)))


async def warm_up_submissions(
    port: int, slot_ids: list[int], topic_id: int, workers: int
) -> Counter[str]:
    """Let every worker run the submission's paths once before measuring, as a server that
    has been up a while has: a booking (303), the same form again (303, the first booking),
    another citizen's form for the seat just taken (409) and the full slot's page (409), with
    `2 × workers` clients at a time so that every worker is likely to take some. The one-seat
    `slot_ids` belong to an institution the load does not use. Returns the answers seen, as
    "METHOD status", and raises when they are not those."""
    seen: Counter[str] = Counter()
    citizens = Citizens(first=300_000)  # make_iin's seeds are distinct below 336,000

    async def send(method: str, path: str, jar: dict[str, str], form: Any = None) -> Response:
        response = await http(port, method, path, cookies=jar, form=form)
        seen[f"{method} {response.status}"] += 1
        jar.update(response.cookies())
        return response

    async def client(slot_id: int) -> None:
        path = f"/book/{slot_id}"
        jars: list[dict[str, str]] = [{}, {}]
        forms = []
        for jar in jars:
            page = await send("GET", path, jar)
            number, iin = citizens.next()
            locale = ("kk", "ru", "en")[number % 3]
            forms.append(booking_form(hidden_fields(page.body), number, iin, topic_id, locale))
        await send("POST", path, jars[0], forms[0])
        await send("POST", path, jars[0], forms[0])
        await send("POST", path, jars[1], forms[1])
        await send("GET", path, jars[1])

    for first in range(0, len(slot_ids), 2 * workers):
        await asyncio.gather(*(client(slot) for slot in slot_ids[first : first + 2 * workers]))
    each = len(slot_ids)
    expected = {"GET 200": 2 * each, "POST 303": 2 * each, "POST 409": each, "GET 409": each}
    if dict(seen) != expected:
        raise RuntimeError(f"the warm-up was answered {dict(seen)}, not {expected}")
    return seen


@dataclass
class HealthStats:
    ok: int = 0
    other: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    elapsed: float = 0.0
    client_cpu: float = 0.0


async def healthz_load(port: int, clients: int, seconds: float) -> HealthStats:
    stats = HealthStats()
    deadline = time.monotonic() + seconds

    async def client() -> None:
        while time.monotonic() < deadline:
            try:
                response = await http(port, "GET", "/healthz")
            except TransportError:
                stats.transport_errors += 1
                continue
            if response.status == 200:
                stats.ok += 1
            else:
                stats.other[response.status] += 1

    cpu0 = time.process_time()
    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    stats.elapsed = time.monotonic() - started
    stats.client_cpu = time.process_time() - cpu0
    return stats


# --- report --------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"
