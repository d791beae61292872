"""Public institution pages and officers' create/edit pages."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from .. import access
from ..auth.models import Role
from ..database import read_only_view
from ..extensions import db
from ..geography.models import District
from ..schedules import queries
from ..urls import int_arg
from ..visits.services import local_today, parse_day
from . import services
from .forms import InstitutionForm, type_choices
from .models import Institution, InstitutionType

bp = Blueprint("institutions", __name__)


@bp.route("/institutions")
@read_only_view
def search():
    text = request.args.get("q", "")[:100]
    type_ = request.args.get("type") or None
    if type_ and type_ not in InstitutionType.__members__:
        abort(400)
    page = services.search_institutions(
        text=text,
        type_=type_,
        region_id=int_arg(request.args, "region"),
        district_id=int_arg(request.args, "district"),
        page=int_arg(request.args, "page", 1) or 1,
    )
    return render_template(
        "institutions/search.html", page=page, q=text, type_=type_, types=type_choices()
    )


@bp.route("/institutions/<int:institution_id>")
@read_only_view
def detail(institution_id: int):
    institution = db.session.get(Institution, institution_id)
    if institution is None or not institution.active:
        abort(404)
    # Free times three weeks a page: ?from=<local date> shows the weeks from that day.
    today = local_today(institution)
    first_day = max(parse_day(request.args.get("from", ""), institution), today)
    last_day = first_day + timedelta(days=PICKER_DAYS)
    zone = ZoneInfo(institution.district.region.timezone)

    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(), tzinfo=zone)

    return render_template(
        "institutions/detail.html",
        institution=institution,
        schedules=queries.active_schedules(institution_id),
        next_open_door=queries.next_open_door_day(institution_id),
        sessions=queries.institution_sessions(
            institution_id,
            start=None if first_day == today else midnight(first_day),
            end=midnight(last_day),  # where the next page starts
        ),
        earlier=max(first_day - timedelta(days=PICKER_DAYS), today) if first_day > today else None,
        later=last_day if queries.has_sessions_from(institution_id, midnight(last_day)) else None,
        today=today,
        book_endpoint="booking.book" if "booking.book" in current_app.view_functions else None,
    )


PICKER_DAYS = 21


def _district_choices() -> list[tuple[int, str]]:
    districts = db.session.scalars(
        access.districts_in_scope(current_user).order_by(District.region_id, District.name_ru)
    )
    return [(d.id, d.name_with_region) for d in districts]


@bp.route("/staff/institutions/new", methods=["GET", "POST"])
@access.role_required(*access.OFFICERS)
def create():
    form = InstitutionForm()
    form.district_id.choices = _district_choices()
    if form.validate_on_submit():
        institution = services.create_institution(
            current_user, form.district_id.data, form.values()
        )
        flash(_("The institution has been created."), "success")
        return redirect(url_for("institutions.edit", institution_id=institution.id))
    status = 422 if form.is_submitted() else 200
    return render_template("institutions/form.html", form=form, institution=None), status


@bp.route("/staff/institutions/<int:institution_id>/edit", methods=["GET", "POST"])
@access.role_required(*access.OFFICERS)
def edit(institution_id: int):
    institution = access.get_institution_in_scope(current_user, institution_id)
    form = InstitutionForm(obj=institution)
    form.district_id.choices = _district_choices()
    if form.validate_on_submit():
        services.update_institution(
            current_user, institution_id, form.district_id.data, form.values()
        )
        flash(_("Your changes have been saved."), "success")
        return redirect(url_for("institutions.edit", institution_id=institution_id))
    status = 422 if form.is_submitted() else 200
    staff = db.session.scalars(
        select(access.User)
        .where(access.User.institution_id == institution_id)
        .where(access.User.role.in_([Role.staff.value, Role.head.value]))
        .order_by(access.User.full_name)
    ).all()
    return render_template(
        "institutions/form.html", form=form, institution=institution, staff=staff
    ), status
