"""Running the day: check-in, walk-ins, questions and outcomes, follow-up, close-out, sign-off."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from .. import access
from ..audit.services import record as audit
from ..auth.models import Role, User
from ..booking import identity
from ..booking.models import Booking, BookingStatus, StatusEvent, Topic
from ..clock import now as clock_now
from ..database import write_transaction
from ..errors import Conflict, DomainError, Forbidden, NotInScope
from ..extensions import db
from ..institutions.models import Institution
from ..notify.models import Channel, Notification
from ..notify.services import deliver_after_commit, enqueue
from ..schedules.models import ScheduledSession, SessionStatus
from .models import MonthSignoff, Outcome, Question, QuestionEvent, ReceivedBy, Visit

WORKSPACE_ROLES = (Role.staff, Role.head)
DEFAULT_DUE_DAYS = 15
CLOSEOUT_REMINDER_DAYS = (1, 3)


class StaleRecord(Conflict):
    message = _l("Someone else changed this record in the meantime. Reload the page and try again.")


def require_workspace(actor: User, institution_id: int) -> Institution:
    """Only the institution's own staff and head run its day."""
    if actor.role_enum not in WORKSPACE_ROLES:
        raise Forbidden()
    return access.get_institution_in_scope(actor, institution_id)


def tz_of(institution: Institution) -> ZoneInfo:
    return ZoneInfo(institution.district.region.timezone)


def local_today(institution: Institution) -> date:
    return clock_now().astimezone(tz_of(institution)).date()


# --- agenda ------------------------------------------------------------------------------------


@dataclass
class AgendaSession:
    session: ScheduledSession
    bookings: list[Booking] = field(default_factory=list)
    walk_ins: list[Visit] = field(default_factory=list)
    visits_by_booking: dict[int, Visit] = field(default_factory=dict)


def agenda(actor: User, institution_id: int, day: date, days: int = 1) -> list[AgendaSession]:
    """Sessions of one day (or week) with their bookings and walk-ins; the view is audited."""
    institution = require_workspace(actor, institution_id)
    zone = tz_of(institution)
    start = datetime.combine(day, datetime.min.time(), tzinfo=zone)
    end = start + timedelta(days=days)
    sessions = db.session.scalars(
        select(ScheduledSession)
        .where(
            ScheduledSession.institution_id == institution_id,
            ScheduledSession.starts_at >= start,
            ScheduledSession.starts_at < end,
            ScheduledSession.status != SessionStatus.cancelled.value,
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
    result = {s.id: AgendaSession(s) for s in sessions}
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
            page="agenda",
            day=day.isoformat(),
            days=days,
            bookings=len(bookings),
        )
    return list(result.values())


# --- check-in -----------------------------------------------------------------------------------


def _booking_in_workspace(actor: User, booking_id: int) -> Booking:
    booking = db.session.get(Booking, booking_id)
    if booking is None:
        raise NotInScope()
    require_workspace(actor, booking.institution_id)
    return booking


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
    booking = _booking_in_workspace(actor, booking_id)
    with write_transaction():
        booking = db.session.get(Booking, booking_id, with_for_update=True)
        assert booking is not None
        session = booking.session
        today = local_today(booking.institution)
        if session.status == SessionStatus.cancelled:
            raise Conflict(str(_l("This session was cancelled.")))
        if mark in ("attended", "no_show"):
            if booking.status != BookingStatus.booked:
                raise Conflict(str(_l("This booking is already marked or was cancelled.")))
            if session.local_date > today:
                raise DomainError(str(_l("Citizens can be checked in on the day of the session.")))
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


def _session_in_workspace(actor: User, session_id: int) -> ScheduledSession:
    session = db.session.get(ScheduledSession, session_id)
    if session is None:
        raise NotInScope()
    require_workspace(actor, session.institution_id)
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
    session = _session_in_workspace(actor, session_id)
    if session.status == SessionStatus.cancelled:
        raise Conflict(str(_l("This session was cancelled.")))
    if session.local_date > local_today(session.institution):
        raise DomainError(str(_l("Walk-ins are registered on the day of the session.")))
    with write_transaction():
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
    visit = db.session.get(Visit, visit_id)
    if visit is None:
        raise NotInScope()
    require_workspace(actor, visit.institution_id)
    return visit


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
    visit_in_workspace(actor, visit_id)
    with write_transaction():
        visit = db.session.get(Visit, visit_id)
        assert visit is not None
        visit.received_by = received_by.value
        visit.received_by_name = name.strip() or visit.received_by_name
        audit("visit.received_by", "visit", visit.id, received_by=received_by.value)
    return visit


def add_question(actor: User, visit_id: int, topic_id: int, summary: str) -> Question:
    visit_in_workspace(actor, visit_id)
    with write_transaction():
        visit = db.session.get(Visit, visit_id)
        assert visit is not None
        _check_visit_open(visit)
        question = _add_question(visit, topic_id, summary, actor)
        audit("question.added", "question", question.id)
    return question


def _check_visit_open(visit: Visit) -> None:
    if visit.booking is not None and visit.booking.status != BookingStatus.attended:
        raise Conflict(str(_l("The booking of this visit is not marked as attended.")))


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
    """Resolved, explained, or pending with a responsible person and a due date."""
    question = db.session.get(Question, question_id)
    if question is None:
        raise NotInScope()
    institution = require_workspace(actor, question.institution_id)
    today = local_today(institution)
    if outcome is Outcome.pending:
        due_date = due_date or today + timedelta(days=DEFAULT_DUE_DAYS)
        if not responsible.strip():
            raise DomainError(str(_l("Name the person responsible for a pending question.")))
        if due_date < today:
            raise DomainError(str(_l("The due date cannot be in the past.")))
    try:
        with write_transaction():
            question = db.session.get(Question, question_id)
            assert question is not None
            if expected_version is not None and question.version != expected_version:
                raise StaleRecord()
            _check_visit_open(question.visit)
            if question.closed_at is not None:
                raise Conflict(str(_l("This question is already closed.")))
            kind = "outcome" if question.outcome is None else "closed"
            if kind == "closed" and outcome is Outcome.pending:
                raise Conflict(str(_l("This question is already pending.")))
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
            booking = question.visit.booking
            _status_event(
                booking,
                outcome.value,
                due_date=question.due_date if outcome is Outcome.pending else None,
            )
            outbox = _notify_outcome(booking)
            audit("question.outcome", "question", question.id, outcome=outcome.value, step=kind)
            db.session.flush()
    except StaleDataError as error:
        raise StaleRecord() from error
    deliver_after_commit(outbox)
    return question


def _notify_outcome(booking: Booking | None) -> list[Notification | None]:
    if booking is None:
        return []
    payload = {
        "reference": booking.reference,
        "institution": {
            lang: getattr(booking.institution, f"name_{lang}") or booking.institution.name_ru
            for lang in ("kk", "ru", "en")
        },
        "status_url": url_for("booking.status", reference=booking.reference, _external=True),
    }
    return [
        enqueue(
            Channel.sms, booking.phone, "outcome_recorded", booking.locale, payload, booking.id
        ),
        enqueue(
            Channel.email, booking.email, "outcome_recorded", booking.locale, payload, booking.id
        ),
    ]


def follow_up(actor: User, institution_id: int) -> list[Question]:
    """Pending questions, overdue first (earliest due date first)."""
    require_workspace(actor, institution_id)
    return list(
        db.session.scalars(
            select(Question)
            .where(
                Question.institution_id == institution_id,
                Question.outcome == Outcome.pending.value,
                Question.closed_at.is_(None),
            )
            .options(selectinload(Question.visit), selectinload(Question.topic))
            .order_by(Question.due_date, Question.id)
        )
    )


# --- close-out -----------------------------------------------------------------------------------


def sessions_to_close(actor: User, institution_id: int) -> list[ScheduledSession]:
    require_workspace(actor, institution_id)
    return list(
        db.session.scalars(
            select(ScheduledSession)
            .where(
                ScheduledSession.institution_id == institution_id,
                ScheduledSession.status == SessionStatus.planned.value,
                ScheduledSession.ends_at <= clock_now(),
            )
            .order_by(ScheduledSession.starts_at)
        )
    )


def close_session(
    actor: User, session_id: int, *, held: bool, reason: str = ""
) -> ScheduledSession:
    """Held (the count of citizens received is taken from the visits) or cancelled with a reason."""
    session = _session_in_workspace(actor, session_id)
    if not held and not reason.strip():
        raise DomainError(str(_l("Give the reason why the session did not take place.")))
    with write_transaction():
        session = db.session.get(ScheduledSession, session_id, with_for_update=True)
        assert session is not None
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
        if held:
            session.status = SessionStatus.held.value
            session.received_count = received
            pending = db.session.scalars(
                select(Booking).where(
                    Booking.session_id == session.id, Booking.status == BookingStatus.booked.value
                )
            )
            for booking in pending:  # nobody checked them in: they did not come
                booking.status = BookingStatus.no_show.value
                _status_event(booking, "no_show")
        else:
            if received:
                raise Conflict(str(_l("Citizens were received at this session: close it as held.")))
            session.status = SessionStatus.cancelled.value
            session.cancel_reason = reason.strip()
        session.closed_at = clock_now()
        audit("session.closed", "session", session.id, held=held, received=received)
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
                            "institution": session.institution.name_ru,
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
            .order_by(MonthSignoff.version)
        )
    )


def sign_month(actor: User, institution_id: int, month: str, reason: str = "") -> MonthSignoff:
    """The head freezes the month's figures; a later correction is a new version with a reason."""
    if actor.role_enum is not Role.head:
        raise Forbidden()
    institution = require_workspace(actor, institution_id)
    zone = tz_of(institution)
    _start, end = month_bounds(month, zone)
    if end > clock_now():
        raise DomainError(str(_l("A month can be signed off once it is over.")))
    with write_transaction():
        previous = signoffs(institution_id, month)
        if previous and not reason.strip():
            raise DomainError(str(_l("Give the reason for the correction.")))
        figures = month_figures(institution_id, month)
        if figures["sessions_not_closed"]:
            raise Conflict(str(_l("Close every session of the month before signing it off.")))
        signoff = MonthSignoff(
            institution_id=institution_id,
            month=month,
            version=len(previous) + 1,
            figures=figures,
            signed_by_id=actor.id,
            signed_at=clock_now(),
            reason=reason.strip(),
        )
        db.session.add(signoff)
        db.session.flush()
        audit("month.signed", "institution", institution_id, month=month, version=signoff.version)
    return signoff
