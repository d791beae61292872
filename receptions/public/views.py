"""Home page with regions, region and district pages, language switch and health checks."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from ..database import read_only_view
from ..extensions import db
from ..geography.models import Region
from ..geography.queries import district_or_404
from ..i18n import COOKIE
from ..institutions.forms import type_choices
from ..institutions.services import regions_with_counts, search_institutions
from ..schedules.queries import open_door_days
from ..urls import int_arg, safe_next

bp = Blueprint("public", __name__)


@bp.route("/")
@read_only_view
def home():
    return render_template("public/home.html", regions=regions_with_counts(), types=type_choices())


def _region_or_404(code: str) -> Region:
    region = db.session.scalars(select(Region).where(Region.code == code.upper())).first()
    if region is None:
        abort(404)
    return region


@bp.route("/regions/<code>")
@read_only_view
def region(code: str):
    region = _region_or_404(code)
    return render_template(
        "public/region.html", region=region, open_door_days=open_door_days(region_id=region.id)
    )


@bp.route("/regions/<code>/<slug>")
@read_only_view
def district(code: str, slug: str):
    district = district_or_404(code, slug)
    region = district.region
    page = search_institutions(district_id=district.id, page=int_arg(request.args, "page", 1) or 1)
    return render_template(
        "public/district.html",
        region=region,
        district=district,
        page=page,
        open_door_days=open_door_days(district_id=district.id),
    )


@bp.route("/language/<code>")
def set_language(code: str):
    """Remember the reader's language; a plain link so it works without JavaScript."""
    if code not in current_app.config["LANGUAGES"]:
        abort(404)
    session[COOKIE] = code
    target = safe_next(request.args.get("next")) or url_for("public.home")
    response = redirect(target)
    response.set_cookie(
        COOKIE,
        code,
        max_age=365 * 24 * 3600,
        samesite="Lax",
        httponly=True,
        secure=current_app.config["SESSION_COOKIE_SECURE"],
    )
    return response


@bp.route("/healthz")
def healthz():
    return {"status": "ok"}


@bp.route("/readyz")
def readyz():
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
    except SQLAlchemyError:
        db.session.rollback()
        return {"status": "unavailable", "database": "unreachable"}, 503, {"Retry-After": "5"}
    return {"status": "ok", "database": "ok"}
