"""A calendar change that reaches many schedules, worked through in the background: an RQ job
with Redis, otherwise a thread of the web process; `flask schedules calendar-changes` (cron) and
the nightly `flask schedules materialise` run whatever is left.

As with report exports (`reports/jobs.py`), everything another instance needs is in the
`calendar_change` row. A runner claims the change with one conditional UPDATE and brings its
schedules in line one transaction each, counting each one in the same transaction under the
row's lock, so a runner that died is taken over where it stopped and nothing is counted twice.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from ..clock import now as clock_now
from ..database import write_transaction
from ..extensions import db
from .models import CalendarChange

log = logging.getLogger(__name__)
QUEUE = "schedules"
# A running change whose runner has been silent this long died with its process: take it over.
STALE_AFTER = timedelta(minutes=10)


def start(change_id: int) -> None:
    """Hand a queued change to a runner."""
    redis_url = current_app.config.get("REDIS_URL")
    if redis_url:
        try:
            _enqueue(redis_url, change_id)
        except Exception:  # Redis down: `flask schedules calendar-changes` still runs it
            log.warning("could not enqueue calendar change %s", change_id, exc_info=True)
        return
    if current_app.config.get("CALENDAR_CHANGE_THREAD", not current_app.testing):
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        threading.Thread(target=_run_in, args=(app, change_id), daemon=True).start()


def _enqueue(redis_url: str, change_id: int) -> None:
    from redis import Redis
    from rq import Queue

    Queue(QUEUE, connection=Redis.from_url(redis_url)).enqueue(
        "receptions.schedules.jobs.rq_run", change_id, job_timeout=3600, retry=None
    )


def rq_run(change_id: int) -> bool:
    """The RQ job: build the app from the environment, as `rq worker schedules` does."""
    from receptions import create_app

    app = create_app()
    with app.app_context():
        return run_change(change_id)


def _run_in(app: Any, change_id: int) -> None:
    with app.app_context():
        try:
            run_change(change_id)
        finally:
            db.session.remove()


def _runnable() -> Any:
    now = clock_now()
    return (CalendarChange.status == "queued") | (
        (CalendarChange.status == "running") & (CalendarChange.heartbeat_at < now - STALE_AFTER)
    )


def _claim(change_id: int) -> bool:
    with write_transaction():
        claimed = db.session.execute(
            update(CalendarChange)
            .where(CalendarChange.id == change_id, _runnable())
            .values(status="running", heartbeat_at=clock_now())
        ).rowcount
    return bool(claimed)


def run_change(change_id: int) -> bool:
    """Bring the change's schedules in line; False if another runner has it."""
    from .services import finish_calendar_change, follow_calendar_in

    if not _claim(change_id):
        return False
    try:
        while True:
            with write_transaction():
                change = db.session.get(CalendarChange, change_id, with_for_update=True)
                if change is None or change.status != "running":
                    return False
                if change.schedules_done >= len(change.schedule_ids):
                    finish_calendar_change(change)
                    return True
                follow_calendar_in(change, change.schedule_ids[change.schedules_done])
    except Exception as error:
        db.session.rollback()
        log.exception("calendar change %s failed", change_id)
        with write_transaction():
            db.session.execute(
                update(CalendarChange)
                .where(CalendarChange.id == change_id)
                .values(status="failed", error=type(error).__name__, finished_at=clock_now())
            )
        return True


def run_pending() -> int:
    """Run every queued (or abandoned) change: the cron fallback when there is no Redis."""
    ids = list(
        db.session.scalars(select(CalendarChange.id).where(_runnable()).order_by(CalendarChange.id))
    )
    db.session.rollback()
    return sum(run_change(change_id) for change_id in ids)
