"""A calendar change that reaches many schedules, worked through in the background: an RQ job
with Redis, otherwise a thread of the web process; `flask schedules calendar-changes` (cron) and
the nightly `flask schedules materialise` run whatever is left.

As with report exports, everything another instance needs is in the `calendar_change` row
(`receptions/jobs.py` claims it). A runner brings its schedules in line one transaction each,
counting each one in the same transaction under the row's lock, so a runner that died is taken
over where it stopped and nothing is counted twice.
"""

from __future__ import annotations

import logging

from sqlalchemy import update

from ..clock import now as clock_now
from ..database import write_transaction
from ..extensions import db
from ..jobs import BackgroundJobs, worker_app
from .models import CalendarChange

log = logging.getLogger(__name__)
QUEUE = "schedules"


def start(change_id: int) -> None:
    """Hand a queued change to a runner."""
    CHANGES.start(change_id)


def rq_run(change_id: int) -> bool:
    """The RQ job (`rq worker schedules`)."""
    with worker_app():
        return run_change(change_id)


def run_change(change_id: int) -> bool:
    """Bring the change's schedules in line; False if another runner has it."""
    from .services import finish_calendar_change, follow_calendar_in

    if not CHANGES.claim(change_id):
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


CHANGES = BackgroundJobs(
    CalendarChange,
    queue=QUEUE,
    rq_job="receptions.schedules.jobs.rq_run",
    thread_setting="CALENDAR_CHANGE_THREAD",
    label="calendar change",
    run=run_change,
)


def run_pending() -> int:
    """Run every queued (or abandoned) change: the cron fallback when there is no Redis."""
    return CHANGES.run_pending()
