"""Running the day: check-in, walk-ins, questions and outcomes, follow-up, close-out, sign-off."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from scheduling.rules import ReceptionDesk

from .. import access
from ..audit.services import record as audit
from ..auth.models import Role, User
from ..booking import identity
from ..booking.models import Booking, BookingStatus, StatusEvent, Topic
from ..booking.services import cancel_for_session
from ..clock import now as clock_now
from ..database import write_transaction
from ..errors import Conflict, DomainError, Forbidden, InvalidEntry, NotInScope
from ..extensions import db
from ..institutions.models import Institution
from ..notify.models import Channel, Notification
from ..notify.services import deliver_after_commit, enqueue
from ..reports.scope import next_month, previous_month, year_and_month
from ..reports.services import changes_since_signoff, questions_without_outcome
from ..schedules.models import ScheduledSession, SessionStatus, Slot
from ..urls import public_url
from .models import (
    MonthSignoff,
    MonthSignoffTopic,
    Outcome,
    Question,
    QuestionEvent,
    ReceivedBy,
    Visit,
)

RecordT = TypeVar("RecordT")
WORKSPACE_ROLES = (Role.staff, Role.head)
# Citizens are received from half an hour before a session starts; "did not come" once the slot
# has begun (scheduling.rules.ReceptionDesk says why).
RECEPTION_DESK = ReceptionDesk(opens_minutes_before=30)
DEFAULT_DUE_DAYS = 15
# A pending question is due from today to a year ahead at most. The law gives an appeal 15 working
# days, which may be extended; what waits longer waits for something already planned, such as next
# year's budget or the building season, and that is within a year. A later date is a slip of the
# keyboard or keeps the question from ever counting as overdue, the figure akimats watch.
DUE_WITHIN_YEARS = 1
CLOSEOUT_REMINDER_DAYS = (1, 3)
# Dates staff may ask for: nothing was recorded before 2000, nothing is planned beyond two years,
# and the calendar arithmetic of dates near year 1 or 9999 overflows.
EARLIEST_DAY = date(2000, 1, 1)
YEARS_AHEAD = 2


class StaleRecord(Conflict):
    message = _l("Someone else changed this record in the meantime. Reload the page and try again.")


class DateOutOfRange(DomainError):
    status_code = 400


class SessionClosed(Conflict):
    """Check-ins, walk-ins and questions of a held or cancelled session are final."""

    message = _l("This session is closed: its check-ins, walk-ins and questions are final.")


class NotYet(Conflict):
    """Who came to a session is recorded once it can be known: never hours before it."""


class CitizensReceived(Conflict):
    message = _l(
        "Citizens have already been received at this session or marked as not come, so it cannot "
        "be cancelled. If the marks were made by mistake, undo them on the agenda first; "
        "otherwise close the session once it has ended."
    )


class SessionChanged(InvalidEntry):
    """What the user confirmed on the close-out page no longer matches the session (a booking was
    marked on the agenda while the page was open, say): the page is shown again, re-read, with
    the message at the confirmation that no longer holds."""

    status_code = 409


def require_workspace(actor: User, institution_id: int) -> Institution:
    """Only the institution's own staff and head run its day."""
    if actor.role_enum not in WORKSPACE_ROLES:
        raise Forbidden()
    return access.get_institution_in_scope(actor, institution_id)


def tz_of(institution: Institution) -> ZoneInfo:
    return ZoneInfo(institution.district.region.timezone)


def local_today(institution: Institution) -> date:
    return clock_now().astimezone(tz_of(institution)).date()


def years_after(day: date, years: int) -> date:
    """The same day `years` later; 28 February for a 29 February that the year lacks."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def latest_day(today: date) -> date:
    return years_after(today, YEARS_AHEAD)


def due_date_problem(due: date, today: date) -> str | None:
    """Why a pending question cannot be due on `due`, in the reader's language; None if it can."""
    if due < today:
        return _("The due date cannot be in the past.")
    last = years_after(today, DUE_WITHIN_YEARS)
    if due > last:
        return _(
            "The due date can be at most a year ahead: %(date)s or earlier.",
            date=format_date(last, "d MMMM y"),
        )
    return None


def check_day_in_range(day: date, today: date) -> date:
    """A date staff may look at: from 2000 to two years ahead; anything else is a 400."""
    last = latest_day(today)
    if not EARLIEST_DAY <= day <= last:
        raise DateOutOfRange(
            _(
                "Choose a date between %(first)s and %(last)s.",
                first=format_date(EARLIEST_DAY, "d MMMM y"),
                last=format_date(last, "d MMMM y"),
            )
        )
    return day


def parse_day(text: str, institution: Institution) -> date:
    """The `date` argument of the agenda and the register: today when empty."""
    today = local_today(institution)
    if not text:
        return today
    try:
        day = date.fromisoformat(text)
    except ValueError as error:
        raise DateOutOfRange(_("Enter the date as YYYY-MM-DD, e.g. 2026-11-27.")) from error
    return check_day_in_range(day, today)


def parse_month(text: str, institution: Institution) -> str:
    """A month as YYYY-MM between January 2000 and two years ahead; anything else is a 400."""
    parts = year_and_month(text)
    if parts is None:
        raise DateOutOfRange(_("The month must look like 2026-11."))
    last = latest_day(local_today(institution))
    if not (EARLIEST_DAY.year, 1) <= parts <= (last.year, last.month):
        raise DateOutOfRange(
            _(
                "Choose a month between %(first)s and %(last)s.",
                first=EARLIEST_DAY.strftime("%Y-%m"),
                last=last.strftime("%Y-%m"),
            )
        )
    return text


def month_before(month: str) -> str | None:
    """The month before, for a link to it: none before January 2000, where nothing is kept."""
    earlier = previous_month(month)
    return earlier if earlier >= EARLIEST_DAY.strftime("%Y-%m") else None


def month_after(month: str, institution: Institution) -> str | None:
    """The month after, for a link to it: up to the current month where the institution is."""
    later = next_month(month)
    return later if later <= local_today(institution).strftime("%Y-%m") else None


def _lock_session(session_id: int) -> ScheduledSession:
    """The session row, locked: check-ins, walk-ins and close-out take it first, in this order."""
    session = db.session.get(ScheduledSession, session_id, with_for_update=True)
    if session is None:
        raise NotInScope()
    return session


def require_open(session: ScheduledSession) -> None:
    """Once held or cancelled, what happened at a session is final (planned vs held is exact)."""
    if session.status == SessionStatus.cancelled:
        raise SessionClosed(str(_l("This session was cancelled.")))
    if session.status != SessionStatus.planned:
        raise SessionClosed()


def _local_moment(moment: datetime, session: ScheduledSession) -> dict[str, str]:
    """A moment as the refusals name it: the time and the day where the institution is."""
    local = moment.astimezone(tz_of(session.institution))
    return {"time": f"{local:%H:%M}", "date": format_date(local.date(), "d MMMM")}


def require_desk_open(session: ScheduledSession) -> None:
    """Nobody is received (checked in as come, or registered as a walk-in) before the reception
    desk opens, shortly before the session starts."""
    if not RECEPTION_DESK.is_open(session.starts_at, clock_now()):
        opens = _local_moment(RECEPTION_DESK.opens_at(session.starts_at), session)
        raise NotYet(
            _(
                "Citizens are received at this session from %(time)s on %(date)s, shortly "
                "before it starts: they cannot be checked in or registered as walk-ins earlier.",
                **opens,
            )
        )


def received_or_marked(session: ScheduledSession) -> bool:
    """Whether citizens were received at the session (booked or walk-in) or marked as not come:
    such a session is no longer cancelled in advance (CitizensReceived), or its month would count
    those visits at a session that did not take place."""
    received = db.session.scalar(
        select(func.count()).select_from(Visit).where(Visit.session_id == session.id)
    )
    marked = db.session.scalar(
        select(func.count())
        .select_from(Booking)
        .where(
            Booking.session_id == session.id,
            Booking.status.in_([BookingStatus.attended.value, BookingStatus.no_show.value]),
        )
    )
    return bool(received or marked)


# --- agenda ------------------------------------------------------------------------------------


@dataclass
class AgendaSession:
    session: ScheduledSession
    now: datetime
    bookings: list[Booking] = field(default_factory=list)
    walk_ins: list[Visit] = field(default_factory=list)
    visits_by_booking: dict[int, Visit] = field(default_factory=dict)

    @property
    def desk_opens_at(self) -> datetime:
        return RECEPTION_DESK.opens_at(self.session.starts_at)

    @property
    def receiving(self) -> bool:
        """Citizens can be checked in as come and walk-ins registered (until close-out)."""
        return RECEPTION_DESK.is_open(self.session.starts_at, self.now)

    def no_show_due(self, booking: Booking) -> bool:
        return RECEPTION_DESK.can_mark_no_show(booking.slot.starts_at, self.now)


@dataclass
class Agenda:
    first_day: date
    days: int
    sessions: list[AgendaSession]


def agenda(
    actor: User, institution_id: int, day: date, *, week: bool = False, page: str = "agenda"
) -> Agenda:
    """Sessions of one day (or the week around it) with bookings and walk-ins; audited as `page`.

    A session cancelled in advance (by staff, or withdrawn by a schedule change) is left out:
    nothing happens at it. One closed as not held is kept, so that the head can reopen it.
    """
    institution = require_workspace(actor, institution_id)
    check_day_in_range(day, local_today(institution))
    if week:
        day = day - timedelta(days=day.weekday())
    days = 7 if week else 1
    zone = tz_of(institution)
    start = datetime.combine(day, datetime.min.time(), tzinfo=zone)
    end = start + timedelta(days=days)
    sessions = db.session.scalars(
        select(ScheduledSession)
        .where(
            ScheduledSession.institution_id == institution_id,
            ScheduledSession.starts_at >= start,
            ScheduledSession.starts_at < end,
            or_(
                ScheduledSession.status != SessionStatus.cancelled.value,
                ScheduledSession.closed_at.isnot(None),
            ),
        )
        .order_by(ScheduledSession.starts_at)
    ).all()
    ids = [s.id for s in sessions]
    bookings = (
        db.session.scalars(
            select(Booking)
            .where(
                Booking.session_id.in_(ids),
                Booking.status.in_(
                    [
                        BookingStatus.booked.value,
                        BookingStatus.attended.value,
                        BookingStatus.no_show.value,
                    ]
                ),
            )
            .options(selectinload(Booking.slot), selectinload(Booking.topic))
        ).all()
        if ids
        else []
    )
    visits = (
        db.session.scalars(
            select(Visit).where(Visit.session_id.in_(ids)).options(selectinload(Visit.questions))
        ).all()
        if ids
        else []
    )
    now = clock_now()
    result = {s.id: AgendaSession(s, now) for s in sessions}
    for booking in sorted(bookings, key=lambda b: (b.slot.starts_at, b.id)):
        result[booking.session_id].bookings.append(booking)
    for visit in visits:
        if visit.booking_id is None:
            result[visit.session_id].walk_ins.append(visit)
        else:
            result[visit.session_id].visits_by_booking[visit.booking_id] = visit
    with write_transaction():
        audit(
            "personal_data.viewed",
            "institution",
            institution_id,
            page=page,
            day=day.isoformat(),
            days=days,
            bookings=len(bookings),
        )
    return Agenda(day, days, list(result.values()))


# --- check-in -----------------------------------------------------------------------------------


def _in_workspace(actor: User, model: type[RecordT], record_id: int) -> RecordT:
    """A booking, session, visit or question of the actor's own institution; 404 otherwise."""
    record = db.session.get(model, record_id)
    if record is None:
        raise NotInScope()
    require_workspace(actor, record.institution_id)  # type: ignore[attr-defined]
    return record


def booking_in_workspace(actor: User, booking_id: int) -> Booking:
    return _in_workspace(actor, Booking, booking_id)


def _status_event(booking: Booking | None, kind: str, **details: Any) -> None:
    if booking is not None:
        db.session.add(
            StatusEvent(
                booking_id=booking.id,
                kind=kind,
                at=clock_now(),
                due_date=details.pop("due_date", None),
                details=details,
            )
        )


def check_in(actor: User, booking_id: int, mark: str) -> Booking:
    """Mark attended or no-show, or undo that on the same day. Never automatic."""
    booking = booking_in_workspace(actor, booking_id)
    session_id = booking.session_id
    with write_transaction():
        session = _lock_session(session_id)
        booking = db.session.get(Booking, booking_id, with_for_update=True)
        assert booking is not None
        today = local_today(booking.institution)
        require_open(session)
        if mark in ("attended", "no_show"):
            if booking.status != BookingStatus.booked:
                raise Conflict(str(_l("This booking is already marked or was cancelled.")))
            if mark == "attended":
                require_desk_open(session)
            elif not RECEPTION_DESK.can_mark_no_show(booking.slot.starts_at, clock_now()):
                raise NotYet(
                    _(
                        "A citizen can be marked as not come once their time has begun: from "
                        "%(time)s on %(date)s.",
                        **_local_moment(booking.slot.starts_at, session),
                    )
                )
            booking.status = mark
            booking.checked_in_at = clock_now()
            if mark == "attended":
                db.session.add(
                    Visit(
                        session_id=session.id,
                        institution_id=booking.institution_id,
                        booking_id=booking.id,
                        citizen_name=booking.citizen_name,
                        iin_hash=booking.iin_hash,
                        iin_last4=booking.iin_last4,
                        phone=booking.phone,
                        received_by=ReceivedBy.head.value,
                        received_by_name=session.schedule.host_name,
                        at=clock_now(),
                        recorded_by_id=actor.id,
                    )
                )
            _status_event(booking, mark)
        elif mark == "undo":
            if booking.status not in (BookingStatus.attended, BookingStatus.no_show):
                raise Conflict(str(_l("There is nothing to undo.")))
            if booking.checked_in_at is None or (
                booking.checked_in_at.astimezone(tz_of(booking.institution)).date() != today
            ):
                raise Conflict(str(_l("A check-in can only be undone on the same day.")))
            visit = db.session.scalars(select(Visit).where(Visit.booking_id == booking.id)).first()
            if visit is not None:
                if visit.questions:
                    raise Conflict(str(_l("Questions are already recorded for this visit.")))
                db.session.delete(visit)
            booking.status = BookingStatus.booked.value
            booking.checked_in_at = None
            _status_event(booking, "check_in_undone")
        else:
            raise DomainError()
        audit("booking.check_in", "booking", booking.id, mark=mark)
    return booking


# --- walk-ins and questions ---------------------------------------------------------------------


def session_in_workspace(actor: User, session_id: int) -> ScheduledSession:
    return _in_workspace(actor, ScheduledSession, session_id)


def session_for_walk_in(actor: User, session_id: int) -> ScheduledSession:
    """The session a walk-in is registered at: the institution's own, open, from shortly before
    it starts until it is closed out (walk-ins written down on paper are entered afterwards: the
    received count of a held session is taken from its visits)."""
    session = session_in_workspace(actor, session_id)
    require_open(session)
    require_desk_open(session)
    return session


def register_walk_in(
    actor: User,
    session_id: int,
    *,
    name: str,
    iin: str = "",
    phone: str = "",
    topic_id: int,
    summary: str,
    received_by: ReceivedBy = ReceivedBy.head,
    received_by_name: str = "",
) -> Visit:
    """A citizen who came without booking: seconds to record, then questions as for anyone."""
    session_for_walk_in(actor, session_id)
    with write_transaction():
        session = _lock_session(session_id)
        require_open(session)
        visit = Visit(
            session_id=session.id,
            institution_id=session.institution_id,
            booking_id=None,
            citizen_name=name.strip(),
            iin_hash=identity.iin_hash(iin, current_app.config["IIN_HASH_KEY"]) if iin else None,
            iin_last4=identity.iin_last4(iin) if iin else "",
            phone=phone,
            received_by=received_by.value,
            received_by_name=received_by_name.strip() or session.schedule.host_name,
            at=clock_now(),
            recorded_by_id=actor.id,
        )
        db.session.add(visit)
        db.session.flush()
        _add_question(visit, topic_id, summary, actor)
        audit("visit.walk_in", "visit", visit.id)
    return visit


def _add_question(visit: Visit, topic_id: int, summary: str, actor: User) -> Question:
    topic = db.session.get(Topic, topic_id)
    if topic is None:
        raise DomainError(str(_l("Choose a topic from the list.")))
    if not summary.strip():
        raise DomainError(str(_l("Describe the question in a few words.")))
    question = Question(
        visit=visit,
        institution_id=visit.institution_id,
        topic_id=topic.id,
        summary=summary.strip(),
        created_at=clock_now(),
    )
    db.session.add(question)
    db.session.flush()
    db.session.add(
        QuestionEvent(question_id=question.id, kind="raised", at=clock_now(), user_id=actor.id)
    )
    return question


def visit_in_workspace(actor: User, visit_id: int) -> Visit:
    return _in_workspace(actor, Visit, visit_id)


def open_visit(actor: User, visit_id: int) -> Visit:
    """The visit page shows a citizen's personal data: the view itself is audited."""
    visit_in_workspace(actor, visit_id)
    with write_transaction():
        audit("personal_data.viewed", "visit", visit_id, page="visit")
    visit = db.session.get(Visit, visit_id)
    assert visit is not None
    return visit


def set_received_by(actor: User, visit_id: int, received_by: ReceivedBy, name: str) -> Visit:
    """Who actually received the citizen: the head, or a deputy standing in."""
    visit = visit_in_workspace(actor, visit_id)
    session_id = visit.session_id
    with write_transaction():
        require_open(_lock_session(session_id))
        visit = db.session.get(Visit, visit_id)
        assert visit is not None
        visit.received_by = received_by.value
        visit.received_by_name = name.strip() or visit.received_by_name
        audit("visit.received_by", "visit", visit.id, received_by=received_by.value)
    return visit


def add_question(actor: User, visit_id: int, topic_id: int, summary: str) -> Question:
    """A further question raised at the visit; not once the session is closed."""
    visit = visit_in_workspace(actor, visit_id)
    session_id = visit.session_id
    with write_transaction():
        require_open(_lock_session(session_id))
        visit = db.session.get(Visit, visit_id)
        assert visit is not None
        _check_visit_open(visit)
        question = _add_question(visit, topic_id, summary, actor)
        audit("question.added", "question", question.id)
    return question


def _check_visit_open(visit: Visit) -> None:
    if visit.booking is not None and visit.booking.status != BookingStatus.attended:
        raise Conflict(str(_l("The booking of this visit is not marked as attended.")))


def question_in_workspace(actor: User, question_id: int) -> Question:
    return _in_workspace(actor, Question, question_id)


@contextmanager
def _editing_question(question_id: int, expected_version: int | None) -> Iterator[Question]:
    """The question, changed in one write transaction at the version the page showed:
    StaleRecord when someone else changed it first, before or while this change is saved."""
    try:
        with write_transaction():
            question = db.session.get(Question, question_id)
            assert question is not None
            if expected_version is not None and question.version != expected_version:
                raise StaleRecord()
            yield question
            db.session.flush()
    except StaleDataError as error:
        raise StaleRecord() from error


def record_outcome(
    actor: User,
    question_id: int,
    *,
    outcome: Outcome,
    responsible: str = "",
    due_date: date | None = None,
    note: str = "",
    expected_version: int | None = None,
) -> Question:
    """Resolved, explained, or pending with a responsible person and a due date.

    Outcomes may still be recorded after the session is closed: following up a pending question
    is the normal flow, and the month's sign-off versions show any later change.
    """
    question = question_in_workspace(actor, question_id)
    # Already loaded by the scope check: the identity map answers, no lazy chain through visits.
    today = local_today(db.session.get(Institution, question.institution_id))
    if outcome is Outcome.pending:
        due_date = due_date or today + timedelta(days=DEFAULT_DUE_DAYS)
        problems = {}
        if not responsible.strip():
            problems["responsible"] = _("Name the person responsible for a pending question.")
        if problem := due_date_problem(due_date, today):
            problems["due_date"] = problem
        if problems:
            raise InvalidEntry(problems)
    with _editing_question(question_id, expected_version) as question:
        _check_visit_open(question.visit)
        if question.closed_at is not None:
            raise Conflict(str(_l("This question is already closed.")))
        kind = "outcome" if question.outcome is None else "closed"
        if kind == "closed" and outcome is Outcome.pending:
            raise Conflict(str(_l("This question is already pending.")))
        if kind == "closed" and not note.strip():
            raise InvalidEntry({"note": _("Describe what was done to close the question.")})
        question.outcome = outcome.value
        question.outcome_at = clock_now()
        question.responsible = (
            responsible.strip() if outcome is Outcome.pending else question.responsible
        )
        question.due_date = due_date if outcome is Outcome.pending else question.due_date
        if outcome is not Outcome.pending:
            question.closed_at = clock_now()
            question.resolution_note = note.strip()
        db.session.add(
            QuestionEvent(
                question_id=question.id,
                kind=kind,
                outcome=outcome.value,
                due_date=question.due_date if outcome is Outcome.pending else None,
                note=note.strip(),
                at=clock_now(),
                user_id=actor.id,
            )
        )
        # The citizen's status page reads this question's history from question_event.
        outbox = _notify_outcome(question.visit.booking)
        audit("question.outcome", "question", question.id, outcome=outcome.value, step=kind)
    deliver_after_commit(outbox)
    return question


class QuestionNoLongerPending(Conflict):
    message = _l(
        "This question is no longer being resolved: an outcome was recorded in the meantime, so "
        "its responsible person and due date stay as they were."
    )


def change_follow_up(
    actor: User,
    question_id: int,
    *,
    responsible: str,
    due_date: date,
    reason: str,
    expected_version: int | None = None,
) -> Question:
    """Hand a pending question to another responsible person, or move its due date (within
    today and a year ahead, as when it was set), with a reason. Each change is a step of the
    question's history; the citizen's status page shows the new due date (never a name)."""
    question = question_in_workspace(actor, question_id)
    today = local_today(db.session.get(Institution, question.institution_id))
    responsible, reason = responsible.strip(), reason.strip()
    problems = {}
    if not responsible:
        problems["responsible"] = _("Name the person responsible for a pending question.")
    if not reason:
        problems["reason"] = _("Give the reason for the change.")
    if problems:
        raise InvalidEntry(problems)
    with _editing_question(question_id, expected_version) as question:
        if question.outcome != Outcome.pending or question.closed_at is not None:
            raise QuestionNoLongerPending()
        steps = []
        if responsible != question.responsible:
            steps.append({"kind": "reassigned", "responsible": responsible})
        if due_date != question.due_date:
            if problem := due_date_problem(due_date, today):
                raise InvalidEntry({"due_date": problem})
            steps.append({"kind": "due_date_changed", "due_date": due_date})
        if not steps:
            raise InvalidEntry({"responsible": _("Change the responsible person or the due date.")})
        question.responsible, question.due_date = responsible, due_date
        for step in steps:
            db.session.add(
                QuestionEvent(
                    question_id=question.id,
                    note=reason,
                    at=clock_now(),
                    user_id=actor.id,
                    **step,
                )
            )
        audit(
            "question.follow_up_changed",
            "question",
            question.id,
            steps=[step["kind"] for step in steps],
            due_date=due_date.isoformat(),
        )
    return question


def _notify_outcome(booking: Booking | None) -> list[Notification | None]:
    if booking is None:
        return []
    payload = {
        "reference": booking.reference,
        "institution": booking.institution.name_in_each_language,
        "status_url": public_url("booking.status", reference=booking.reference),
    }
    return [
        enqueue(
            Channel.sms, booking.phone, "outcome_recorded", booking.locale, payload, booking.id
        ),
        enqueue(
            Channel.email, booking.email, "outcome_recorded", booking.locale, payload, booking.id
        ),
    ]


@dataclass
class FollowUp:
    """The follow-up worklist: questions being resolved, overdue first, and questions raised
    with no outcome recorded yet (closed-out sessions included), oldest first."""

    pending: list[Question]
    without_outcome: list[Question]


def follow_up(actor: User, institution_id: int) -> FollowUp:
    """The questions still to be dealt with; names are shown, so audited."""
    require_workspace(actor, institution_id)

    def open_questions(*where: Any, order: tuple[Any, ...]) -> list[Question]:
        return list(
            db.session.scalars(
                select(Question)
                .where(Question.institution_id == institution_id, *where)
                .options(
                    selectinload(Question.visit),
                    selectinload(Question.topic),
                    selectinload(Question.events),
                )
                .order_by(*order)
            )
        )

    result = FollowUp(
        pending=open_questions(
            Question.outcome == Outcome.pending.value,
            Question.closed_at.is_(None),
            order=(Question.due_date, Question.id),
        ),
        without_outcome=open_questions(
            Question.outcome.is_(None), order=(Question.created_at, Question.id)
        ),
    )
    with write_transaction():
        audit(
            "personal_data.viewed",
            "institution",
            institution_id,
            page="follow_up",
            questions=len(result.pending) + len(result.without_outcome),
        )
    return result


# --- close-out -----------------------------------------------------------------------------------


@dataclass
class SessionToClose:
    """A past session still open, with what is left unrecorded at it: bookings nobody marked,
    questions without an outcome and citizens received with no question recorded."""

    session: ScheduledSession
    unmarked: list[Booking]
    without_outcome: list[Question]
    without_question: list[Visit]

    @classmethod
    def read(cls, session: ScheduledSession) -> SessionToClose:
        return cls(
            session,
            _unmarked_bookings(session.id),
            _questions_without_outcome(session.id),
            _visits_without_question(session.id),
        )


def _unmarked_bookings(session_id: int) -> list[Booking]:
    """Bookings of the session nobody marked as attended or no-show."""
    return list(
        db.session.scalars(
            select(Booking)
            .join(Booking.slot)
            .where(Booking.session_id == session_id, Booking.status == BookingStatus.booked.value)
            .options(selectinload(Booking.slot))
            .order_by(Slot.starts_at, Booking.id)
        )
    )


def _questions_without_outcome(session_id: int) -> list[Question]:
    """Questions raised at the session that have no outcome recorded."""
    return list(
        db.session.scalars(
            select(Question)
            .join(Visit, Visit.id == Question.visit_id)
            .where(Visit.session_id == session_id, Question.outcome.is_(None))
            .options(selectinload(Question.visit), selectinload(Question.topic))
            .order_by(Visit.at, Visit.id, Question.id)
        )
    )


def _visits_without_question(session_id: int) -> list[Visit]:
    """Citizens received at the session with no question recorded."""
    return list(
        db.session.scalars(
            select(Visit)
            .where(Visit.session_id == session_id, ~Visit.questions.any())
            .order_by(Visit.at, Visit.id)
        )
    )


def sessions_to_close(actor: User, institution_id: int) -> list[SessionToClose]:
    """Past sessions still open, each with what is left unrecorded (names shown: audited)."""
    require_workspace(actor, institution_id)
    sessions = db.session.scalars(
        select(ScheduledSession)
        .where(
            ScheduledSession.institution_id == institution_id,
            ScheduledSession.status == SessionStatus.planned.value,
            ScheduledSession.ends_at <= clock_now(),
        )
        .order_by(ScheduledSession.starts_at)
    ).all()
    items = [SessionToClose.read(s) for s in sessions]
    bookings = sum(len(item.unmarked) for item in items)
    visits = len(
        {q.visit_id for item in items for q in item.without_outcome}
        | {v.id for item in items for v in item.without_question}
    )
    if bookings or visits:
        with write_transaction():
            audit(
                "personal_data.viewed",
                "institution",
                institution_id,
                page="close_out",
                bookings=bookings,
                visits=visits,
            )
    return items


def _unmarked_message(unmarked: list[Booking], zone: ZoneInfo) -> str:
    listed = ", ".join(
        f"{b.slot.starts_at.astimezone(zone):%H:%M} {b.citizen_name}" for b in unmarked
    )
    return _(
        "Mark every booking as attended or no-show before closing the session, or confirm "
        "that the remaining %(count)s did not come. Not marked: %(bookings)s.",
        count=len(unmarked),
        bookings=listed,
    )


def _unrecorded_message(item: SessionToClose, name: str) -> str:
    """What the close-out confirmation `name` asks the user to record or confirm, by name."""
    if name == "mark_no_shows":
        return _unmarked_message(item.unmarked, tz_of(item.session.institution))
    if name == "confirm_without_outcome":
        return _(
            "Record an outcome for each question, or confirm that the session is closed with "
            "them without one: they stay on the follow-up list. Without an outcome: "
            "%(questions)s.",
            questions=", ".join(
                f"{q.visit.citizen_name} ({q.topic.name})" for q in item.without_outcome
            ),
        )
    return _(
        "Record the question each of these citizens raised, or confirm that they raised none: "
        "%(visits)s.",
        visits=", ".join(v.citizen_name for v in item.without_question),
    )


def _changed_message(name: str, count: int) -> str:
    """The close-out confirmation `name` was given for another list than the session has now."""
    if name == "mark_no_shows":
        return _(
            "The bookings of this session changed while the page was open. Check the list again "
            "and confirm anew. Not marked now: %(count)s.",
            count=count,
        )
    if name == "confirm_without_outcome":
        return _(
            "The questions of this session changed while the page was open. Check the list "
            "again and confirm anew. Without an outcome now: %(count)s.",
            count=count,
        )
    return _(
        "The citizens received at this session changed while the page was open. Check the "
        "list again and confirm anew. Without a question now: %(count)s.",
        count=count,
    )


@dataclass(frozen=True)
class CloseOutConfirmations:
    """How many of each list the close-out page showed when the user ticked its confirmation;
    None where they did not tick it. A confirmation covers exactly what the page listed."""

    mark_no_shows: int | None = None
    confirm_without_outcome: int | None = None
    confirm_no_question: int | None = None

    def check(self, item: SessionToClose) -> None:
        """Refuse a close-out as held that leaves something unrecorded without its confirmation
        (InvalidEntry), or with a confirmation given for another list (SessionChanged). Once
        nothing is left to confirm (all marked on the agenda meanwhile, say) none is needed."""
        problems, changed = {}, False
        listed = {
            "mark_no_shows": item.unmarked,
            "confirm_without_outcome": item.without_outcome,
            "confirm_no_question": item.without_question,
        }
        for name, records in listed.items():
            confirmed = getattr(self, name)
            if not records:
                continue
            if confirmed is None:
                problems[name] = _unrecorded_message(item, name)
            elif confirmed != len(records):
                problems[name] = _changed_message(name, len(records))
                changed = True
        if problems:
            raise (SessionChanged if changed else InvalidEntry)(problems)


def close_session(
    actor: User,
    session_id: int,
    *,
    held: bool,
    reason: str = "",
    confirmed: CloseOutConfirmations | None = None,
) -> ScheduledSession:
    """Held (the count of citizens received is taken from the visits) or cancelled with a reason.

    Check-in is never automatic, nor is an outcome: a session is closed as held only when every
    booking is marked, every question has an outcome and every citizen received has a question,
    or when staff confirm what is left (`confirmed`, see CloseOutConfirmations): that exactly the
    remaining bookings did not come, each then audited under the confirming user; that the
    questions without an outcome stay on the follow-up list; that the citizens without a
    question raised none. A session that did not take place ends its bookings as a cancellation
    in advance does (cancelled by the institution, the citizens told), so that none of them is
    left booked, or counted as booked, for a meeting that never was.
    """
    confirmed = confirmed or CloseOutConfirmations()
    session = session_in_workspace(actor, session_id)
    if not held and not reason.strip():
        raise InvalidEntry({"reason": _("Give the reason why the session did not take place.")})
    outbox: list[Notification | None] = []
    with write_transaction():
        session = _lock_session(session_id)
        if session.status != SessionStatus.planned:
            raise Conflict(str(_l("This session is already closed.")))
        if session.ends_at > clock_now():
            raise DomainError(str(_l("A session can be closed once it has ended.")))
        received = (
            db.session.scalar(
                select(func.count()).select_from(Visit).where(Visit.session_id == session.id)
            )
            or 0
        )
        left: dict[str, int] = {}
        if held:
            item = SessionToClose.read(session)
            confirmed.check(item)
            for booking in item.unmarked:  # confirmed by the user: they did not come
                booking.status = BookingStatus.no_show.value
                booking.checked_in_at = clock_now()
                _status_event(booking, "no_show")
                audit("booking.check_in", "booking", booking.id, mark="no_show", close_out=True)
            left = {
                "without_outcome": len(item.without_outcome),
                "without_question": len(item.without_question),
            }
            session.status = SessionStatus.held.value
            session.received_count = received
            marked_no_show = len(item.unmarked)
        else:
            if received:
                raise InvalidEntry(
                    {"held": _("Citizens were received at this session: close it as held.")}
                )
            session.status = SessionStatus.cancelled.value
            session.cancel_reason = reason.strip()
            outbox = cancel_for_session(session)
            marked_no_show = 0
        session.closed_at = clock_now()
        audit(
            "session.closed",
            "session",
            session.id,
            held=held,
            received=received,
            marked_no_show=marked_no_show,
            **left,
        )
    deliver_after_commit(outbox)
    return session


def reopen_session(actor: User, session_id: int, reason: str) -> ScheduledSession:
    """Undo a close-out made by mistake: the head only, with a reason, audited.

    Visits, questions and check-ins stay as they are, and so do bookings cancelled when it was
    closed as not held (their citizens were told; one who came after all is a walk-in); the
    session is open again for corrections and counts as not closed out until it is closed anew. A session the institution cancelled
    in advance (its citizens were told) is not reopened here: publish a new session instead.
    """
    if actor.role_enum is not Role.head:
        raise Forbidden(str(_l("Only the head of the institution can reopen a closed session.")))
    reason = reason.strip()
    if not reason:
        raise InvalidEntry({"reason": _("Give the reason for reopening the session.")})
    session_in_workspace(actor, session_id)
    with write_transaction():
        session = _lock_session(session_id)
        if session.status == SessionStatus.planned or session.closed_at is None:
            raise Conflict(str(_l("This session is not closed.")))
        previous, received = session.status, session.received_count
        session.status = SessionStatus.planned.value
        session.closed_at = None
        session.received_count = None
        if previous == SessionStatus.cancelled:
            session.cancel_reason = None
        audit(
            "session.reopened",
            "session",
            session.id,
            previous=previous,
            received=received,
            reason=reason,
        )
    return session


def queue_closeout_reminders(at: datetime | None = None) -> int:
    """Remind the head and the district officers of sessions left open 1 and 3 days after."""
    at = at or clock_now()
    count = 0
    with write_transaction():
        for step, days in enumerate(CLOSEOUT_REMINDER_DAYS):
            sessions = db.session.scalars(
                select(ScheduledSession).where(
                    ScheduledSession.status == SessionStatus.planned.value,
                    ScheduledSession.ends_at <= at - timedelta(days=days),
                    ScheduledSession.closeout_reminders == step,
                )
            ).all()
            for session in sessions:
                recipients = db.session.scalars(
                    select(User).where(
                        User.active.is_(True),
                        (
                            and_(
                                User.role == Role.head.value,
                                User.institution_id == session.institution_id,
                            )
                        )
                        | and_(
                            User.role == Role.district_officer.value,
                            User.district_id == session.institution.district_id,
                        ),
                    )
                ).all()
                for user in recipients:
                    enqueue(
                        Channel.email,
                        user.email,
                        "closeout_reminder",
                        user.locale,
                        {
                            "institution": session.institution.name_in_each_language,
                            "starts_at": session.starts_at.isoformat(),
                            "days": days,
                        },
                    )
                    count += 1
                session.closeout_reminders = step + 1
    return count


# --- month sign-off ----------------------------------------------------------------------------


def month_bounds(month: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    year, number = (int(part) for part in month.split("-"))
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=zone)
    return start, end


def month_topics(institution_id: int, month: str) -> list[MonthSignoffTopic]:
    """The month's questions per topic for one institution, as a sign-off records them."""
    from ..reports.scope import Scope
    from ..reports.services import topic_questions

    counts = topic_questions(Scope("institution", institution_id), month)
    return [MonthSignoffTopic(topic_id=topic, questions=n) for topic, n in sorted(counts.items())]


def month_figures(institution_id: int, month: str) -> dict[str, int]:
    """The month's counts for one institution, from the same reporting service akimats use."""
    from ..reports.scope import Scope
    from ..reports.services import rollup

    return dict(
        rollup(
            Scope("institution", institution_id), month, grouping="institution", live=True
        ).total.counts
    )


def signoffs(institution_id: int, month: str) -> list[MonthSignoff]:
    return list(
        db.session.scalars(
            select(MonthSignoff)
            .where(MonthSignoff.institution_id == institution_id, MonthSignoff.month == month)
            .options(selectinload(MonthSignoff.signed_by))
            .order_by(MonthSignoff.version)
        )
    )


@dataclass
class MonthOverview:
    month: str
    live: dict[str, int]
    versions: list[MonthSignoff]
    # figure -> (as signed in the latest version, live now), only where the two differ
    changes: dict[str, tuple[int, int]]
    # The first local day after the month: it can be signed from then on.
    signable_from: date
    over: bool

    @property
    def signable(self) -> bool:
        """Signed for the first time once the month is over; again only to correct what changed."""
        return self.over and (not self.versions or bool(self.changes))


def month_overview(actor: User, institution_id: int, month: str) -> MonthOverview:
    """Every signed version's frozen figures and what changed since the latest was signed."""
    institution = require_workspace(actor, institution_id)
    month = parse_month(month, institution)
    live = month_figures(institution_id, month)
    versions = signoffs(institution_id, month)
    changes = changes_since_signoff(versions[-1].figures, live) if versions else {}
    _start, end = month_bounds(month, tz_of(institution))
    return MonthOverview(month, live, versions, changes, end.date(), end <= clock_now())


def sign_month(actor: User, institution_id: int, month: str, reason: str = "") -> MonthSignoff:
    """The head freezes the month's figures; a later correction is a new version with a reason,
    and only when the figures differ from the latest version. Every question of the month has an
    outcome by then (one still being resolved is pending): the figures akimats report add up."""
    if actor.role_enum is not Role.head:
        raise Forbidden()
    institution = require_workspace(actor, institution_id)
    month = parse_month(month, institution)
    _start, end = month_bounds(month, tz_of(institution))
    if end > clock_now():
        raise DomainError(str(_l("A month can be signed off once it is over.")))
    with write_transaction():
        previous = signoffs(institution_id, month)
        figures = month_figures(institution_id, month)
        if previous and not changes_since_signoff(previous[-1].figures, figures):
            raise Conflict(
                _(
                    "The figures have not changed since version %(version)s was signed: "
                    "there is nothing to correct.",
                    version=previous[-1].version,
                )
            )
        problems = {}
        if previous and not reason.strip():
            problems["reason"] = _("Give the reason for the correction.")
        if without := questions_without_outcome(figures):
            problems["confirm"] = _(
                "Questions of the month without an outcome: %(count)s. Record an outcome for "
                "each (the follow-up list shows them) before signing the month off, so that the "
                "outcomes add up to the questions.",
                count=without,
            )
        if problems:
            raise InvalidEntry(problems)
        if figures["sessions_not_closed"]:
            raise Conflict(str(_l("Close every session of the month before signing it off.")))
        signoff = MonthSignoff(
            institution_id=institution_id,
            month=month,
            version=len(previous) + 1,
            figures=figures,
            topics=month_topics(institution_id, month),
            signed_by_id=actor.id,
            signed_at=clock_now(),
            reason=reason.strip(),
        )
        db.session.add(signoff)
        db.session.flush()
        audit("month.signed", "institution", institution_id, month=month, version=signoff.version)
    return signoff
