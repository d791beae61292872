"""Booking rush: many citizens race for the seats of one institution through a real gunicorn.

    .venv/bin/python benchmarks/booking_rush.py [--backend sqlite|postgresql|both]
        [--clients 128] [--seats 500] [--workers 4] [--cap 60] [--quick]

For each backend it creates a throwaway database (a temporary SQLite file in WAL mode, or a
uniquely named PostgreSQL database that is dropped at the end even on failure), migrates it,
creates one institution with a topic and sessions totalling `--seats` seats (slots of capacity
2), starts `gunicorn -c gunicorn.conf.py -w <workers> -b 127.0.0.1:<free port> wsgi:app` with
production settings, and lets N asyncio clients book until every slot answers 409 (or the time
cap, --cap seconds). Each client is a citizen with a distinct valid IIN: it opens `/book/<slot>` (CSRF token and
idempotency key from the form) and posts the booking; after a 303 the next citizen takes over.
Then `/healthz` is hammered by the same number of clients for a few seconds as a baseline.
Bookings/s counts up to the last 303 (the sell-out), not the hunt for the last free slot after it.
The CPU used by the gunicorn workers (and, on PostgreSQL, by the backends serving the benchmark
database) is read from /proc and printed per booking: on a shared machine it is steadier than
wall-clock throughput, and it gives the CPU-bound ceiling of the host.

Afterwards the database is checked directly: no slot holds more active bookings than seats, every
counter equals its active bookings, and the number of 303 answers equals the stored bookings.
Exit status 1 when such an invariant breaks, a 5xx or a transport error was seen, or a status
that means the benchmark itself is broken (400/422/429, a per-citizen 409); timing targets are
only printed.

The HTTP client is plain asyncio streams (one connection per request, as gunicorn's sync workers
close the connection anyway). It keeps its own cookie jar and ignores the Secure flag of the
production session cookie, so the app runs with its real production config over plain HTTP.
"""

from __future__ import annotations

import argparse
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CAPACITY = 2
SLOTS_PER_SESSION = 25
BOOKING_TIME_CAP_S = 60.0
HEALTHZ_SECONDS = 5.0
REQUEST_TIMEOUT_S = 60.0
HIGH_LIMIT = "1000000 per hour"

TARGET_BOOKINGS_PER_S = 200.0
TARGET_P99_MS = 750.0

INPUT_RE = re.compile(r"<input\b[^>]*>", re.IGNORECASE)
ATTR_RE = re.compile(r'(\w[\w-]*)="([^"]*)"')
ACCESS_LINE_RE = re.compile(r'^\S+ "[A-Z]+ [^"]*" (\d{3}) ')  # gunicorn.conf.py's access format
LIMIT_MESSAGE = "already have a booking at this institution"


# --- a small HTTP/1.1 client ---------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: str

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


async def http(
    port: int,
    method: str,
    path: str,
    *,
    cookies: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
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
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(raw_request)
            await writer.drain()
            raw = await reader.read()
    except (OSError, TimeoutError) as error:
        raise TransportError(f"{type(error).__name__}: {error}") from error
    finally:
        if writer is not None:
            writer.close()
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


# --- database set-up and checks ------------------------------------------------------------------


@dataclass
class Database:
    backend: str
    url: str  # SQLAlchemy URL
    env_url: str  # what DATABASE_URL gets
    tmpdir: Path


def create_database(backend: str, tmpdir: Path) -> Database:
    if backend == "sqlite":
        url = f"sqlite:///{tmpdir / 'rush.sqlite3'}"
        return Database(backend, url, url, tmpdir)
    from tests.conftest import PostgresServer

    server = PostgresServer(POSTGRES_ADMIN_URL)
    reason = server.available()
    if reason:
        raise RuntimeError(reason)
    url = server.create("rush")
    return Database(backend, url, url, tmpdir)


def drop_database(database: Database) -> None:
    if database.backend == "postgresql":
        from tests.conftest import PostgresServer

        PostgresServer(POSTGRES_ADMIN_URL).drop(database.url)


def setup_app(database: Database):  # type: ignore[no-untyped-def]
    from receptions import create_app
    from tests.conftest import app_settings

    return create_app(app_settings(database.url))


def seed(database: Database, seats: int) -> dict[str, Any]:
    """Migrate, then one region/district/institution, a topic and `seats` seats of open slots."""
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
        db.session.remove()
        db.engine.dispose()
    return seeded


def check_invariants(database: Database) -> dict[str, Any]:
    from sqlalchemy import func, select

    from receptions.booking.models import ACTIVE_STATUSES, Booking
    from receptions.extensions import db
    from receptions.notify.models import Notification
    from receptions.schedules.models import Slot

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
            seats += slot.capacity
            held = active.get(slot.id, 0)
            if held > slot.capacity or slot.booked != held or slot.booked > slot.capacity:
                overbooked += 1
        result = {
            "overbooked": overbooked,
            "seats": seats,
            "stored": db.session.scalar(select(func.count()).select_from(Booking)) or 0,
            "active": sum(active.values()),
            "citizens": db.session.scalar(select(func.count(func.distinct(Booking.iin_hash)))) or 0,
            "notifications": dict(
                db.session.execute(
                    select(Notification.status, func.count()).group_by(Notification.status)
                ).all()
            ),
        }
        db.session.remove()
        db.engine.dispose()
    return result


# --- gunicorn ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (Linux /proc); 0 when it is gone or unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def database_cpu_seconds(database: Database) -> float | None:
    """CPU used so far by the PostgreSQL backends serving the benchmark database (same host)."""
    if database.backend != "postgresql":
        return None
    import psycopg

    name = database.url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)
            ).fetchall()
        ]
    return sum(_cpu_seconds(pid) for pid in pids)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def tail(self, lines: int = 60) -> str:
        """The end of the log without the access lines of answered requests (< 500)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        kept = []
        for line in text.splitlines():
            access = ACCESS_LINE_RE.match(line)
            if access is None or int(access.group(1)) >= 500:
                kept.append(line)
        return "\n".join(kept[-lines:])

    def warnings(self) -> list[str]:
        """Log lines at WARNING or above (the app's and gunicorn's), and tracebacks."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        markers = (" WARNING ", " ERROR ", " CRITICAL ", "[WARNING]", "[ERROR]", "[CRITICAL]")
        return [
            line
            for line in text.splitlines()
            if line.startswith("Traceback") or any(marker in line for marker in markers)
        ]

    def workers_cpu_seconds(self) -> float:
        return sum(_cpu_seconds(pid) for pid in children_of(self.process.pid))

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def start_gunicorn(database: Database, workers: int) -> Server:
    port = free_port()
    log_path = database.tmpdir / "gunicorn.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "PROXY_COUNT", "WEB_CONCURRENCY", "BIND", "MAIL_SERVER")
    }
    env.update(
        ASHYQ_ENV="production",
        DATABASE_URL=database.env_url,
        SECRET_KEY=secrets.token_urlsafe(32),
        IIN_HASH_KEY=secrets.token_urlsafe(32),
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
                response = asyncio.run(http(port, "GET", "/healthz"))
                if response.status == 200:
                    return server
            except TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer /healthz within 60 s:\n{server.tail()}")
    except BaseException:
        server.stop()
        raise


# --- the load ------------------------------------------------------------------------------------


@dataclass
class Stats:
    post_latencies: list[float] = field(default_factory=list)
    post_status: Counter[int] = field(default_factory=Counter)
    get_status: Counter[int] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    limit_conflicts: int = 0  # 409 "already have a booking": a repeated IIN, a benchmark bug
    samples: dict[int, str] = field(default_factory=dict)
    accepted: int = 0
    elapsed: float = 0.0
    last_accept: float = 0.0  # seconds from the start to the last 303
    client_cpu: float = 0.0


class Citizens:
    """Distinct valid IINs from tests.factories.make_iin (which can repeat itself: skip repeats)."""

    def __init__(self) -> None:
        from tests.factories import make_iin

        self._make_iin = make_iin
        self._seen: set[str] = set()
        self._seed = itertools.count(1)
        self._number = itertools.count(1)

    def next(self) -> tuple[int, str]:
        while True:
            iin = self._make_iin(next(self._seed))
            if iin not in self._seen:
                self._seen.add(iin)
                return next(self._number), iin


async def booking_rush(
    port: int, slot_ids: list[int], topic_id: int, clients: int, cap: float
) -> Stats:
    stats = Stats()
    open_slots = set(slot_ids)
    citizens = Citizens()
    started = time.monotonic()
    deadline = started + cap
    rng = random.Random(20261)

    def sample(status: int, path: str, body: str) -> None:
        text = " ".join(body.split())[:400]
        stats.samples.setdefault(status, f"{path}: {text}")

    async def client() -> None:
        number, iin = citizens.next()
        jar: dict[str, str] = {}
        while open_slots and time.monotonic() < deadline:
            slot_id = rng.choice(tuple(open_slots))
            path = f"/book/{slot_id}"
            try:
                page = await http(port, "GET", path, cookies=jar)
            except TransportError as error:
                stats.transport_errors[f"GET {error}"] += 1
                continue
            stats.get_status[page.status] += 1
            jar.update(page.cookies())
            if page.status == 409:
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
            form = {
                "full_name": f"Бенчмарк Азамат {number}",
                "iin": iin,
                "phone": f"+7701{number % 10_000_000:07d}",
                "email": f"citizen{number}@example.kz",
                "locale": rng.choice(("kk", "ru", "en")),
                "topic_id": str(topic_id),
                "question": f"Жол жөндеу туралы сұрақ №{number}",
                "consent": "y",
                "csrf_token": hidden["csrf_token"],
                "idempotency_key": hidden["idempotency_key"],
            }
            t0 = time.perf_counter()
            try:
                answer = await http(port, "POST", path, cookies=jar, form=form)
            except TransportError as error:
                stats.transport_errors[f"POST {error}"] += 1
                continue
            stats.post_latencies.append(time.perf_counter() - t0)
            stats.post_status[answer.status] += 1
            jar.update(answer.cookies())
            if answer.status == 303:
                stats.accepted += 1
                stats.last_accept = time.monotonic() - started
                number, iin = citizens.next()
                jar = {}
            elif answer.status == 409 and LIMIT_MESSAGE in answer.body:
                stats.limit_conflicts += 1
                sample(4091, f"POST {path}", answer.body)
                number, iin = citizens.next()
                jar = {}
            elif answer.status == 409:
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


def run_backend(backend: str, args: argparse.Namespace) -> bool:
    tmpdir = Path(tempfile.mkdtemp(prefix=f"ashyq-rush-{backend}-"))
    database: Database | None = None
    server: Server | None = None
    failed = True
    print(
        f"\n=== {backend}: {args.clients} clients, {args.seats} seats, "
        f"{args.workers} gunicorn workers ===",
        flush=True,
    )
    try:
        database = create_database(backend, tmpdir)
        t0 = time.monotonic()
        seeded = seed(database, args.seats)
        print(
            f"database ready in {time.monotonic() - t0:.1f} s: {len(seeded['slot_ids'])} slots",
            flush=True,
        )
        server = start_gunicorn(database, args.workers)
        print(f"gunicorn up on {HOST}:{server.port} (log {server.log_path})", flush=True)

        asyncio.run(warm_up(server.port, seeded["slot_ids"], args.workers))
        load_before = os.getloadavg()[0]
        workers_cpu_before = server.workers_cpu_seconds()
        rush = asyncio.run(
            booking_rush(
                server.port, seeded["slot_ids"], seeded["topic_id"], args.clients, args.cap
            )
        )
        load_after = os.getloadavg()[0]
        workers_cpu = server.workers_cpu_seconds() - workers_cpu_before
        # The backends only exist since the workers' first query, which the rush made.
        database_cpu = database_cpu_seconds(database)
        health = asyncio.run(healthz_load(server.port, args.clients, HEALTHZ_SECONDS))
        exit_code = server.stop()
        check = check_invariants(database)

        # Throughput while seats were left: the hunt for the last free slot after the sell-out
        # (clients still learning that every slot answers 409) is not booking work.
        bookings_per_s = rush.accepted / rush.last_accept if rush.last_accept else 0.0
        sold_out = check["active"] >= check["seats"]
        p50 = percentile(rush.post_latencies, 0.50) * 1000
        p99 = percentile(rush.post_latencies, 0.99) * 1000
        server_errors = sum(n for s, n in rush.post_status.items() if s >= 500) + sum(
            n for s, n in rush.get_status.items() if s >= 500
        )
        server_errors += sum(n for s, n in health.other.items() if s >= 500)
        transport = sum(rush.transport_errors.values()) + health.transport_errors
        healthz_per_s = health.ok / health.elapsed if health.elapsed else 0.0
        ratio = bookings_per_s / healthz_per_s if healthz_per_s else float("nan")
        unexpected = {
            s: n for s, n in rush.post_status.items() if s not in (303, 409) and s < 500
        } | {s: n for s, n in rush.get_status.items() if s not in (200, 409) and s < 500}
        mismatch = rush.accepted != check["stored"]

        print(
            f"booking phase: {rush.elapsed:.1f} s; "
            + (
                f"sold out after {rush.last_accept:.1f} s"
                if sold_out
                else f"TIME CAP hit with {check['seats'] - check['active']} seats left"
            )
        )
        print(
            f"  accepted bookings/s  {bookings_per_s:8.1f}   target >= {TARGET_BOOKINGS_PER_S:.0f}"
            f"   {verdict(bookings_per_s >= TARGET_BOOKINGS_PER_S)}"
        )
        print(f"  POST latency p50     {p50:8.1f} ms")
        print(
            f"  POST latency p99     {p99:8.1f} ms   target <= {TARGET_P99_MS:.0f} ms"
            f"   {verdict(p99 <= TARGET_P99_MS)}"
        )
        print(
            f"  5xx responses        {server_errors:8d}   target 0   {verdict(not server_errors)}"
        )
        print(
            f"  overbooked slots     {check['overbooked']:8d}   target 0"
            f"   {verdict(not check['overbooked'])}"
        )
        print(
            f"  bookings vs seats    {check['stored']:5d} / {check['seats']}"
            f"   (303 answers {rush.accepted}; {'equal' if not mismatch else 'NOT EQUAL'};"
            f" distinct citizens {check['citizens']})"
        )
        print(
            f"  POST statuses        {dict(sorted(rush.post_status.items()))}"
            f"   GET statuses {dict(sorted(rush.get_status.items()))}"
        )
        print(f"  notifications        {check['notifications']}")
        if rush.accepted:
            per_booking = (workers_cpu + (database_cpu or 0.0)) / rush.accepted * 1000
            db_part = (
                f" + postgres {database_cpu / rush.accepted * 1000:.1f} ms"
                if database_cpu is not None
                else " (SQLite runs inside the workers)"
            )
            print(
                f"  server CPU/booking   {per_booking:8.1f} ms   (gunicorn workers"
                f" {workers_cpu / rush.accepted * 1000:.1f} ms{db_part}; GETs and 409s included)"
            )
            print(
                f"  CPU-bound ceiling    {(os.cpu_count() or 1) * 1000 / per_booking:8.1f}"
                f" bookings/s on {os.cpu_count()} cores, if nothing else ran"
            )
        print(
            f"  client CPU           {rush.client_cpu / rush.elapsed:8.0%} of one core"
            f"  ({os.cpu_count()} cores shared with gunicorn and the database)"
        )
        print(
            f"  host load average    {load_before:.1f} before, {load_after:.1f} after"
            " (1-min; other processes share the machine)"
        )
        print(f"healthz phase: {health.elapsed:.1f} s")
        print(
            f"  healthz req/s        {healthz_per_s:8.1f}   (client CPU "
            f"{health.client_cpu / health.elapsed:.0%} of one core)"
        )
        print(f"  booking/healthz      {ratio:8.3f}")
        if transport:
            print(f"  transport errors     {transport}: {dict(rush.transport_errors)}")
        if rush.limit_conflicts:
            print(f"  per-citizen 409s     {rush.limit_conflicts} (an IIN was reused)")
        for status, text in sorted(rush.samples.items()):
            print(f"  sample {status}: {text}")
        warnings = server.warnings()
        print(f"  server log warnings  {len(warnings):8d}")
        for line in warnings[:5]:
            print(f"    {line[:300]}")
        if exit_code not in (0, None):
            print(f"  gunicorn exited with {exit_code}")

        problems = []
        if check["overbooked"]:
            problems.append(f"{check['overbooked']} overbooked slots")
        if server_errors:
            problems.append(f"{server_errors} responses 5xx")
        if mismatch:
            problems.append(f"{rush.accepted} accepted but {check['stored']} stored")
        if transport:
            problems.append(f"{transport} transport errors")
        if unexpected or rush.limit_conflicts:
            problems.append(
                f"unexpected statuses {unexpected}, per-citizen 409s {rush.limit_conflicts}"
            )
        if problems:
            print(f"FAILED ({backend}): " + "; ".join(problems))
            print(f"--- tail of {server.log_path} ---\n{server.tail()}\n---")
        else:
            print(f"PASSED ({backend}): invariants hold")
            if not sold_out:
                print("  note: the time cap ended the rush before every seat was taken")
        failed = bool(problems)
    except Exception as error:
        print(f"FAILED ({backend}): {type(error).__name__}: {error}")
        if server is not None:
            print(f"--- tail of {server.log_path} ---\n{server.tail()}\n---")
        failed = True
    finally:
        if server is not None:
            server.stop()
        if database is not None:
            try:
                drop_database(database)
            except Exception as error:  # keep cleaning up
                print(f"could not drop the {backend} database: {error}")
        shutil.rmtree(tmpdir, ignore_errors=True)
    return not failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--clients", type=int, default=128)
    parser.add_argument("--seats", type=int, default=500)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--cap", type=float, default=BOOKING_TIME_CAP_S, help="time cap, s")
    parser.add_argument("--quick", action="store_true", help="32 clients, 100 seats, 2 workers")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.seats, args.workers = 32, 100, 2
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    results = {backend: run_backend(backend, args) for backend in backends}
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
