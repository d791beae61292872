"""The staff workspace: agenda, printable register, check-in, walk-ins, outcomes, close-out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import TypeVar

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from .. import access
from ..booking import identity
from ..booking.forms import topic_field_choices
from ..booking.services import topic_choices
from ..errors import Conflict, DomainError
from ..forms import Form, show_refusal
from ..institutions.models import Institution
from ..reports.services import figure
from ..schedules.models import ScheduledSession
from ..urls import whole_number
from . import services
from .forms import (
    CloseQuestionForm,
    CloseSessionForm,
    FollowUpChangeForm,
    OutcomeForm,
    QuestionForm,
    ReceivedByForm,
    ReopenSessionForm,
    SignOffForm,
    WalkInForm,
)
from .history import question_history
from .labels import MONTH_FIGURES, session_status_label
from .models import Outcome, Question, ReceivedBy, Visit

FormT = TypeVar("FormT", bound=Form)
bp = Blueprint("visits", __name__, url_prefix="/staff")
WORKSPACE = access.role_required(*services.WORKSPACE_ROLES)
# The booking's public status page shows each question's history through this helper.
bp.add_app_template_global(question_history, "question_history")
bp.add_app_template_global(session_status_label, "session_status_label")


@bp.route("/institutions/<int:institution_id>/agenda")
@WORKSPACE
def agenda(institution_id: int):
    institution = services.require_workspace(current_user, institution_id)
    day = services.parse_day(request.args.get("date", ""), institution)
    return _agenda_page(institution, day, week=request.args.get("view") == "week")


def _agenda_page(
    institution: Institution,
    day: date,
    *,
    week: bool = False,
    refused: tuple[int, ReopenSessionForm] | None = None,
    refusal: DomainError | None = None,
):
    """The agenda; `refused` is a reopen form sent back with its errors, for that session, and
    `refusal` a check-in that was refused, said above the day it was made on."""
    result = services.agenda(current_user, institution.id, day, week=week)
    reopen_forms = {
        item.session.id: _identified(ReopenSessionForm(formdata=None), f"reopen-{item.session.id}")
        for item in result.sessions
    }
    if refused is not None:
        reopen_forms[refused[0]] = _identified(refused[1], f"reopen-{refused[0]}")
    return render_template(
        "visits/agenda.html",
        institution=institution,
        day=result.first_day,
        chosen=day,
        week=week,
        sessions=result.sessions,
        form=Form(),
        reopen_forms=reopen_forms,
        refused_form=refused[1] if refused else None,
        refusal=refusal.user_message if refusal else None,
        mask_iin=identity.mask_iin,
        step=timedelta(days=result.days),
        today=services.local_today(institution),
    ), (refusal.status_code if refusal else 422 if refused else 200)


def _identified(form: FormT, prefix: str) -> FormT:
    """Give a form's fields ids of their own where a page repeats the form (one per session)
    while the names it posts stay the same, so that labels, errors and the error summary's links
    point at this copy."""
    for field in form:
        field.id = f"{prefix}-{field.name}"
        field.label.field_id = field.id
    return form


@bp.route("/institutions/<int:institution_id>/register")
@WORKSPACE
def register(institution_id: int):
    institution = services.require_workspace(current_user, institution_id)
    day = services.parse_day(request.args.get("date", ""), institution)
    result = services.agenda(current_user, institution_id, day, page="register")
    return render_template(
        "visits/register.html",
        institution=institution,
        day=day,
        sessions=result.sessions,
        mask_iin=identity.mask_iin,
    )


@bp.route("/bookings/<int:booking_id>/check-in", methods=["POST"])
@WORKSPACE
def check_in(booking_id: int):
    if not Form().validate_on_submit():
        abort(400)
    mark = request.form.get("mark", "")
    if mark not in ("attended", "no_show", "undo"):
        abort(400)
    try:
        booking = services.check_in(current_user, booking_id, mark)
    except Conflict as refusal:  # too early, already marked, or the session is closed
        session = services.booking_in_workspace(current_user, booking_id).session
        return _agenda_page(session.institution, session.local_date, refusal=refusal)
    return redirect(
        url_for(
            "visits.agenda",
            institution_id=booking.institution_id,
            date=booking.session.local_date.isoformat(),
        ),
        303,
    )


@bp.route("/sessions/<int:session_id>/walk-in", methods=["GET", "POST"])
@WORKSPACE
def walk_in(session_id: int):
    session = services.session_for_walk_in(current_user, session_id)
    form = WalkInForm()
    form.topic_id.choices = topic_field_choices(topic_choices())
    if form.validate_on_submit():
        visit = services.register_walk_in(
            current_user,
            session_id,
            name=form.name.data or "",
            iin=form.iin.data or "",
            phone=form.normalised_phone,
            topic_id=form.topic_id.data,
            summary=form.summary.data or "",
            received_by=ReceivedBy(form.received_by.data),
            received_by_name=form.received_by_name.data or "",
        )
        flash(_("The visitor has been registered."), "success")
        return redirect(url_for("visits.visit", visit_id=visit.id), 303)
    status = 422 if form.is_submitted() else 200
    return render_template("visits/walk_in.html", form=form, session=session), status


@bp.route("/visits/<int:visit_id>", methods=["GET", "POST"])
@WORKSPACE
def visit(visit_id: int):
    visit = services.open_visit(current_user, visit_id)
    form = QuestionForm()
    if request.method == "GET" and visit.booking is not None:
        form.topic_id.data = visit.booking.topic_id
        if not visit.questions:  # what the citizen wrote when booking is the first question
            form.summary.data = visit.booking.question
    form.topic_id.choices = topic_field_choices(topic_choices())
    if form.validate_on_submit():
        services.add_question(current_user, visit_id, form.topic_id.data, form.summary.data or "")
        flash(_("The question has been added."), "success")
        return redirect(url_for("visits.visit", visit_id=visit_id), 303)
    return _visit_page(visit, form=form, status=422 if form.is_submitted() else 200)


def _visit_page(
    visit: Visit,
    *,
    form: QuestionForm | None = None,
    received_form: ReceivedByForm | None = None,
    refused: tuple[int, OutcomeForm | CloseQuestionForm] | None = None,
    status: int = 200,
):
    """The visit page; a form sent from it and refused comes back with what was typed and its
    errors (`refused` is a question's outcome form), every other form as new."""
    if form is None:
        form = QuestionForm(formdata=None)
        form.topic_id.choices = topic_field_choices(topic_choices())
    outcome_forms = _outcome_forms(visit.questions)
    if refused is not None:
        outcome_forms[refused[0]] = refused[1]
    if received_form is None:
        received_form = ReceivedByForm(
            formdata=None, received_by=visit.received_by, received_by_name=visit.received_by_name
        )
    return render_template(
        "visits/visit.html",
        received_form=received_form,
        visit=visit,
        form=form,
        outcome_forms=outcome_forms,
        refused_form=refused[1] if refused else received_form if received_form.errors else None,
        mask_iin=identity.mask_iin,
        mask_phone=identity.mask_phone,
    ), status


@bp.route("/visits/<int:visit_id>/received-by", methods=["POST"])
@WORKSPACE
def received_by(visit_id: int):
    form = ReceivedByForm()
    if form.validate_on_submit():
        services.set_received_by(
            current_user,
            visit_id,
            ReceivedBy(form.received_by.data),
            form.received_by_name.data or "",
        )
        flash(_("Your changes have been saved."), "success")
        return redirect(url_for("visits.visit", visit_id=visit_id), 303)
    visit = services.open_visit(current_user, visit_id)
    return _visit_page(visit, received_form=form, status=422)


def _outcome_form_class(current_outcome: str | None) -> type[OutcomeForm | CloseQuestionForm]:
    """A question without an outcome gets one; a pending one is closed with a note of what was done."""
    return CloseQuestionForm if current_outcome == Outcome.pending else OutcomeForm


def _outcome_forms(questions: Iterable[Question]) -> dict[int, OutcomeForm | CloseQuestionForm]:
    """A new outcome form for each question, by its id, at the version shown."""
    return {
        q.id: _outcome_form_class(q.outcome)(formdata=None, prefix=f"q{q.id}", version=q.version)
        for q in questions
    }


@bp.route("/questions/<int:question_id>/outcome", methods=["POST"])
@WORKSPACE
def outcome(question_id: int):
    question = services.question_in_workspace(current_user, question_id)
    institution_id, visit_id = question.institution_id, question.visit_id
    # Sent back to the page it came from: the follow-up list holds the questions still open
    # (pending, or with no outcome yet), and `back` names a page, never an address.
    from_follow_up = request.form.get("back") == "follow-up" and question.closed_at is None
    form = _outcome_form_class(question.outcome)(prefix=f"q{question_id}")
    if form.validate_on_submit():
        pending = isinstance(form, OutcomeForm)
        try:
            services.record_outcome(
                current_user,
                question_id,
                outcome=Outcome(form.outcome.data),
                responsible=(form.responsible.data or "") if pending else "",
                due_date=form.due_date.data if pending else None,
                note=form.note.data or "",
                expected_version=whole_number(form.version.data),
            )
        except services.InvalidEntry as refusal:
            show_refusal(form, refusal)
        else:
            flash(_("The outcome has been recorded."), "success")
            if from_follow_up:
                return redirect(url_for("visits.follow_up", institution_id=institution_id), 303)
            return redirect(url_for("visits.visit", visit_id=visit_id), 303)
    if from_follow_up:
        return _follow_up_page(
            services.require_workspace(current_user, institution_id), (question_id, form)
        )
    return _visit_page(
        services.open_visit(current_user, visit_id), refused=(question_id, form), status=422
    )


@bp.route("/institutions/<int:institution_id>/follow-up")
@WORKSPACE
def follow_up(institution_id: int):
    return _follow_up_page(services.require_workspace(current_user, institution_id))


def _follow_up_page(
    institution: Institution,
    refused: tuple[int, CloseQuestionForm | OutcomeForm | FollowUpChangeForm] | None = None,
    *,
    status: int = 422,
    refusal: DomainError | None = None,
):
    """The follow-up list, read afresh; `refused` is a question's outcome or change form sent
    back with what was typed and its errors, and `refusal` one about a question no longer listed
    (closed by someone else meanwhile), said above the list."""
    worklist = services.follow_up(current_user, institution.id)
    forms = _outcome_forms([*worklist.without_outcome, *worklist.pending])
    changes = {
        q.id: FollowUpChangeForm(
            formdata=None,
            prefix=f"c{q.id}",
            responsible=q.responsible,
            due_date=q.due_date,
            version=q.version,
        )
        for q in worklist.pending
    }
    if refused is not None:
        (changes if isinstance(refused[1], FollowUpChangeForm) else forms)[refused[0]] = refused[1]
    return render_template(
        "visits/follow_up.html",
        institution=institution,
        worklist=worklist,
        forms=forms,
        changes=changes,
        refused_form=refused[1] if refused else None,
        refusal=refusal.user_message if refusal else None,
        today=services.local_today(institution),
    ), (refusal.status_code if refusal else status if refused else 200)


@bp.route("/questions/<int:question_id>/follow-up", methods=["POST"])
@WORKSPACE
def change_follow_up(question_id: int):
    """A pending question's responsible person or due date, changed from the follow-up list."""
    question = services.question_in_workspace(current_user, question_id)
    institution = services.require_workspace(current_user, question.institution_id)
    form = FollowUpChangeForm(prefix=f"c{question_id}")
    status = 422
    if form.validate_on_submit():
        try:
            services.change_follow_up(
                current_user,
                question_id,
                responsible=form.responsible.data or "",
                due_date=form.due_date.data,
                reason=form.reason.data or "",
                expected_version=whole_number(form.version.data),
            )
        except services.InvalidEntry as refusal:
            show_refusal(form, refusal)
        except services.StaleRecord:
            # Changed by someone else while the page was open: shown again as it is now, with
            # what was typed, to be checked and sent again at the version now shown.
            current = services.question_in_workspace(current_user, question_id)  # re-read
            if current.closed_at is not None:
                return _follow_up_page(institution, refusal=services.QuestionNoLongerPending())
            form.version.data = str(current.version)
            form.version.errors = [
                _(
                    "Someone else changed this question while the page was open: its "
                    "responsible person and due date are shown as they are now. Check them and "
                    "send your change again."
                )
            ]
            status = 409
        except Conflict as refusal:  # an outcome was recorded meanwhile
            return _follow_up_page(institution, refusal=refusal)
        else:
            flash(_("Your changes have been saved."), "success")
            return redirect(url_for("visits.follow_up", institution_id=institution.id), 303)
    return _follow_up_page(institution, (question_id, form), status=status)


@bp.route("/institutions/<int:institution_id>/close-out")
@WORKSPACE
def close_out(institution_id: int):
    return _close_out_page(services.require_workspace(current_user, institution_id))


def _close_out_page(
    institution: Institution,
    refused: tuple[int, CloseSessionForm] | None = None,
    *,
    status: int = 422,
    refusal: DomainError | None = None,
):
    """The close-out page, read afresh; `refused` is a session's close form sent back with what
    was typed and its errors at the fields, and `refusal` one about the whole session (closed by
    someone else meanwhile, say), said above the list."""
    items = services.sessions_to_close(current_user, institution.id)
    forms = {
        item.session.id: _identified(CloseSessionForm(formdata=None), f"close-{item.session.id}")
        for item in items
    }
    if refused is not None:
        forms[refused[0]] = _identified(refused[1], f"close-{refused[0]}")
    for item in items:
        forms[item.session.id].show_listed(
            unmarked=len(item.unmarked),
            without_outcome=len(item.without_outcome),
            without_question=len(item.without_question),
        )
    return render_template(
        "visits/close_out.html",
        institution=institution,
        items=items,
        forms=forms,
        refused_form=refused[1] if refused else None,
        refusal=refusal.user_message if refusal else None,
    ), (refusal.status_code if refusal else status if refused else 200)


@bp.route("/sessions/<int:session_id>/close", methods=["POST"])
@WORKSPACE
def close_session(session_id: int):
    form = CloseSessionForm()
    status = 422
    if form.validate_on_submit():
        try:
            session: ScheduledSession = services.close_session(
                current_user,
                session_id,
                held=form.held.data == "yes",
                reason=form.reason.data or "",
                confirmed=services.CloseOutConfirmations(
                    mark_no_shows=form.confirmed(form.mark_no_shows, form.unmarked),
                    confirm_without_outcome=form.confirmed(
                        form.confirm_without_outcome, form.without_outcome
                    ),
                    confirm_no_question=form.confirmed(
                        form.confirm_no_question, form.without_question
                    ),
                ),
            )
        except services.InvalidEntry as refusal:  # 409 when the session changed meanwhile
            show_refusal(form, refusal)
            status = refusal.status_code
        except Conflict as refusal:  # closed by someone else meanwhile
            institution = services.session_in_workspace(current_user, session_id).institution
            return _close_out_page(institution, refusal=refusal)
        else:
            flash(_("The session has been closed."), "success")
            return redirect(url_for("visits.close_out", institution_id=session.institution_id), 303)
    session = services.session_in_workspace(current_user, session_id)
    return _close_out_page(session.institution, (session_id, form), status=status)


@bp.route("/sessions/<int:session_id>/reopen", methods=["POST"])
@WORKSPACE
def reopen_session(session_id: int):
    form = ReopenSessionForm()
    if form.validate_on_submit():
        try:
            session: ScheduledSession = services.reopen_session(
                current_user, session_id, form.reason.data or ""
            )
        except services.InvalidEntry as refusal:
            show_refusal(form, refusal)
        else:
            flash(
                _("The session is open again. Close it once the corrections are made."), "success"
            )
            day = session.local_date.isoformat()
            return redirect(
                url_for("visits.agenda", institution_id=session.institution_id, date=day), 303
            )
    session = services.session_in_workspace(current_user, session_id)
    return _agenda_page(session.institution, session.local_date, refused=(session_id, form))


@bp.route("/institutions/<int:institution_id>/months/<month>", methods=["GET", "POST"])
@WORKSPACE
def month(institution_id: int, month: str):
    institution = services.require_workspace(current_user, institution_id)
    month = services.parse_month(month, institution)
    form = SignOffForm()
    if form.validate_on_submit():
        try:
            services.sign_month(current_user, institution_id, month, form.reason.data or "")
        except services.InvalidEntry as refusal:
            show_refusal(form, refusal)
        else:
            flash(_("The month has been signed off."), "success")
            return redirect(
                url_for("visits.month", institution_id=institution_id, month=month), 303
            )
    return render_template(
        "visits/month.html",
        institution=institution,
        month=month,
        earlier=services.month_before(month),
        later=services.month_after(month, institution),
        form=form,
        overview=services.month_overview(current_user, institution_id, month),
        figure_labels=MONTH_FIGURES,
        figure=figure,
    ), (422 if form.errors else 200)
