"""Dashboard and invitations for signed-in users."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy.orm import selectinload

from .. import access
from ..auth import services as auth_services
from ..auth.forms import InviteForm
from ..auth.models import Role
from ..errors import InvalidEntry
from ..extensions import db
from ..forms import show_refusal
from ..geography.models import District, Region
from ..institutions.models import Institution
from ..reports.scope import previous_month
from ..urls import int_arg, public_url
from ..visits.services import local_today

bp = Blueprint("staff", __name__, url_prefix="/staff")


@bp.route("/")
@login_required
def dashboard():
    institutions = db.session.scalars(
        access.institutions_in_scope(current_user).order_by(Institution.name_ru).limit(200)
    ).all()
    # The month just ended where the institution is: in the first hours of a Kazakh day the UTC
    # date is still the day before, and on the 1st it linked the month before that.
    institution = current_user.institution
    month_ended = (
        previous_month(local_today(institution).strftime("%Y-%m")) if institution else None
    )
    return render_template(
        "staff/dashboard.html", institutions=institutions, month_ended=month_ended
    )


def fill_scope_choices(form: InviteForm) -> None:
    """Offer only the institutions, districts and regions inside the current user's scope."""
    form.set_role_choices(access.grantable_roles(current_user))
    blank = [("", _("— not applicable —"))]
    institutions = db.session.scalars(
        access.institutions_in_scope(current_user)
        .order_by(Institution.name_ru)
        .options(selectinload(Institution.district).selectinload(District.region))
    )
    # Numbered names repeat across the country ("City polyclinic No. 1"): each says where it is.
    form.institution_id.choices = blank + [
        (i.id, f"{i.name} ({i.district.name_with_region})") for i in institutions
    ]
    districts = db.session.scalars(
        access.districts_in_scope(current_user).order_by(District.region_id, District.name_ru)
    )
    form.district_id.choices = blank + [(d.id, d.name_with_region) for d in districts]
    regions = db.session.scalars(access.regions_in_scope(current_user).order_by(Region.name_ru))
    form.region_id.choices = blank + [(r.id, r.name) for r in regions]


@bp.route("/invite", methods=["GET", "POST"])
@access.role_required(Role.head, *access.OFFICERS)
def invite():
    form = InviteForm()
    fill_scope_choices(form)
    chosen = int_arg(request.args, "institution")
    if request.method == "GET" and chosen is not None:
        form.institution_id.data = chosen
    link = None
    status = 200
    if form.validate_on_submit():
        try:
            invitation = auth_services.invite_user(
                current_user,
                email=form.email.data or "",
                full_name=form.full_name.data or "",
                role=Role(form.role.data),
                locale=form.locale.data or "kk",
                institution_id=form.institution_id.data,
                district_id=form.district_id.data,
                region_id=form.region_id.data,
            )
        except InvalidEntry as refusal:  # no place chosen for the role, or the e-mail is taken
            show_refusal(form, refusal)
        else:
            link = public_url("auth.set_password", token=invitation.token)
            status = 201
    if form.is_submitted() and form.errors:
        status = 422
    return render_template("staff/invite.html", form=form, link=link), status
