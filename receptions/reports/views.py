"""Akimat dashboards, rankings, topic map, downloads and the public results pages."""

from __future__ import annotations

import tempfile
from datetime import date, datetime

from flask import (
    Blueprint,
    Response,
    abort,
    redirect,
    render_template,
    request,
    send_file,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from .. import CONTENT_SECURITY_POLICY, access
from ..clock import now as clock_now
from ..extensions import db
from ..geography.models import District
from ..geography.queries import district_or_404
from ..i18n import current_language
from ..institutions.models import Institution
from . import charts, downloads, exports, jobs, services
from .forms import period_form, refused_form
from .scope import (
    REPORT_ROLES,
    ROW_GROUPINGS,
    BadPeriod,
    BadReportRequest,
    Period,
    Scope,
    authorise,
    current_month,
    default_grouping,
    default_scope,
    last_finished_month,
    parse_month,
    parse_period,
    parse_scope,
    progress_notice,
    report_today,
)

bp = Blueprint("reports", __name__)
OFFICERS = access.role_required(*REPORT_ROLES)
PUBLIC_MIN_VISITS = 5
RANKING_LENGTH = 10  # leaders, and as many outsiders
SORTABLE = {name for name, _, _ in exports.COLUMNS} | {"label"}
GROUPING_LABELS = {
    "region": _l("Regions"),
    "district": _l("Districts"),
    "institution": _l("Institutions"),
    "institution_type": _l("Institution types"),
}


# Only what matplotlib's inline SVG styles need is relaxed; framing stays forbidden.
CHART_POLICY = CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'unsafe-inline'")


def _authorised_scope() -> Scope:
    scope = (
        parse_scope(request.args.get("scope"))
        if request.args.get("scope")
        else default_scope(current_user)
    )
    return authorise(current_user, scope)


def _request_period() -> Period:
    return parse_period(
        request.args.get("month"),
        request.args.get("from"),
        request.args.get("to"),
        today=report_today(),
    )


def _request_scope() -> tuple[Scope, Period]:
    """The scope, checked against the officer's own first (a period refused for a scope the
    officer may not see would tell that it exists), then the period."""
    scope = _authorised_scope()
    return scope, _request_period()


def _filtered_page(heading: str, *, with_rows: bool = False) -> tuple[Scope, Period]:
    """The scope and period of a page with the filter form. A period the form cannot give
    (malformed, in the future, a range ending before it starts, too long) shows the form again
    as sent, with the message at its field: 422, and no figures until it is corrected."""
    scope = _authorised_scope()
    try:
        return scope, _request_period()
    except BadPeriod as refusal:
        today = report_today()
        page = render_template(
            "reports/refused.html",
            heading=heading,
            scope=scope,
            scope_name=scope.name(),
            grouping=_grouping(scope) if with_rows else None,
            groupings=grouping_choices(scope),
            form=refused_form(request.args, refusal, today),
            **_month_links(today),
        )
        abort(Response(page, 422))


def _month_links(today: date) -> dict[str, str]:
    """The last finished month (the default) and the one in progress, for the filter's links."""
    return {"finished_month": last_finished_month(today), "running_month": current_month(today)}


def _page_context(
    scope: Scope, period: Period, at: datetime, rollup: services.Rollup | None = None
) -> dict[str, object]:
    """What every report page shows around its figures: the filter form, and whether the
    period is in progress and up to when its figures run."""
    today = report_today(at)
    return {
        "scope": scope,
        "scope_name": scope.name(),
        "period": period,
        "month": period.label,
        "form": period_form(period, today),
        "groupings": grouping_choices(scope),
        "progress_notice": progress_notice(
            period, at, rollup.total.sessions_to_come if rollup is not None else None
        ),
        **_month_links(today),
    }


def grouping_choices(scope: Scope) -> list[tuple[str, str]]:
    """(value, label) of each grouping a report of `scope` offers, for the filter's rows."""
    return [(name, str(GROUPING_LABELS[name])) for name in ROW_GROUPINGS[scope.level]]


def _grouping(scope: Scope) -> str:
    """The rows asked for (`by`), one the scope offers; any other is refused (400) on every page,
    chart and download alike, never replaced by another grouping."""
    grouping = request.args.get("by") or default_grouping(scope)
    if grouping not in ROW_GROUPINGS[scope.level]:
        raise BadReportRequest(
            _(
                "This report cannot show its rows that way. Choose one of: %(choices)s.",
                choices=", ".join(label for _value, label in grouping_choices(scope)),
            )
        )
    return grouping


def drill_scope(grouping: str, key: object) -> str | None:
    return {"region": "region", "district": "district", "institution": "institution"}.get(
        grouping
    ) and f"{grouping}:{key}"


@bp.route("/reports/")
@OFFICERS
def index():
    return redirect(url_for("reports.dashboard", scope=default_scope(current_user).key))


@bp.route("/reports/dashboard")
@OFFICERS
def dashboard():
    scope, period = _filtered_page(_("Reports"), with_rows=True)
    grouping = _grouping(scope)
    at = clock_now()
    rollup = services.rollup(scope, period.first, grouping=grouping, months=period.months, at=at)
    sort = request.args.get("sort", "label")
    if sort not in SORTABLE:
        raise BadReportRequest(_("Unknown sort column."))
    descending = request.args.get("dir") == "desc"
    rollup.rows.sort(
        key=lambda r: (
            (r[sort] is None, r[sort] if r[sort] is not None else 0) if sort != "label" else r.label
        ),
        reverse=descending,
    )
    trend = services.monthly_trend(scope, period.last, 12, at=at)
    return render_template(
        "reports/dashboard.html",
        rollup=rollup,
        grouping=grouping,
        columns=exports.COLUMNS,
        sort=sort,
        descending=descending,
        trend=trend,
        outcomes=outcome_shares(rollup.total),
        changes=main_changes(rollup),
        drill_scope=drill_scope,
        **_page_context(scope, period, at, rollup),
    )


def outcome_shares(total: services.Figures) -> list[tuple[str, int, float | None, str]]:
    """Resolved, explained, pending and not yet recorded: one bar each, the table says the same."""
    unrecorded = services.questions_without_outcome(total.counts)
    parts = [
        (_("Resolved positively"), total["resolved"], "#1e6b34"),
        (_("Explained"), total["explained"], "#8a4b00"),
        (_("Being resolved"), total["pending"], "#b3261e"),
        (_("No outcome recorded"), unrecorded, "#6b7280"),
    ]
    return [
        (label, n, n / total["questions"] if total["questions"] else None, colour)
        for label, n, colour in parts
    ]


def main_changes(rollup: services.Rollup) -> list[tuple[str, str, object, object]]:
    """(label, kind, value now, change on the period before) for the headline figures."""
    return [
        (label, kind, rollup.total[name], rollup.change(name))
        for name, label, kind in (
            ("sessions_held", _("Sessions held"), "count"),
            ("citizens_received", _("Citizens received"), "count"),
            ("resolved_share", _("Share resolved"), "share"),
            ("satisfied_share", _("Share satisfied (4–5)"), "share"),
        )
    ]


@bp.route("/reports/chart/<name>.svg")
@OFFICERS
def chart(name: str):
    scope, period = _request_scope()
    if name == "trend":
        svg = downloads.trend_svg(
            scope,
            period,
            [
                ("citizens_received", _("Citizens received"), "#005a8c"),
                ("resolved", _("Resolved positively"), "#1e6b34"),
                ("explained", _("Explained"), "#8a4b00"),
                ("pending", _("Being resolved"), "#b3261e"),
            ],
        )
    elif name == "planned-held":
        rollup = services.rollup(
            scope, period.first, grouping=_grouping(scope), months=period.months
        )
        rows = rollup.rows[:20]
        svg = charts.bar_chart(
            [r.label[:28] for r in rows],
            [
                (_("Sessions planned"), [r["sessions_planned"] for r in rows], "#9fb8cc"),
                (_("Sessions held"), [r["sessions_held"] for r in rows], "#005a8c"),
            ],
            _("Planned and held"),
        )
    elif name == "outcomes":
        total = services.period_total(scope, period.first, period.months)
        shares = outcome_shares(total)
        svg = charts.share_chart(
            [(label, share or 0.0, colour) for label, _n, share, colour in shares],
            _("Outcome shares"),
        )
    else:
        abort(404)
    response = Response(svg, content_type="image/svg+xml; charset=utf-8")
    response.headers["Content-Security-Policy"] = CHART_POLICY
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


@bp.route("/reports/rankings")
@OFFICERS
def rankings():
    scope, period = _filtered_page(_("Rankings"))
    grouping = "institution" if scope.level in ("district", "region") else default_grouping(scope)
    at = clock_now()
    rollup = services.rollup(scope, period.first, grouping=grouping, months=period.months, at=at)
    rows = [r for r in rollup.rows if r["sessions_planned"] or r["questions"]]
    measures = [
        ("held_share", _("Share of sessions held"), True),
        ("resolved_share", _("Share resolved"), True),
        ("satisfied_share", _("Satisfaction"), True),
        ("overdue", _("Overdue items"), False),
    ]
    tables = []
    for name, label, higher_is_better in measures:
        ranked = sorted(
            (r for r in rows if r[name] is not None),
            key=lambda r: r[name],
            reverse=higher_is_better,
        )
        tables.append((name, label, ranking_lists(ranked, name)))
    return render_template(
        "reports/rankings.html", tables=tables, **_page_context(scope, period, at, rollup)
    )


def ranking_lists(
    ranked: list[services.Figures], measure: str
) -> list[tuple[str, list[tuple[int, services.Figures]]]]:
    """(caption, [(place, row)]) lists of rows ranked best first by `measure`: the leaders and
    the outsiders (worst first) when there are more rows than both hold, else one list of them
    all, so that no row stands among the leaders and the outsiders at once. Rows with the same
    figure share a place, and the next figure's place counts the rows before it (1, 1, 3)."""
    placed: list[tuple[int, services.Figures]] = []
    for number, row in enumerate(ranked, start=1):
        tied = placed and placed[-1][1][measure] == row[measure]
        placed.append((placed[-1][0] if tied else number, row))
    if len(placed) <= 2 * RANKING_LENGTH:
        return [(_("From best to worst"), placed)]
    return [
        (_("Leaders"), placed[:RANKING_LENGTH]),
        (_("Outsiders"), list(reversed(placed[-RANKING_LENGTH:]))),
    ]


@bp.route("/reports/topics")
@OFFICERS
def topics():
    scope, period = _filtered_page(_("Problem topics"))
    at = clock_now()
    topic_names, rows = services.topic_heat(scope, period.first, period.months, at=at)
    peak = max((n for _, cells in rows for n in cells), default=0)
    return render_template(
        "reports/topics.html",
        topic_names=topic_names,
        rows=rows,
        peak=peak,
        **_page_context(scope, period, at),
    )


@bp.route("/reports/download")
@OFFICERS
def download():
    scope, period = _request_scope()
    kind = request.args.get("format", "csv")
    if kind not in downloads.FORMATS:
        raise BadReportRequest(_("Unknown format: choose csv-excel, csv, xlsx or pdf."))
    spec = downloads.ExportSpec(scope, period, _grouping(scope), kind)
    if downloads.is_large(spec):
        job = jobs.start_export(current_user, spec, current_language())
        return redirect(url_for("reports.export_progress", token=job.token), code=303)
    if kind in downloads.CSV_FORMATS:
        # Streamed: each row leaves as the database cursor hands it over.
        body = stream_with_context(chunk.encode("utf-8") for chunk in downloads.iter_csv(spec))
        response = Response(body, content_type=downloads.CONTENT_TYPES[kind])
    else:
        # A spooled file: rows go to disk as they come, the response reads it back in chunks.
        handle = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 (closed by the response)
        downloads.write_export(spec, handle)
        handle.seek(0)
        response = send_file(handle, mimetype=downloads.CONTENT_TYPES[kind])
    response.headers["Content-Disposition"] = f'attachment; filename="{spec.filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/reports/exports/<token>")
@OFFICERS
def export_progress(token: str):
    job = jobs.job_for(current_user, token)
    spec = jobs.spec_of(job)
    response = Response(
        render_template(
            "reports/export.html",
            job=job,
            scope_name=spec.scope.name(),
            period=spec.period,
        )
    )
    if job.status in ("queued", "running"):
        response.headers["Refresh"] = "3"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/reports/exports/<token>/file")
@OFFICERS
def export_file(token: str):
    job = jobs.job_for(current_user, token)
    response = send_file(
        jobs.file_of(job),
        as_attachment=True,
        download_name=job.file_name or f"report.{job.kind}",
    )
    # Set whole: send_file adds a charset to a text type that already names one.
    response.headers["Content-Type"] = downloads.CONTENT_TYPES[job.kind]
    response.headers["Cache-Control"] = "private, no-store"
    return response


# --- public results -------------------------------------------------------------------------------


@bp.route("/results/<code>/<slug>")
def public_district(code: str, slug: str):
    district = district_or_404(code, slug)
    return _public_results(Scope("district", district.id), district.name, district)


@bp.route("/results/institutions/<int:institution_id>")
def public_institution(institution_id: int):
    institution = db.session.get(Institution, institution_id)
    if institution is None or not institution.active:
        abort(404)
    return _public_results(
        Scope("institution", institution_id), institution.name, institution.district
    )


def _public_results(scope: Scope, title: str, district: District) -> str | tuple[str, int]:
    """A district's or an institution's published figures for a month (by default the last
    finished one); a district's by institution, small groups withheld."""
    at = clock_now()
    today = report_today(at)
    page = {
        "title": title,
        "region": district.region,
        "district": district,
        "min_visits": PUBLIC_MIN_VISITS,
    }
    try:
        month = parse_month(request.args.get("month"), today=today)
    except BadPeriod as refusal:
        form = refused_form(request.args, refusal, today)
        return render_template("reports/public.html", form=form, rollup=None, **page), 422
    rollup = services.rollup(scope, month, grouping="institution", at=at)
    if scope.level == "district":
        cells = services.suppress_small_cells(rollup.rows, rollup.total, PUBLIC_MIN_VISITS)
        rows, total_suppressed = cells.rows, cells.total_hidden
    else:
        rows, total_suppressed = [], rollup.total["citizens_received"] < PUBLIC_MIN_VISITS
    period = Period(month)
    return render_template(
        "reports/public.html",
        form=period_form(period, today),
        month=month,
        rollup=rollup,
        rows=rows,
        total_suppressed=total_suppressed,
        progress_notice=progress_notice(period, at),
        **page,
    )
