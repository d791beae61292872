"""CSV, XLSX and PDF downloads of a roll-up, with headers in the reader's language."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from babel.numbers import get_decimal_symbol
from flask_babel import lazy_gettext as _l

from .services import Figures, figure_change

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
# Where rows are institutions, after every figure: the signed version the row's figures are
# served from (empty where nothing is signed) and whether today's rows no longer give them.
SIGNOFF_HEADERS = (_l("Signed off"), _l("Changed since sign-off"))
# The sign-off cells of an institution's row (see `downloads.signoff_cells`).
Signoff = Callable[[Figures], list[Any]]


def headers(first: str, signoff: Signoff | None = None) -> list[str]:
    extra = [str(label) for label in SIGNOFF_HEADERS] if signoff else []
    return [first] + [str(label) for _, label, _ in COLUMNS] + extra


def _signoff_of(signoff: Signoff | None, row: Figures | None) -> list[Any]:
    """A row's sign-off cells; the total and the line under it leave them empty."""
    if signoff is None:
        return []
    return signoff(row) if row is not None else [""] * len(SIGNOFF_HEADERS)


def _cell(value: Any, kind: str) -> Any:
    """A figure as a file shows it: shares in per cent to one decimal, ratings to two."""
    if value is None:
        return ""
    if kind == "share":
        return round(value * 100, 1)
    if kind == "rating":
        return round(value, 2)
    return value


def values(row: Figures) -> list[Any]:
    return [_cell(row[name], kind) for name, _, kind in COLUMNS]


def _neutralise(cell: Any) -> Any:
    """Spreadsheet formula injection: text starting with = + - @, a tab or a line break is
    shown, never evaluated."""
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r", "\n"):
        return "'" + cell
    return cell


# A period in progress closes with a note (what its figures cover) where a finished one has its
# change on the period before; the note is written last, when the total is known.
Note = Callable[[Figures], str]


def change_values(total: Figures, previous: Figures) -> list[Any]:
    """Each column's change on the period before (shares in percentage points), rounded from
    the unrounded figures as the dashboard does: two rounded shares can differ by 0.1 more."""
    return [_cell(figure_change(total, previous, name), kind) for name, _, kind in COLUMNS]


def _totalled(rows: Iterable[Figures], total: Figures) -> Iterator[Figures]:
    for row in rows:
        total.add(row)
        yield row


def closing_row(total: Figures, previous: Figures | None, note: Note | None) -> list[Any]:
    """The line under the total: the change on the period before, or for a period in progress
    (no period before is compared) the note on what its figures cover, in the first cell."""
    if previous is None:
        return [note(total) if note else "", *([""] * len(COLUMNS))]
    return [str(_l("Change on the previous period")), *change_values(total, previous)]


@dataclass(frozen=True)
class CsvLayout:
    """What separates the values of a CSV and the whole part of a number from its fraction."""

    delimiter: str
    decimal: str

    def numbers(self, cells: list[Any]) -> list[Any]:
        if self.decimal == ".":
            return cells  # the csv module writes floats as Python does: 33.3
        return [str(c).replace(".", self.decimal) if isinstance(c, float) else c for c in cells]


# The CSV for programs: RFC 4180's comma and a decimal point, whatever the reader's language.
PROGRAM_CSV = CsvLayout(",", ".")


def excel_csv_layout(language: str) -> CsvLayout:
    """As Excel reads a double-clicked CSV under the language's regional settings: where the
    decimal mark is a comma (kk, ru) Windows' list separator is a semicolon; with a decimal
    point (en) it is a comma."""
    decimal = get_decimal_symbol(language)
    return CsvLayout(";" if decimal == "," else ",", decimal)


def iter_csv(
    rows: Iterable[Figures],
    first_header: str,
    previous: Figures | None,
    layout: CsvLayout = PROGRAM_CSV,
    note: Note | None = None,
    signoff: Signoff | None = None,
) -> Iterator[str]:
    """UTF-8 with a byte-order mark so that Excel opens Cyrillic text correctly; streamed
    row by row as the database sends them, the total added up on the way."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=layout.delimiter)
    total = Figures("total", "")
    blank = _signoff_of(signoff, None)
    yield "\ufeff"
    writer.writerow(headers(first_header, signoff))
    for row in _totalled(rows, total):
        cells = [*layout.numbers(values(row)), *_signoff_of(signoff, row)]
        writer.writerow([_neutralise(row.label), *cells])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    writer.writerow([str(_l("Total")), *layout.numbers(values(total)), *blank])
    first, *figures = closing_row(total, previous, note)
    writer.writerow([_neutralise(first), *layout.numbers(figures), *blank])
    yield buffer.getvalue()


def write_xlsx(
    sheets: Iterable[tuple[str, str, Iterable[Figures], Signoff | None]],
    previous: Figures | None,
    stream: Any,
    title: str,
    note: Note | None = None,
) -> None:
    """One sheet per level; formatted headers, frozen panes, totals equal to the detail sums.

    A write-only workbook: each row goes to a temporary file as it arrives, so a national
    export never holds its rows in memory.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    workbook = Workbook(write_only=True)
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="DCE6F0")
    figure_formats = [{"share": "0.0", "rating": "0.00"}.get(kind, "0") for _, _, kind in COLUMNS]

    def line(sheet: Any, cells: list[Any], font: Any = None) -> list[Any]:
        formats = ["@", *figure_formats, *(["General"] * (len(cells) - len(COLUMNS) - 1))]
        out = []
        for value, number_format in zip(cells, formats, strict=True):
            cell = WriteOnlyCell(sheet, value=value)
            cell.number_format = number_format
            if font is not None:
                cell.font = font
            out.append(cell)
        return out

    for sheet_name, first_header, rows, signoff in sheets:
        sheet = workbook.create_sheet(sheet_name[:31])
        sheet.freeze_panes = "B3"
        sheet.column_dimensions["A"].width = 42
        blank = _signoff_of(signoff, None)
        for index in range(2, len(COLUMNS) + len(blank) + 2):
            sheet.column_dimensions[get_column_letter(index)].width = 14
        sheet.row_dimensions[2].height = 48
        heading = WriteOnlyCell(sheet, value=_neutralise(title))
        heading.font = Font(bold=True, size=13)
        sheet.append([heading])
        header_cells = []
        for value in headers(first_header, signoff):
            cell = WriteOnlyCell(sheet, value=value)
            cell.font, cell.fill = bold, fill
            cell.alignment = Alignment(wrap_text=True, vertical="top")
            header_cells.append(cell)
        sheet.append(header_cells)
        total = Figures("total", "")
        for row in _totalled(rows, total):
            cells = [_neutralise(row.label), *values(row), *_signoff_of(signoff, row)]
            sheet.append(line(sheet, cells))
        sheet.append(line(sheet, [str(_l("Total")), *values(total), *blank], bold))
        first, *figures = closing_row(total, previous, note)
        sheet.append(line(sheet, [_neutralise(first), *figures, *blank]))
    workbook.save(stream)


def render_pdf(html: str) -> bytes:
    import logging

    from weasyprint import HTML

    # WeasyPrint narrates every layout step at INFO; keep the application log readable.
    for name in ("weasyprint", "weasyprint.progress", "fontTools"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return HTML(string=html).write_pdf()  # type: ignore[no-any-return]
