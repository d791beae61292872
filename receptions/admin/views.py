"""User management and the audit log, for administrators only."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from .. import access
from ..audit.labels import record_type_label
from ..auth import services as auth_services
from ..auth.forms import UserEditForm
from ..auth.models import Role, User
from ..errors import InvalidEntry, NotInScope
from ..extensions import db
from ..forms import show_refusal
from ..institutions.services import paginate
from ..staff.views import fill_scope_choices
from ..urls import int_arg, public_url
from . import audit_log as audit_trail
from .forms import AuditFilterForm

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/users")
@access.role_required(Role.admin)
def users():
    query = select(User).options(joinedload(User.institution)).order_by(User.role, User.email)
    role = request.args.get("role")
    if role in Role.__members__:
        query = query.where(User.role == role)
    page = paginate(query, int_arg(request.args, "page", 1) or 1, 50)
    return render_template("admin/users.html", page=page, roles=list(Role), role=role)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@access.role_required(Role.admin)
def edit_user(user_id: int):
    user = db.session.get(User, user_id)
    if user is None:
        raise NotInScope()
    form = UserEditForm(obj=user)
    fill_scope_choices(form)
    del form.email
    status = 200
    if form.validate_on_submit():
        try:
            auth_services.update_user(
                current_user,
                user_id,
                full_name=form.full_name.data or "",
                role=Role(form.role.data),
                active=bool(form.active.data),
                institution_id=form.institution_id.data,
                district_id=form.district_id.data,
                region_id=form.region_id.data,
            )
        except InvalidEntry as refusal:  # no place chosen for the role
            show_refusal(form, refusal)
        else:
            flash(_("Your changes have been saved."), "success")
            return redirect(url_for("admin.edit_user", user_id=user_id))
    if form.is_submitted():
        status = 422
    return render_template("admin/user_edit.html", form=form, user=user), status


@bp.route("/users/<int:user_id>/link", methods=["POST"])
@access.role_required(Role.admin)
def reissue_link(user_id: int):
    invitation = auth_services.reissue_invitation(current_user, user_id)
    link = public_url("auth.set_password", token=invitation.token)
    return render_template("admin/link.html", user=invitation.user, link=link)


@bp.route("/audit")
@access.role_required(Role.admin)
def audit_log():
    form = AuditFilterForm(request.args)
    form.record_type.choices = [("", _("Any"))] + [
        (t, record_type_label(t)) for t in audit_trail.record_types()
    ]
    if not form.validate():
        return render_template("admin/audit.html", form=form, page=None, users={}), 400
    page = paginate(
        audit_trail.audit_query(form.filters()), int_arg(request.args, "page", 1) or 1, 100
    )
    return render_template(
        "admin/audit.html", form=form, page=page, users=audit_trail.users_of(page.items)
    )
