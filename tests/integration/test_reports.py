"""Every figure of the roll-up equals a count made independently from the raw rows."""

from __future__ import annotations

import csv
import io
import logging
import random
import re
import subprocess
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask_babel import force_locale, gettext
from python_calamine import CalamineWorkbook
from sqlalchemy import select

from receptions.auth.models import Role, User
from receptions.booking.models import Booking, Feedback, Topic
from receptions.extensions import db
from receptions.reports import services
from receptions.reports.downloads import FORMATS
from receptions.reports.exports import COLUMNS, PDF_COLUMNS
from receptions.reports.scope import Scope
from receptions.schedules.models import ScheduledSession
from receptions.visits.models import Question, Visit
from tests.conftest import csrf_from, sign_in
from tests.factories import (
    PASSWORD,
    make_booking,
    make_district,
    make_institution,
    make_open_session,
    make_region,
    make_topic,
    make_user,
)
from tests.landmarks import read as read_landmarks
from tests.landmarks import repeated

ZONE = ZoneInfo("Asia/Almaty")
MONTH = "2026-09"
TYPES = ("school", "polyclinic", "kindergarten")


@pytest.fixture
def dataset(app):
    """Two regions, four districts, twelve institutions, a month of varied activity."""
    rng = random.Random(7)
    topics = [make_topic() for _ in range(3)]
    regions = [make_region(), make_region()]
    institutions = []
    for region in regions:
        for _ in range(2):
            district = make_district(region)
            institutions += [make_institution(district, type=t) for t in TYPES]
    month_start = datetime(2026, 9, 1, tzinfo=ZONE).astimezone(UTC)
    now = datetime.now(UTC)
    for institution in institutions:
        for n in range(rng.randrange(1, 4)):
            hours_ago = (now - month_start).total_seconds() / 3600 - 24 * (2 + 9 * n)
            session = make_open_session(
                institution,
                slots=3,
                capacity=2,
                starts_in_hours=-hours_ago,
                kind=rng.choice(["open_door", "reception"]),
            )
            session.status = rng.choice(["held", "held", "cancelled", "planned"])
            if rng.random() < 0.1:
                session.status, session.cancel_code = "cancelled", "schedule_changed"
            db.session.commit()
            for slot in session.slots:
                for _ in range(rng.randrange(0, 3)):
                    status = rng.choice(
                        ["attended", "attended", "no_show", "booked", "cancelled_by_citizen"]
                    )
                    booking = make_booking(slot, topic=rng.choice(topics), status=status)
                    if status == "attended":
                        _visit(session, booking, rng, topics)
            for _ in range(rng.randrange(0, 3)):
                _visit(session, None, rng, topics)
    # Noise outside the month must not count: 200 days before it (so never in the month before,
    # which the month-on-month figures read, whatever today's date).
    hours_before = (now - month_start).total_seconds() / 3600 + 24 * 200
    other = make_open_session(institutions[0], starts_in_hours=-hours_before)
    _visit(other, None, rng, topics)
    return regions, institutions


def _visit(session, booking, rng, topics):
    visit = Visit(
        session_id=session.id,
        institution_id=session.institution_id,
        booking_id=booking.id if booking else None,
        citizen_name="Тест",
        at=session.starts_at,
    )
    db.session.add(visit)
    db.session.flush()
    for _ in range(rng.randrange(1, 3)):
        outcome = rng.choice(["resolved", "explained", "pending", None])
        due = (
            (session.starts_at + timedelta(days=rng.choice([-400, 400]))).date()
            if outcome == "pending"
            else None
        )
        db.session.add(
            Question(
                visit_id=visit.id,
                institution_id=session.institution_id,
                topic_id=rng.choice(topics).id,
                summary="q",
                outcome=outcome,
                responsible="R" if due else "",
                due_date=due,
            )
        )
    if booking is not None and rng.random() < 0.7:
        db.session.add(
            Feedback(
                booking_id=booking.id,
                rating=rng.randrange(1, 6),
                really_resolved=rng.choice([True, False, None]),
            )
        )
    db.session.commit()


def expected(group_of, month: str = MONTH) -> dict:
    """Counts by walking the raw rows in Python: an independent check of the SQL."""
    year, number = (int(part) for part in month.split("-"))
    start = datetime(year, number, 1, tzinfo=ZONE)
    end = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=ZONE)
    today = datetime.now(ZONE).date()
    counts: dict = defaultdict(lambda: defaultdict(int))
    in_month = {}
    for session in db.session.scalars(select(ScheduledSession)):
        in_month[session.id] = start <= session.starts_at < end
        if not in_month[session.id] or session.cancel_code == "schedule_changed":
            continue
        c = counts[group_of(session.institution)]
        c["sessions_planned"] += 1
        c["sessions_held"] += session.status == "held"
        c["sessions_cancelled"] += session.status == "cancelled"
        c["sessions_not_closed"] += session.status == "planned" and session.ends_at <= datetime.now(
            UTC
        )
        c[f"{session.kind}_planned"] += 1
        c[f"{session.kind}_held"] += session.status == "held"
    for booking in db.session.scalars(select(Booking)):
        if in_month[booking.session_id]:
            c = counts[group_of(booking.institution)]
            c["citizens_booked"] += booking.status in ("booked", "attended", "no_show")
            c["no_shows"] += booking.status == "no_show"
    for visit in db.session.scalars(select(Visit)):
        if not in_month[visit.session_id]:
            continue
        c = counts[group_of(visit.session.institution)]
        c["citizens_received"] += 1
        c["walk_ins"] += visit.booking_id is None
        for question in visit.questions:
            c["questions"] += 1
            if question.outcome:
                c[question.outcome] += 1
            c["overdue"] += (
                question.outcome == "pending"
                and question.closed_at is None
                and question.due_date < today
            )
    for feedback in db.session.scalars(select(Feedback)):
        booking = db.session.get(Booking, feedback.booking_id)
        if not in_month[booking.session_id]:
            continue
        c = counts[group_of(booking.institution)]
        c["ratings"] += feedback.rating is not None
        c["rating_sum"] += feedback.rating or 0
        c["satisfied"] += (feedback.rating or 0) >= 4
        c["really_resolved_yes"] += feedback.really_resolved is True
        c["really_resolved_no"] += feedback.really_resolved is False
        staff_resolved = any(
            q.outcome == "resolved"
            for v in db.session.scalars(select(Visit).where(Visit.booking_id == booking.id))
            for q in v.questions
        )
        c["staff_resolved_citizen_no"] += feedback.really_resolved is False and staff_resolved
    return counts


GROUPERS = {
    "region": lambda i: i.district.region_id,
    "district": lambda i: i.district_id,
    "institution": lambda i: i.id,
    "institution_type": lambda i: i.type,
}


@pytest.mark.parametrize("grouping", list(GROUPERS))
def test_every_figure_equals_an_independent_count(dataset, grouping):
    rollup = services.rollup(Scope("nation"), MONTH, grouping=grouping)
    want = expected(GROUPERS[grouping])
    got = {row.key: row.counts for row in rollup.rows}
    assert set(got) == {k for k, v in want.items() if any(v.values())}
    for key, counts in want.items():
        for name in services.COUNTS:
            assert got[key][name] == counts.get(name, 0), (grouping, key, name)
    for name in services.COUNTS:
        assert rollup.total.counts[name] == sum(r.counts[name] for r in rollup.rows)


@pytest.mark.parametrize("grouping", list(GROUPERS))
def test_the_period_before_equals_an_independent_count(dataset, grouping):
    """The change on the period before is read by the rows' own statement: October's is
    September, counted again from the raw rows."""
    rollup = services.rollup(Scope("nation"), "2026-10", grouping=grouping)
    want = expected(lambda i: "nation")["nation"]
    for name in services.COUNTS:
        assert rollup.previous_total.counts[name] == want.get(name, 0), (grouping, name)
    assert rollup.previous_total.counts == services.period_total(Scope("nation"), MONTH).counts


def test_top_topics_equal_an_independent_count(dataset):
    start, end = datetime(2026, 9, 1, tzinfo=ZONE), datetime(2026, 10, 1, tzinfo=ZONE)
    counts: dict = defaultdict(int)
    for visit in db.session.scalars(select(Visit)):
        if start <= visit.session.starts_at < end:
            for question in visit.questions:
                counts[question.topic_id] += 1
    topics = {t.id: t for t in db.session.scalars(select(Topic))}
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:10]
    want = [(topics[topic_id].name, n) for topic_id, n in ranked]
    assert services.rollup(Scope("nation"), MONTH, grouping="region").top_topics == want


def test_region_scope_only_counts_its_own_institutions(dataset):
    regions, institutions = dataset
    rollup = services.rollup(Scope("region", regions[0].id), MONTH, grouping="institution")
    own = {i.id for i in institutions if i.district.region_id == regions[0].id}
    assert {row.key for row in rollup.rows} <= own
    want = expected(lambda i: i.district.region_id)[regions[0].id]
    assert rollup.total.counts["citizens_received"] == want["citizens_received"]
    typed = services.rollup(Scope("region", regions[0].id, "school"), MONTH, grouping="institution")
    assert {row.key for row in typed.rows} <= {i.id for i in institutions if i.type == "school"}


def _officer_client(client, region):
    officer = make_user(Role.region_officer, region=region)
    sign_in(client, officer.email, PASSWORD)
    return officer


def _pdf_text(pdf: bytes, folder, *options: str) -> str:
    """The text of a downloaded PDF, as pdftotext reads it."""
    path = folder / "report.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", *options, str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def test_downloads_carry_the_same_figures(client, dataset, tmp_path):
    regions, _ = dataset
    _officer_client(client, regions[0])
    scope = f"region:{regions[0].id}"
    rollup = services.rollup(Scope("region", regions[0].id), MONTH, grouping="district")

    csv_response = client.get(
        f"/reports/download?scope={scope}&month={MONTH}&format=csv",
        headers={"Accept-Language": "ru"},
    )
    body = csv_response.get_data()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][0] == "Район"  # the header is in the reader's language
    assert rows[-2][1:3] == [
        str(rollup.total["sessions_planned"]),
        str(rollup.total["sessions_held"]),
    ]
    assert int(rows[-1][1]) == rollup.change("sessions_planned")

    xlsx = client.get(f"/reports/download?scope={scope}&month={MONTH}&format=xlsx")
    path = tmp_path / "report.xlsx"
    path.write_bytes(xlsx.get_data())
    workbook = CalamineWorkbook.from_path(str(path))
    assert len(workbook.sheet_names) == 3  # districts, institutions, types
    for index, name in enumerate(workbook.sheet_names):
        data = workbook.get_sheet_by_name(name).to_python()
        header, detail, total, change = data[1], data[2:-2], data[-2], data[-1]
        assert change[11] == rollup.change("citizens_received")
        # Institutions' rows end with their sign-off.
        assert len(header) == len(COLUMNS) + 1 + (2 if index == 1 else 0)
        for column, (_field, _label, kind) in enumerate(COLUMNS, start=1):
            if kind != "count":
                continue  # shares and averages are not sums
            numbers = [row[column] for row in detail]
            assert all(isinstance(n, (int, float)) for n in numbers), (name, header[column])
            assert total[column] == sum(numbers), (name, header[column])

    pdf = client.get(
        f"/reports/download?scope={scope}&month={MONTH}&format=pdf",
        headers={"Accept-Language": "en"},
    )
    assert pdf.headers["Content-Type"] == "application/pdf"
    text = _pdf_text(pdf.get_data(), tmp_path, "-layout")
    total_line = next(line for line in text.splitlines() if line.strip().startswith("Total"))
    numbers = total_line.split()[1:]
    assert numbers[0] == str(rollup.total["sessions_planned"])
    assert numbers[1] == str(rollup.total["sessions_held"])


def test_pdf_renders_kazakh_letters(client, dataset, tmp_path):
    regions, _ = dataset
    region = regions[0]
    region.name_kk = "Әғқңөұүһі облысы"
    db.session.commit()
    _officer_client(client, region)
    pdf = client.get(
        f"/reports/download?scope=region:{region.id}&month={MONTH}&format=pdf",
        headers={"Accept-Language": "kk"},
    )
    text = _pdf_text(pdf.get_data(), tmp_path)
    assert "Әғқңөұүһі облысы" in text


def test_csv_neutralises_formula_injection(client, dataset):
    regions, institutions = dataset
    target = next(i for i in institutions if i.district.region_id == regions[0].id)
    target.name_ru = target.name_kk = target.name_en = '=HYPERLINK("http://evil")'
    db.session.commit()
    _officer_client(client, regions[0])
    body = client.get(
        f"/reports/download?scope=region:{regions[0].id}&month={MONTH}&format=csv&by=institution"
    ).get_data(as_text=True)
    assert "\n=HYPERLINK" not in body and "'=HYPERLINK" in body


def _column(field: str) -> int:
    """A figure's place in a downloaded row, after the name."""
    return 1 + [name for name, _label, _kind in COLUMNS].index(field)


# A name that needs quoting in either dialect: both separators, quotes, a line break.
ODD_NAME = '№7 «Болашақ» мектебі; "Әл-Фараби", филиал\nСолтүстік'


def _csv_district(month_before_outcomes, outcomes):
    """A district with a Cyrillic-named institution, one named like a formula, and questions
    with these outcomes in August and September."""
    district = make_district(make_region())
    institution = make_institution(district, name_kk=ODD_NAME, name_ru=ODD_NAME, name_en=ODD_NAME)
    formula = make_institution(district, name_kk="=1+1", name_ru="=1+1", name_en="=1+1")
    _questions_in(formula, MONTH, [])
    _questions_in(institution, "2026-08", month_before_outcomes)
    _questions_in(institution, MONTH, outcomes)
    return district, institution


def _csv_rows(body: bytes, delimiter: str) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf")  # UTF-8's byte-order mark: Excel reads Cyrillic
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""), delimiter=delimiter))


@pytest.mark.parametrize(
    ("language", "delimiter", "decimal"), [("kk", ";", ","), ("ru", ";", ","), ("en", ",", ".")]
)
def test_csv_for_excel_has_the_separators_of_the_readers_language(
    client, app, language, delimiter, decimal
):
    """Excel under Kazakh or Russian regional settings splits a double-clicked CSV at ";" and
    reads "33,3" as a number; under English ones at "," with "33.3". The CSV for programs keeps
    the comma and the decimal point in every language."""
    district, _ = _csv_district(
        ["resolved"] + ["explained"] * 5, ["resolved", "explained", "explained"]
    )
    _officer_client(client, district.region)
    query = f"scope=district:{district.id}&month={MONTH}&by=institution"
    headers = {"Accept-Language": language}
    page = client.get(f"/reports/dashboard?{query}", headers=headers).get_data(as_text=True)
    with force_locale(language):
        assert gettext("CSV for Excel") in page and gettext("CSV for programs") in page
        institution_header = gettext("Institution")
    assert "format=csv-excel" in page

    excel = client.get(f"/reports/download?{query}&format=csv-excel", headers=headers)
    assert excel.status_code == 200
    assert excel.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert excel.headers["Content-Disposition"].endswith(f'-{MONTH}.csv"')
    rows = _csv_rows(excel.get_data(), delimiter)
    # Split where Excel splits them; institutions' rows end with their sign-off.
    assert {len(row) for row in rows} == {len(COLUMNS) + 3}
    assert rows[0][0] == institution_header
    share, questions = _column("resolved_share"), _column("questions")
    by_name = {row[0]: row for row in rows[1:-2]}
    assert set(by_name) == {ODD_NAME, "'=1+1"}  # quoted whole; the formula shown, not run
    assert by_name[ODD_NAME][share] == f"33{decimal}3"  # 1 resolved of 3, in per cent
    assert by_name[ODD_NAME][share + 2] == f"66{decimal}7"  # explained
    assert rows[-2][share] == f"33{decimal}3"  # the total
    assert rows[-1][share] == f"16{decimal}7"  # points gained on August's 1 in 6
    assert by_name[ODD_NAME][questions] == "3"  # counts stay plain integers

    programs = client.get(f"/reports/download?{query}&format=csv", headers=headers)
    rows = _csv_rows(programs.get_data(), ",")
    assert {len(row) for row in rows} == {len(COLUMNS) + 3}
    assert rows[-2][share] == "33.3" and rows[-1][share] == "16.7"
    assert ODD_NAME in {row[0] for row in rows}
    if language == "en":
        assert programs.get_data() == excel.get_data()


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("scope=bogus", 400),
        ("scope=region:abc", 400),
        ("scope=region:²", 400),
        ("scope=region:٣", 400),
        # A period the filter form cannot give: the form again with the message (422).
        ("month=2026-13", 422),
        ("month=26-01", 422),
        ("month=٢٠٢٦-09", 422),  # Arabic-Indic digits
        ("month=2026-09%0A", 422),  # a newline after the month
        ("from=2026-08&to=2026-09%0A", 422),
        ("month=2099-01", 422),
        # A download link has no form to show again.
        ("format=csv&month=2026-13", 400),
        ("format=csv&from=2026-09&to=2026-08", 400),
        ("format=docx", 400),
        ("by=planet", 400),
        ("scope=nation", 404),
    ],
)
def test_bad_report_requests_get_a_clear_4xx(client, dataset, query, status):
    regions, _ = dataset
    _officer_client(client, regions[0])
    url = "/reports/download" if "format" in query else "/reports/dashboard"
    response = client.get(f"{url}?{query}", headers={"Accept-Language": "ru"})
    assert response.status_code == status
    assert 'lang="ru"' in response.get_data(as_text=True)


ROWS_REFUSED = "This report cannot show its rows that way. Choose one of: %(choices)s."


@pytest.mark.parametrize("language", ["kk", "ru", "en"])
def test_a_district_report_offers_and_takes_no_rows_above_the_district(client, dataset, language):
    """Grouped "by region", a district's figures were one row named after the whole region; a
    grouping above the scope is neither offered nor taken, on the page, its chart or any
    download: a 400 in the reader's language, not another grouping."""
    _, institutions = dataset
    district = institutions[0].district
    officer = make_user(Role.district_officer, district=district)
    sign_in(client, officer.email, PASSWORD)
    headers = {"Accept-Language": language}
    query = f"scope=district:{district.id}&month={MONTH}"
    with force_locale(language):
        refusal = gettext(
            ROWS_REFUSED,
            choices=", ".join([gettext("Institutions"), gettext("Institution types")]),
        )
    page = client.get(f"/reports/dashboard?{query}", headers=headers).get_data(as_text=True)
    offered = re.findall(r'<option value="([a-z_]+)"', page)
    assert offered == ["institution", "institution_type"]
    for by in ("region", "district", "planet"):
        urls = [
            f"/reports/dashboard?{query}&by={by}",
            f"/reports/dashboard?{query}&by={by}&month=2026-13",  # the refused period's page
            f"/reports/chart/planned-held.svg?{query}&by={by}",
            *(f"/reports/download?{query}&by={by}&format={kind}" for kind in FORMATS),
        ]
        for url in urls:
            response = client.get(url, headers=headers)
            assert response.status_code == 400, url
            html = response.get_data(as_text=True)
            assert f'lang="{language}"' in html and refusal in html, url
    for by in ("institution", "institution_type"):
        assert client.get(f"/reports/dashboard?{query}&by={by}").status_code == 200
        csv_rows = _csv_rows(
            client.get(f"/reports/download?{query}&by={by}&format=csv").get_data(), ","
        )
        groups = {
            (i.id if by == "institution" else i.type)
            for i in institutions
            if i.district_id == district.id
        }
        assert len(csv_rows[1:-2]) == len(groups)


def test_a_background_export_by_rows_above_the_scope_is_refused_before_it_is_queued(
    app, client, dataset, tmp_path
):
    from receptions.reports.models import ReportExport

    app.config["REPORT_EXPORT_DIR"] = str(tmp_path)
    regions, _ = dataset
    _officer_client(client, regions[0])
    six_months = f"scope=region:{regions[0].id}&from=2026-04&to={MONTH}"
    refused = client.get(f"/reports/download?{six_months}&by=region&format=xlsx")
    assert refused.status_code == 400
    assert db.session.scalars(select(ReportExport)).all() == []
    queued = client.get(f"/reports/download?{six_months}&by=district&format=xlsx")
    assert queued.status_code == 303


def test_the_cli_refuses_rows_above_the_scope(app, dataset, tmp_path):
    _, institutions = dataset
    out = tmp_path / "never.csv"
    district = institutions[0].district_id
    for by in ("region", "district"):
        result = _cli(
            app,
            "--scope",
            f"district:{district}",
            "--month",
            MONTH,
            "--by",
            by,
            "--output",
            str(out),
        )
        assert result.exit_code == 2 and "Invalid value for --by" in result.stderr
        assert not out.exists()


def test_officers_cannot_see_other_regions_and_staff_see_no_reports(client, dataset):
    regions, institutions = dataset
    _officer_client(client, regions[0])
    assert client.get(f"/reports/dashboard?scope=region:{regions[1].id}").status_code == 404
    foreign = next(i for i in institutions if i.district.region_id == regions[1].id)
    assert client.get(f"/reports/dashboard?scope=institution:{foreign.id}").status_code == 404
    ok = client.get(f"/reports/dashboard?scope=region:{regions[0].id}&month={MONTH}")
    assert ok.status_code == 200
    for page in ("rankings", "topics"):
        assert (
            client.get(f"/reports/{page}?scope=region:{regions[0].id}&month={MONTH}").status_code
            == 200
        )
    assert (
        client.get(f"/reports/chart/trend.svg?scope=region:{regions[0].id}&month={MONTH}")
        .headers["Content-Type"]
        .startswith("image/svg+xml")
    )


def _hours_to(month: str) -> float:
    """Hours from now to the start of `month` (negative: it has begun), for make_open_session."""
    year, number = (int(part) for part in month.split("-"))
    start = datetime(year, number, 1, tzinfo=ZONE).astimezone(UTC)
    return (start - datetime.now(UTC)).total_seconds() / 3600


def _district_with_visits(received: list[int]):
    district = make_district(make_region())
    hours = -_hours_to(MONTH) - 48
    institutions = []
    for n in received:
        institution = make_institution(district)
        session = make_open_session(institution, slots=1, starts_in_hours=-hours)
        session.status = "held"
        for _ in range(n):
            db.session.add(
                Visit(
                    session_id=session.id,
                    institution_id=institution.id,
                    citizen_name="Тест",
                    at=session.starts_at,
                )
            )
        db.session.commit()
        institutions.append(institution)
    return district, institutions


ROW_RE = r'<tr><th scope="row">{name}</th><td>[^<]*</td>\s*(<td colspan="2">not shown</td>|<td>(\d+)</td>)'


@pytest.mark.parametrize(
    ("received", "hidden_count"),
    [
        ([2, 7, 9, 12], 2),  # one small cell: the next smallest is hidden with it
        ([1, 2, 20, 30], 3),  # two small cells adding up to 3: a third joins them
        ([6, 8, 10], 0),  # nothing small, nothing hidden
    ],
)
def test_public_results_cannot_be_undone_by_subtraction(client, app, received, hidden_count):
    import re

    district, institutions = _district_with_visits(received)
    page = client.get(
        f"/results/{district.region.code}/{district.slug}?month={MONTH}",
        headers={"Accept-Language": "en"},
    ).get_data(as_text=True)
    total = sum(received)
    assert f"<td>{total}</td>" in page  # the district total is published
    shown, hidden = {}, []
    for institution, n in zip(institutions, received, strict=True):
        match = re.search(ROW_RE.format(name=re.escape(institution.name)), page)
        assert match, institution.name
        if match.group(2) is None:
            hidden.append(n)
        else:
            shown[institution.id] = int(match.group(2))
            assert int(match.group(2)) == n
    assert len(hidden) == hidden_count
    assert all(n >= 5 for n in shown.values())  # every small cell is hidden
    if hidden:
        # What subtraction gives is the hidden rows together: at least two, at least 5 visits.
        assert len(hidden) >= 2 and total - sum(shown.values()) == sum(hidden) >= 5
    assert "Тест" not in page  # never a name


def test_a_single_small_institution_hides_the_district_total(client, app):
    district, _ = _district_with_visits([3])
    page = client.get(
        f"/results/{district.region.code}/{district.slug}?month={MONTH}",
        headers={"Accept-Language": "en"},
    ).get_data(as_text=True)
    assert "fewer than 5" in page and "<td>3</td>" not in page


def _district_rankings(client, institutions):
    """A district of `institutions` institutions with visits, and its rankings page in English."""
    district, made = _district_with_visits(list(range(institutions)))
    _officer_client(client, district.region)
    page = client.get(
        f"/reports/rankings?scope=district:{district.id}&month={MONTH}",
        headers={"Accept-Language": "en"},
    ).get_data(as_text=True)
    return district, made, page


@pytest.mark.parametrize("institutions", [12, 21])
def test_rankings_never_list_an_institution_both_as_leader_and_outsider(client, app, institutions):
    _, made, page = _district_rankings(client, institutions)
    sections = page.split('<section aria-labelledby="rank-')[1:]
    assert len(sections) == 4
    for section in sections:
        listed = re.findall(r'<th scope="row">([^<]*)</th>', section)
        if section.startswith(("resolved_share", "satisfied_share")):
            assert listed == []  # no questions and no ratings: no share to rank
        elif institutions <= 20:  # one list, every institution once
            assert sorted(listed) == sorted(i.name_en for i in made)
            assert "From best to worst" in section and "Leaders" not in section
        else:  # ten leaders and ten outsiders, none of them twice
            assert len(listed) == len(set(listed)) == 20
            assert "Leaders" in section and "Outsiders" in section


@pytest.mark.parametrize("institutions", [12, 21])
def test_every_landmark_and_id_of_the_rankings_page_is_unique(client, app, institutions):
    """axe's landmark-unique: each ranking's table region was named by its caption alone, so
    the four measures gave four regions called "From best to worst" (or "Leaders")."""
    district, _, page = _district_rankings(client, institutions)
    landmarks, ids = read_landmarks(page)
    regions = [name for role, name in landmarks if role == "region"]
    assert all(regions), "a region without a name"
    # A ranking's table is named by its measure and its caption.
    captions = ("From best to worst",) if institutions <= 20 else ("Leaders", "Outsiders")
    assert {f"Share of sessions held {caption}" for caption in captions} <= set(regions)
    assert repeated(landmarks) == []
    assert repeated(ids) == []
    for other in ("dashboard", "topics"):
        html = client.get(f"/reports/{other}?scope=district:{district.id}&month={MONTH}")
        landmarks, ids = read_landmarks(html.get_data(as_text=True))
        assert (repeated(landmarks), repeated(ids)) == ([], []), other


def test_suppression_is_done_by_the_reporting_service():
    rows = [services.Figures(k, str(k)) for k in range(4)]
    for row, n in zip(rows, [2, 7, 9, 12], strict=True):
        row.counts["citizens_received"] = n
    total = services.Figures("total", "")
    for row in rows:
        total.add(row)
    cells = services.suppress_small_cells(rows, total, 5)
    assert [hidden for _, hidden in cells.rows] == [True, True, False, False]
    assert not cells.total_hidden


def _sign(app, institution, reason=""):
    from flask_login import login_user

    from receptions.visits import services as visit_services

    for session in db.session.scalars(
        select(ScheduledSession).where(
            ScheduledSession.institution_id == institution.id, ScheduledSession.status == "planned"
        )
    ):
        session.status = "held"
    # Every question has an outcome before a month is signed (sign_month refuses otherwise).
    for question in db.session.scalars(
        select(Question).where(
            Question.institution_id == institution.id, Question.outcome.is_(None)
        )
    ):
        question.outcome, question.closed_at = "explained", datetime.now(UTC)
    db.session.commit()
    head = db.session.scalars(
        select(User).where(User.institution_id == institution.id, User.role == Role.head.value)
    ).first() or make_user(Role.head, institution=institution)
    with app.test_request_context():
        login_user(head)
        return visit_services.sign_month(head, institution.id, MONTH, reason)


def _institution_with_pending(institutions):
    for institution in institutions:
        pending = db.session.scalars(
            select(Question)
            .join(Visit, Visit.id == Question.visit_id)
            .join(ScheduledSession, ScheduledSession.id == Visit.session_id)
            .where(
                Question.institution_id == institution.id,
                Question.outcome == "pending",
                ScheduledSession.starts_at >= datetime(2026, 9, 1, tzinfo=ZONE),
                ScheduledSession.starts_at < datetime(2026, 10, 1, tzinfo=ZONE),
            )
        ).first()
        if pending is not None:
            return institution, pending
    raise AssertionError("the dataset has no pending question in the month")


def _signed_facts(counts):
    """The figures a sign-off fixes: what is overdue or not closed, and citizens' ratings and
    answers, are read live."""
    return {name: counts[name] for name in services.SIGNED_FIGURES}


def test_signed_month_keeps_its_signed_figures_after_a_pending_item_is_closed(app, client, dataset):
    _, institutions = dataset
    institution, pending = _institution_with_pending(institutions)
    signoff = _sign(app, institution)
    region_before = services.rollup(
        Scope("region", institution.district.region_id), MONTH, grouping="district"
    ).total.counts
    # The normal flow after a sign-off: the pending item is closed, a late visit is recorded.
    pending.outcome, pending.closed_at = "resolved", datetime.now(UTC)
    session = db.session.scalars(
        select(ScheduledSession).where(
            ScheduledSession.institution_id == institution.id,
            ScheduledSession.starts_at >= datetime(2026, 9, 1, tzinfo=ZONE),
        )
    ).first()
    _visit(session, None, random.Random(1), [db.session.get(Topic, pending.topic_id)])

    official = services.rollup(Scope("institution", institution.id), MONTH, grouping="institution")
    # Exactly what the head signed.
    assert _signed_facts(official.total.counts) == _signed_facts(signoff.figures)
    assert official.rows[0].signed and official.rows[0].changed_since_signoff
    live = services.rollup(
        Scope("institution", institution.id), MONTH, grouping="institution", live=True
    )
    assert live.total["resolved"] >= signoff.figures["resolved"] + 1
    assert live.total["citizens_received"] == signoff.figures["citizens_received"] + 1
    # Every level above adds up the signed figures, not today's rows.
    region_after = services.rollup(
        Scope("region", institution.district.region_id), MONTH, grouping="district"
    ).total.counts
    assert _signed_facts(region_after) == _signed_facts(region_before)
    nation = services.rollup(Scope("nation"), MONTH, grouping="institution")
    row = next(r for r in nation.rows if r.key == institution.id)
    assert _signed_facts(row.counts) == _signed_facts(signoff.figures)
    for name in services.COUNTS:
        assert nation.total[name] == sum(r[name] for r in nation.rows)

    # The dashboard says so.
    _officer_client(client, institution.district.region)
    page = client.get(
        f"/reports/dashboard?scope=district:{institution.district_id}&month={MONTH}",
        headers={"Accept-Language": "en"},
    ).get_data(as_text=True)
    assert "changed since sign-off" in page

    # A correction is a new version, and the reports follow the latest one.
    corrected = _sign(app, institution, reason="Late visit recorded")
    assert corrected.version == 2
    assert corrected.figures["citizens_received"] == signoff.figures["citizens_received"] + 1
    again = services.rollup(Scope("institution", institution.id), MONTH, grouping="institution")
    assert again.total.counts == corrected.figures
    assert not again.rows[0].changed_since_signoff


def _signed_with_a_rated_visit(app):
    """An institution whose month had one held session, one booked citizen received with a
    pending question and not yet rated, signed off."""
    institution = make_institution(make_district(make_region()))
    session = make_open_session(institution, slots=1, starts_in_hours=_hours_to(MONTH) + 48)
    session.status = "held"
    booking = make_booking(session.slots[0], status="attended")
    (question,) = _visit_raising(session, make_topic(), ["pending"], booking)
    return institution, booking, question, _sign(app, institution)


def _signed_month_of_nothing(app):
    """An institution that held nothing in the month and signed that off."""
    institution = make_institution(make_district(make_region()))
    return institution, None, None, _sign(app, institution)


def _rated(booking, _question):
    db.session.add(Feedback(booking_id=booking.id, rating=5, comment=""))


def _answered_really_resolved(booking, _question):
    db.session.add(
        Feedback(
            booking_id=booking.id,
            comment="",
            really_resolved=False,
            really_resolved_at=datetime.now(UTC),
        )
    )


def _closed(_booking, question):
    question.outcome, question.closed_at = "resolved", datetime.now(UTC)


@pytest.mark.parametrize(
    ("month", "change", "changed"),
    [
        (_signed_with_a_rated_visit, None, False),
        (_signed_with_a_rated_visit, _rated, False),
        (_signed_with_a_rated_visit, _answered_really_resolved, False),
        (_signed_with_a_rated_visit, _closed, True),
        (_signed_month_of_nothing, None, False),
    ],
    ids=["no change", "rating only", "really-resolved answer only", "outcome", "empty month"],
)
def test_the_dashboard_flags_a_signed_month_exactly_when_the_head_is_offered_a_correction(
    app, client, month, change, changed
):
    """One definition of the signed figures: citizens' ratings and answers come after the month
    and are not the head's to sign, so they neither flag the month nor call for a correction."""
    institution, booking, question, signoff = month(app)
    if change is not None:
        change(booking, question)
        db.session.commit()
    head = db.session.scalars(
        select(User).where(User.institution_id == institution.id, User.role == Role.head.value)
    ).one()
    sign_in(client, head.email, PASSWORD)
    page = client.get(
        f"/staff/institutions/{institution.id}/months/{MONTH}", headers={"Accept-Language": "en"}
    ).get_data(as_text=True)
    assert ("Sign a corrected version" in page) is changed
    assert ("The figures have not changed since they were signed." in page) is not changed
    client.post("/auth/sign-out", data={"csrf_token": csrf_from(page)})

    report = services.rollup(Scope("institution", institution.id), MONTH, grouping="institution")
    assert report.rows[0].signed and report.rows[0].changed_since_signoff is changed
    _officer_client(client, institution.district.region)
    dashboard = client.get(
        f"/reports/dashboard?scope=district:{institution.district_id}&month={MONTH}",
        headers={"Accept-Language": "en"},
    ).get_data(as_text=True)
    assert ("changed since sign-off" in dashboard) is changed
    # A late rating or answer counts in the reports as it arrives; the rest is as signed.
    live = services.rollup(
        Scope("institution", institution.id), MONTH, grouping="institution", live=True
    )
    for name in services.COUNTS:
        expected = (
            live.total[name] if name not in services.SIGNED_FIGURES else signoff.figures[name]
        )
        assert report.total[name] == expected, name


def _district_with_signoffs(app):
    """Three institutions of one district, each with a pending question in the month: one signed,
    corrected (version 2) and unchanged since; one signed and changed since (the question closed);
    one never signed."""
    district = make_district(make_region())
    corrected, changed, unsigned = (
        make_institution(district, name_kk=name, name_ru=name, name_en=name)
        for name in ("Corrected", "Changed", "Unsigned")
    )
    pending = {}
    for institution in (corrected, changed, unsigned):
        session = make_open_session(institution, slots=1, starts_in_hours=_hours_to(MONTH) + 48)
        session.status = "held"
        (pending[institution.id],) = _visit_raising(session, make_topic(), ["pending"])
    for institution in (corrected, changed):
        _sign(app, institution)
        _closed(None, pending[institution.id])
        db.session.commit()
    _sign(app, corrected, reason="The question was resolved")
    return district, {"Corrected": (2, False), "Changed": (1, True), "Unsigned": None}


def _signoff_columns(rows, language, signed):
    """The header of a download names the two sign-off columns last, and each institution's row
    has its signed version and whether it changed since (empty where it is not signed)."""
    with force_locale(language):
        assert rows[0][-2:] == [gettext("Signed off"), gettext("Changed since sign-off")]
        words = {True: gettext("yes"), False: gettext("no")}
    assert rows[0][1 : len(COLUMNS) + 1] == [str(label) for _, label, _ in COLUMNS]
    by_name = {row[0]: row[-2:] for row in rows[1:-2]}
    assert by_name == {
        name: ["", ""] if state is None else [str(state[0]), words[state[1]]]
        for name, state in signed.items()
    }
    assert rows[-2][-2:] == rows[-1][-2:] == ["", ""]  # the total and the change


@pytest.mark.parametrize("language", ["kk", "ru", "en"])
def test_downloads_by_institution_say_whether_each_is_signed_off_and_changed_since(
    app, client, tmp_path, language
):
    """The dashboard's "Signed off" column, in every download whose rows are institutions: the
    version the figures are served from, and whether they changed since, as the dashboard says."""
    district, signed = _district_with_signoffs(app)
    _officer_client(client, district.region)
    headers = {"Accept-Language": language}
    query = f"scope=district:{district.id}&month={MONTH}&by=institution"
    dashboard = client.get(f"/reports/dashboard?{query}", headers=headers)
    with force_locale(language):
        flag = gettext("changed since sign-off")
    assert dashboard.get_data(as_text=True).count(flag) == 1  # the same one flagged

    for kind, delimiter in (("csv", ","), ("csv-excel", "," if language == "en" else ";")):
        body = client.get(f"/reports/download?{query}&format={kind}", headers=headers).get_data()
        rows = _csv_rows(body, delimiter)
        assert {len(row) for row in rows} == {len(COLUMNS) + 3}
        _signoff_columns(rows, language, signed)

    xlsx = client.get(f"/reports/download?{query}&format=xlsx", headers=headers)
    (tmp_path / "report.xlsx").write_bytes(xlsx.get_data())
    book = CalamineWorkbook.from_path(str(tmp_path / "report.xlsx"))
    institutions_sheet, types_sheet = (
        book.get_sheet_by_name(n).to_python() for n in book.sheet_names
    )
    cells = [
        [str(int(c)) if isinstance(c, float) else str(c) for c in row]
        for row in institutions_sheet[1:]
    ]
    _signoff_columns(cells, language, signed)
    assert {len(row) for row in types_sheet[1:]} == {len(COLUMNS) + 1}  # types are not signed

    pdf = client.get(f"/reports/download?{query}&format=pdf", headers=headers)
    lines = _pdf_text(pdf.get_data(), tmp_path, "-layout").splitlines()
    with force_locale(language):
        words = {True: gettext("yes"), False: gettext("no")}
    for name, state in signed.items():
        ending = next(line for line in lines if line.strip().startswith(name)).split()[-2:]
        if state is None:
            assert ending[-1] not in words.values(), ending
        else:
            assert ending == [str(state[0]), words[state[1]]]

    # Rows that are not institutions keep the columns they had.
    by_type = client.get(
        f"/reports/download?scope=district:{district.id}&month={MONTH}&by=institution_type&format=csv"
    )
    assert {len(row) for row in _csv_rows(by_type.get_data(), ",")} == {len(COLUMNS) + 1}


def test_a_range_names_the_signed_version_of_each_signed_month(app, client):
    district, _ = _district_with_signoffs(app)
    _officer_client(client, district.region)
    body = client.get(
        f"/reports/download?scope=district:{district.id}&from=2026-08&to={MONTH}"
        "&by=institution&format=csv",
        headers={"Accept-Language": "en"},
    ).get_data()
    versions = {row[0]: row[-2] for row in _csv_rows(body, ",")[1:-2]}
    assert versions == {"Corrected": f"{MONTH}: 2", "Changed": f"{MONTH}: 1", "Unsigned": ""}


def _late_questions(institution, topic, count):
    """A visit recorded after sign-off in the institution's first session of the month."""
    session = db.session.scalars(
        select(ScheduledSession)
        .where(
            ScheduledSession.institution_id == institution.id,
            ScheduledSession.starts_at >= datetime(2026, 9, 1, tzinfo=ZONE),
        )
        .order_by(ScheduledSession.starts_at)
    ).first()
    _visit_raising(session, topic, ["explained"] * count)


def test_a_signed_months_top_topics_are_the_signed_ones(app, dataset):
    """Top topics stand beside the signed totals: a signed month's questions count by topic as
    they were signed, so that the topics add up to the questions the head filed."""
    _, institutions = dataset
    institution, _ = _institution_with_pending(institutions)
    scope = Scope("institution", institution.id)
    nation_at_signing = services.rollup(Scope("nation"), MONTH, live=True).top_topics
    signoff = _sign(app, institution)
    signed_topics = services.rollup(scope, MONTH, grouping="institution").top_topics
    assert sum(n for _, n in signed_topics) == signoff.figures["questions"]
    least = next(t for t in db.session.scalars(select(Topic)) if t.name == signed_topics[-1][0])
    _late_questions(institution, least, 5)

    official = services.rollup(scope, MONTH, grouping="institution")
    assert official.total["questions"] == signoff.figures["questions"]
    assert official.top_topics == signed_topics
    assert services.rollup(Scope("nation"), MONTH).top_topics == nation_at_signing
    live = services.rollup(scope, MONTH, grouping="institution", live=True)
    assert live.top_topics[0] == (least.name, dict(signed_topics)[least.name] + 5)
    assert sum(n for _, n in live.top_topics) == live.total["questions"]

    # A correction signs the new topics too.
    _sign(app, institution, reason="Late visit recorded")
    assert services.rollup(scope, MONTH, grouping="institution").top_topics == live.top_topics


def test_a_month_signed_before_topics_were_kept_shows_todays_topics(app, dataset):
    """A sign-off made before the migration that added topics has none: its month's topics are
    read from today's rows (what was on which topic when it was signed is not known)."""
    _, institutions = dataset
    institution, _ = _institution_with_pending(institutions)
    scope = Scope("institution", institution.id)
    signoff = _sign(app, institution)
    signoff.topics_signed = False
    signoff.topics.clear()
    db.session.commit()
    topic = db.session.scalars(select(Topic)).first()
    _late_questions(institution, topic, 5)

    official = services.rollup(scope, MONTH, grouping="institution")
    assert official.total["questions"] == signoff.figures["questions"]
    assert official.top_topics == services.rollup(scope, MONTH, live=True).top_topics
    assert dict(official.top_topics)[topic.name] >= 5


def test_a_signed_month_shows_what_became_overdue_and_what_was_reopened_after_sign_off(app, client):
    """Overdue and not closed are states of today, not facts the head signed: a signed month
    takes them from the live rows, as the follow-up and close-out pages do."""
    from receptions.visits import services as visit_services

    district, (institution,) = _district_with_visits([1])
    second = make_open_session(institution, slots=1, starts_in_hours=_hours_to(MONTH) + 72)
    second.status, second.closed_at = "held", datetime.now(UTC)
    visit = db.session.scalars(select(Visit)).one()
    due = datetime.now(ZONE).date() + timedelta(days=10)
    db.session.add(
        Question(
            visit_id=visit.id,
            institution_id=institution.id,
            topic_id=make_topic().id,
            summary="q",
            outcome="pending",
            responsible="R",
            due_date=due,
        )
    )
    db.session.commit()
    signoff = _sign(app, institution)
    assert signoff.figures["overdue"] == 0 and signoff.figures["sessions_not_closed"] == 0
    head = db.session.scalars(select(User).where(User.role == Role.head.value)).one()
    with app.test_request_context():
        visit_services.reopen_session(head, second.id, "Бір азамат тіркелмей қалды")
    app.config["FROZEN_NOW"] = datetime.now(UTC) + timedelta(days=11)  # the due date has passed

    scope = Scope("institution", institution.id)
    report = services.rollup(scope, MONTH, grouping="institution")
    assert report.rows[0].signed
    assert report.total["overdue"] == 1 and report.total["sessions_not_closed"] == 1
    assert report.total["sessions_held"] == signoff.figures["sessions_held"] == 2
    assert report.total["pending"] == signoff.figures["pending"] == 1
    district_total = services.rollup(Scope("district", district.id), MONTH).total
    assert district_total["overdue"] == 1 and district_total["sessions_not_closed"] == 1

    _officer_client(client, district.region)
    page = client.get(
        f"/reports/rankings?scope=district:{district.id}&month={MONTH}",
        headers={"Accept-Language": "en"},
    ).get_data(as_text=True)
    overdue = page[page.index('id="rank-overdue"') :]
    assert f'<th scope="row">{institution.name_en}</th><td>1</td>' in overdue


def test_xlsx_headers_follow_the_officers_language_and_panes_are_frozen(client, dataset, tmp_path):
    from openpyxl import load_workbook

    regions, _ = dataset
    _officer_client(client, regions[0])
    xlsx = client.get(
        f"/reports/download?scope=region:{regions[0].id}&month={MONTH}&format=xlsx",
        headers={"Accept-Language": "kk"},
    )
    assert xlsx.status_code == 200
    path = tmp_path / "kk.xlsx"
    path.write_bytes(xlsx.get_data())
    workbook = load_workbook(path)
    assert workbook.sheetnames[0] == "Аудан"
    for sheet in workbook.worksheets:
        assert sheet.freeze_panes == "B3"
        assert sheet["A2"].font.bold
        assert [c.value for c in sheet[2]][1:3] == [
            "Жоспарланған сеанстар",
            "Өткізілген сеанстар",
        ]
        assert sheet.cell(sheet.max_row - 1, 1).value == "Барлығы"
    english = client.get(
        f"/reports/download?scope=region:{regions[0].id}&month={MONTH}&format=xlsx",
        headers={"Accept-Language": "en"},
    )
    (tmp_path / "en.xlsx").write_bytes(english.get_data())
    assert load_workbook(tmp_path / "en.xlsx")["District"]["B2"].value == "Sessions planned"


def _cli(app, *args):
    return app.test_cli_runner().invoke(args=["reports", "monthly", *args])


def test_cli_writes_a_month_and_a_range(app, dataset, tmp_path):
    regions, _ = dataset
    out = tmp_path / "region.csv"
    result = _cli(app, "--scope", f"region:{regions[0].id}", "--month", MONTH, "--output", str(out))
    assert result.exit_code == 0, result.output + result.stderr
    rows = list(csv.reader(io.StringIO(out.read_text("utf-8-sig"))))
    region = services.rollup(Scope("region", regions[0].id), MONTH, grouping="district")
    assert rows[-2][1] == str(region.total["sessions_planned"])
    assert "Report" in result.stderr  # the progress bar

    ranged = tmp_path / "range.xlsx"
    result = _cli(
        app,
        "--scope",
        "nation",
        "--month-from",
        "2026-08",
        "--month-to",
        MONTH,
        "--format",
        "xlsx",
        "--output",
        str(ranged),
    )
    assert result.exit_code == 0, result.output + result.stderr
    book = CalamineWorkbook.from_path(str(ranged))
    data = book.get_sheet_by_name(book.sheet_names[0]).to_python()  # regions
    two_months = services.rollup(Scope("nation"), "2026-08", grouping="region", months=2)
    assert data[-2][11] == two_months.total["citizens_received"]
    assert (
        two_months.total["citizens_received"]
        == services.period_total(Scope("nation"), MONTH)["citizens_received"]
        + services.period_total(Scope("nation"), "2026-08")["citizens_received"]
    )


def test_cli_writes_the_csv_for_excel_in_the_language_asked(app, tmp_path):
    district, _ = _csv_district(["explained"], ["resolved", "explained", "explained"])
    written = {}
    for language in ("ru", None):
        out = tmp_path / f"{language}.csv"
        args = ["--scope", f"district:{district.id}", "--month", MONTH, "--format", "csv-excel"]
        result = _cli(
            app, *args, *(["--language", language] if language else []), "--output", str(out)
        )
        assert result.exit_code == 0, result.output + result.stderr
        written[language] = _csv_rows(out.read_bytes(), ";")
    assert written["ru"][0][0] == "Организация"
    assert written[None][0][0] == "Ұйым"  # the site's default language, Kazakh
    for rows in written.values():
        assert rows[-2][_column("resolved_share")] == "33,3"
        assert ODD_NAME in {row[0] for row in rows}


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--scope", "region:99999", "--month", MONTH], "--scope"),
        (["--scope", "institution:99999", "--month", MONTH], "--scope"),
        (["--scope", "planet:1", "--month", MONTH], "--scope"),
        (["--month", "2026-13"], "--month"),
        (["--month", "Sept"], "--month"),
        (["--month", "2099-01"], "--month"),
        (["--month-from", MONTH, "--month-to", "2026-08"], "--month"),
        (["--month-from", MONTH], "--month"),
        ([], "--month"),
        (["--month", MONTH, "--by", "planet"], "--by"),
    ],
)
def test_cli_refuses_bad_input_and_writes_nothing(app, dataset, tmp_path, args, option):
    out = tmp_path / "never.csv"
    result = _cli(app, *args, "--output", str(out))
    assert result.exit_code == 2  # click's usage error, never a silent empty file
    assert f"Invalid value for {option}" in result.stderr
    assert not out.exists()


def test_a_range_of_months_on_the_dashboard_and_in_downloads(client, dataset):
    regions, _ = dataset
    _officer_client(client, regions[0])
    scope = Scope("region", regions[0].id)
    page = client.get(
        f"/reports/dashboard?scope={scope.key}&from=2026-08&to={MONTH}",
        headers={"Accept-Language": "en"},
    )
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "August 2026 – September 2026" in html  # the months in words, not as 2026-08
    assert f"from=2026-08&amp;to={MONTH}" in html  # downloads and charts keep the range
    body = client.get(
        f"/reports/download?scope={scope.key}&from=2026-08&to={MONTH}&format=csv"
    ).get_data()
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    both = services.rollup(scope, "2026-08", grouping="district", months=2)
    assert rows[-2][11] == str(both.total["citizens_received"])
    for query in (
        "from=2026-09&to=2026-08",
        "from=2026-08",
        "from=2026-08&to=2099-01",
        f"from=2020-01&to={MONTH}",
    ):
        assert client.get(f"/reports/dashboard?scope={scope.key}&{query}").status_code == 422


def test_dashboard_shows_change_for_the_main_figures_and_outcome_shares(client, dataset):
    regions, _ = dataset
    _officer_client(client, regions[0])
    scope = Scope("region", regions[0].id)
    html = client.get(
        f"/reports/dashboard?scope={scope.key}&month={MONTH}", headers={"Accept-Language": "en"}
    ).get_data(as_text=True)
    rollup = services.rollup(scope, MONTH)
    assert rollup.previous_total["citizens_received"] == 0  # nothing happened in August
    assert f"<td>{rollup.total['sessions_held']:+d}</td>" in html
    assert f"<td>{rollup.total['citizens_received']:+d}</td>" in html
    assert "Share satisfied (4–5)" in html  # its change is "—": August has no ratings
    assert rollup.change("resolved_share") is None
    assert "Outcome shares (table)" in html
    assert "/reports/chart/outcomes.svg" in html
    chart = client.get(f"/reports/chart/outcomes.svg?scope={scope.key}&month={MONTH}")
    assert chart.status_code == 200 and b"<svg" in chart.get_data()
    policy = chart.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "style-src 'unsafe-inline'" in policy
    assert "script-src 'self'" in policy
    assert chart.headers["X-Frame-Options"] == "DENY"
    assert chart.headers["X-Content-Type-Options"] == "nosniff"


def _questions_in(institution, month, outcomes):
    """A held session on the 3rd of `month` with one visit that raised a question per outcome."""
    session = make_open_session(institution, slots=1, starts_in_hours=_hours_to(month) + 48)
    session.status = "held"
    _visit_raising(session, make_topic(), outcomes)


def _visit_raising(session, topic, outcomes, booking=None):
    """A visit at `session` (a walk-in, or `booking`'s) that raised a question on `topic` per
    outcome; a pending one is due in ten days."""
    visit = Visit(
        session_id=session.id,
        institution_id=session.institution_id,
        booking_id=booking.id if booking else None,
        citizen_name="Тест",
        at=session.starts_at,
    )
    db.session.add(visit)
    db.session.flush()
    questions = [
        Question(
            visit_id=visit.id,
            institution_id=session.institution_id,
            topic_id=topic.id,
            summary="q",
            outcome=outcome,
            responsible="R" if outcome == "pending" else "",
            due_date=datetime.now(ZONE).date() + timedelta(days=10)
            if outcome == "pending"
            else None,
        )
        for outcome in outcomes
    ]
    db.session.add_all(questions)
    db.session.commit()
    return questions


def test_the_change_of_a_share_is_the_same_on_the_page_and_in_every_download(client, app, tmp_path):
    """33.3 % against 16.7 % is +16.7 points (1/3 - 1/6), not 33.3 - 16.7 = 16.6."""
    import re

    institution = make_institution(make_district(make_region()))
    _questions_in(institution, "2026-08", ["resolved"] + ["explained"] * 5)
    _questions_in(institution, MONTH, ["resolved", "explained", "explained"])
    _officer_client(client, institution.district.region)
    query = f"scope=district:{institution.district_id}&month={MONTH}"
    page = client.get(f"/reports/dashboard?{query}", headers={"Accept-Language": "en"})
    shown = re.search(
        r'<th scope="row">Share resolved</th>\s*<td>[^<]*</td><td>([^<]*) pp</td>',
        page.get_data(as_text=True),
    )
    assert shown and shown.group(1) == "+16.7"
    column = 1 + [name for name, _label, _kind in COLUMNS].index("resolved_share")

    body = client.get(f"/reports/download?{query}&format=csv").get_data().decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(body)))[-1][column] == "16.7"
    (tmp_path / "report.xlsx").write_bytes(
        client.get(f"/reports/download?{query}&format=xlsx").get_data()
    )
    book = CalamineWorkbook.from_path(str(tmp_path / "report.xlsx"))
    for name in book.sheet_names:
        assert book.get_sheet_by_name(name).to_python()[-1][column] == 16.7, name
    pdf = client.get(
        f"/reports/download?{query}&format=pdf", headers={"Accept-Language": "en"}
    ).get_data()
    text = _pdf_text(pdf, tmp_path, "-layout")
    # The last line of figures is the change (its label wraps onto lines of its own), each
    # figure signed and a share's in percentage points; no cell is empty, so the share's column
    # is its place among the figures.
    lines = [line for line in text.splitlines() if re.fullmatch(r"[-+0-9. p—]+", line.strip())]
    change = re.findall(r"[-+][0-9.]+(?: pp)?|—", lines[-1])
    pdf_fields = [name for name, _label, _kind in PDF_COLUMNS]
    assert len(change) == len(pdf_fields)
    assert change[pdf_fields.index("resolved_share")] == "+16.7 pp"
    # Shares in per cent, as on the page; in Kazakh with its decimal comma and words.
    assert re.search(r"\b33\.3 ?%", text)
    kazakh = client.get(
        f"/reports/download?{query}&format=pdf", headers={"Accept-Language": "kk"}
    ).get_data()
    with force_locale("kk"):
        assert f"+16,7 {gettext('pp')}" in _pdf_text(kazakh, tmp_path, "-layout")


def _admin_client(client):
    admin = make_user(Role.admin)
    sign_in(client, admin.email, PASSWORD)
    return admin


def test_a_national_export_runs_in_the_background_for_its_officer_only(
    app, client, dataset, tmp_path
):
    from receptions.reports.models import ReportExport

    app.config["REPORT_EXPORT_DIR"] = str(tmp_path)
    _admin_client(client)
    response = client.get(
        f"/reports/download?scope=nation&month={MONTH}&format=xlsx",
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 303
    progress_url = response.headers["Location"]
    page = client.get(progress_url, headers={"Accept-Language": "en"})
    assert "being prepared: 0% done" in page.get_data(as_text=True)
    assert page.headers["Refresh"] == "3"

    # Without Redis, the cron command runs what is queued (any instance may run it).
    result = app.test_cli_runner().invoke(args=["reports", "exports"])
    assert result.exit_code == 0 and "exports run: 1" in result.output
    job = db.session.scalars(select(ReportExport)).one()
    db.session.refresh(job)
    assert job.status == "done" and job.done_rows == job.total_rows > 0
    page = client.get(progress_url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "The report is ready." in page
    file_url = f"{progress_url}/file"
    assert file_url in page
    download = client.get(file_url)
    assert download.status_code == 200
    (tmp_path / "got.xlsx").write_bytes(download.get_data())
    book = CalamineWorkbook.from_path(str(tmp_path / "got.xlsx"))
    assert book.sheet_names == ["Region", "District", "Institution", "Institution type"]
    regions_sheet = book.get_sheet_by_name("Region").to_python()
    nation = services.rollup(Scope("nation"), MONTH, grouping="region")
    assert regions_sheet[-2][11] == nation.total["citizens_received"]
    assert regions_sheet[-2][1] == nation.total["sessions_planned"]

    # Another officer cannot follow or fetch it, even with the link.
    client.post(
        "/auth/sign-out",
        data={"csrf_token": csrf_from(client.get("/reports/dashboard").get_data(as_text=True))},
    )
    _admin_client(client)
    assert client.get(progress_url).status_code == 404
    assert client.get(file_url).status_code == 404


# The months as a date names them ("9 декабря"): the app's own style, never abbreviated.
MONTHS_IN_DATES = {
    "kk": "қаңтар ақпан наурыз сәуір мамыр маусым шілде тамыз қыркүйек қазан қараша желтоқсан",
    "ru": "января февраля марта апреля мая июня июля августа сентября октября ноября декабря",
}


@pytest.mark.parametrize("language", ["kk", "ru"])
def test_the_ready_export_says_until_when_in_the_apps_date_style(
    app, client, dataset, tmp_path, language
):
    """ "до 9 дек. 2026 г., 18:36:00" where every other page writes "9 декабря 2026, 18:36"."""
    from receptions.reports import jobs
    from receptions.reports.models import ReportExport

    app.config["REPORT_EXPORT_DIR"] = str(tmp_path)
    _admin_client(client)
    headers = {"Accept-Language": language}
    response = client.get(
        f"/reports/download?scope=nation&month={MONTH}&format=csv", headers=headers
    )
    assert jobs.run_pending() == 1
    job = db.session.scalars(select(ReportExport)).one()
    page = client.get(response.headers["Location"], headers=headers).get_data(as_text=True)
    until = job.expires_at.astimezone(ZONE)
    month = MONTHS_IN_DATES[language].split()[until.month - 1]
    with force_locale(language):
        sentence = gettext(
            "The link works for you only, until %(time)s.",
            time=f"{until.day} {month} {until.year}, {until:%H:%M}",
        )
    assert sentence in page


def test_an_expired_export_link_is_gone_and_its_file_removed(app, client, dataset, tmp_path):
    from receptions.reports import jobs
    from receptions.reports.models import ReportExport

    app.config["REPORT_EXPORT_DIR"] = str(tmp_path)
    _admin_client(client)
    response = client.get(f"/reports/download?scope=nation&month={MONTH}&format=csv")
    jobs.run_pending()
    job = db.session.scalars(select(ReportExport)).one()
    assert (tmp_path / f"{job.token}.csv").exists()
    job.expires_at = datetime.now(UTC) - timedelta(minutes=1)
    db.session.commit()
    page = client.get(response.headers["Location"], headers={"Accept-Language": "en"})
    assert page.status_code == 404 and "has expired" in page.get_data(as_text=True)
    assert client.get(response.headers["Location"] + "/file").status_code == 404
    assert jobs.purge_expired() == 1
    assert not (tmp_path / f"{job.token}.csv").exists()


def test_a_background_csv_for_excel_has_the_separators_of_the_officers_language(
    app, client, tmp_path
):
    """A national export runs outside the request, perhaps in another process: its CSV for
    Excel still has the separators of the language the officer asked in."""
    from receptions.reports import jobs
    from receptions.reports.models import ReportExport

    app.config["REPORT_EXPORT_DIR"] = str(tmp_path)
    district, _ = _csv_district(["explained"], ["resolved", "explained", "explained"])
    region_name = district.region.name_ru
    _admin_client(client)
    response = client.get(
        f"/reports/download?scope=nation&month={MONTH}&format=csv-excel",
        headers={"Accept-Language": "ru"},
    )
    assert response.status_code == 303
    assert jobs.run_pending() == 1
    job = db.session.scalars(select(ReportExport)).one()
    db.session.refresh(job)
    assert (job.status, job.kind) == ("done", "csv-excel")
    download = client.get(f"{response.headers['Location']}/file")
    assert download.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert f"filename=ashyq-esik-nation-{MONTH}.csv" in download.headers["Content-Disposition"]
    rows = _csv_rows(download.get_data(), ";")
    assert {len(row) for row in rows} == {len(COLUMNS) + 1}
    assert rows[0][0] == "Область"
    region_row = next(row for row in rows if row[0] == region_name)
    assert region_row[_column("resolved_share")] == "33,3"
    assert region_row[_column("explained_share")] == "66,7"


def test_with_redis_an_rq_worker_prepares_the_export(
    app, client, dataset, db_url, tmp_path, monkeypatch, own_rq_queue
):
    from rq import SimpleWorker

    from receptions.reports import jobs
    from receptions.reports.models import ReportExport

    redis_url, queue = own_rq_queue(jobs, "EXPORTS")
    app.config["REDIS_URL"] = redis_url
    app.config["REPORT_EXPORT_DIR"] = str(tmp_path)
    monkeypatch.setenv("ASHYQ_ENV", "testing")
    monkeypatch.setenv("DATABASE_URL", db_url)
    _admin_client(client)
    response = client.get(
        f"/reports/download?scope=nation&month={MONTH}&format=csv",
        headers={"Accept-Language": "ru"},
    )
    assert response.status_code == 303 and queue.count == 1
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    db.session.rollback()
    job = db.session.scalars(select(ReportExport)).one()
    assert job.status == "done"
    rows = list(csv.reader(io.StringIO((tmp_path / f"{job.token}.csv").read_text("utf-8-sig"))))
    assert rows[0][0] == "Область"  # the officer's language, though a worker wrote it
    nation = services.rollup(Scope("nation"), MONTH, grouping="region")
    assert rows[-2][11] == str(nation.total["citizens_received"])


def test_with_redis_down_the_export_waits_for_the_cron(app, client, dataset, tmp_path, caplog):
    """Redis unreachable: the officer still gets the progress page, and the job, left queued,
    is written by `flask reports exports`."""
    from receptions.reports.models import ReportExport

    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    app.config["REPORT_EXPORT_DIR"] = str(tmp_path)
    _admin_client(client)
    with caplog.at_level(logging.WARNING, logger="receptions.jobs"):
        response = client.get(f"/reports/download?scope=nation&month={MONTH}&format=csv")
    assert response.status_code == 303
    assert client.get(response.headers["Location"]).status_code == 200
    job = db.session.scalars(select(ReportExport)).one()
    assert job.status == "queued"
    assert f"could not enqueue report export {job.id}" in caplog.text
    result = app.test_cli_runner().invoke(args=["reports", "exports"])
    assert result.exit_code == 0 and "exports run: 1" in result.output
    db.session.refresh(job)
    assert job.status == "done" and (tmp_path / f"{job.token}.csv").exists()
    assert client.get(f"{response.headers['Location']}/file").status_code == 200


def test_the_institution_page_links_its_public_results(client, app):
    institution = make_institution()
    page = client.get(f"/institutions/{institution.id}", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    link = f'href="/results/institutions/{institution.id}"'
    assert link in page.get_data(as_text=True)
    assert client.get(f"/results/institutions/{institution.id}").status_code == 200


def test_rankings_give_equal_figures_the_same_place():
    from receptions.reports.views import ranking_lists

    rows = [{"held_share": value, "n": n} for n, value in enumerate([1.0, 1.0, 0.5, 0.5, 0.5, 0.2])]
    with_places = ranking_lists(rows, "held_share")
    assert len(with_places) == 1
    assert [place for place, _ in with_places[0][1]] == [1, 1, 3, 3, 3, 6]
    many = sorted(
        ({"held_share": 1.0 if n < 12 else n / 100} for n in range(25)),
        key=lambda row: row["held_share"],
        reverse=True,
    )
    leaders, outsiders = (places for _, places in ranking_lists(many, "held_share"))
    assert [place for place, _ in leaders] == [1] * 10
    assert [place for place, _ in outsiders][:3] == [25, 24, 23]


@pytest.mark.parametrize(
    ("language", "words"),
    [("kk", "2026\u202fж. қыркүйек"), ("ru", "сентябрь 2026\u202fг."), ("en", "September 2026")],
)
def test_report_headings_name_the_month_in_the_readers_language(client, dataset, language, words):
    regions, _ = dataset
    _officer_client(client, regions[0])
    query = f"scope=region:{regions[0].id}&month={MONTH}"
    for page in ("dashboard", "rankings", "topics"):
        html = client.get(
            f"/reports/{page}?{query}", headers={"Accept-Language": language}
        ).get_data(as_text=True)
        heading = re.search(r"<h1>(.*?)</h1>", html, re.S).group(1)
        assert words in heading and MONTH not in heading, (page, heading)
