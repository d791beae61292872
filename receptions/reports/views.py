"""Akimat dashboards, rankings, topic map, downloads and the public results pages."""

from __future__ import annotations

import base64
import io

from flask import (
    Blueprint,
    Response,
    abort,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from .. import access
from ..clock import now as clock_now
from ..extensions import db
from ..geography.models import District, Region
from ..institutions.models import Institution
from . import charts, exports, services
from .scope import (
    REPORT_ROLES,
    REPORT_ZONE,
    BadReportRequest,
    Scope,
    authorise,
    default_scope,
    parse_month,
    parse_scope,
)

bp = Blueprint("reports", __name__)
OFFICERS = access.role_required(*REPORT_ROLES)
PUBLIC_MIN_VISITS = 5
SORTABLE = {name for name, _, _ in exports.COLUMNS} | {"label"}


def _today():  # type: ignore[no-untyped-def]
    return clock_now().astimezone(REPORT_ZONE).date()


def _request_scope() -> tuple[Scope, str]:
    scope = (
        parse_scope(request.args.get("scope"))
        if request.args.get("scope")
        else default_scope(current_user)
    )
    return authorise(current_user, scope), parse_month(request.args.get("month"), today=_today())


def child_grouping(scope: Scope) -> str:
    return {
        "nation": "region",
        "region": "district",
        "district": "institution",
        "institution": "institution",
    }[scope.level]


def _grouping(scope: Scope) -> str:
    grouping = request.args.get("by") or child_grouping(scope)
    if grouping not in services.GROUPINGS:
        raise BadReportRequest(_("Unknown grouping."))
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
    scope, month = _request_scope()
    grouping = _grouping(scope)
    rollup = services.rollup(scope, month, grouping=grouping)
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
    trend = services.monthly_trend(scope, month, 12)
    return render_template(
        "reports/dashboard.html",
        rollup=rollup,
        scope=scope,
        month=month,
        scope_name=scope.name(),
        grouping=grouping,
        columns=exports.COLUMNS,
        sort=sort,
        descending=descending,
        trend=trend,
        drill_scope=drill_scope,
    )


@bp.route("/reports/chart/<name>.svg")
@OFFICERS
def chart(name: str):
    scope, month = _request_scope()
    if name == "trend":
        trend = services.monthly_trend(scope, month, 12)
        svg = charts.trend_chart(
            [m for m, _ in trend],
            [
                (_("Citizens received"), [f["citizens_received"] for _, f in trend], "#005a8c"),
                (_("Resolved positively"), [f["resolved"] for _, f in trend], "#1e6b34"),
                (_("Explained"), [f["explained"] for _, f in trend], "#8a4b00"),
                (_("Being resolved"), [f["pending"] for _, f in trend], "#b3261e"),
            ],
            _("Monthly trend"),
        )
    elif name == "planned-held":
        rollup = services.rollup(scope, month, grouping=_grouping(scope))
        rows = rollup.rows[:20]
        svg = charts.bar_chart(
            [r.label[:28] for r in rows],
            [
                (_("Sessions planned"), [r["sessions_planned"] for r in rows], "#9fb8cc"),
                (_("Sessions held"), [r["sessions_held"] for r in rows], "#005a8c"),
            ],
            _("Planned and held"),
        )
    else:
        abort(404)
    response = Response(svg, content_type="image/svg+xml; charset=utf-8")
    # matplotlib styles its SVG inline; as an image it cannot run anything.
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


@bp.route("/reports/rankings")
@OFFICERS
def rankings():
    scope, month = _request_scope()
    grouping = "institution" if scope.level in ("district", "region") else child_grouping(scope)
    rollup = services.rollup(scope, month, grouping=grouping)
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
        tables.append((name, label, ranked[:10], list(reversed(ranked[-10:]))))
    return render_template(
        "reports/rankings.html", scope=scope, scope_name=scope.name(), month=month, tables=tables
    )


@bp.route("/reports/topics")
@OFFICERS
def topics():
    scope, month = _request_scope()
    topic_names, rows = services.topic_heat(scope, month)
    peak = max((n for _, cells in rows for n in cells), default=0)
    return render_template(
        "reports/topics.html",
        scope=scope,
        scope_name=scope.name(),
        month=month,
        topic_names=topic_names,
        rows=rows,
        peak=peak,
    )


FIRST_HEADERS = {
    "region": lambda: _("Region"),
    "district": lambda: _("District"),
    "institution": lambda: _("Institution"),
    "institution_type": lambda: _("Institution type"),
}


def sheets_for(scope: Scope, month: str) -> list[tuple[str, str, services.Rollup]]:
    levels = {
        "nation": ["region", "district", "institution", "institution_type"],
        "region": ["district", "institution", "institution_type"],
        "district": ["institution", "institution_type"],
        "institution": ["institution"],
    }[scope.level]
    return [
        (
            FIRST_HEADERS[level](),
            FIRST_HEADERS[level](),
            services.rollup(scope, month, grouping=level),
        )
        for level in levels
    ]


def pdf_html(scope: Scope, month: str, grouping: str) -> str:
    rollup = services.rollup(scope, month, grouping=grouping)
    trend = services.monthly_trend(scope, month, 12)
    chart_svg = charts.trend_chart(
        [m for m, _ in trend],
        [
            (_("Citizens received"), [f["citizens_received"] for _, f in trend], "#005a8c"),
            (_("Resolved positively"), [f["resolved"] for _, f in trend], "#1e6b34"),
            (_("Being resolved"), [f["pending"] for _, f in trend], "#b3261e"),
        ],
        _("Monthly trend"),
    )
    return render_template(
        "reports/pdf.html",
        rollup=rollup,
        scope_name=scope.name(),
        month=month,
        columns=exports.PDF_COLUMNS,
        chart_src="data:image/svg+xml;base64," + base64.b64encode(chart_svg.encode()).decode(),
        first_header=FIRST_HEADERS[grouping](),
        values=lambda row: exports.values(row, exports.PDF_COLUMNS),
    )


@bp.route("/reports/download")
@OFFICERS
def download():
    scope, month = _request_scope()
    grouping = _grouping(scope)
    kind = request.args.get("format", "csv")
    stem = f"ashyq-esik-{scope.key.replace(':', '-').replace(';', '-')}-{month}"
    if kind == "csv":
        rollup = services.rollup(scope, month, grouping=grouping)
        body = stream_with_context(exports.iter_csv(rollup, FIRST_HEADERS[grouping]()))
        response = Response(body, content_type="text/csv; charset=utf-8")
    elif kind == "xlsx":
        stream = io.BytesIO()
        exports.write_xlsx(sheets_for(scope, month), stream, f"{scope.name()} — {month}")
        response = Response(
            stream.getvalue(),
            content_type=("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        )
    elif kind == "pdf":
        response = Response(
            exports.render_pdf(pdf_html(scope, month, grouping)), content_type="application/pdf"
        )
    else:
        raise BadReportRequest(_("Unknown format: choose csv, xlsx or pdf."))
    response.headers["Content-Disposition"] = f'attachment; filename="{stem}.{kind}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


# --- public results -------------------------------------------------------------------------------


def _suppress(rows: list[services.Figures]) -> list[tuple[services.Figures, bool]]:
    """Counts and shares only, and nothing for groups with fewer than 5 visits (re-identification)."""
    return [(row, row["citizens_received"] < PUBLIC_MIN_VISITS) for row in rows]


@bp.route("/results/<code>/<slug>")
def public_district(code: str, slug: str):
    district = db.session.scalars(
        select(District)
        .join(District.region)
        .where(Region.code == code.upper(), District.slug == slug)
    ).first()
    if district is None:
        abort(404)
    month = parse_month(request.args.get("month"), today=_today())
    scope = Scope("district", district.id)
    rollup = services.rollup(scope, month, grouping="institution")
    return render_template(
        "reports/public.html",
        title=district.name,
        region=district.region,
        district=district,
        month=month,
        rollup=rollup,
        rows=_suppress(rollup.rows),
        min_visits=PUBLIC_MIN_VISITS,
        total_suppressed=rollup.total["citizens_received"] < PUBLIC_MIN_VISITS,
    )


@bp.route("/results/institutions/<int:institution_id>")
def public_institution(institution_id: int):
    institution = db.session.get(Institution, institution_id)
    if institution is None or not institution.active:
        abort(404)
    month = parse_month(request.args.get("month"), today=_today())
    rollup = services.rollup(Scope("institution", institution_id), month, grouping="institution")
    return render_template(
        "reports/public.html",
        title=institution.name,
        region=institution.district.region,
        district=institution.district,
        month=month,
        rollup=rollup,
        rows=[],
        min_visits=PUBLIC_MIN_VISITS,
        total_suppressed=rollup.total["citizens_received"] < PUBLIC_MIN_VISITS,
    )
