"""CSV, XLSX and PDF downloads of a roll-up, with headers in the reader's language."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from flask_babel import lazy_gettext as _l

from .services import Figures, Rollup

# (field, header, kind) — kind decides the number format.
COLUMNS: list[tuple[str, Any, str]] = [
    ("sessions_planned", _l("Sessions planned"), "count"),
    ("sessions_held", _l("Sessions held"), "count"),
    ("held_share", _l("Share held"), "share"),
    ("sessions_cancelled", _l("Sessions cancelled"), "count"),
    ("sessions_not_closed", _l("Sessions not closed"), "count"),
    ("open_door_planned", _l("Open-door days planned"), "count"),
    ("open_door_held", _l("Open-door days held"), "count"),
    ("reception_planned", _l("Receptions planned"), "count"),
    ("reception_held", _l("Receptions held"), "count"),
    ("citizens_booked", _l("Citizens booked"), "count"),
    ("citizens_received", _l("Citizens received"), "count"),
    ("walk_ins", _l("of them walk-ins"), "count"),
    ("no_shows", _l("No-shows"), "count"),
    ("questions", _l("Questions"), "count"),
    ("resolved", _l("Resolved positively"), "count"),
    ("resolved_share", _l("Share resolved"), "share"),
    ("explained", _l("Explained"), "count"),
    ("explained_share", _l("Share explained"), "share"),
    ("pending", _l("Being resolved"), "count"),
    ("pending_share", _l("Share being resolved"), "share"),
    ("overdue", _l("Overdue"), "count"),
    ("average_rating", _l("Average rating"), "rating"),
    ("satisfied_share", _l("Share satisfied (4–5)"), "share"),
    ("really_resolved_no", _l("Citizens say not resolved"), "count"),
    ("staff_resolved_citizen_no", _l("Recorded resolved, citizen says not"), "count"),
]
COUNT_FIELDS = [name for name, _, kind in COLUMNS if kind == "count"]
# What fits across an A4 landscape page; the XLSX and CSV carry every column.
PDF_FIELDS = (
    "sessions_planned",
    "sessions_held",
    "held_share",
    "open_door_planned",
    "open_door_held",
    "citizens_received",
    "questions",
    "resolved",
    "resolved_share",
    "explained",
    "pending",
    "overdue",
    "average_rating",
)
PDF_COLUMNS = [column for column in COLUMNS if column[0] in PDF_FIELDS]


def headers(first: str) -> list[str]:
    return [first] + [str(label) for _, label, _ in COLUMNS]


def values(row: Figures, columns: list[tuple[str, Any, str]] = COLUMNS) -> list[Any]:
    out: list[Any] = []
    for name, _, kind in columns:
        value = row[name]
        if kind == "share" and value is not None:
            value = round(value * 100, 1)
        elif kind == "rating" and value is not None:
            value = round(value, 2)
        out.append("" if value is None else value)
    return out


def _neutralise(cell: Any) -> Any:
    """Spreadsheet formula injection: text starting with = + - @ is shown, never evaluated."""
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + cell
    return cell


def iter_csv(rollup: Rollup, first_header: str) -> Iterator[str]:
    """UTF-8 with a byte-order mark so that Excel opens Cyrillic text correctly; streamed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    yield "\ufeff"
    writer.writerow(headers(first_header))
    for row in rollup.rows:
        writer.writerow([_neutralise(row.label), *values(row)])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    writer.writerow([str(_l("Total")), *values(rollup.total)])
    yield buffer.getvalue()


def write_xlsx(sheets: list[tuple[str, str, Rollup]], stream: Any, title: str) -> None:
    """One sheet per level; formatted headers, frozen panes, totals equal to the detail sums."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    workbook.remove(workbook.active)
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="DCE6F0")
    for sheet_name, first_header, rollup in sheets:
        sheet = workbook.create_sheet(sheet_name[:31])
        sheet.append([title])
        sheet["A1"].font = Font(bold=True, size=13)
        sheet.append(headers(first_header))
        for cell in sheet[2]:
            cell.font, cell.fill = bold, fill
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        for row in rollup.rows:
            sheet.append([_neutralise(row.label), *values(row)])
        sheet.append([str(_l("Total")), *values(rollup.total)])
        for cell in sheet[sheet.max_row]:
            cell.font = bold
        for index, (_, _, kind) in enumerate(COLUMNS, start=2):
            letter = get_column_letter(index)
            sheet.column_dimensions[letter].width = 14
            if kind in ("share", "rating"):
                for (cell,) in sheet.iter_rows(min_row=3, min_col=index, max_col=index):
                    cell.number_format = "0.0" if kind == "share" else "0.00"
        sheet.column_dimensions["A"].width = 42
        sheet.row_dimensions[2].height = 48
        sheet.freeze_panes = "B3"
    workbook.save(stream)


def render_pdf(html: str) -> bytes:
    import logging

    from weasyprint import HTML

    # WeasyPrint narrates every layout step at INFO; keep the application log readable.
    for name in ("weasyprint", "weasyprint.progress", "fontTools"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return HTML(string=html).write_pdf()  # type: ignore[no-any-return]
