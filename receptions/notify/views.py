"""Administrators see what the outbox could not deliver, and may send it again."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from .. import access
from ..admin.outbox import retry_notes, retry_notification
from ..auth.models import Role
from ..extensions import db
from ..forms import Form
from ..institutions.services import paginate
from ..urls import int_arg
from .models import DeliveryStatus, Notification
from .services import SUBJECTS

bp = Blueprint("notify", __name__, url_prefix="/admin/notifications")


@bp.route("/")
@access.role_required(Role.admin)
def outbox():
    status = request.args.get("status", "failed")
    if status not in DeliveryStatus.__members__:
        abort(400)
    counts = dict(
        db.session.execute(
            select(Notification.status, func.count()).group_by(Notification.status)
        ).all()
    )
    query = (
        select(Notification)
        .where(Notification.status == status)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
    )
    page = paginate(query, int_arg(request.args, "page", 1) or 1, 50)
    return render_template(
        "notify/outbox.html",
        page=page,
        status=status,
        counts=counts,
        form=Form(),
        subjects=SUBJECTS,
        notes=retry_notes(page.items),
    )


@bp.route("/<int:notification_id>/retry", methods=["POST"])
@access.role_required(Role.admin)
def retry(notification_id: int):
    if not Form().validate_on_submit():
        abort(400)
    for said in retry_notification(notification_id).explained():
        flash(said, "success")
    return redirect(url_for("notify.outbox"), 303)
