"""`flask notify send` and `flask notify remind`."""

from __future__ import annotations

import click
from flask.cli import AppGroup

notify_cli = AppGroup("notify", help="The notification outbox.")


@notify_cli.command("send")
@click.option("--limit", default=500, show_default=True)
def send_command(limit: int) -> None:
    """Deliver every message that is due (run it from cron every minute)."""
    from .services import send_due

    counts = send_due(limit=limit)
    click.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))


@notify_cli.command("remind")
def remind_command() -> None:
    """Queue the 24-hour reminders and feedback requests that are due."""
    from ..booking.services import (
        queue_feedback_requests,
        queue_reminders,
        queue_resolution_checks,
    )
    from ..visits.services import queue_closeout_reminders

    click.echo(f"reminders queued: {queue_reminders()}")
    click.echo(f"feedback requests queued: {queue_feedback_requests()}")
    click.echo(f"'really resolved?' questions queued: {queue_resolution_checks()}")
    click.echo(f"close-out reminders queued: {queue_closeout_reminders()}")
