"""A report's PDF over several pages: no row is cut between pages, the total is printed once."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime

from receptions.auth.models import Role
from receptions.extensions import db
from receptions.reports.exports import PDF_COLUMNS
from tests.conftest import sign_in
from tests.factories import (
    PASSWORD,
    make_district,
    make_institution,
    make_open_session,
    make_region,
    make_user,
)

MONTH = "2026-09"
INSTITUTIONS = 34
# A figure of a row: a count, a share in per cent, a rating or a dash.
FIGURE = r"(?:\d[\d,.]*\s?%?|—)"


def _pages(pdf: bytes, folder) -> list[str]:
    path = folder / "report.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    return text.split("\f")[:-1]  # pdftotext ends every page with a form feed


def test_each_row_stays_on_one_page_and_the_total_closes_the_table(client, tmp_path):
    district = make_district(make_region())
    started = datetime(2026, 9, 10, 4, tzinfo=UTC)
    for n in range(INSTITUTIONS):
        # Names long enough to wrap onto three lines of their cell, marked at both ends.
        institution = make_institution(
            district,
            name_en=f"A{n:02d} Regional multidisciplinary hospital of emergency care and "
            f"rehabilitation of the health department Z{n:02d}",
        )
        session = make_open_session(
            institution, starts_in_hours=(started - datetime.now(UTC)).total_seconds() / 3600
        )
        session.status = "held"
    db.session.commit()
    officer = make_user(Role.district_officer, district=district)
    sign_in(client, officer.email, PASSWORD)

    response = client.get(
        f"/reports/download?scope=district:{district.id}&by=institution&month={MONTH}&format=pdf",
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 200
    pages = _pages(response.get_data(), tmp_path)
    assert len(pages) >= 2, "the table must run over pages for this test to mean anything"

    row_of_figures = re.compile(rf"(?:\s+{FIGURE}){{{len(PDF_COLUMNS) - 1},}}\s*$")
    seen: list[str] = []
    for number, page in enumerate(pages, start=1):
        starts = re.findall(r"\bA(\d\d)\b", page)
        ends = re.findall(r"\bZ(\d\d)\b", page)
        # A name begins and ends on the same page ...
        assert starts == ends, f"page {number}: a name is cut ({starts} / {ends})"
        # ... and its figures are on that page too: one line of figures per row (and the
        # total's on the last page).
        figures = [line for line in page.splitlines() if row_of_figures.search(line)]
        summary = 1 if number == len(pages) else 0
        assert len(figures) == len(starts) + summary, f"page {number}: figures without a name"
        seen += starts
        assert ("Total" in page) == (number == len(pages)), f"page {number}: total misplaced"
    assert sorted(seen) == [f"{n:02d}" for n in range(INSTITUTIONS)]
    assert "Change on the previous period" in pages[-1]
