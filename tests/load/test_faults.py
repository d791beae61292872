"""Short runs of the load and fault scenarios: the invariants hold, whatever the timings."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks import faults


def run(scenario: str, settings: Any) -> faults.Report:
    """The scenario in a thread of its own: its asyncio clients need a thread with no event loop
    running, and Playwright's sync API leaves one in the main thread after the browser tests."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(faults.run, scenario, settings).result()


def assert_invariants_hold(report: faults.Report) -> None:
    assert not report.problems, str(report)


def test_two_instances_sharing_postgresql_never_overbook_or_lose_a_booking(postgres_server):
    report = run(
        "multi-instance", faults.MultiInstance(workers=2, clients=16, seats=40, cap=30)
    )
    assert_invariants_hold(report)


def test_killed_workers_lose_no_acknowledged_booking_and_duplicate_none(postgres_server):
    report = run(
        "worker-kill",
        faults.WorkerKill(workers=2, clients=8, seats=40, seconds=5, kill_every=2),
    )
    assert_invariants_hold(report)


def test_database_restart_gives_friendly_503s_then_recovers_without_losing_bookings(
    private_postgresql,
):
    report = run(
        "db-restart",
        faults.DbRestart(workers=2, clients=6, seats=40, before=1.5, outage=1.5, after=4),
    )
    assert_invariants_hold(report)


def test_32_sqlite_writers_in_4_processes_never_see_database_is_locked():
    report = run("sqlite-writers", faults.SqliteWriters(seats=40, seconds=4))
    assert_invariants_hold(report)
