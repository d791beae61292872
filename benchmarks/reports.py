"""Reporting benchmark: a generated national dataset, the monthly roll-up timed on PostgreSQL and
SQLite, its ratio to the bare GROUP BY, CSV/XLSX export time and peak memory.

    .venv/bin/python benchmarks/reports.py                 # 1,000 institutions, 12 months
    .venv/bin/python benchmarks/reports.py --institutions 20000   # the national size (slow)

Prints figures and ratios; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import io
import random
import resource
import secrets
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select

ZONE = ZoneInfo("Asia/Almaty")


def build_app(url: str):  # type: ignore[no-untyped-def]
    from flask_migrate import upgrade

    from receptions import create_app

    app = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": url,
                      "RATELIMIT_STORAGE_URI": "process://"})
    with app.app_context():
        upgrade()
    return app


def generate(institutions: int, months: int, seed: int = 1) -> dict[str, int]:
    """Bulk-insert regions, districts, institutions, sessions, slots, bookings, visits, questions
    and feedback; returns the counts and the last generated month."""
    from receptions.booking.models import Booking, Feedback, Topic
    from receptions.extensions import db
    from receptions.geography.models import District, Region
    from receptions.institutions.models import Institution
    from receptions.schedules.models import Schedule, ScheduledSession, Slot
    from receptions.visits.models import Question, Visit

    rng = random.Random(seed)
    # The form's one-time key is stored as a keyed hash since migration 0007; either name works.
    key_column = "idempotency_hash" if "idempotency_hash" in Booking.__table__.c else "idempotency_key"
    conn = db.session.connection()
    regions = [{"id": r + 1, "code": f"KZ-B{r}", "short": f"B{r:02d}", "kind": "region",
                "name_kk": f"Облыс {r}", "name_ru": f"Область {r}", "name_en": f"Region {r}",
                "timezone": "Asia/Almaty"} for r in range(20)]
    conn.execute(insert(Region), regions)
    districts = [{"id": d + 1, "region_id": d % 20 + 1, "slug": f"d{d}", "name_kk": f"Аудан {d}",
                  "name_ru": f"Район {d}", "name_en": f"District {d}"} for d in range(200)]
    conn.execute(insert(District), districts)
    types = ["school", "kindergarten", "college", "polyclinic", "hospital", "social_centre", "other"]
    rows = [{"id": i + 1, "district_id": i % 200 + 1, "type": types[i % 7], "name_kk": f"Ұйым {i}",
             "name_ru": f"Организация {i}", "name_en": f"Institution {i}", "search_text": "",
             "active": True} for i in range(institutions)]
    for chunk in range(0, len(rows), 5000):
        conn.execute(insert(Institution), rows[chunk:chunk + 5000])
    conn.execute(insert(Topic), [{"id": t + 1, "slug": f"t{t}", "name_kk": f"Т{t}",
                                  "name_ru": f"Т{t}", "name_en": f"T{t}"} for t in range(9)])
    from datetime import time as clock

    conn.execute(insert(Schedule), [{
        "id": i + 1, "institution_id": i + 1, "kind": "open_door", "rrule": "FREQ=MONTHLY;BYDAY=-1FR",
        "start_time": clock(10), "end_time": clock(13), "slot_minutes": 30, "capacity": 5,
        "walk_in_places": 10, "breaks": [], "exclusions": [], "valid_from": date(2025, 1, 1),
    } for i in range(institutions)])
    counts = {"sessions": 0, "visits": 0, "questions": 0, "bookings": 0, "feedback": 0}
    session_id = visit_id = question_id = booking_id = 0
    last_month = ""
    first = datetime(2025, 12, 1, tzinfo=ZONE)
    for month in range(months):
        start = (first + timedelta(days=31 * month)).replace(day=25, hour=10)
        last_month = start.strftime("%Y-%m")
        sessions, visits, questions, slots, bookings, feedback = [], [], [], [], [], []
        for i in range(institutions):
            session_id += 1
            held = rng.random() > 0.1
            sessions.append({"id": session_id, "schedule_id": i + 1, "institution_id": i + 1,
                             "kind": "open_door", "local_date": start.date(),
                             "starts_at": start.astimezone(UTC),
                             "ends_at": (start + timedelta(hours=3)).astimezone(UTC),
                             "status": "held" if held else "cancelled", "walk_in_places": 10,
                             "sequence": 0, "closeout_reminders": 0})
            slots.append({"id": session_id, "session_id": session_id, "capacity": 20, "booked": 0,
                          "starts_at": start.astimezone(UTC),
                          "ends_at": (start + timedelta(hours=3)).astimezone(UTC)})
            for n in range(rng.randrange(8, 18) if held else 0):
                visit_id += 1
                booked = None
                if n < 5:  # the first few came with a booking, one in ten of those did not come
                    booking_id += 1
                    status = "no_show" if rng.random() < 0.1 else "attended"
                    bookings.append({"id": booking_id, "slot_id": session_id, "session_id": session_id,
                                     "schedule_id": i + 1, "institution_id": i + 1,
                                     "reference": f"B{booking_id}", "manage_token_hash": f"m{booking_id}",
                                     key_column: f"k{booking_id}", "citizen_name": "—",
                                     "iin_hash": f"h{booking_id}", "iin_last4": "0000", "phone": "",
                                     "topic_id": rng.randrange(9) + 1, "question": "", "status": status,
                                     "consent_at": start.astimezone(UTC), "consent_version": "1",
                                     "month": last_month})
                    if status == "no_show":
                        continue
                    booked = booking_id
                    if rng.random() < 0.6:
                        feedback.append({"id": booking_id, "booking_id": booking_id,
                                         "rating": rng.choices([1, 2, 3, 4, 5], [1, 1, 2, 4, 5])[0],
                                         "really_resolved": rng.choice([True, False, None])})
                visits.append({"id": visit_id, "session_id": session_id, "institution_id": i + 1,
                               "booking_id": booked, "citizen_name": "—", "iin_last4": "", "phone": "",
                               "received_by": "head", "received_by_name": "",
                               "at": start.astimezone(UTC)})
                question_id += 1
                outcome = rng.choices(["resolved", "explained", "pending"], [2, 5, 1.5])[0]
                questions.append({"id": question_id, "visit_id": visit_id, "institution_id": i + 1,
                                  "topic_id": rng.randrange(9) + 1, "summary": "", "outcome": outcome,
                                  "responsible": "R" if outcome == "pending" else "",
                                  "due_date": start.date() + timedelta(days=15)
                                  if outcome == "pending" else None, "version": 1})
        for table, batch in ((ScheduledSession, sessions), (Slot, slots), (Booking, bookings),
                             (Visit, visits), (Question, questions), (Feedback, feedback)):
            for chunk in range(0, len(batch), 10000):
                conn.execute(insert(table), batch[chunk:chunk + 10000])
        counts["sessions"] += len(sessions)
        counts["visits"] += len(visits)
        counts["questions"] += len(questions)
        counts["bookings"] += len(bookings)
        counts["feedback"] += len(feedback)
        print(f"  month {month + 1}/{months}: {counts['questions']:,} questions", file=sys.stderr)
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        # Committed: an ANALYZE inside a transaction that is rolled back leaves no statistics, and
        # the planner then guessed 300 sessions for a month of 20,000 (autovacuum had not run yet).
        with db.engine.connect() as analyze:
            analyze.exec_driver_sql("ANALYZE")
            analyze.commit()
    return counts, last_month


def timed(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def statement_timings(fn) -> list[tuple[float, str]]:  # type: ignore[no-untyped-def]
    """Run `fn` once and return each SQL statement it sent with its time to the last row read."""
    from sqlalchemy import event

    from receptions.extensions import db

    timings: list[tuple[float, str]] = []
    started: list[float] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        started.append(time.perf_counter())
        timings.append((0.0, " ".join(statement.split())[:90]))

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        fn()
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
    ends = [*started[1:], time.perf_counter()]
    return [(end - start, text) for (_, text), start, end in zip(timings, started, ends, strict=True)]


def measure(url: str, label: str, institutions: int, months: int, scope_level: str,
            queries: bool = False) -> dict[str, float]:
    from receptions.extensions import db
    from receptions.geography.models import District
    from receptions.institutions.models import Institution
    from receptions.reports import downloads, services
    from receptions.reports.scope import Period, Scope
    from receptions.visits.models import Question, Visit

    app = build_app(url)
    figures: dict[str, float] = {}
    with app.app_context():
        start = time.perf_counter()
        counts, month = generate(institutions, months)
        figures["generate_s"] = time.perf_counter() - start
        scope = Scope("nation") if scope_level == "nation" else Scope("region", 1)
        figures["rollup_s"] = timed(lambda: services.rollup(scope, month, grouping="region"
                                                            if scope_level == "nation" else "district"))
        month_start = datetime(int(month[:4]), int(month[5:]), 1, tzinfo=ZONE)
        bare = (select(District.region_id, Question.outcome, func.count())
                .select_from(Question).join(Visit, Visit.id == Question.visit_id)
                .join(Institution, Institution.id == Question.institution_id)
                .join(District, District.id == Institution.district_id)
                .where(Visit.at >= month_start, Visit.at < month_start + timedelta(days=30))
                .group_by(District.region_id, Question.outcome))
        if scope_level != "nation":
            bare = bare.where(District.region_id == 1)
        figures["bare_group_by_s"] = timed(lambda: db.session.execute(bare).all())
        if queries:
            per_statement = statement_timings(lambda: services.rollup(
                scope, month, grouping="region" if scope_level == "nation" else "district"))
        rollup = services.rollup(scope, month, grouping="institution")
        spec = downloads.ExportSpec(scope, Period(month), "institution", "csv")
        with app.test_request_context():
            figures["csv_s"] = timed(lambda: "".join(downloads.iter_csv(spec)), 1)
            figures["xlsx_s"] = timed(lambda: downloads.write_export(
                downloads.ExportSpec(scope, Period(month), "institution", "xlsx"), io.BytesIO()), 1)
        figures["rows_in_month"] = len(rollup.rows)
        figures.update({k: float(v) for k, v in counts.items()})
        db.session.remove()
        db.engine.dispose()
    print(f"\n== {label}: {institutions:,} institutions, {months} months, "
          f"{counts['questions']:,} questions (generated in {figures['generate_s']:.0f} s); "
          f"measured month {month}")
    print(f"   monthly roll-up ({scope_level}):     {figures['rollup_s'] * 1000:8.0f} ms")
    print(f"   bare GROUP BY of the outcomes:     {figures['bare_group_by_s'] * 1000:8.0f} ms")
    print(f"   ratio service / bare GROUP BY:     {figures['rollup_s'] / figures['bare_group_by_s']:8.1f} x"
          "   (~25 figures for the month and the one before in one statement, and the top topics)")
    print(f"   CSV export, {int(figures['rows_in_month']):,} institution rows: {figures['csv_s'] * 1000:6.0f} ms")
    print(f"   XLSX export, same rows:            {figures['xlsx_s'] * 1000:8.0f} ms")
    if queries:
        print("   statements of one roll-up (time until the next one starts):")
        for seconds, text in per_statement:
            print(f"     {seconds * 1000:8.1f} ms  {text}")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--institutions", type=int, default=1000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--queries", action="store_true",
                        help="also print each SQL statement of one roll-up with its time")
    args = parser.parse_args()
    if args.backend in ("postgresql", "both"):
        import psycopg

        name = f"ashyq_bench_reports_{secrets.token_hex(4)}"
        with psycopg.connect("postgresql://postgres@127.0.0.1/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            pg = measure(f"postgresql+psycopg://postgres@127.0.0.1/{name}", "PostgreSQL",
                         args.institutions, args.months, "nation", args.queries)
            print(f"   target national roll-up <= 5 s: {'met' if pg['rollup_s'] <= 5 else 'NOT met'}")
        finally:
            with psycopg.connect("postgresql://postgres@127.0.0.1/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            lite = measure(f"sqlite:///{tmp}/bench.sqlite3", "SQLite", args.institutions,
                           args.months, "region", args.queries)
            print(f"   target regional roll-up <= 1 s: {'met' if lite['rollup_s'] <= 1 else 'NOT met'}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory of this process: {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
