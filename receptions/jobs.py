"""Background jobs recorded in a row: an RQ job with Redis, otherwise a thread of the web process;
a cron command runs whatever is left (calendar changes, report exports).

Everything another instance needs is in the job's row. A runner claims it with one conditional
UPDATE, so two runners never run the same job, and a job whose runner has been silent for
STALE_AFTER is taken over: that runner died with its process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import ColumnElement, select, update

from .clock import now as clock_now
from .database import write_transaction
from .extensions import db

log = logging.getLogger(__name__)
# A running job whose runner has been silent this long died with its process: take it over.
STALE_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class BackgroundJobs:
    """One kind of background job and how it is run."""

    model: Any  # its rows: a model with `id`, `status` and `heartbeat_at`
    queue: str  # the RQ queue, as `rq worker <queue>` names it
    rq_job: str  # the dotted name of the function an RQ worker runs
    thread_setting: str  # the setting that lets a thread of the web process run it
    label: str  # what the log calls one job
    run: Callable[[int], bool]  # runs one job; False if another runner has it

    def start(self, job_id: int, *rq_args: Any) -> None:
        """Hand a queued job to a runner; `rq_args` follow the id in the RQ job's arguments."""
        redis_url = current_app.config.get("REDIS_URL")
        if redis_url:
            try:
                self._enqueue(redis_url, job_id, *rq_args)
            except Exception:  # Redis down: the cron command still runs the queued job
                log.warning("could not enqueue %s %s", self.label, job_id, exc_info=True)
            return
        if current_app.config.get(self.thread_setting, not current_app.testing):
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            threading.Thread(target=self._run_in, args=(app, job_id), daemon=True).start()

    def _enqueue(self, redis_url: str, *args: Any) -> None:
        from redis import Redis
        from rq import Queue

        Queue(self.queue, connection=Redis.from_url(redis_url)).enqueue(
            self.rq_job, *args, job_timeout=3600, retry=None
        )

    def _run_in(self, app: Flask, job_id: int) -> None:
        with app.app_context():
            try:
                self.run(job_id)
            finally:
                db.session.remove()

    def runnable(self) -> ColumnElement[bool]:
        """Queued, or running with a runner that died."""
        return (self.model.status == "queued") | (
            (self.model.status == "running") & (self.model.heartbeat_at < clock_now() - STALE_AFTER)
        )

    def claim(self, job_id: int, **values: Any) -> bool:
        """Take the job if it is runnable, setting `values` with it; False if another runner
        has it."""
        with write_transaction():
            claimed = db.session.execute(
                update(self.model)
                .where(self.model.id == job_id, self.runnable())
                .values(status="running", heartbeat_at=clock_now(), **values)
            ).rowcount
        return bool(claimed)

    def run_pending(self, *where: ColumnElement[bool]) -> int:
        """Run every runnable job (matching `where`): the cron fallback when there is no Redis."""
        ids = list(
            db.session.scalars(
                select(self.model.id).where(self.runnable(), *where).order_by(self.model.id)
            )
        )
        db.session.rollback()
        return sum(self.run(job_id) for job_id in ids)


@contextmanager
def worker_app(**settings: Any) -> Iterator[Flask]:
    """The app of an RQ job, built from the environment as `rq worker` does, in its context."""
    from receptions import create_app

    app = create_app()
    app.config.update(settings)
    with app.app_context():
        yield app
