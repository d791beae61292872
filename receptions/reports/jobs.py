"""Large downloads as background jobs: an RQ job with Redis, otherwise a thread or the CLI.

Everything another instance needs is in the `report_export` row (status, progress, owner) and the
file under the instance folder; a job is claimed with one conditional UPDATE (`receptions/jobs.py`),
so two runners never write the same export.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from ..auth.models import User
from ..clock import now as clock_now
from ..database import write_transaction
from ..errors import NotInScope
from ..extensions import db
from ..jobs import BackgroundJobs, worker_app
from .downloads import ExportSpec, rows_to_write, write_export, written_in
from .models import ReportExport
from .scope import Period, parse_scope

log = logging.getLogger(__name__)
QUEUE = "reports"
LINK_LIFETIME = timedelta(hours=24)
PROGRESS_EVERY = 200  # rows between progress writes


def export_dir() -> Path:
    configured = current_app.config.get("REPORT_EXPORT_DIR")
    path = Path(configured) if configured else Path(current_app.instance_path) / "report-exports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def spec_of(job: ReportExport) -> ExportSpec:
    return ExportSpec(
        parse_scope(job.scope_key), Period(job.first_month, job.months), job.grouping, job.kind
    )


def start_export(officer: User, spec: ExportSpec, locale: str) -> ReportExport:
    """Record the job and hand it to a runner; the officer follows it on the progress page."""
    with write_transaction():
        job = ReportExport(
            token=secrets.token_urlsafe(32),
            user_id=officer.id,
            scope_key=spec.scope.key,
            first_month=spec.period.first,
            months=spec.period.months,
            grouping=spec.grouping,
            kind=spec.kind,
            locale=locale,
            expires_at=clock_now() + LINK_LIFETIME,
        )
        db.session.add(job)
    # The RQ worker writes the file where this process will serve it from.
    EXPORTS.start(job.id, str(export_dir()))
    return job


def rq_run(job_id: int, directory: str) -> bool:
    """The RQ job (`rq worker reports`)."""
    with worker_app(REPORT_EXPORT_DIR=directory):
        return run_export(job_id)


def _record(job_id: int, **values: Any) -> None:
    """On a connection of its own: the export's read cursor stays open meanwhile."""
    with db.engine.begin() as connection:
        connection.execute(
            update(ReportExport)
            .where(ReportExport.id == job_id)
            .values(heartbeat_at=clock_now(), **values)
        )


def run_export(job_id: int) -> bool:
    """Write one export to its file, recording progress; False if another runner has it."""
    if not EXPORTS.claim(job_id, done_rows=0):  # progress starts again on a job taken over
        return False
    job = db.session.get(ReportExport, job_id)
    assert job is not None
    spec = spec_of(job)
    path = export_dir() / f"{job.token}.{job.kind}"
    done = 0
    try:
        # Headers in the officer's language, whichever process runs the job.
        with written_in(job.locale):
            _record(job_id, total_rows=rows_to_write(spec))

            def progress(rows: int) -> None:
                nonlocal done
                done += rows
                if done % PROGRESS_EVERY < rows:
                    _record(job_id, done_rows=done)

            with path.open("wb") as handle:
                write_export(spec, handle, progress)
        db.session.rollback()
        _record(
            job_id,
            status="done",
            done_rows=done,
            file_name=spec.filename,
            finished_at=clock_now(),
        )
        return True
    except Exception as error:
        db.session.rollback()
        path.unlink(missing_ok=True)
        log.exception("report export %s failed", job_id)
        _record(job_id, status="failed", error=type(error).__name__, finished_at=clock_now())
        return True


EXPORTS = BackgroundJobs(
    ReportExport,
    queue=QUEUE,
    rq_job="receptions.reports.jobs.rq_run",
    thread_setting="REPORT_EXPORT_THREAD",
    label="report export",
    run=run_export,
)


def run_pending() -> int:
    """Run every queued (or abandoned) job whose link has not expired: the cron fallback when
    there is no Redis."""
    return EXPORTS.run_pending(ReportExport.expires_at > clock_now())


def purge_expired() -> int:
    """Delete the files and rows of expired exports."""
    with write_transaction():
        expired = list(
            db.session.scalars(select(ReportExport).where(ReportExport.expires_at <= clock_now()))
        )
        for job in expired:
            (export_dir() / f"{job.token}.{job.kind}").unlink(missing_ok=True)
            db.session.delete(job)
    return len(expired)


def job_for(officer: User, token: str) -> ReportExport:
    """The officer's own job; someone else's, an unknown or an expired one is a 404."""
    job = db.session.scalars(select(ReportExport).where(ReportExport.token == token)).first()
    if job is None or job.user_id != officer.id:
        raise NotInScope()
    if job.expires_at <= clock_now():
        raise NotInScope(str(_l("This download has expired. Ask for the report again.")))
    return job


def file_of(job: ReportExport) -> Path:
    path = export_dir() / f"{job.token}.{job.kind}"
    if job.status != "done" or not path.exists():
        raise NotInScope()
    return path
