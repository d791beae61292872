"""Booking rush: many citizens race for the seats of one institution through a real gunicorn.

    .venv/bin/python benchmarks/booking_rush.py [--backend sqlite|postgresql|both]
        [--clients 128] [--seats 500] [--workers 4] [--cap 60] [--quick]

For each backend it creates a throwaway database (a temporary SQLite file in WAL mode, or a
uniquely named PostgreSQL database that is dropped at the end even on failure), migrates it,
creates one institution with a topic and sessions totalling `--seats` seats (slots of capacity
2), starts `gunicorn -c gunicorn.conf.py -w <workers> -b 127.0.0.1:<free port> wsgi:app` with
production settings and warms every worker up, as a server that has been up a while is: forms
of the rush's slots, then bookings, a repeated form and 409s at another institution (counted in
no figure; the overbooking check covers its slots too). Then N asyncio clients book until every
slot answers 409 (or the time cap, --cap seconds). Each client is a citizen with a distinct
valid IIN: it opens `/book/<slot>` (CSRF token and idempotency key from the form) and posts the
booking; after a 303 the next citizen takes over.
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
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import (
    HOST,
    Database,
    Server,
    booking_load,
    check_invariants,
    create_database,
    database_backends_cpu,
    database_cpu_since,
    discard_database,
    healthz_load,
    percentile,
    run_clients,
    seed,
    start_gunicorn,
    verdict,
    warm_up,
    warm_up_submissions,
)

BOOKING_TIME_CAP_S = 60.0
HEALTHZ_SECONDS = 5.0

TARGET_BOOKINGS_PER_S = 200.0
TARGET_P99_MS = 750.0


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
        seeded = seed(database, args.seats, warm_up_slots=4 * args.workers)
        print(
            f"database ready in {time.monotonic() - t0:.1f} s: {len(seeded['slot_ids'])} slots",
            flush=True,
        )
        server = start_gunicorn(database, args.workers)
        print(f"gunicorn up on {HOST}:{server.port} (log {server.log_path})", flush=True)

        run_clients(warm_up(server.port, seeded["slot_ids"], args.workers))
        warmed = run_clients(
            warm_up_submissions(
                server.port, seeded["warm_up_slot_ids"], seeded["topic_id"], args.workers
            )
        )
        print(f"warm-up (another institution): {dict(sorted(warmed.items()))}", flush=True)
        load_before = os.getloadavg()[0]
        workers_cpu_before = server.workers_cpu_seconds()
        database_cpu_before = database_backends_cpu(database)  # the warm-up's is not the rush's
        rush = run_clients(
            booking_load(
                [server.port], seeded["slot_ids"], seeded["topic_id"], args.clients, args.cap
            )
        )
        load_after = os.getloadavg()[0]
        workers_cpu = server.workers_cpu_seconds() - workers_cpu_before
        database_cpu = database_cpu_since(database, database_cpu_before)
        health = run_clients(healthz_load(server.port, args.clients, HEALTHZ_SECONDS))
        exit_code = server.stop()
        check = check_invariants(database, seeded["slot_ids"])

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
            requests = sum(rush.get_status.values()) + sum(rush.post_status.values())
            print(
                f"  server CPU/request   {per_booking * rush.accepted / requests:8.2f} ms"
                f"   ({requests / rush.accepted:.2f} requests per booking: the mix of forms,"
                " submissions and 409s varies from run to run)"
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
        discard_database(database, tmpdir)
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
