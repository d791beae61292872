"""Load and faults: several instances, killed workers, a database restart, SQLite writers, a soak.

    .venv/bin/python benchmarks/faults.py SCENARIO [--quick] [--<setting> VALUE ...]

    multi-instance  two `gunicorn -w 4` instances on different loopback ports share one
                    PostgreSQL database; a booking rush goes round-robin to both (a form drawn by
                    one instance is posted to the other)
    worker-kill     a 60 s booking load (each booking cancelled again, so seats come back) while a
                    random gunicorn worker gets SIGKILL every few seconds; a citizen whose request
                    died resubmits the same form, so the same idempotency key; one in ten
                    acknowledged forms is also sent again, as after a lost answer
    db-restart      a PRIVATE PostgreSQL cluster (initdb into a temporary directory, free loopback
                    port; never the machine's shared server) is stopped with `pg_ctl -m fast` in
                    the middle of a load and started again; requests during the outage must get
                    503 with Retry-After and the friendly page; the recovery time is the first
                    successful request after the database is back (target <= 5 s)
    sqlite-writers  32 concurrent writers in 4 processes (`gunicorn -w 4 --threads 8` and 32
                    clients booking and cancelling) on one SQLite file: no "database is locked"
    soak            `--minutes N` of steady booking and cancelling: p99 latency drift between the
                    first and the last window (target <= 20 %), worker RSS from /proc (targets
                    <= 150 MB per worker, <= 10 % growth after the first window)
    all             every scenario in turn (also when no scenario is named)

Every scenario checks the database afterwards: no slot holds more bookings than seats and every
counter equals its active bookings, every acknowledged booking (a 303 to a manage link) is stored
under its form's key with that link and the status the load left it in, no citizen holds two
bookings, and no answer was a 5xx other than a friendly 503 or carried a traceback. The exit
status is 1 when such an invariant breaks; timing targets are only printed. `--quick` shrinks a
scenario to a few seconds; `tests/load/` runs such short versions and asserts the same invariants.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import random
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import (
    HOST,
    POSTGRES_ADMIN_URL,
    Database,
    PrivateCluster,
    Server,
    Stats,
    TransportError,
    booking_load,
    check_acknowledged,
    check_invariants,
    create_database,
    discard_database,
    http,
    percentile,
    run_clients,
    seed,
    start_gunicorn,
    unfriendly,
    verdict,
    warm_up,
)

TARGET_RECOVERY_S = 5.0
TARGET_P99_DRIFT = 0.20
TARGET_RSS_MB = 150.0
TARGET_RSS_GROWTH = 0.10
MB = 1024 * 1024


# --- what a scenario reports ---------------------------------------------------------------------


@dataclass
class Report:
    """Figures printed as they come, and the invariants that broke (empty: all held)."""

    scenario: str
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def show(self, label: str, value: Any, note: str = "") -> None:
        line = f"  {label:<28} {value}{'   ' + note if note else ''}"
        self.lines.append(line)
        print(line, flush=True)

    def require(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)

    def __str__(self) -> str:
        return "\n".join([f"{self.scenario}: {self.problems or 'invariants hold'}", *self.lines])


@dataclass
class Deployment:
    """A throwaway database and the gunicorn instances serving it."""

    database: Database
    seeded: dict[str, Any]
    servers: list[Server] = field(default_factory=list)

    def start(self, workers: int, *extra_args: str) -> Server:
        server = start_gunicorn(
            self.database, workers, name=f"gunicorn-{len(self.servers) + 1}", extra_args=extra_args
        )
        self.servers.append(server)
        print(f"gunicorn up on {HOST}:{server.port} (log {server.log_path})", flush=True)
        run_clients(warm_up(server.port, self.seeded["slot_ids"], workers))
        return server

    def load(self, clients: int, seconds: float, **options: Any) -> Stats:
        return run_clients(self.load_async(clients, seconds, **options))

    def load_async(self, clients: int, seconds: float, **options: Any) -> Any:
        return booking_load(
            [server.port for server in self.servers],
            self.seeded["slot_ids"],
            self.seeded["topic_id"],
            clients,
            seconds,
            **options,
        )


@contextlib.contextmanager
def deployment(
    report: Report, backend: str, seats: int, *, admin_url: str = POSTGRES_ADMIN_URL
) -> Iterator[Deployment]:
    """Create, migrate and seed a database; afterwards stop every server and drop the database,
    even on failure (then with the tails of the servers' logs)."""
    tmpdir = Path(tempfile.mkdtemp(prefix=f"ashyq-faults-{report.scenario}-"))
    database: Database | None = None
    found: Deployment | None = None
    failed = False
    try:
        database = create_database(
            backend, tmpdir, admin_url=admin_url, label=f"faults_{secrets.token_hex(3)}"
        )
        found = Deployment(database, seed(database, seats))
        yield found
    except BaseException:
        failed = True
        raise
    finally:
        for server in found.servers if found else []:
            server.stop()
        if (failed or report.problems) and found:
            for server in found.servers:
                print(f"--- tail of {server.log_path} ---\n{server.tail(30)}\n---")
        discard_database(database, tmpdir)


@contextlib.contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    cluster = PrivateCluster()
    try:
        cluster.init()
        cluster.start()
        print(f"private PostgreSQL on {HOST}:{cluster.port} ({cluster.dir})", flush=True)
        yield cluster
    finally:
        cluster.remove()


def check_load(
    report: Report,
    deployed: Deployment,
    stats: Stats,
    *,
    outage: bool = False,
    killed: bool = False,
) -> None:
    """Print the load's answers, what is stored and the servers' tracebacks, and require the
    invariants that every scenario shares. Only a scenario with an outage may answer 503, only
    one that kills workers may see connections break."""
    check = check_invariants(deployed.database)
    acks = check_acknowledged(deployed.database, stats.acknowledged, stats.cancelled)
    per_second = stats.accepted / stats.elapsed if stats.elapsed else 0.0
    report.show(
        "load",
        f"{stats.elapsed:.1f} s, {stats.accepted} bookings ({per_second:.1f}/s),"
        f" {len(stats.cancelled)} cancelled again",
    )
    report.show(
        "POST p50 / p99",
        f"{percentile(stats.post_latencies, 0.5) * 1000:.0f} /"
        f" {percentile(stats.post_latencies, 0.99) * 1000:.0f} ms",
    )
    report.show("POST statuses", dict(sorted(stats.post_status.items())))
    report.show("GET statuses", dict(sorted(stats.get_status.items())))
    if stats.cancel_status:
        report.show("cancel statuses", dict(sorted(stats.cancel_status.items())))
    if stats.transport_errors:
        report.show("transport errors", dict(stats.transport_errors.most_common(3)))
    report.show("overbooked slots", check["overbooked"], "target 0")
    report.show(
        "acknowledged bookings",
        f"{acks['acknowledged']} ({acks['retried']} after a resubmission, {acks['repeats']} of"
        " them answered with the booking an unanswered attempt had made)",
    )
    if stats.resubmitted:
        report.show(
            "acknowledged forms resent",
            f"{stats.resubmitted}, {stats.resubmit_mismatch} not answered with the same link",
            "target 0",
        )
    report.show("acknowledged but lost", acks["lost"], "target 0")
    report.show("status not as left", acks["wrong_status"], "target 0")
    report.show("citizens with 2+ bookings", check["duplicates"], "target 0")
    report.show(
        "stored, not acknowledged",
        acks["unacknowledged"],
        f"(submissions given up without an answer: {stats.abandoned})",
    )
    errors = {s: n for s, n in stats.statuses().items() if s >= 500}
    report.show("5xx answers", errors or 0, "only 503, and only during an outage")
    report.show("unfriendly answers", dict(stats.unfriendly) or 0, "target 0")

    report.require(not check["overbooked"], f"{check['overbooked']} overbooked slots")
    report.require(not acks["lost"], f"{acks['lost']} acknowledged bookings lost")
    report.require(not acks["wrong_status"], f"{acks['wrong_status']} bookings not as left")
    report.require(acks["distinct"] == acks["acknowledged"], "one form acknowledged twice")
    report.require(not check["duplicates"], f"{check['duplicates']} citizens hold 2+ bookings")
    report.require(
        not stats.resubmit_mismatch, f"{stats.resubmit_mismatch} resent forms answered otherwise"
    )
    report.require(not stats.abandoned, f"{stats.abandoned} submissions never answered")
    report.require(
        acks["unacknowledged"] <= stats.abandoned,
        f"{acks['unacknowledged']} stored bookings nobody was told about",
    )
    report.require(not {s for s in errors if s != 503 or not outage}, f"server errors {errors}")
    report.require(not stats.unfriendly, f"unfriendly answers {dict(stats.unfriendly)}")
    report.require(not stats.limit_conflicts, f"{stats.limit_conflicts} per-citizen 409s")
    report.require(stats.accepted > 0, "no booking was accepted")
    report.require(
        killed or not stats.transport_errors, f"transport errors {dict(stats.transport_errors)}"
    )
    log_tracebacks(report, deployed.servers)


def log_tracebacks(report: Report, servers: list[Server]) -> list[str]:
    """Tracebacks in the servers' logs are shown (they never reach a citizen: answers are
    checked by `unfriendly`), the first few with what was logged and the exception."""
    found = [text for server in servers for text in server.tracebacks()]
    report.show("tracebacks in server logs", len(found))
    for text in found[:3]:
        report.show("", text[:300])
    return found


# --- scenarios -----------------------------------------------------------------------------------


@dataclass
class MultiInstance:
    """Two instances (or more) on one PostgreSQL database, one booking rush across them."""

    instances: int = 2
    workers: int = 4
    clients: int = 64
    seats: int = 400
    cap: float = 60.0
    QUICK: ClassVar[dict[str, Any]] = {"workers": 2, "clients": 24, "seats": 60, "cap": 30.0}


def multi_instance(settings: MultiInstance, report: Report) -> None:
    with deployment(report, "postgresql", settings.seats) as deployed:
        for _ in range(settings.instances):
            deployed.start(settings.workers)
        stats = deployed.load(settings.clients, settings.cap)
        for number, server in enumerate(deployed.servers, 1):
            report.show(
                f"instance {number} POST /book", dict(server.access_statuses("POST /book/"))
            )
        check_load(report, deployed, stats)
        report.require(
            all(server.access_statuses("POST /book/")[303] for server in deployed.servers),
            "an instance accepted no booking",
        )


@dataclass
class WorkerKill:
    """SIGKILL a random worker every few seconds during a booking load."""

    backend: str = "postgresql"
    workers: int = 4
    clients: int = 32
    seats: int = 200
    seconds: float = 60.0
    kill_every: float = 3.0
    QUICK: ClassVar[dict[str, Any]] = {"workers": 2, "clients": 12, "seats": 60, "seconds": 8.0}


def worker_kill(settings: WorkerKill, report: Report) -> None:
    with deployment(report, settings.backend, settings.seats) as deployed:
        server = deployed.start(settings.workers)
        kills: list[int] = []

        async def killer() -> None:
            rng = random.Random(7)
            deadline = time.monotonic() + settings.seconds - settings.kill_every / 2
            while True:
                await asyncio.sleep(settings.kill_every)
                if time.monotonic() > deadline:
                    return
                workers = server.workers()
                if workers:
                    victim = rng.choice(workers)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(victim, signal.SIGKILL)
                        kills.append(victim)

        async def together() -> Stats:
            stats, _ = await asyncio.gather(
                deployed.load_async(
                    settings.clients, settings.seconds, retry=True, churn=True, resubmit=0.1
                ),
                killer(),
            )
            return stats

        stats = run_clients(together())
        report.show("workers killed", len(kills), f"(every {settings.kill_every:g} s)")
        time.sleep(1)  # the last respawn
        alive = len(server.workers())
        report.show("workers afterwards", alive, f"of {settings.workers}")
        check_load(report, deployed, stats, killed=True)
        report.require(bool(kills), "no worker was killed")
        report.require(alive == settings.workers, f"{alive} of {settings.workers} workers running")


@dataclass
class DbRestart:
    """Stop a private PostgreSQL cluster in the middle of a load and start it again."""

    workers: int = 4
    clients: int = 16
    seats: int = 200
    before: float = 5.0  # seconds of load before the database goes away
    outage: float = 5.0
    after: float = 10.0  # seconds of load after it is back
    probe_every: float = 0.05
    QUICK: ClassVar[dict[str, Any]] = {
        "workers": 2,
        "clients": 8,
        "seats": 60,
        "before": 2.0,
        "outage": 2.0,
        "after": 6.0,
    }


@dataclass(frozen=True)
class Probe:
    sent: float  # monotonic
    done: float
    status: int | None  # None: a transport error
    problem: str | None


async def probe(port: int, path: str, until: float, every: float) -> list[Probe]:
    """GET `path` every `every` seconds until `until` (monotonic), one request at a time."""
    probes = []
    while time.monotonic() < until:
        sent = time.monotonic()
        try:
            response = await http(port, "GET", path, timeout=10)
            status, problem = response.status, unfriendly(response)
        except TransportError as error:
            status, problem = None, str(error)
        probes.append(Probe(sent, time.monotonic(), status, problem))
        await asyncio.sleep(max(0.0, every - (time.monotonic() - sent)))
    return probes


def db_restart(settings: DbRestart, report: Report) -> None:
    unavailable = PrivateCluster.unavailable()
    if unavailable:
        raise RuntimeError(f"no private PostgreSQL cluster: {unavailable}")
    with (
        private_cluster() as cluster,
        deployment(report, "postgresql", settings.seats, admin_url=cluster.admin_url) as deployed,
    ):
        server = deployed.start(settings.workers)
        seconds = settings.before + settings.outage + settings.after
        marks: dict[str, float] = {}

        async def outage() -> None:
            await asyncio.sleep(settings.before)
            marks["stopping"] = time.monotonic()
            await asyncio.to_thread(cluster.stop, "fast")
            marks["down"] = time.monotonic()
            await asyncio.sleep(settings.outage)
            marks["starting"] = time.monotonic()
            await asyncio.to_thread(cluster.start, wait=False)
            marks["up"] = await asyncio.to_thread(cluster.wait_until_accepting)

        async def together() -> tuple[Stats, list[Probe]]:
            until = time.monotonic() + seconds
            path = f"/book/{deployed.seeded['slot_ids'][0]}"
            stats, probes, _ = await asyncio.gather(
                deployed.load_async(settings.clients, seconds, retry=True, churn=True),
                probe(server.port, path, until, settings.probe_every),
                outage(),
            )
            return stats, probes

        stats, probes = run_clients(together())
        # Until pg_ctl start is called nothing can succeed; while the server starts up, either.
        during = Counter(p.status for p in probes if marks["down"] <= p.sent < marks["starting"])
        after = [p for p in probes if p.sent >= marks["up"]]
        recovered = next((p for p in after if p.status == 200), None)
        report.show("database stop (pg_ctl -m fast)", f"{marks['down'] - marks['stopping']:.1f} s")
        report.show(
            "outage",
            f"{marks['up'] - marks['down']:.1f} s",
            f"(down {settings.outage:g} s, then until it accepted a connection)",
        )
        report.show("probe statuses in outage", dict(during))
        if recovered is None:
            report.show("recovery", "NONE", f"no probe succeeded in {settings.after:g} s")
        else:
            recovery = recovered.done - marks["up"]
            report.show(
                "recovery",
                f"{recovery:.2f} s",
                f"target <= {TARGET_RECOVERY_S:g} s   {verdict(recovery <= TARGET_RECOVERY_S)}",
            )
        check_load(report, deployed, stats, outage=True)
        probe_problems = Counter(p.problem for p in probes if p.problem)
        report.show("unfriendly probe answers", dict(probe_problems) or 0, "target 0")
        report.require(recovered is not None, "the app did not recover after the restart")
        report.require(set(during) == {503}, f"answers during the outage {dict(during)}")
        report.require(not probe_problems, f"probe answers {dict(probe_problems)}")


@dataclass
class SqliteWriters:
    """32 concurrent writers in 4 processes on one SQLite file."""

    workers: int = 4
    threads: int = 8
    clients: int = 32
    seats: int = 200
    seconds: float = 30.0
    QUICK: ClassVar[dict[str, Any]] = {"seats": 60, "seconds": 5.0}


def sqlite_writers(settings: SqliteWriters, report: Report) -> None:
    with deployment(report, "sqlite", settings.seats) as deployed:
        server = deployed.start(settings.workers, "--threads", str(settings.threads))
        stats = deployed.load(settings.clients, settings.seconds, churn=True)
        report.show(
            "writers",
            f"{settings.workers} processes x {settings.threads} threads,"
            f" {settings.clients} clients booking and cancelling",
        )
        check_load(report, deployed, stats)
        locked = server.count("database is locked")
        # The 503 handler logs an OperationalError by its type only: on SQLite that is a lock.
        unavailable = server.count("database unavailable")
        report.show('"database is locked" in log', locked, "target 0")
        report.show("database-unavailable errors", unavailable, "target 0")
        report.require(not locked, f'{locked} "database is locked" in the server log')
        report.require(not unavailable, f"{unavailable} database-unavailable errors")


@dataclass
class Soak:
    """Steady booking and cancelling for `minutes`: latency drift and worker memory."""

    minutes: float = 5.0
    backend: str = "postgresql"
    workers: int = 4
    clients: int = 16
    seats: int = 200
    QUICK: ClassVar[dict[str, Any]] = {"minutes": 1.0}


def soak(settings: Soak, report: Report) -> None:
    seconds = settings.minutes * 60
    window = min(60.0, seconds / 5)
    with deployment(report, settings.backend, settings.seats) as deployed:
        server = deployed.start(settings.workers)
        samples: list[tuple[float, dict[int, int]]] = []

        async def sample_rss() -> None:
            started = time.monotonic()
            while (now := time.monotonic() - started) < seconds:
                samples.append((now, server.workers_rss()))
                await asyncio.sleep(min(10.0, window / 4))
            samples.append((time.monotonic() - started, server.workers_rss()))

        async def together() -> Stats:
            stats, _ = await asyncio.gather(
                deployed.load_async(settings.clients, seconds, churn=True), sample_rss()
            )
            return stats

        load_before = os.getloadavg()[0]
        stats = run_clients(together())
        report.show(
            "host load average", f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end",
            "(1-min; other work shares the machine)",
        )  # fmt: skip
        first = window_p99(stats, 0, window)
        last = window_p99(stats, stats.elapsed - window, stats.elapsed)
        drift = (last - first) / first if first else float("nan")
        report.show("window", f"{window:.0f} s of {stats.elapsed:.0f} s")
        report.show(
            "p99 first / last window",
            f"{first * 1000:.0f} / {last * 1000:.0f} ms",
            f"drift {drift:+.0%}, target <= {TARGET_P99_DRIFT:.0%}   {verdict(drift <= TARGET_P99_DRIFT)}",
        )
        show_rss(report, samples, window)
        check_load(report, deployed, stats)


def window_p99(stats: Stats, start: float, end: float) -> float:
    values = [
        latency
        for latency, finished in zip(stats.post_latencies, stats.post_finished, strict=True)
        if start <= finished < end
    ]
    return percentile(values, 0.99) if values else float("nan")


def show_rss(report: Report, samples: list[tuple[float, dict[int, int]]], window: float) -> None:
    """Worker RSS at the start, after the first window (caches warm) and at the end; growth is
    measured from the first window on, per worker that lived through the whole run."""
    start = samples[0][1]
    baseline = next((rss for at, rss in samples if at >= window), samples[-1][1])
    end = samples[-1][1]
    peak = max((rss for _, sample in samples for rss in sample.values()), default=0) / MB
    growth = max(
        ((end[pid] - baseline[pid]) / baseline[pid] for pid in end if baseline.get(pid)),
        default=float("nan"),
    )

    def mb(sample: dict[int, int]) -> str:
        return " ".join(f"{rss / MB:.0f}" for _, rss in sorted(sample.items())) + " MB"

    report.show("worker RSS at start", mb(start))
    report.show("after the first window", mb(baseline))
    report.show("at the end", mb(end))
    report.show(
        "largest worker",
        f"{peak:.0f} MB",
        f"target <= {TARGET_RSS_MB:.0f} MB   {verdict(peak <= TARGET_RSS_MB)}",
    )
    report.show(
        "largest growth",
        f"{growth:+.1%}",
        f"target <= {TARGET_RSS_GROWTH:.0%}   {verdict(growth <= TARGET_RSS_GROWTH)}",
    )
    respawned = set(end) - set(start)
    report.require(not respawned, f"workers replaced during the soak: {sorted(respawned)}")


def run(scenario: str, settings: Any) -> Report:
    """Run one scenario; an exception is one more problem of its report."""
    report = Report(scenario)
    try:
        SCENARIOS[scenario][1](settings, report)
    except Exception as error:
        report.problems.append(f"{type(error).__name__}: {error}")
    if report.problems:
        print(f"FAILED ({report.scenario}): " + "; ".join(report.problems), flush=True)
    else:
        print(f"PASSED ({report.scenario}): invariants hold", flush=True)
    return report


SCENARIOS: dict[str, tuple[type, Callable[[Any, Report], None]]] = {
    "multi-instance": (MultiInstance, multi_instance),
    "worker-kill": (WorkerKill, worker_kill),
    "db-restart": (DbRestart, db_restart),
    "sqlite-writers": (SqliteWriters, sqlite_writers),
    "soak": (Soak, soak),
}


def settings_for(kind: type, args: argparse.Namespace) -> Any:
    values = dict(kind.QUICK) if args.quick else {}
    for option in dataclasses.fields(kind):
        given = getattr(args, option.name, None)
        if given is not None:
            values[option.name] = given
    return kind(**values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="scenario")  # none: all (as `make bench` runs it)
    for name, (kind, _) in [*SCENARIOS.items(), ("all", (type(None), None))]:
        command = commands.add_parser(name, help=(kind.__doc__ or "every scenario").strip())
        command.add_argument("--quick", action="store_true", help="a few seconds")
        for option in dataclasses.fields(kind) if dataclasses.is_dataclass(kind) else ():
            command.add_argument(
                f"--{option.name.replace('_', '-')}",
                type=type(option.default),
                help=f"default {option.default}",
            )
    args = parser.parse_args(argv)
    if args.scenario is None:
        args = parser.parse_args(["all", *(argv or [])])
    chosen = SCENARIOS if args.scenario == "all" else {args.scenario: SCENARIOS[args.scenario]}
    reports = []
    for name, (kind, _) in chosen.items():
        settings = settings_for(kind, args)
        print(f"\n=== {name}: {settings} ===", flush=True)
        reports.append(run(name, settings))
    if len(reports) > 1:
        print("\n=== summary ===")
        for report in reports:
            print(f"  {report.scenario:<16} {'; '.join(report.problems) or 'invariants hold'}")
    return 1 if any(report.problems for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
