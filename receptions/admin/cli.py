"""`flask retention purge`."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

retention_cli = AppGroup("retention", help="Retention of citizens' personal data.")


@retention_cli.command("purge")
@click.option(
    "--older-than-days",
    type=click.IntRange(1),
    default=None,
    help="Default: RETENTION_DAYS (3 years).",
)
def purge_command(older_than_days: int | None) -> None:
    """Anonymise personal data older than the retention period, keeping every count."""
    from .retention import purge_personal_data

    days = older_than_days or int(current_app.config.get("RETENTION_DAYS", 3 * 365))
    counts = purge_personal_data(older_than_days=days)
    click.echo(f"anonymised bookings: {counts['bookings']}, visits: {counts['visits']}")
