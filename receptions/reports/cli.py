"""`flask reports monthly --scope region:3 --month 2026-10 --format xlsx --output FILE`."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup

reports_cli = AppGroup("reports", help="Monthly roll-ups for akimats.")


@reports_cli.command("monthly")
@click.option(
    "--scope",
    "scope_text",
    default="nation",
    show_default=True,
    help="nation, region:ID, district:ID or institution:ID, optionally ;type:school",
)
@click.option("--month", required=True, help="YYYY-MM")
@click.option("--format", "kind", type=click.Choice(["csv", "xlsx", "pdf"]), default="csv")
@click.option(
    "--by", "grouping", default=None, help="region, district, institution_type, institution"
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def monthly_command(
    scope_text: str, month: str, kind: str, grouping: str | None, output: Path
) -> None:
    """Write the roll-up of a month to FILE."""
    from flask import current_app

    from ..clock import now as clock_now
    from . import exports, services
    from .scope import REPORT_ZONE, BadReportRequest, parse_month, parse_scope
    from .views import FIRST_HEADERS, child_grouping, pdf_html, sheets_for

    try:
        scope = parse_scope(scope_text)
        month = parse_month(month, today=clock_now().astimezone(REPORT_ZONE).date())
    except BadReportRequest as error:
        raise click.BadParameter(error.user_message) from error
    grouping = grouping or child_grouping(scope)
    if grouping not in services.GROUPINGS:
        raise click.BadParameter(f"unknown grouping {grouping!r}")
    steps = {"csv": 2, "xlsx": 2, "pdf": 3}[kind]
    with current_app.test_request_context(), click.progressbar(length=steps, label="Report") as bar:
        if kind == "csv":
            rollup = services.rollup(scope, month, grouping=grouping)
            bar.update(1)
            with output.open("w", encoding="utf-8", newline="") as handle:
                for chunk in exports.iter_csv(rollup, FIRST_HEADERS[grouping]()):
                    handle.write(chunk)
        elif kind == "xlsx":
            sheets = sheets_for(scope, month)
            bar.update(1)
            with output.open("wb") as handle:
                exports.write_xlsx(sheets, handle, f"{scope.name()} — {month}")
        else:
            html = pdf_html(scope, month, grouping)
            bar.update(1)
            output.write_bytes(exports.render_pdf(html))
            bar.update(1)
        bar.update(1)
    click.echo(f"written {output}")
