"""Citizen pages: booking form, confirmation and manage link, public status by reference."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as browser_session
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup, escape

from scheduling import CalendarEvent, event_uid, render_calendar

from .. import access
from ..auth.models import Role
from ..clock import now as clock_now
from ..database import read_only_request, read_only_view
from ..errors import DomainError
from ..extensions import limiter
from ..forms import Form
from ..i18n import current_language, local_moment
from ..layout import visitors_page
from ..urls import calendar_uid_domain
from . import identity, services
from .answer_links import Purpose
from .forms import (
    BookingForm,
    CancelBookingForm,
    FeedbackForm,
    RescheduleForm,
    ResolvedForm,
    StatusLookupForm,
    TopicForm,
    topic_field_choices,
)
from .models import Booking

bp = Blueprint("booking", __name__)


# The addresses that hold a secret (a manage token, a signed answer link).
_PRIVATE_PAGES = ("/m/<token>", "/feedback/<link>", "/resolved/<link>")


@bp.after_request
def _manage_pages_are_private(response: Response) -> Response:
    """Every answer under a manage link (pages, refusals, the .ics, redirects) may show the
    citizen's name and question, and an answer link's page is the citizen's own: neither a
    shared computer's browser nor a proxy keeps it."""
    if request.url_rule is not None and request.url_rule.rule.startswith(_PRIVATE_PAGES):
        response.headers["Cache-Control"] = "private, no-store"
    return response


def _limit(name: str):  # type: ignore[no-untyped-def]
    return lambda: str(current_app.config[name])


def _iin_key() -> str:
    """Rate-limit key of a valid form's citizen (keyed hash, never the IIN itself)."""
    return "iin:" + identity.iin_hash(request.form["iin"], current_app.config["IIN_HASH_KEY"])


# The slots this browser booked lately (the session cookie, no database): going Back to the
# form of a time one has just taken says so, rather than that the time is taken.
_BOOKED_HERE, _BOOKED_HERE_KEPT = "booked_slots", 5


def _remember_booked(slot_id: int) -> None:
    earlier = [booked for booked in browser_session.get(_BOOKED_HERE, []) if booked != slot_id]
    browser_session[_BOOKED_HERE] = [*earlier[-(_BOOKED_HERE_KEPT - 1) :], slot_id]


def _opening(error: services.SlotUnavailable) -> str | None:
    """When booking opens for a time whose booking has not opened yet, in the reader's language
    and the local time of the institution's region."""
    if error.opens_at is None or error.timezone is None:
        return None
    return _(
        "Booking for this time opens on %(date)s at %(time)s, local time.",
        date=local_moment(error.opens_at, "d MMMM y", error.timezone),
        time=local_moment(error.opens_at, "HH:mm", error.timezone),
    )


def _taken_page(error: services.SlotUnavailable):  # type: ignore[no-untyped-def]
    if error.taken and error.slot_id in browser_session.get(_BOOKED_HERE, ()):
        # Taken by this browser's own booking: no other times (the month's limit stands).
        page = render_template(
            "booking/taken.html", booked_here=True, institution_id=error.institution_id
        )
        return page, 409
    alternatives = error.free_times  # read with the slot, when the slot was full
    if alternatives is None:
        alternatives = []
        if error.institution_id is not None:
            alternatives = services.nearest_free_slots(
                institution_id=error.institution_id,
                schedule_id=error.schedule_id,
                exclude_slot_id=error.slot_id,
                window=error.window,
            )

    opening = _opening(error)

    def render() -> str:
        return render_template(
            "booking/taken.html",
            message=error.user_message,
            opening=opening,
            alternatives=alternatives,
            institution_id=error.institution_id,
        )

    # A rush's refusals share their message and free times: the page is kept by both.
    key = (
        "booking/taken.html",
        error.user_message,
        opening,
        tuple(alternatives),
        error.institution_id,
    )
    page = visitors_page(key, render)
    return (page if page is not None else render()), 409


@bp.errorhandler(services.SlotUnavailable)
def slot_unavailable(error: services.SlotUnavailable):  # type: ignore[no-untyped-def]
    return _taken_page(error)


def _blank_fields(topics: list[tuple[int, str]]) -> Markup:
    """A blank form's visible fields, rendered once per language and topic list (the topics are
    read for every request, so an edited list is a new key). A rush opens this form more than
    any other page."""
    return _blank_fields_for(current_language(), tuple(topics))


@functools.lru_cache(maxsize=32)
def _blank_fields_for(language: str, topics: tuple[tuple[int, str], ...]) -> Markup:
    # Rendered in the request that asked for it, whose language is `language`.
    form = BookingForm()
    form.topic_id.choices = topic_field_choices(topics)
    form.locale.data = language
    return Markup(render_template("booking/_fields.html", form=form))  # noqa: S704


@bp.route("/book/<int:slot_id>", methods=["GET", "POST"])
def book(slot_id: int):
    # A repeated submission must still reach book_slot (which returns the first booking), so the
    # availability check up front is for people opening the form, not for submissions.
    if request.method == "POST":
        return _submit_booking(slot_id)
    read_only_request()
    slot, topics = services.slot_for_booking(slot_id)
    return _booking_form(slot, topics=topics)


def _booking_form(  # type: ignore[no-untyped-def]
    slot: services.BookableSlot,
    submitted: BookingForm | None = None,
    topics: list[tuple[int, str]] | None = None,
    limit_reached: services.BookingLimitReached | None = None,
):
    """The form for one slot: blank (200) with `topics` to choose from, or a refused submission
    with its errors (422), or as sent by a citizen over the month's limit (409)."""
    session = slot.session
    panel = Markup(  # noqa: S704 (a template's output)
        current_app.jinja_env.get_template("booking/_slot_panel.html").render(
            slot=slot, session=session, institution=session.institution
        )
    )
    csrf_value = generate_csrf()
    if submitted is not None:
        fields = Markup(render_template("booking/_fields.html", form=submitted))  # noqa: S704
        key = submitted.idempotency_key.data or ""
        page = _form_page(submitted, fields, key, panel, csrf_value, limit_reached)
        return page, 422 if limit_reached is None else limit_reached.status_code
    fields, key = _blank_fields(topics or []), services.new_idempotency_key()
    # A blank form differs from the next only by its time (the panel) and its two tokens.
    page = visitors_page(
        ("booking/form.html", fields),
        lambda: _form_page(None, fields, _KEY_MARKER, Markup(_PANEL_MARKER), _CSRF_MARKER),  # noqa: S704
        {
            _PANEL_MARKER: panel,
            _CSRF_MARKER: str(escape(csrf_value)),
            _KEY_MARKER: str(escape(key)),
        },
    )
    return (page if page is not None else _form_page(None, fields, key, panel, csrf_value)), 200


# Letters only: escaping leaves them as they are, so they can be found in the kept page.
_PANEL_MARKER, _CSRF_MARKER, _KEY_MARKER = "ASHYQFORMPANEL", "ASHYQFORMCSRF", "ASHYQFORMKEY"


def _form_page(  # type: ignore[no-untyped-def]
    form: BookingForm | None,
    fields: Markup,
    key: str,
    panel: Markup,
    csrf_value: str,
    limit_reached: services.BookingLimitReached | None = None,
):
    return render_template(
        "booking/form.html",
        form=form,
        fields=fields,
        idempotency_key=key,
        panel=panel,
        csrf_value=csrf_value,
        limit_reached=limit_reached,
    )


# The limits apply to submissions only: called from `book` for a POST, they cost opening the form
# nothing (the decorators of a GET-and-POST view ran the limiter's checks for every GET too).
# Every submission counts toward its address's limit, only a valid form toward its IIN's: anyone
# can send forms with a mistake and someone else's IIN, and they must not lock that citizen out.
@limiter.limit(_limit("BOOKING_RATE_LIMIT"))
def _submit_booking(slot_id: int):  # type: ignore[no-untyped-def]
    form = BookingForm()
    if form.website.data:
        abort(400)  # the honeypot: people never see this field
    if not form.validate_on_submit():
        return _refused_form(slot_id, form)
    return _book_valid_form(slot_id, form)


@limiter.limit(_limit("BOOKING_IIN_RATE_LIMIT"), key_func=_iin_key)
def _book_valid_form(slot_id: int, form: BookingForm):  # type: ignore[no-untyped-def]
    # book_slot reads the slot itself (an unknown one is a 404 there too).
    try:
        result = services.book_slot(
            services.BookingRequest(
                slot_id=slot_id,
                idempotency_key=form.idempotency_key.data or "",
                citizen_name=form.full_name.data or "",
                iin=form.iin.data or "",
                phone=form.normalised_phone,
                email=form.email.data or "",
                locale=form.locale.data or "kk",
                topic_id=form.topic_id.data,
                question=form.question.data or "",
                accessibility=form.accessibility.data or [],
                accessibility_note=form.accessibility_note.data or "",
            )
        )
    except services.TopicUnavailable as refusal:
        form.topic_id.errors = [refusal.user_message]
        return _refused_form(slot_id, form)
    except services.BookingLimitReached as refusal:
        # The form as sent (the IIN only in its own field), with what to do instead.
        return _refused_form(slot_id, form, refusal)
    _remember_booked(slot_id)
    return redirect(url_for("booking.manage", token=result.token, new=1), 303)


def _refused_form(  # type: ignore[no-untyped-def]
    slot_id: int, form: BookingForm, limit_reached: services.BookingLimitReached | None = None
):
    """The form again with its messages (422), and the topic list as it is now: a topic that is
    not on it is said at once, with the form's other mistakes. Over the month's limit (409), the
    form as sent, with the booking the citizen holds when they may know it."""
    choices = services.topic_choices()
    form.topic_id.choices = topic_field_choices(choices)
    chosen = form.topic_id.data
    if not form.topic_id.errors and chosen not in {topic_id for topic_id, _ in choices}:
        form.topic_id.errors = [services.TopicUnavailable().user_message]
    return _booking_form(services.get_slot(slot_id), submitted=form, limit_reached=limit_reached)


@bp.route("/m/<token>")
@read_only_view
def manage(token: str):
    return _manage_page(services.booking_by_token(token), token)


def _manage_page(booking: Booking, token: str, refusal: str | None = None, **forms: Form) -> str:
    """The manage page; `forms` are the page's forms as the citizen sent them (with what they
    typed and its mistakes), `refusal` why the service refused what they asked."""
    can_change = services.can_change(booking)
    notices_left = services.waitlist_notices_left(booking)
    # The waitlist is offered only when no earlier time is free (else: move to it).
    waiting_possible = can_change and notices_left is None
    earlier_free = services.earlier_free_time(booking) if waiting_possible else None
    return render_template(
        "booking/manage.html",
        booking=booking,
        token=token,
        new=request.args.get("new") == "1",
        can_change=can_change,
        deadline=services.cancellation_deadline(booking),
        masked_iin=identity.mask_iin(booking.iin_last4),
        masked_phone=identity.mask_phone(booking.phone),
        feedback=services.feedback_for(booking),
        waitlist_notices_left=notices_left,
        earlier_free=earlier_free,
        ask_resolved=services.resolution_check_due(booking),
        refusal=refusal,
        **{
            "feedback_form": FeedbackForm(),
            "resolved_form": ResolvedForm(),
            "cancel_form": CancelBookingForm(),
            **forms,
        },
    )


@bp.route("/m/<token>/cancel", methods=["GET", "POST"])
def cancel(token: str):
    booking = services.booking_by_token(token)
    form = CancelBookingForm()
    if form.validate_on_submit():
        services.cancel_by_citizen(token)
        flash(_("Your booking is cancelled. The time is free for someone else."), "success")
        return redirect(url_for("booking.manage", token=token), 303)
    services.require_changeable(booking)
    status = 400 if form.is_submitted() else 200
    return render_template("booking/cancel.html", booking=booking, token=token, form=form), status


@bp.route("/m/<token>/reschedule", methods=["GET", "POST"])
def reschedule(token: str):
    booking = services.booking_by_token(token)
    services.require_changeable(booking)
    form = RescheduleForm()
    refusal, status = None, 200
    if form.validate_on_submit():
        # One call decides: moved, or refused with the reason (4xx) and nothing changed.
        try:
            services.reschedule(token, form.slot_id.data)
        except DomainError as refused:
            # Taken meanwhile, not a time of this schedule, the month's limit: the citizen
            # chooses again here (not from the page for new bookings), told why.
            refusal, status = refused.user_message, refused.status_code
        else:
            flash(_("Your meeting has been moved."), "success")
            return redirect(url_for("booking.manage", token=token), 303)
    elif form.is_submitted():
        status = 422
    options = services.times_to_move_to(booking)
    form.slot_id.choices = [(slot.id, slot.starts_at.isoformat()) for slot in options]
    zone = ZoneInfo(booking.institution.district.region.timezone)
    days = [
        (day, list(times))
        for day, times in groupby(options, key=lambda slot: slot.starts_at.astimezone(zone).date())
    ]
    return render_template(
        "booking/reschedule.html",
        booking=booking,
        token=token,
        form=form,
        days=days,
        refusal=refusal,
    ), status


@bp.route("/m/<token>/booking.ics")
@read_only_view
def booking_ics(token: str):
    booking = services.booking_by_token(token)
    institution = booking.institution
    event = CalendarEvent(
        uid=event_uid("booking", booking.reference, calendar_uid_domain()),
        start=booking.slot.starts_at,
        end=booking.slot.ends_at,
        summary=_("Meeting: %(institution)s", institution=institution.name),
        location=booking.schedule.location or institution.address,
        description=_("Booking reference: %(reference)s", reference=booking.reference),
        status="CONFIRMED" if booking.is_active else "CANCELLED",
        sequence=len(booking.events),
        last_modified=booking.updated_at,
    )
    body = render_calendar([event], tz=institution.district.region.timezone, name=institution.name)
    response = Response(body, content_type="text/calendar; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{booking.reference}.ics"'
    return response


@dataclass(frozen=True)
class _Answer:
    """One answer a citizen gives about a booking, by its manage link or by the signed link of
    the message that asks for it: the same form, the same service, the same thanks."""

    heading: Any  # lazy strings: read in the reader's language
    form: type[Form]
    record: Callable[[Booking, Any], object]
    thanks: Any


_ANSWERS = {
    Purpose.feedback: _Answer(
        _l("How was your meeting?"),
        FeedbackForm,
        lambda booking, form: services.leave_feedback(
            booking, form.rating.data, form.comment.data or ""
        ),
        _l("Thank you for your feedback."),
    ),
    Purpose.resolved: _Answer(
        _l("Was your question actually resolved?"),
        ResolvedForm,
        lambda booking, form: services.answer_really_resolved(booking, form.resolved.data == "yes"),
        _l("Thank you for your answer."),
    ),
}


@bp.route("/m/<token>/feedback", methods=["POST"])
def feedback(token: str):
    return _answer_by_manage_link(token, Purpose.feedback)


@bp.route("/m/<token>/resolved", methods=["POST"])
def resolved(token: str):
    return _answer_by_manage_link(token, Purpose.resolved)


def _answer_by_manage_link(token: str, purpose: Purpose):  # type: ignore[no-untyped-def]
    """A form of the manage page (`<purpose>_form` in its template): on a mistake or a refusal,
    the manage page again with the form as it was sent."""
    booking = services.booking_by_token(token)
    return _record_answer(
        booking,
        purpose,
        lambda form, refusal: _manage_page(booking, token, refusal, **{f"{purpose}_form": form}),
        url_for("booking.manage", token=token),
    )


@bp.route("/feedback/<link>", methods=["GET", "POST"])
def feedback_by_link(link: str):
    return _answer_by_link(link, Purpose.feedback)


@bp.route("/resolved/<link>", methods=["GET", "POST"])
def resolved_by_link(link: str):
    return _answer_by_link(link, Purpose.resolved)


def _answer_by_link(link: str, purpose: Purpose):  # type: ignore[no-untyped-def]
    """The page of a signed link (`answer_links`): this one answer for this one booking, and
    nothing of the citizen's (no name, IIN, phone or question)."""
    if request.method == "GET":
        read_only_request()
    booking = services.booking_by_answer_link(link, purpose)
    answer, action = _ANSWERS[purpose], url_for(purpose.endpoint, link=link)

    def page(form: Form, refusal: str | None = None) -> str:
        return render_template(
            "booking/answer.html",
            booking=booking,
            purpose=purpose.value,
            heading=answer.heading,
            form=form,
            action=action,
            refusal=refusal,
            closed=services.answer_refusal(booking, purpose),
            feedback=services.feedback_for(booking),
        )

    if request.method == "GET":
        return page(answer.form())
    return _record_answer(booking, purpose, page, action)


def _record_answer(  # type: ignore[no-untyped-def]
    booking: Booking,
    purpose: Purpose,
    page: Callable[[Form, str | None], str],
    back: str,
):
    """Record the answer, thank and go `back`; or `page` again with the form as it was sent and
    why not (422 its mistakes, 4xx the service's refusal)."""
    answer = _ANSWERS[purpose]
    form = answer.form()
    if not form.validate_on_submit():
        return page(form, None), 422
    try:
        answer.record(booking, form)
    except DomainError as refused:
        return page(form, refused.user_message), refused.status_code
    flash(str(answer.thanks), "success")
    return redirect(back, 303)


@bp.route("/m/<token>/waitlist", methods=["POST"])
def waitlist(token: str):
    booking = services.booking_by_token(token)
    form = CancelBookingForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        services.join_waitlist(token)
    except DomainError as refused:  # an earlier time is free, the notices are used up…
        return _manage_page(booking, token, refused.user_message), refused.status_code
    flash(_("We will tell you if an earlier time frees up (at most three times)."), "success")
    return redirect(url_for("booking.manage", token=token), 303)


@bp.route("/m/<token>/waitlist/leave", methods=["POST"])
def leave_waitlist(token: str):
    services.booking_by_token(token)
    if not CancelBookingForm().validate_on_submit():
        abort(400)
    services.leave_waitlist(token)
    flash(
        _(
            "You have left the waitlist: we will not tell you about earlier times. "
            "You can join it again on this page."
        ),
        "success",
    )
    return redirect(url_for("booking.manage", token=token), 303)


@bp.route("/status")
@limiter.limit(_limit("STATUS_RATE_LIMIT"))
def status_lookup():
    form = StatusLookupForm(request.args)
    if request.args.get("reference") is not None and form.validate():
        return redirect(url_for("booking.status", reference=form.reference.data))
    return render_template("booking/status_lookup.html", form=form), (
        422 if request.args.get("reference") is not None else 200
    )


@bp.route("/status/<reference>")
@limiter.limit(_limit("STATUS_RATE_LIMIT"))
@read_only_view
def status(reference: str):
    booking = services.booking_by_reference(reference)
    if booking is None:
        return render_template(
            "booking/status_lookup.html",
            form=StatusLookupForm(data={"reference": reference[:12]}),
            not_found=True,
        ), 404
    return render_template(
        "booking/status.html",
        booking=booking,
        events=services.public_history(booking),
        now=clock_now(),
    )


@bp.route("/admin/topics", methods=["GET", "POST"])
@access.role_required(Role.admin)
def topics():
    form = TopicForm()
    if form.validate_on_submit():
        try:
            services.add_topic(
                current_user,
                {
                    name: (form[name].data or "").strip()
                    for name in ("slug", "name_kk", "name_ru", "name_en")
                },
            )
        except services.TopicCodeTaken as taken:
            form.slug.errors = [taken.user_message]
        else:
            flash(_("The topic has been added."), "success")
            return redirect(url_for("booking.topics"), 303)
    status = 422 if form.is_submitted() else 200
    # The topic just retired or brought back, for its "Undo" (once: a reload does not offer it).
    changed = browser_session.pop(_TOPIC_CHANGED, None)
    undo = services.topic_by_id(changed) if changed is not None else None
    return render_template(
        "booking/topics.html", form=form, topics=services.all_topics(), undo=undo
    ), status


_TOPIC_CHANGED = "topic_changed"


@bp.route("/admin/topics/<int:topic_id>/active", methods=["POST"])
@access.role_required(Role.admin)
def topic_active(topic_id: int):
    if not CancelBookingForm().validate_on_submit():
        abort(400)
    topic = services.set_topic_active(current_user, topic_id, request.form.get("active") == "1")
    # No confirmation first: retiring is undone as easily (the next page offers it), and changes
    # no booking or question; a confirmation would be clicked through for every topic.
    if topic.active:
        flash(
            _(
                "“%(topic)s” is offered again on the booking and walk-in forms.",
                topic=topic.name,
            ),
            "success",
        )
    else:
        flash(
            _(
                "“%(topic)s” is retired: new bookings and walk-ins can no longer choose it. "
                "Existing bookings and questions keep it, and it stays in the reports.",
                topic=topic.name,
            ),
            "success",
        )
    browser_session[_TOPIC_CHANGED] = topic.id
    return redirect(url_for("booking.topics"), 303)
