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
    click.echo(
        f"anonymised bookings: {counts['bookings']}, visits: {counts['visits']}, "
        f"feedback comments: {counts['feedback_comments']}, "
        f"question notes: {counts['question_notes']}, notifications: {counts['notifications']}"
    )


backup_cli = AppGroup("backup", help="Back up and restore the database.")


@backup_cli.command("create")
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Default: backups/ashyq-esik-<UTC time>.(sqlite3|dump)",
)
def backup_create(output: str | None) -> None:
    """A consistent copy of the running database (SQLite backup API or pg_dump)."""
    from datetime import UTC, datetime
    from pathlib import Path

    from .backup import create_backup

    url = current_app.config["SQLALCHEMY_DATABASE_URI"]
    suffix = "sqlite3" if url.startswith("sqlite") else "dump"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = Path(output or f"backups/ashyq-esik-{stamp}.{suffix}")
    click.echo(f"written {create_backup(url, path)}")


@backup_cli.command("restore")
@click.argument("backup", type=click.Path(exists=True, dir_okay=False))
@click.option("--yes", is_flag=True, help="Confirm that the current database is replaced.")
def backup_restore(backup: str, yes: bool) -> None:
    """Replace the configured database with BACKUP."""
    from pathlib import Path

    from ..extensions import db
    from .backup import restore_backup

    if not yes:
        raise click.UsageError("restoring replaces the database: add --yes to confirm")
    db.engine.dispose()
    restore_backup(Path(backup), current_app.config["SQLALCHEMY_DATABASE_URI"])
    click.echo(f"restored {backup}")
