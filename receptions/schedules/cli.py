"""`flask schedules materialise`: keep sessions and slots filled for the rolling horizon;
`flask schedules calendar-changes`: run what calendar changes left to the background."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from ..extensions import db
from .models import Schedule

schedules_cli = AppGroup("schedules", help="Schedules, sessions and slots.")


@schedules_cli.command("materialise")
@click.option(
    "--days",
    type=click.IntRange(1, 800),
    default=None,
    help="Horizon in days (default: SCHEDULE_HORIZON_DAYS, 120).",
)
def materialise_command(days: int | None) -> None:
    """Create, update or withdraw future sessions so they match every schedule. Idempotent."""
    from .jobs import run_pending
    from .services import materialise_all

    # Changes still waiting are recorded as done (with what they did) before the full run.
    run_pending()
    institutions = db.session.scalar(select(func.count(func.distinct(Schedule.institution_id))))
    with click.progressbar(length=institutions or 0, label="Institutions") as bar:
        result = materialise_all(days=days, progress=bar.update)
    click.echo(
        f"created {result.created}, updated {result.updated}, "
        f"withdrawn {result.withdrawn}, conflicts {len(result.conflicts)}"
    )
    for session in result.conflicts:
        click.echo(
            f"  conflict: session {session.id} of institution {session.institution_id} "
            f"on {session.local_date} has bookings"
        )


@schedules_cli.command("calendar-changes")
def calendar_changes_command() -> None:
    """Bring in line the schedules of queued calendar changes (cron, when there is no Redis)."""
    from .jobs import run_pending

    click.echo(f"calendar changes run: {run_pending()}")
