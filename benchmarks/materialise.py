"""Materialisation benchmark: 12 months of sessions and slots for 1,000 institutions through the
real service, against a bare bulk insert of the same rows; and the time to build a 100-event
institution feed (target <= 100 ms).

    .venv/bin/python benchmarks/materialise.py [--institutions 1000] [--months 12]
        [--backend sqlite|postgresql|both] [--quick]

Prints figures and ratios; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from datetime import date
from datetime import time as clock
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import delete, func, insert, select


def build_app(url: str):  # type: ignore[no-untyped-def]
    from flask_migrate import upgrade

    from receptions import create_app

    app = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": url,
                      "RATELIMIT_STORAGE_URI": "memory://"})
    with app.app_context():
        upgrade()
    return app


def seed(institutions: int) -> None:
    """Regions, districts, institutions and two schedules each (weekly reception, monthly open door)."""
    from receptions.extensions import db
    from receptions.geography.models import District, Region
    from receptions.institutions.models import Institution
    from receptions.schedules.models import Schedule

    conn = db.session.connection()
    conn.execute(insert(Region), [{"id": 1, "code": "KZ-BM", "short": "BMK", "kind": "region",
                                   "name_kk": "Облыс", "name_ru": "Область", "name_en": "Region",
                                   "timezone": "Asia/Almaty"}])
    conn.execute(insert(District), [{"id": d + 1, "region_id": 1, "slug": f"d{d}",
                                     "name_kk": f"А{d}", "name_ru": f"Р{d}", "name_en": f"D{d}"}
                                    for d in range(20)])
    conn.execute(insert(Institution), [{"id": i + 1, "district_id": i % 20 + 1, "type": "school",
                                        "name_kk": f"Мектеп {i}", "name_ru": f"Школа {i}",
                                        "name_en": f"School {i}", "search_text": "",
                                        "active": True} for i in range(institutions)])
    start = date.today().replace(day=1)
    common = {"walk_in_places": 0, "breaks": [], "exclusions": [], "valid_from": start,
              "day_off_policy": "skip", "status": "active", "version": 1}
    rows = []
    for i in range(institutions):
        rows.append({**common, "institution_id": i + 1, "kind": "reception",
                     "rrule": "FREQ=WEEKLY;BYDAY=TU", "start_time": clock(15),
                     "end_time": clock(18), "slot_minutes": 15, "capacity": 1})
        rows.append({**common, "institution_id": i + 1, "kind": "open_door",
                     "rrule": "FREQ=MONTHLY;BYDAY=-1FR", "start_time": clock(10),
                     "end_time": clock(13), "slot_minutes": 30, "capacity": 5, "walk_in_places": 10})
    # One institution also receives on Mondays, so that its feed holds about 100 events a year.
    rows.append({**common, "institution_id": 1, "kind": "reception",
                 "rrule": "FREQ=WEEKLY;BYDAY=MO", "start_time": clock(9), "end_time": clock(10),
                 "slot_minutes": 15, "capacity": 1})
    conn.execute(insert(Schedule), rows)
    db.session.commit()


def counts() -> tuple[int, int]:
    from receptions.extensions import db
    from receptions.schedules.models import ScheduledSession, Slot

    return (db.session.scalar(select(func.count()).select_from(ScheduledSession)) or 0,
            db.session.scalar(select(func.count()).select_from(Slot)) or 0)


def measure(url: str, label: str, institutions: int, months: int) -> dict[str, float]:
    from receptions.extensions import db
    from receptions.schedules import queries
    from receptions.schedules.models import ScheduledSession, Slot
    from receptions.schedules.services import materialise_all

    days = int(months * 30.5)
    app = build_app(url)
    figures: dict[str, float] = {}
    with app.app_context():
        seed(institutions)
        start = time.perf_counter()
        materialise_all(days=days)
        figures["service_s"] = time.perf_counter() - start
        sessions, slots = counts()
        figures["rows"] = sessions + slots

        start = time.perf_counter()
        again = materialise_all(days=days)
        figures["rerun_s"] = time.perf_counter() - start
        assert again.created == 0, "materialising twice created rows"

        # The same rows, inserted with the fastest plain Core statement.
        session_rows = [dict(row._mapping) for row in db.session.execute(
            select(ScheduledSession.__table__))]
        slot_rows = [dict(row._mapping) for row in db.session.execute(select(Slot.__table__))]
        db.session.execute(delete(Slot))
        db.session.execute(delete(ScheduledSession))
        db.session.commit()
        start = time.perf_counter()
        conn = db.session.connection()
        for table, rows in ((ScheduledSession.__table__, session_rows), (Slot.__table__, slot_rows)):
            for chunk in range(0, len(rows), 20_000):
                conn.execute(insert(table), rows[chunk:chunk + 20_000])
        db.session.commit()
        figures["bulk_s"] = time.perf_counter() - start
        assert counts() == (sessions, slots)

        institution_id = 1  # the one with the extra Monday schedule
        events = len(queries.institution_feed_sessions(institution_id))
        with app.test_request_context():
            def build() -> bytes:
                return queries.feed_for(
                    queries.institution_feed_sessions(institution_id), tz="Asia/Almaty",
                    name="bench", domain="bench.local", url_for_session=lambda s: "https://bench.local/",
                    kind_labels={"open_door": "Open door", "reception": "Reception"})
            build()
            runs = []
            for _ in range(20):
                start = time.perf_counter()
                build()
                runs.append(time.perf_counter() - start)
        client = app.test_client()
        client.get(f"/institutions/{institution_id}/calendar.ics")
        http = []
        for _ in range(20):
            start = time.perf_counter()
            response = client.get(f"/institutions/{institution_id}/calendar.ics")
            http.append(time.perf_counter() - start)
            assert response.status_code == 200
        figures["feed_events"] = events
        figures["feed_ms"] = statistics.median(runs) * 1000
        figures["feed_http_ms"] = statistics.median(http) * 1000
        db.session.remove()
        db.engine.dispose()

    rows = figures["rows"]
    print(f"\n== {label}: {institutions:,} institutions x 2 schedules, {months} months "
          f"= {int(rows):,} rows ({sessions:,} sessions, {slots:,} slots)")
    print(f"   service (materialise_all): {figures['service_s']:7.1f} s  {rows / figures['service_s']:9,.0f} rows/s")
    print(f"   bare bulk insert:          {figures['bulk_s']:7.1f} s  {rows / figures['bulk_s']:9,.0f} rows/s")
    print(f"   ratio service / bulk:      {figures['service_s'] / figures['bulk_s']:7.1f} x")
    print(f"   idempotent re-run:         {figures['rerun_s']:7.1f} s  (0 rows created)")
    print(f"   feed of {int(figures['feed_events'])} events: build {figures['feed_ms']:.1f} ms, "
          f"HTTP {figures['feed_http_ms']:.1f} ms (median of 20; target <= 100 ms)")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--institutions", type=int, default=1000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="100 institutions, 3 months")
    args = parser.parse_args()
    if args.quick:
        args.institutions, args.months = 100, 3
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            measure(f"sqlite:///{tmp}/bench.sqlite3", "SQLite", args.institutions, args.months)
    if args.backend in ("postgresql", "both"):
        import psycopg

        admin = "postgresql://postgres@127.0.0.1/postgres"
        name = f"ashyq_bench_materialise_{secrets.token_hex(4)}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            measure(f"postgresql+psycopg://postgres@127.0.0.1/{name}", "PostgreSQL",
                    args.institutions, args.months)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
