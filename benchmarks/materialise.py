"""Materialisation benchmark: sessions and slots for N institutions through the real service.

    .venv/bin/python benchmarks/materialise.py [--institutions 1000] [--months 12]
        [--backend sqlite|postgresql|both] [--quick] [--profile FILE]

Per backend it creates a throwaway database (a temporary SQLite file, or a uniquely named
PostgreSQL database that is dropped at the end, even on error), migrates it to head, stores a
region, five districts and N institutions, each with a weekly reception (Tue 15:00-18:00, 15-min
slots, capacity 1) and a monthly open-door day (last Friday 10:00-13:00, 30-min slots, capacity
5), and measures:

1. service   `materialise_all(days=months*30.5)`, one transaction per institution;
2. bulk      the very same rows (ids included) inserted into the emptied tables with plain
             SQLAlchemy Core executemany, and the ratio service / bulk;
3. re-run    `materialise_all` again over the materialised data (creates nothing);
4. feed      one institution with ~100 sessions: the .ics body built as the view builds it, and
             the real GET /institutions/<id>/calendar.ics (medians of 20; target <= 100 ms).

It prints figures and ratios and asserts nothing about time. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import logging
import os
import pstats
import re
import secrets
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import time as clock_time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select, text

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TZ = "Asia/Almaty"
DISTRICTS = 5
FEED_EVENTS = 100
FEED_RUNS = 20
FEED_TARGET_MS = 100.0
BULK_BATCH = 10_000


# --- progress (stderr only) -------------------------------------------------------------------


class Progress:
    """A one-line counter on stderr; a few plain lines when stderr is not a terminal."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, max(total, 1), 0
        self.tty = sys.stderr.isatty()
        self.started = time.perf_counter()
        self.next_report = 0

    def __call__(self, step: int = 1) -> None:
        self.done += step
        share = self.done * 100 // self.total
        if share < self.next_report and self.done != self.total:
            return
        self.next_report = share + (1 if self.tty else 25)
        elapsed = time.perf_counter() - self.started
        line = f"  {self.label}: {self.done:,}/{self.total:,} ({share}%, {elapsed:.0f} s)"
        sys.stderr.write(("\r" + line) if self.tty else (line + "\n"))
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


def note(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


# --- throwaway databases ----------------------------------------------------------------------


@contextlib.contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="ashyq-bench-") as folder:
        yield f"sqlite:///{folder}/materialise.sqlite3"


@contextlib.contextmanager
def postgresql_database(admin_url: str) -> Iterator[str]:
    import psycopg

    name = f"ashyq_bench_materialise_{os.getpid()}_{secrets.token_hex(4)}"
    assert re.fullmatch(r"[a-z0-9_]+", name)
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        note(f"dropped PostgreSQL database {name}")


def build_app(url: str):  # type: ignore[no-untyped-def]
    from flask_migrate import upgrade

    from receptions import create_app

    app = create_app(
        {
            "ENV_NAME": "testing",
            "SQLALCHEMY_DATABASE_URI": url,
            "RATELIMIT_STORAGE_URI": "process://",
            "REDIS_URL": None,
            "SERVER_NAME": None,
        }
    )
    with app.app_context():
        upgrade()
    # Alembic's logging configuration turns INFO on; the figures should stay readable.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return app


# --- data --------------------------------------------------------------------------------------


def schedule_values(institution_id: int, kind: str, valid_from: Any, **values: Any) -> Any:
    from receptions.schedules.models import Schedule

    return Schedule(
        institution_id=institution_id,
        kind=kind,
        status="active",
        walk_in_places=0,
        breaks=[],
        exclusions=[],
        day_off_policy="previous_working_day",
        valid_from=valid_from,
        host_name="Айгүл Бенчмаркова",
        host_position="Директор",
        location="Бас ғимарат, 1-қабат",
        **values,
    )


def seed(institutions: int) -> tuple[int, int]:
    """One region, a few districts, N institutions with two schedules each; returns (ids)."""
    from receptions.extensions import db
    from receptions.geography.models import District, Region
    from receptions.institutions.models import Institution
    from receptions.schedules.services import local_today

    region = Region(
        code="KZ-BM",
        short="BMK",
        kind="region",
        name_kk="Бенчмарк облысы",
        name_ru="Бенчмарк область",
        name_en="Benchmark Region",
        timezone=TZ,
    )
    districts = [
        District(
            region=region,
            slug=f"district-{d}",
            name_kk=f"Аудан {d}",
            name_ru=f"Район {d}",
            name_en=f"District {d}",
        )
        for d in range(1, DISTRICTS + 1)
    ]
    db.session.add(region)
    db.session.add_all(districts)
    db.session.flush()
    places = [
        Institution(
            district_id=districts[i % DISTRICTS].id,
            type="school",
            name_kk=f"№{i} мектеп",
            name_ru=f"Школа №{i}",
            name_en=f"School No. {i}",
            address_kk=f"Абай даңғылы, {i}",
            address_ru=f"проспект Абая, {i}",
            head_name="Сәуле Бенчмаркова",
            head_position_ru="Директор",
            active=True,
        )
        for i in range(1, institutions + 1)
    ]
    db.session.add_all(places)
    db.session.flush()
    valid_from = local_today(TZ).replace(day=1)
    for place in places:
        db.session.add(
            schedule_values(
                place.id,
                "reception",
                valid_from,
                rrule="FREQ=WEEKLY;BYDAY=TU",
                start_time=clock_time(15),
                end_time=clock_time(18),
                slot_minutes=15,
                capacity=1,
            )
        )
        db.session.add(
            schedule_values(
                place.id,
                "open_door",
                valid_from,
                rrule="FREQ=MONTHLY;BYDAY=-1FR",
                start_time=clock_time(10),
                end_time=clock_time(13),
                slot_minutes=30,
                capacity=5,
            )
        )
    db.session.commit()
    return places[0].id, districts[0].id


def counts() -> tuple[int, int]:
    from receptions.extensions import db
    from receptions.schedules.models import ScheduledSession, Slot

    sessions = db.session.scalar(select(func.count()).select_from(ScheduledSession)) or 0
    slots = db.session.scalar(select(func.count()).select_from(Slot)) or 0
    db.session.commit()
    return sessions, slots


# --- measurements ------------------------------------------------------------------------------


@dataclass
class Figures:
    backend: str
    institutions: int = 0
    months: int = 0
    sessions: int = 0
    slots: int = 0
    service_s: float = 0.0
    bulk_s: float = 0.0
    rerun_s: float = 0.0
    rerun_result: str = ""
    feed_events: int = 0
    feed_ms: float = 0.0
    feed_http_ms: float = 0.0
    http_events: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.sessions + self.slots

    def rate(self, seconds: float) -> float:
        return self.rows / seconds if seconds else 0.0

    @property
    def ratio(self) -> float:
        return self.service_s / self.bulk_s if self.bulk_s else 0.0


def timed(work: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start


def measure_service(figures: Figures, days: int, label: str, profile: str | None) -> None:
    from receptions.schedules.services import materialise_all

    progress = Progress(f"{label} materialise_all", figures.institutions)
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    result, figures.service_s = timed(lambda: materialise_all(days=days, progress=progress))
    progress.close()
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
        note(f"cProfile of the service step written to {profile}; the top functions:")
        stats = pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime")
        stats.print_stats(25)
    figures.sessions, figures.slots = counts()
    if result.created != figures.sessions:
        figures.problems.append(
            f"materialise_all reported {result.created:,} sessions created, "
            f"the database holds {figures.sessions:,}"
        )


def measure_rerun(figures: Figures, days: int, label: str) -> None:
    from receptions.schedules.services import materialise_all

    progress = Progress(f"{label} re-run", figures.institutions)
    result, figures.rerun_s = timed(lambda: materialise_all(days=days, progress=progress))
    progress.close()
    figures.rerun_result = (
        f"created {result.created}, updated {result.updated}, withdrawn {result.withdrawn}, "
        f"conflicts {len(result.conflicts)}"
    )
    if result.created or result.updated or result.withdrawn or result.conflicts:
        figures.problems.append(f"the idempotent re-run changed something: {figures.rerun_result}")
    if counts() != (figures.sessions, figures.slots):
        figures.problems.append("the re-run changed the number of sessions or slots")


def measure_bulk(figures: Figures, label: str) -> None:
    """The same rows through the fastest plain Core statement, into emptied tables."""
    from receptions.extensions import db
    from receptions.schedules.models import ScheduledSession, Slot

    session_table, slot_table = ScheduledSession.__table__, Slot.__table__
    note(f"{label}: reading {figures.rows:,} rows into memory")
    session_rows = [
        dict(row) for row in db.session.execute(select(session_table)).mappings().all()
    ]
    slot_rows = [dict(row) for row in db.session.execute(select(slot_table)).mappings().all()]
    db.session.commit()
    checksum = (sum(r["id"] for r in session_rows), sum(r["capacity"] for r in slot_rows))

    note(f"{label}: emptying the session and slot tables")
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Fresh heap and indexes, as in an empty copy of the schema. CASCADE only reaches the
            # (empty) tables that reference sessions and slots: bookings, visits, notifications.
            conn.execute(text("TRUNCATE slot, session CASCADE"))
        else:
            conn.execute(slot_table.delete())
            conn.execute(session_table.delete())
    db.session.remove()

    progress = Progress(f"{label} bulk insert", len(session_rows) + len(slot_rows))

    def bulk() -> None:
        with db.engine.begin() as conn:
            for table, rows in ((session_table, session_rows), (slot_table, slot_rows)):
                for first in range(0, len(rows), BULK_BATCH):
                    batch = rows[first : first + BULK_BATCH]
                    conn.execute(insert(table), batch)
                    progress(len(batch))

    _, figures.bulk_s = timed(bulk)
    progress.close()
    if counts() != (figures.sessions, figures.slots):
        figures.problems.append("the bulk insert did not restore the same number of rows")
    again = (
        db.session.scalar(select(func.coalesce(func.sum(session_table.c.id), 0))),
        db.session.scalar(select(func.coalesce(func.sum(slot_table.c.capacity), 0))),
    )
    db.session.commit()
    if tuple(int(v) for v in again) != checksum:
        figures.problems.append("the bulk insert did not restore the same rows (checksum)")


def add_feed_institution(district_id: int) -> int:
    """An institution receiving on every working day until it has FEED_EVENTS sessions."""
    from receptions.database import write_transaction
    from receptions.extensions import db
    from receptions.institutions.models import Institution
    from receptions.schedules.services import (
        local_today,
        materialise_schedule,
        spec_from,
        working_calendar,
    )
    from scheduling import plan_sessions

    today = local_today(TZ)
    with write_transaction():
        place = Institution(
            district_id=district_id,
            type="polyclinic",
            name_kk="Қалалық емхана №1",
            name_ru="Городская поликлиника №1",
            name_en="City Polyclinic No. 1",
            address_ru="улица Толе би, 1",
            head_name="Ержан Бенчмарков",
            head_position_ru="Главный врач",
            active=True,
        )
        db.session.add(place)
        db.session.flush()
        schedule = schedule_values(
            place.id,
            "reception",
            today,
            rrule="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
            start_time=clock_time(9),
            end_time=clock_time(11),
            slot_minutes=15,
            capacity=1,
        )
        db.session.add(schedule)
        db.session.flush()
        horizon = today + timedelta(days=FEED_EVENTS * 2)
        calendar = working_calendar(range(today.year, horizon.year + 1))
        plans = plan_sessions(spec_from(schedule, TZ), today, horizon, calendar)
        schedule.valid_until = plans[min(FEED_EVENTS, len(plans)) - 1].date
        db.session.flush()
        materialise_schedule(
            schedule, today=today, days=(horizon - today).days, calendar=calendar
        )
    return place.id


def measure_feed(figures: Figures, app: Any, district_id: int, label: str) -> None:
    from receptions.extensions import db
    from receptions.institutions.models import Institution
    from receptions.schedules import queries
    from receptions.schedules.views import kind_labels

    note(f"{label}: feed institution with ~{FEED_EVENTS} sessions")
    institution_id = add_feed_institution(district_id)
    place = db.session.get(Institution, institution_id)
    assert place is not None
    name, tz, labels = place.name, place.district.region.timezone, kind_labels()
    db.session.remove()

    def build() -> bytes:
        return queries.feed_for(
            queries.institution_feed_sessions(institution_id),
            tz=tz,
            name=name,
            domain="bench.local",
            url_for_session=lambda s: "https://bench.local/",
            kind_labels=labels,
        )

    body = build()  # warm-up
    db.session.remove()
    figures.feed_events = body.count(b"BEGIN:VEVENT")
    runs = []
    for _ in range(FEED_RUNS):
        _, seconds = timed(build)
        runs.append(seconds)
        db.session.remove()  # every request starts with an empty identity map
    figures.feed_ms = statistics.median(runs) * 1000

    client = app.test_client()
    url = f"/institutions/{institution_id}/calendar.ics"
    warm = client.get(url)
    if warm.status_code != 200:
        figures.problems.append(f"GET {url} gave {warm.status_code}")
        return
    http = []
    for _ in range(FEED_RUNS):
        response, seconds = timed(lambda: client.get(url))
        http.append(seconds)
        if response.status_code != 200:
            figures.problems.append(f"GET {url} gave {response.status_code}")
            return
    figures.http_events = response.get_data().count(b"BEGIN:VEVENT")
    figures.feed_http_ms = statistics.median(http) * 1000
    if figures.http_events != figures.feed_events:
        figures.problems.append(
            f"the HTTP feed has {figures.http_events} events, the built one {figures.feed_events}"
        )


def run_backend(
    backend: str, url: str, institutions: int, months: int, profile: str | None
) -> Figures:
    from receptions.extensions import db

    label = "SQLite" if backend == "sqlite" else "PostgreSQL"
    figures = Figures(backend=label, institutions=institutions, months=months)
    days = int(months * 30.5)
    note(f"{label}: migrating a throwaway database")
    app = build_app(url)
    try:
        with app.app_context():
            note(f"{label}: {institutions:,} institutions, {2 * institutions:,} schedules")
            _, district_id = seed(institutions)
            measure_service(figures, days, label, profile)
            measure_rerun(figures, days, label)
            measure_bulk(figures, label)
            measure_feed(figures, app, district_id, label)
            db.session.remove()
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    return figures


# --- output ------------------------------------------------------------------------------------


def target(ms: float) -> str:
    return "met" if ms <= FEED_TARGET_MS else "MISSED"


def report(figures: Figures) -> None:
    f = figures
    print(
        f"\n== {f.backend}: {f.institutions:,} institutions x 2 schedules, {f.months} months "
        f"({int(f.months * 30.5)} days)"
    )
    print(f"   rows created              {f.rows:>10,}  ({f.sessions:,} sessions, {f.slots:,} slots)")
    print(f"   service  materialise_all  {f.service_s:>10.2f} s  {f.rate(f.service_s):>10,.0f} rows/s")
    print(f"   bulk     Core executemany {f.bulk_s:>10.2f} s  {f.rate(f.bulk_s):>10,.0f} rows/s")
    print(
        f"   ratio    service / bulk   {f.ratio:>10.1f} x  "
        f"(the service takes {f.ratio:.1f}x the time of a bare bulk insert)"
    )
    print(f"   re-run   materialise_all  {f.rerun_s:>10.2f} s  ({f.rerun_result})")
    print(
        f"   feed     {f.feed_events} events: build {f.feed_ms:.1f} ms ({target(f.feed_ms)}), "
        f"HTTP GET {f.feed_http_ms:.1f} ms ({target(f.feed_http_ms)}); "
        f"median of {FEED_RUNS}, target <= {FEED_TARGET_MS:.0f} ms"
    )
    for problem in f.problems:
        print(f"   PROBLEM  {problem}")
    sys.stdout.flush()


def summary(results: list[Figures], failures: list[str]) -> None:
    if results:
        names = [f.backend for f in results]
        lines: list[tuple[str, list[str]]] = [
            ("rows (sessions + slots)", [f"{f.rows:,}" for f in results]),
            ("service materialise_all", [f"{f.service_s:.2f} s" for f in results]),
            ("service rows/s", [f"{f.rate(f.service_s):,.0f}" for f in results]),
            ("bulk insert", [f"{f.bulk_s:.2f} s" for f in results]),
            ("bulk rows/s", [f"{f.rate(f.bulk_s):,.0f}" for f in results]),
            ("ratio service / bulk", [f"{f.ratio:.1f} x" for f in results]),
            ("idempotent re-run", [f"{f.rerun_s:.2f} s" for f in results]),
            ("feed events", [str(f.feed_events) for f in results]),
            (
                f"feed build (<= {FEED_TARGET_MS:.0f} ms)",
                [f"{f.feed_ms:.1f} ms {target(f.feed_ms)}" for f in results],
            ),
            (
                f"feed HTTP GET (<= {FEED_TARGET_MS:.0f} ms)",
                [f"{f.feed_http_ms:.1f} ms {target(f.feed_http_ms)}" for f in results],
            ),
            ("problems", [str(len(f.problems)) for f in results]),
        ]
        width = max(len(label) for label, _ in lines)
        cols = [max(len(n), *(len(v[i]) for _, v in lines)) for i, n in enumerate(names)]
        print("\n== Summary")
        print("   " + " " * width + "  " + "  ".join(n.rjust(c) for n, c in zip(names, cols, strict=True)))
        for label, values in lines:
            cells = "  ".join(v.rjust(c) for v, c in zip(values, cols, strict=True))
            print(f"   {label.ljust(width)}  {cells}")
    for failure in failures:
        print(f"\n== FAILED {failure}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--institutions", type=int, default=1000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="100 institutions, 3 months")
    parser.add_argument(
        "--postgres-url",
        default=POSTGRES_ADMIN_URL,
        help="an admin URL of the server (default: $TEST_POSTGRES_URL or the local postgres)",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="run the service step under cProfile and write the stats to FILE.<backend>",
    )
    args = parser.parse_args()
    if args.quick:
        args.institutions, args.months = 100, 3
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]

    results: list[Figures] = []
    failures: list[str] = []
    started = time.perf_counter()
    for backend in backends:
        profile = f"{args.profile}.{backend}" if args.profile else None
        try:
            database = (
                sqlite_database()
                if backend == "sqlite"
                else postgresql_database(args.postgres_url)
            )
            with database as url:
                figures = run_backend(backend, url, args.institutions, args.months, profile)
        except Exception as error:
            traceback.print_exc()
            failures.append(f"{backend}: {type(error).__name__}: {error}")
            continue
        report(figures)
        results.append(figures)
    summary(results, failures)
    print(f"\n   total wall time {time.perf_counter() - started:.0f} s")
    return 1 if failures or any(f.problems for f in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
