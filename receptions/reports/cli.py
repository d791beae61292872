"""`flask reports monthly --scope region:3 --month 2026-10 --format xlsx --output FILE`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import AppGroup

from .downloads import FORMATS

reports_cli = AppGroup("reports", help="Monthly roll-ups for akimats.")


def _scope_exists(scope) -> bool:  # type: ignore[no-untyped-def]
    from ..extensions import db
    from ..geography.models import District, Region
    from ..institutions.models import Institution

    model = {"region": Region, "district": District, "institution": Institution}.get(scope.level)
    return model is None or db.session.get(model, scope.ident) is not None


@reports_cli.command("monthly")
@click.option(
    "--scope",
    "scope_text",
    default="nation",
    show_default=True,
    help="nation, region:ID, district:ID or institution:ID, optionally ;type:school",
)
@click.option("--month", default=None, help="YYYY-MM (or give --month-from and --month-to)")
@click.option("--month-from", "month_from", default=None, help="first month of a range, YYYY-MM")
@click.option("--month-to", "month_to", default=None, help="last month of a range, YYYY-MM")
@click.option(
    "--format",
    "kind",
    type=click.Choice(FORMATS),
    default="csv",
    help="csv: comma and decimal point, for programs; csv-excel: the separators of --language",
)
@click.option(
    "--language",
    type=click.Choice(["kk", "ru", "en"]),
    default=None,
    help="of the headers and names (and csv-excel's separators); default: the site's default",
)
@click.option(
    "--by",
    "grouping",
    default=None,
    help="region, district, institution or institution_type, at or below the scope's level",
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def monthly_command(
    scope_text: str,
    month: str | None,
    month_from: str | None,
    month_to: str | None,
    kind: str,
    grouping: str | None,
    language: str | None,
    output: Path,
) -> None:
    """Write the roll-up of a month (or a range of months) to FILE."""
    from flask import current_app

    from .downloads import ExportSpec, rows_to_write, write_export, written_in
    from .scope import (
        ROW_GROUPINGS,
        BadReportRequest,
        default_grouping,
        parse_period,
        parse_scope,
        report_today,
    )

    if not (month or month_from or month_to):
        raise click.BadParameter(
            "give --month or --month-from and --month-to", param_hint="--month"
        )
    if month and (month_from or month_to):
        raise click.BadParameter("either --month or a range, not both", param_hint="--month")
    try:
        scope = parse_scope(scope_text)
    except BadReportRequest as error:
        raise click.BadParameter(error.user_message, param_hint="--scope") from error
    if not _scope_exists(scope):
        raise click.BadParameter(f"no {scope.level} with id {scope.ident}", param_hint="--scope")
    try:
        period = parse_period(month, month_from, month_to, today=report_today())
    except BadReportRequest as error:
        raise click.BadParameter(error.user_message, param_hint="--month") from error
    grouping = grouping or default_grouping(scope)
    offered = ROW_GROUPINGS[scope.level]
    if grouping not in offered:
        raise click.BadParameter(
            f"a {scope.level} report has no rows by {grouping!r}; choose {', '.join(offered)}",
            param_hint="--by",
        )
    spec = ExportSpec(scope, period, grouping, kind)
    with written_in(language or current_app.config["BABEL_DEFAULT_LOCALE"]):
        length = rows_to_write(spec)
        with (
            click.progressbar(length=length, label="Report", file=sys.stderr) as bar,
            output.open("wb") as handle,
        ):
            write_export(spec, handle, bar.update)
    click.echo(f"written {output}")


@reports_cli.command("exports")
def exports_command() -> None:
    """Run queued background exports and delete expired ones (cron, when there is no Redis)."""
    from .jobs import purge_expired, run_pending

    ran = run_pending()
    purged = purge_expired()
    click.echo(f"exports run: {ran}, expired removed: {purged}")
