"""A month in progress: reports open on the last finished month, count only the sessions that have
started, say up to when, and compare nothing with the month before; a period the filter cannot
give shows the filter again with the message at its field."""

from __future__ import annotations

import csv
import io
import re
import subprocess
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask_babel import force_locale, gettext
from python_calamine import CalamineWorkbook

from receptions.auth.models import Role
from receptions.extensions import db
from receptions.reports import services
from receptions.reports.exports import COLUMNS
from receptions.reports.scope import Scope
from receptions.visits.models import Visit
from receptions.visits.services import month_figures
from tests.conftest import sign_in
from tests.factories import (
    PASSWORD,
    make_district,
    make_institution,
    make_open_session,
    make_region,
    make_user,
)

ZONE = ZoneInfo("Asia/Almaty")
# The reviewer's moment: 8 December 2026, 14:00 in Almaty (09:00 UTC).
NOW = datetime(2026, 12, 8, 14, 0, tzinfo=ZONE)
AFTER_DECEMBER = datetime(2027, 1, 5, 10, 0, tzinfo=ZONE)
EN = {"Accept-Language": "en"}
IN_PROGRESS = "December 2026 is in progress: figures up to 8 December 2026, 14:00."


def _session(institution, start, *, kind="open_door", status="planned", walk_ins=0):
    """A session at `start` (local time) with `walk_ins` citizens received."""
    session = make_open_session(institution, slots=2, kind=kind)
    session.starts_at = start.astimezone(UTC)
    session.ends_at = session.starts_at + timedelta(hours=2)
    session.local_date = start.date()
    session.status = status
    db.session.flush()
    db.session.add_all(
        Visit(
            session_id=session.id,
            institution_id=institution.id,
            citizen_name="Тест",
            at=session.starts_at,
        )
        for _ in range(walk_ins)
    )
    db.session.commit()
    return session


def local(month, day, hour=10):
    return datetime(2026, month, day, hour, tzinfo=ZONE)


@pytest.fixture
def december(app):
    """A district of two schools. November is over; on 8 December, one of its open-door days
    has been held and three sessions are still to come."""
    app.config["FROZEN_NOW"] = NOW.astimezone(UTC)
    district = make_district(make_region())
    held = make_institution(district, name_en="Held School")
    waiting = make_institution(district, name_en="Waiting School")
    _session(held, local(11, 10), status="held", walk_ins=3)
    _session(waiting, local(11, 12), kind="reception", status="held", walk_ins=1)
    _session(held, local(12, 3), status="held", walk_ins=2)
    _session(held, local(12, 22))
    _session(waiting, local(12, 10), kind="reception")
    _session(waiting, local(12, 15))
    # Cancelled ahead of its day: it will not come, and is counted once its day has come.
    _session(waiting, local(12, 20), kind="reception", status="cancelled")
    yield district, held, waiting
    app.config.pop("FROZEN_NOW", None)


def _officer(client, district):
    officer = make_user(Role.district_officer, district=district)
    sign_in(client, officer.email, PASSWORD)
    return f"district:{district.id}"


def _december_page(client, district, page: str) -> str:
    """A report page of December, in English, as the district's officer."""
    scope = _officer(client, district)
    url = f"/reports/{page}?scope={scope}&month=2026-12"
    return client.get(url, headers=EN).get_data(as_text=True)


def _month_shown(html: str) -> str:
    return re.search(r'<input [^>]*id="month"[^>]*value="([^"]*)"', html).group(1)


@pytest.mark.parametrize(
    ("moment", "finished", "label"),
    [
        (NOW, "2026-11", "November 2026"),
        # 00:30 on 1 January in Almaty is still 31 December in UTC: December is over here.
        (datetime(2027, 1, 1, 0, 30, tzinfo=ZONE), "2026-12", "December 2026"),
        # 23:55 on 31 March in Almaty: March is not over yet.
        (datetime(2027, 3, 31, 23, 55, tzinfo=ZONE), "2027-02", "February 2027"),
    ],
)
def test_reports_open_on_the_last_month_finished_in_kazakhstan(
    app, client, moment, finished, label
):
    district = make_district(make_region())
    institution = make_institution(district)
    app.config["FROZEN_NOW"] = moment.astimezone(UTC)
    scope = _officer(client, district)
    for page in ("dashboard", "rankings", "topics"):
        html = client.get(f"/reports/{page}?scope={scope}", headers=EN).get_data(as_text=True)
        assert f"{label}</h1>" in html, page
        assert _month_shown(html) == finished, page
        assert "is in progress" not in html
    download = client.get(f"/reports/download?scope={scope}&format=csv")
    assert download.get_data().startswith(b"\xef\xbb\xbf")
    assert f"-{finished}.csv" in download.headers["Content-Disposition"]
    public = client.get(f"/results/institutions/{institution.id}", headers=EN)
    assert _month_shown(public.get_data(as_text=True)) == finished
    # The month in progress stays one link away.
    running = moment.strftime("%Y-%m")
    assert f"month={running}" in html
    assert client.get(f"/reports/dashboard?scope={scope}&month={running}").status_code == 200
    app.config.pop("FROZEN_NOW")


def test_a_month_in_progress_counts_only_the_sessions_that_have_started(client, december):
    district, _held, _waiting = december
    html = _december_page(client, district, "dashboard")
    assert IN_PROGRESS in html
    assert "Sessions that have not started yet are counted neither as planned nor as held" in html
    assert "(still to come: 3)" in html
    # One open-door day has come and it was held; two are still to come, none "not held".
    assert "<dd>1 / 1 <small>still to come: 2</small></dd>" in html
    rollup = services.rollup(Scope("district", district.id), "2026-12", grouping="institution")
    assert rollup.until == NOW
    total = rollup.total
    assert (total["sessions_planned"], total["sessions_held"], total.held_share) == (1, 1, 1.0)
    assert (total["sessions_cancelled"], total["sessions_not_closed"]) == (0, 0)
    assert (total["open_door_to_come"], total["reception_to_come"]) == (2, 1)
    assert total["citizens_received"] == 2
    # Part of December is not compared with the whole of November.
    assert rollup.previous_total is None and rollup.change("citizens_received") is None
    start = html.index('id="changes-caption"')
    changes = html[start : html.index("</table>", start)]
    assert "given once the month is over" in changes
    assert re.findall(r"<td>([^<]*)</td>\s*</tr>", changes) == ["—"] * 4
    # The trend marks the month that is not over.
    assert "December 2026 <small>(in progress)</small>" in html

    november = client.get(
        f"/reports/dashboard?scope=district:{district.id}&month=2026-11", headers=EN
    )
    assert "is in progress" not in november.get_data(as_text=True)
    assert "<td>+2</td>" in november.get_data(as_text=True)  # sessions held: 2 against none


def test_rankings_of_a_month_in_progress_rank_no_one_for_sessions_still_to_come(client, december):
    district, _held, _waiting = december
    html = _december_page(client, district, "rankings")
    assert IN_PROGRESS in html
    held_share = html[html.index('id="rank-held_share"') : html.index('id="rank-resolved_share"')]
    assert "Held School" in held_share and "100.0%" in held_share
    assert "Waiting School" not in held_share  # nothing of its has come yet: not "0 %"


def test_public_results_of_a_month_in_progress_count_no_day_still_ahead(client, december):
    district, _held, waiting = december
    html = client.get(f"/results/institutions/{waiting.id}?month=2026-12", headers=EN).get_data(
        as_text=True
    )
    assert IN_PROGRESS in html
    assert "have not begun yet are not counted (still to come: 2)" in html
    assert re.search(r"Open-door days held / planned</th><td>0 / 0<", html)
    assert re.search(r"Receptions held / planned</th><td>0 / 0<", html)
    district_page = client.get(
        f"/results/{district.region.code}/{district.slug}?month=2026-12", headers=EN
    ).get_data(as_text=True)
    assert re.search(r"Open-door days held / planned</th><td>1 / 1<", district_page)
    assert "(still to come: 3)" in district_page


def _csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))


def test_downloads_of_a_month_in_progress_carry_the_notice(client, december, tmp_path):
    district, _held, _waiting = december
    scope = _officer(client, district)
    query = f"scope={scope}&month=2026-12&by=institution"
    for kind in ("csv", "csv-excel"):
        rows = _csv(client.get(f"/reports/download?{query}&format={kind}", headers=EN))
        # Institutions' rows end with their sign-off ("Signed off", "Changed since sign-off").
        assert {len(row) for row in rows} == {len(COLUMNS) + 3}
        total, note = rows[-2], rows[-1]
        assert total[:3] == ["Total", "1", "1"]  # sessions planned and held to date
        assert note[0].startswith(IN_PROGRESS) and "(still to come: 3)" in note[0]
        assert not any(note[1:])
        assert "Change on the previous period" not in {row[0] for row in rows}

    path = tmp_path / "report.xlsx"
    path.write_bytes(client.get(f"/reports/download?{query}&format=xlsx", headers=EN).get_data())
    workbook = CalamineWorkbook.from_path(str(path))
    for name in workbook.sheet_names:
        sheet = workbook.get_sheet_by_name(name).to_python()
        assert IN_PROGRESS in sheet[0][0]
        assert sheet[-1][0].startswith(IN_PROGRESS)

    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(client.get(f"/reports/download?{query}&format=pdf", headers=EN).get_data())
    text = subprocess.run(
        ["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    flat = " ".join(text.split())
    assert IN_PROGRESS in flat and "Change on the previous period" not in flat

    november = _csv(
        client.get(f"/reports/download?scope={scope}&month=2026-11&format=csv", headers=EN)
    )
    assert november[-1][0] == "Change on the previous period"


def test_december_once_over_counts_every_session_and_signs_as_before(app, december):
    district, held, _waiting = december
    app.config["FROZEN_NOW"] = AFTER_DECEMBER.astimezone(UTC)
    rollup = services.rollup(Scope("district", district.id), "2026-12", grouping="institution")
    total = rollup.total
    assert rollup.until is None and rollup.previous_total is not None
    assert (total["sessions_planned"], total["sessions_held"]) == (5, 1)
    assert (total["sessions_cancelled"], total["sessions_not_closed"]) == (1, 3)
    assert total.sessions_to_come == 0
    assert rollup.change("sessions_held") == -1  # November held two
    # What a head signs once the month is over: every session of the month.
    figures = month_figures(held.id, "2026-12")
    assert (figures["sessions_planned"], figures["sessions_held"]) == (2, 1)


@pytest.mark.parametrize("page", ["dashboard", "rankings", "topics"])
def test_an_inverted_period_shows_the_filter_again_with_the_message_at_the_last_month(
    client, december, page
):
    district, _held, _waiting = december
    scope = _officer(client, district)
    response = client.get(
        f"/reports/{page}?scope={scope}&from=2026-12&to=2026-09",
        headers={"Accept-Language": "ru"},
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'lang="ru"' in html
    with force_locale("ru"):
        message = gettext("The range must not end before it starts.")
        assert gettext("The request could not be understood") not in html
    assert message != "The range must not end before it starts."
    assert f'<p class="error" id="to-error">{message}</p>' in html
    assert 'href="#to"' in html  # the error summary leads to the field
    to = re.search(r'<input [^>]*id="to"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in to and 'value="2026-09"' in to
    assert re.search(r'<input [^>]*id="from"[^>]*value="2026-12"', html)
    assert 'id="from-error"' not in html


def test_a_malformed_or_future_month_is_shown_again_at_its_field(client, december):
    district, held, _waiting = december
    scope = _officer(client, district)
    for query, field, value in (
        ("month=2026-13", "month", "2026-13"),
        ("month=2099-01", "month", "2099-01"),
        ("from=2026-09", "to", ""),
        ("from=2026-09&to=2099-01", "to", "2099-01"),
    ):
        response = client.get(f"/reports/dashboard?scope={scope}&by=institution&{query}")
        assert response.status_code == 422, query
        html = response.get_data(as_text=True)
        assert f'id="{field}-error"' in html, query
        assert re.search(rf'<input [^>]*id="{field}"[^>]*value="{value}"', html), query
        assert '<option value="institution" selected>' in html  # the rows chosen stay
    public = client.get(f"/results/institutions/{held.id}?month=2099-01", headers=EN)
    assert public.status_code == 422
    assert "Reports cannot cover a month in the future." in public.get_data(as_text=True)
    assert 'id="month-error"' in public.get_data(as_text=True)


def test_a_refused_period_for_another_district_is_still_a_404(client, december):
    district, _held, _waiting = december
    _officer(client, district)
    other = make_district(district.region)
    response = client.get(f"/reports/dashboard?scope=district:{other.id}&from=2026-12&to=2026-09")
    assert response.status_code == 404
