"""What a download holds and how it is written: one code path for the view, the CLI and the job."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from flask import current_app, g, render_template
from flask_babel import force_locale
from flask_babel import gettext as _

from ..clock import now as clock_now
from ..i18n import current_language, month_label
from . import charts, exports, services
from .scope import ROW_GROUPINGS, Period, Scope, progress_notice

FIRST_HEADERS = {
    "region": lambda: _("Region"),
    "district": lambda: _("District"),
    "institution": lambda: _("Institution"),
    "institution_type": lambda: _("Institution type"),
}
# "csv" is the CSV for programs (comma, decimal point), unchanged for whatever reads it;
# "csv-excel" opens by double-click in Excel with the separators of the reader's language.
FORMATS = ("csv-excel", "csv", "xlsx", "pdf")
CSV_FORMATS = ("csv-excel", "csv")
CONTENT_TYPES = {
    "csv-excel": "text/csv; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
# Larger than this and the download is a background job with a progress page.
BACKGROUND_GROUPS = 500
BACKGROUND_MONTHS = 6

Progress = Callable[[int], None]


@dataclass(frozen=True)
class ExportSpec:
    scope: Scope
    period: Period
    grouping: str
    kind: str

    @property
    def filename(self) -> str:
        scope = self.scope.key.replace(":", "-").replace(";", "-")
        months = (
            self.period.first
            if self.period.months == 1
            else f"{self.period.first}--{self.period.last}"
        )
        return f"ashyq-esik-{scope}-{months}.{self.extension}"

    @property
    def extension(self) -> str:
        return "csv" if self.kind in CSV_FORMATS else self.kind

    def title(self, at: datetime) -> str:
        """The heading of the XLSX and PDF: the scope and the period, and for a period in
        progress up to when its figures run."""
        title = f"{self.scope.name()} — {self.period.title}"
        notice = progress_notice(self.period, at)
        return f"{title}. {notice[0]}" if notice else title

    def note(self, at: datetime) -> exports.Note | None:
        """The closing line of a period in progress, once its total is known."""
        if not self.period.in_progress(at):
            return None
        return lambda total: " ".join(progress_notice(self.period, at, total.sessions_to_come))

    def levels(self) -> list[str]:
        """The groupings written: an XLSX has a sheet for each the scope offers."""
        return list(ROW_GROUPINGS[self.scope.level]) if self.kind == "xlsx" else [self.grouping]


@contextmanager
def written_in(language: str) -> Iterator[None]:
    """A request context in `language` for a download written outside a request (a background
    job, the CLI): headers, names and the Excel CSV's separators in that language."""
    with current_app.test_request_context(), force_locale(language):
        g.forced_locale = language
        yield


def is_large(spec: ExportSpec) -> bool:
    """National exports and long regional ranges run in the background, never in a request."""
    if spec.scope.level == "nation" or spec.period.months >= BACKGROUND_MONTHS:
        return True
    return services.count_groups(spec.scope, "institution") > BACKGROUND_GROUPS


def rows_to_write(spec: ExportSpec) -> int:
    """The length of the progress bar: every group of every sheet."""
    return sum(services.count_groups(spec.scope, level) for level in spec.levels())


def _read(
    read: Callable[..., Any],
    spec: ExportSpec,
    grouping: str,
    progress: Progress | None,
    at: datetime,
) -> Any:
    """A sheet's rows read by `read`, every sheet alike; institutions' rows say whether they
    changed since sign-off."""
    return read(
        spec.scope,
        grouping,
        spec.period.first,
        spec.period.months,
        at=at,
        compare=grouping == "institution",
        progress=progress,
    )


def _rows(spec: ExportSpec, grouping: str, progress: Progress | None, at: datetime) -> Any:
    return _read(services.iter_figures, spec, grouping, progress, at)


def _rows_and_previous(
    spec: ExportSpec, grouping: str, progress: Progress | None, at: datetime
) -> tuple[Any, services.Figures | None]:
    """A sheet's rows and the period before's total (None for a period in progress), complete
    once the rows are written."""
    rows_and_previous: tuple[Any, services.Figures | None] = _read(
        services.figures_and_previous, spec, grouping, progress, at
    )
    return rows_and_previous


def signoff_cells(spec: ExportSpec, grouping: str) -> exports.Signoff | None:
    """Where rows are institutions, each row's sign-off as the dashboard tells it: the version its
    figures are served from (over a range, each signed month's: "2026-08: 1; 2026-09: 2"), empty
    where none is signed, and whether it changed since sign-off (`changed_since_signoff`)."""
    if grouping != "institution":
        return None
    months = services.month_list(spec.period.first, spec.period.months)
    versions = services.signed_versions(spec.scope, months)
    changed = {True: _("yes"), False: _("no")}

    def cells(row: services.Figures) -> list[Any]:
        signed = versions.get(row.key)
        if not signed:
            return ["", ""]
        if len(months) == 1:
            return [signed[months[0]], changed[row.changed_since_signoff]]
        version = "; ".join(f"{month}: {signed[month]}" for month in months if month in signed)
        return [version, changed[row.changed_since_signoff]]

    return cells


def write_export(spec: ExportSpec, handle: IO[bytes], progress: Progress | None = None) -> None:
    """Write the download to a binary file, row by row from the database; every sheet and
    its notes read at one moment."""
    at = clock_now()
    if spec.kind in CSV_FORMATS:
        for chunk in iter_csv(spec, progress, at):
            handle.write(chunk.encode("utf-8"))
    elif spec.kind == "xlsx":
        levels = spec.levels()
        first, previous = _rows_and_previous(spec, levels[0], progress, at)
        sheets = (
            (
                FIRST_HEADERS[level](),
                FIRST_HEADERS[level](),
                first if index == 0 else _rows(spec, level, progress, at),
                signoff_cells(spec, level),
            )
            for index, level in enumerate(levels)
        )
        # The first sheet's rows bring the previous period's total, written under each sheet.
        exports.write_xlsx(sheets, previous, handle, spec.title(at), spec.note(at))
    else:
        html = pdf_html(spec, at)
        if progress is not None:
            progress(rows_to_write(spec))
        handle.write(exports.render_pdf(html))


def iter_csv(spec: ExportSpec, progress: Progress | None = None, at: datetime | None = None) -> Any:
    """The CSV's text; the Excel one follows the language in use (a background job's is the
    officer's, forced while it runs)."""
    at = at or clock_now()
    layout = (
        exports.excel_csv_layout(current_language())
        if spec.kind == "csv-excel"
        else exports.PROGRAM_CSV
    )
    rows, previous = _rows_and_previous(spec, spec.grouping, progress, at)
    return exports.iter_csv(
        rows,
        FIRST_HEADERS[spec.grouping](),
        previous,
        layout,
        spec.note(at),
        signoff_cells(spec, spec.grouping),
    )


def trend_svg(
    scope: Scope,
    period: Period,
    series: list[tuple[Any, str, str]],
    at: datetime | None = None,
) -> str:
    trend = services.monthly_trend(scope, period.last, 12, at=at)
    return charts.trend_chart(
        [month_label(m, short=True) for m, _ in trend],
        [(str(label), [f[name] for _, f in trend], colour) for name, label, colour in series],
        _("Monthly trend"),
    )


def pdf_html(spec: ExportSpec, at: datetime) -> str:
    rollup = services.rollup(
        spec.scope, spec.period.first, grouping=spec.grouping, months=spec.period.months, at=at
    )
    chart_svg = trend_svg(
        spec.scope,
        spec.period,
        [
            ("citizens_received", _("Citizens received"), "#005a8c"),
            ("resolved", _("Resolved positively"), "#1e6b34"),
            ("explained", _("Explained"), "#8a4b00"),
            ("pending", _("Being resolved"), "#b3261e"),
        ],
        at,
    )
    return render_template(
        "reports/pdf.html",
        rollup=rollup,
        scope_name=spec.scope.name(),
        period=spec.period,
        columns=exports.PDF_COLUMNS,
        chart_src="data:image/svg+xml;base64," + base64.b64encode(chart_svg.encode()).decode(),
        first_header=FIRST_HEADERS[spec.grouping](),
        signoff=signoff_cells(spec, spec.grouping),
        signoff_headers=exports.SIGNOFF_HEADERS,
        progress_notice=progress_notice(spec.period, at, rollup.total.sessions_to_come),
    )
