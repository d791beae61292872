"""Staff publish schedules; officers set the unified open-door day; public calendar feeds."""

from __future__ import annotations

import hashlib
from datetime import time
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import select

from .. import access
from ..auth.models import Role
from ..extensions import db
from ..geography.models import District
from ..geography.queries import district_or_404
from ..institutions.models import Institution
from ..urls import calendar_uid_domain, whole_number
from ..visits.services import CitizensReceived, received_or_marked
from . import queries, services
from .forms import (
    CalendarDayForm,
    CancelSessionForm,
    ExceptionForm,
    ScheduleForm,
    UnifiedRuleForm,
)
from .models import (
    CalendarChange,
    CalendarDay,
    CalendarDayKind,
    Schedule,
    ScheduledSession,
    ScheduleStatus,
)

bp = Blueprint("schedules", __name__)

EDITORS = (Role.staff, Role.head, *access.OFFICERS)


def kind_labels() -> dict[str, str]:
    return {"open_door": _("Open-door day"), "reception": _("Personal reception")}


def _flash_result(result: services.MaterialiseResult) -> None:
    """Every page these changes lead back to lists the sessions kept below (the schedules page
    with its schedules, the region's open-door day page for the region)."""
    if result.conflicts:
        flash(
            ngettext(
                "%(num)s booked session no longer matches the schedule. It was kept for its "
                "bookings and takes no new ones until it is kept or cancelled: see below.",
                "%(num)s booked sessions no longer match the schedule. They were kept for their "
                "bookings and take no new ones until they are kept or cancelled: see below.",
                len(result.conflicts),
            ),
            "error",
        )


def _timezone(institution: Institution) -> str:
    return institution.district.region.timezone


# --- staff: schedules ----------------------------------------------------------------------------


@bp.route("/staff/institutions/<int:institution_id>/schedules")
@access.role_required(*EDITORS)
def manage(institution_id: int):
    institution = access.get_institution_in_scope(current_user, institution_id)
    schedules = db.session.scalars(
        select(Schedule).where(Schedule.institution_id == institution_id).order_by(Schedule.id)
    ).all()
    conflicts = {s.id: services.conflicts(s) for s in schedules}
    sessions = queries.institution_sessions(institution_id, days=60, with_awaiting=True)
    return render_template(
        "schedules/manage.html",
        institution=institution,
        schedules=schedules,
        conflicts=conflicts,
        sessions=sessions,
        kind_labels=kind_labels(),
        describe=queries.describe_schedule,
    )


def _preview_or_save(
    form: ScheduleForm, institution: Institution, schedule: Schedule | None
) -> Any:
    """Shared POST handling: preview shows the next sessions, save stores and materialises."""
    preview = None
    if form.validate_on_submit():
        values = form.values()
        if values is not None:
            try:
                if "preview" in request.form:
                    preview = services.preview(values, _timezone(institution), schedule=schedule)
                else:
                    _saved, result = services.save_schedule(
                        current_user,
                        institution.id,
                        values,
                        schedule_id=schedule.id if schedule else None,
                        expected_version=whole_number(form.version.data),
                    )
                    flash(_("The schedule has been saved."), "success")
                    _flash_result(result)
                    return redirect(url_for("schedules.manage", institution_id=institution.id))
            except services.ScheduleRejected as rejected:
                form.add_domain_errors(rejected.invalid.errors)
    status = 422 if form.is_submitted() and form.errors else 200
    return render_template(
        "schedules/form.html",
        form=form,
        institution=institution,
        schedule=schedule,
        preview=preview,
    ), status


def _new_form_defaults(form: ScheduleForm, institution: Institution) -> None:
    kind = request.args.get("kind", "reception")
    form.kind.data = kind if kind in ("open_door", "reception") else "reception"
    form.valid_from.data = services.local_today(_timezone(institution))
    form.host_name.data = institution.head_name
    if form.kind.data == "open_door":
        form.frequency.data, form.weekdays.data, form.ordinal.data = "MONTHLY", ["4"], "-1"
        form.start_time.data, form.end_time.data = time(10), time(13)
        form.slot_minutes.data, form.capacity.data, form.walk_in_places.data = 30, 5, 10
    else:
        form.frequency.data, form.weekdays.data = "WEEKLY", ["1"]
        form.start_time.data, form.end_time.data = time(15), time(18)


@bp.route("/staff/institutions/<int:institution_id>/schedules/new", methods=["GET", "POST"])
@access.role_required(*EDITORS)
def create(institution_id: int):
    institution = access.get_institution_in_scope(current_user, institution_id)
    form = ScheduleForm()
    if request.method == "GET":
        _new_form_defaults(form, institution)
    return _preview_or_save(form, institution, None)


@bp.route("/staff/schedules/<int:schedule_id>/edit", methods=["GET", "POST"])
@access.role_required(*EDITORS)
def edit(schedule_id: int):
    schedule = services.get_schedule(current_user, schedule_id)
    if schedule.unified_rule_id is not None:
        flash(
            _(
                "This open-door day is set by the regional akimat for every institution of the "
                "region. Ask the akimat for an exception to change it."
            ),
            "info",
        )
        return redirect(url_for("schedules.manage", institution_id=schedule.institution_id))
    form = ScheduleForm(obj=schedule)
    if request.method == "GET":
        form.load(schedule)
    return _preview_or_save(form, schedule.institution, schedule)


@bp.route("/staff/institutions/<int:institution_id>/schedules/preview", methods=["POST"])
@access.role_required(*EDITORS)
def preview_fragment(institution_id: int):
    """The live preview: the next sessions for the form as it stands, as an HTML fragment."""
    institution = access.get_institution_in_scope(current_user, institution_id)
    form = UnifiedRuleForm() if request.form.get("unified") else ScheduleForm()
    # The schedule being edited (its sessions show as the save leaves them); none for a new one.
    schedule_id = whole_number(request.args.get("schedule"))
    schedule = services.get_schedule(current_user, schedule_id) if schedule_id else None
    if schedule is not None and schedule.institution_id != institution.id:
        abort(404)
    preview = None
    if form.validate():
        values = form.values()
        if values is not None:
            try:
                preview = services.preview(values, _timezone(institution), schedule=schedule)
            except services.ScheduleRejected as rejected:
                form.add_domain_errors(rejected.invalid.errors)
    status = 200 if preview is not None else 422
    return render_template(
        "schedules/_preview.html", preview=preview, form=form, tz=_timezone(institution)
    ), status


@bp.route("/staff/schedules/<int:schedule_id>/status", methods=["POST"])
@access.role_required(*EDITORS)
def set_status(schedule_id: int):
    value = request.form.get("status", "")
    if value not in ScheduleStatus.__members__:
        abort(400)
    schedule, result = services.set_schedule_status(
        current_user, schedule_id, ScheduleStatus(value)
    )
    flash(
        _("The schedule is paused.") if value == "paused" else _("The schedule is active again."),
        "success",
    )
    _flash_result(result)
    return redirect(url_for("schedules.manage", institution_id=schedule.institution_id))


@bp.route("/staff/sessions/<int:session_id>/cancel", methods=["GET", "POST"])
@access.role_required(*EDITORS)
def cancel_session(session_id: int):
    session = db.session.get(ScheduledSession, session_id)
    if session is None:
        abort(404)
    access.get_institution_in_scope(current_user, session.institution_id)
    form = CancelSessionForm()
    # Said before the reason is typed: a session at which citizens were received stays.
    refusal = CitizensReceived.message if received_or_marked(session) else None
    status = 409 if refusal else 200
    if refusal is None and form.validate_on_submit():
        try:
            services.cancel_session(current_user, session_id, form.reason.data or "")
        except CitizensReceived as error:  # someone was checked in meanwhile
            refusal, status = error.user_message, 409
        else:
            flash(
                _("The session has been cancelled and the citizens who booked will be told."),
                "success",
            )
            return redirect(url_for("schedules.manage", institution_id=session.institution_id))
    elif form.is_submitted() and refusal is None:
        status = 422
    return render_template(
        "schedules/cancel.html",
        form=form,
        session=session,
        kind_labels=kind_labels(),
        refusal=refusal,
    ), status


@bp.route("/staff/sessions/<int:session_id>/keep", methods=["POST"])
@access.role_required(*EDITORS)
def keep_session(session_id: int):
    session = services.keep_session(current_user, session_id)
    flash(_("The session is kept as it is and takes bookings again."), "success")
    return redirect(url_for("schedules.manage", institution_id=session.institution_id))


# --- regional officers: the unified open-door day -----------------------------------------------


@bp.route("/staff/regions/<int:region_id>/open-door-day", methods=["GET", "POST"])
@access.role_required(Role.region_officer, Role.admin)
def unified(region_id: int):
    region = access.get_region_in_scope(current_user, region_id)
    rule = services.unified_rule_for(region_id)
    form = UnifiedRuleForm(obj=rule)
    preview = None
    if request.method == "GET":
        if rule is not None:
            form.load(rule)
        else:
            form.frequency.data, form.weekdays.data, form.ordinal.data = "MONTHLY", ["4"], "-1"
            form.start_time.data, form.end_time.data = time(10), time(13)
            form.slot_minutes.data, form.capacity.data, form.walk_in_places.data = 30, 5, 10
            form.valid_from.data = services.local_today(region.timezone)
    elif form.validate_on_submit():
        values = form.values()
        if values is not None:
            try:
                if "preview" in request.form:
                    preview = services.preview({**values, "kind": "open_door"}, region.timezone)
                else:
                    _rule, result = services.set_unified_rule(current_user, region_id, values)
                    flash(_("The open-door day is set for the region."), "success")
                    _flash_result(result)
                    return redirect(url_for("schedules.unified", region_id=region_id))
            except services.ScheduleRejected as rejected:
                form.add_domain_errors(rejected.invalid.errors)
    institutions = db.session.scalars(
        select(Institution)
        .join(Institution.district)
        .where(District.region_id == region_id)
        .order_by(District.name_ru, Institution.name_ru)
    ).all()
    status = 422 if form.is_submitted() and form.errors else 200
    return render_template(
        "schedules/unified.html",
        region=region,
        rule=rule,
        form=form,
        preview=preview,
        institutions=institutions,
        awaiting=services.open_door_days_awaiting_decision(region_id),
        exceptions=services.exceptions_in_region(region_id),
        exception_form=ExceptionForm(),
    ), status


@bp.route("/staff/institutions/<int:institution_id>/unified-exception", methods=["POST"])
@access.role_required(Role.region_officer, Role.admin)
def allow_exception(institution_id: int):
    institution = access.get_institution_in_scope(current_user, institution_id)
    form = ExceptionForm()
    if not form.validate_on_submit():
        abort(400)
    services.allow_exception(current_user, institution_id, form.reason.data or "")
    flash(_("The institution may now keep its own open-door schedule."), "success")
    return redirect(url_for("schedules.unified", region_id=institution.district.region_id))


@bp.route("/staff/institutions/<int:institution_id>/unified-exception/withdraw", methods=["POST"])
@access.role_required(Role.region_officer, Role.admin)
def withdraw_exception(institution_id: int):
    institution = access.get_institution_in_scope(current_user, institution_id)
    result = services.withdraw_exception(current_user, institution_id)
    flash(_("The institution follows the region's open-door day again."), "success")
    _flash_result(result)
    return redirect(url_for("schedules.unified", region_id=institution.district.region_id))


# --- administrators: the working calendar --------------------------------------------------------


def _flash_calendar_change(change: CalendarChange) -> None:
    """What the change did to sessions, or that it is being done in the background."""
    if not change.finished:
        flash(
            ngettext(
                "The sessions of %(num)s schedule are being brought in line with the calendar in "
                "the background. The result will appear below.",
                "The sessions of %(num)s schedules are being brought in line with the calendar "
                "in the background. The result will appear below.",
                len(change.schedule_ids),
            ),
            "info",
        )
        return
    if not change.schedule_ids:
        flash(_("No session had to change."), "info")
        return
    flash(
        _(
            "Sessions brought in line with the calendar: added %(created)s, changed "
            "%(updated)s, withdrawn %(withdrawn)s.",
            created=change.created,
            updated=change.updated,
            withdrawn=change.withdrawn,
        ),
        "success",
    )
    if change.conflict_ids:
        flash(
            ngettext(
                "%(num)s booked session does not match the calendar any more and was kept. "
                "The institution's staff should keep it or cancel it: see below.",
                "%(num)s booked sessions do not match the calendar any more and were kept. "
                "The institutions' staff should keep or cancel them: see below.",
                len(change.conflict_ids),
            ),
            "error",
        )


@bp.route("/admin/calendar", methods=["GET", "POST"])
@access.role_required(Role.admin)
def calendar_days():
    form = CalendarDayForm()
    if form.validate_on_submit():
        change = services.add_calendar_day(
            current_user, form.day.data, CalendarDayKind(form.kind.data), form.note.data or ""
        )
        flash(_("The date has been added to the calendar."), "success")
        _flash_calendar_change(change)
        return redirect(url_for("schedules.calendar_days"))
    days = db.session.scalars(select(CalendarDay).order_by(CalendarDay.day.desc())).all()
    changes = services.recent_calendar_changes()
    status = 422 if form.is_submitted() else 200
    return render_template(
        "schedules/calendar.html",
        form=form,
        days=days,
        changes=changes,
        attention=services.sessions_needing_attention(changes),
    ), status


@bp.route("/admin/calendar/<int:day_id>/delete", methods=["POST"])
@access.role_required(Role.admin)
def delete_calendar_day(day_id: int):
    change = services.remove_calendar_day(current_user, day_id)
    flash(_("The date has been removed from the calendar."), "success")
    _flash_calendar_change(change)
    return redirect(url_for("schedules.calendar_days"))


# --- public calendar feeds ---------------------------------------------------------------------


def _calendar_response(body: bytes, filename: str) -> Response:
    response = Response(body, content_type="text/calendar; charset=utf-8")
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    response.cache_control.public = True
    response.cache_control.max_age = 900
    response.set_etag(hashlib.sha256(body).hexdigest())
    return response.make_conditional(request)


@bp.route("/institutions/<int:institution_id>/calendar.ics")
def institution_feed(institution_id: int):
    institution = db.session.get(Institution, institution_id)
    if institution is None or not institution.active:
        abort(404)
    body = queries.feed_for(
        queries.institution_feed_sessions(institution_id),
        tz=_timezone(institution),
        name=institution.name,
        domain=calendar_uid_domain(),
        kind_labels=kind_labels(),
        url_for_session=lambda s: url_for(
            "institutions.detail", institution_id=institution_id, _external=True
        ),
    )
    return _calendar_response(body, f"institution-{institution_id}.ics")


@bp.route("/regions/<code>/<slug>/calendar.ics")
def district_feed(code: str, slug: str):
    district = district_or_404(code, slug)
    body = queries.feed_for(
        queries.district_feed_sessions(district.id),
        tz=district.region.timezone,
        name=_("%(district)s: open-door days", district=district.name),
        domain=calendar_uid_domain(),
        kind_labels=kind_labels(),
        url_for_session=lambda s: url_for(
            "institutions.detail", institution_id=s.institution_id, _external=True
        ),
    )
    return _calendar_response(body, f"{district.region.code}-{slug}.ics")
