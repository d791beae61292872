"""Retention: personal data of citizens is anonymised after a period, the counts stay."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from ..audit.services import record as audit
from ..booking.models import Booking, Feedback
from ..clock import now as clock_now
from ..database import write_transaction
from ..extensions import db
from ..notify.models import DeliveryStatus, Notification
from ..visits.models import Question, QuestionEvent, Visit

ANONYMOUS = "—"


def purge_personal_data(*, older_than_days: int, at: datetime | None = None) -> dict[str, int]:
    """Blank names, IIN hashes, phones, e-mails and free texts of old bookings and visits: the
    question texts, the citizen's feedback comment, the staff notes on each question's steps, and
    the recipient and contents of the messages sent about them.

    Topics, outcomes, ratings, dates and statuses stay, so every figure the reports need is
    unchanged. Each step is idempotent: a later run only touches what is still there.
    """
    cutoff = (at or clock_now()) - timedelta(days=older_than_days)
    stamp = at or clock_now()
    with write_transaction():
        old_bookings = select(Booking.id).where(
            Booking.created_at < cutoff, Booking.anonymised_at.is_(None)
        )
        booking_ids = list(db.session.scalars(old_bookings))
        if booking_ids:
            db.session.execute(
                update(Booking)
                .where(Booking.id.in_(booking_ids))
                .values(
                    citizen_name=ANONYMOUS,
                    iin_hash="",
                    iin_last4="0000",
                    phone="",
                    email="",
                    question="",
                    accessibility_note="",
                    anonymised_at=stamp,
                )
            )
        visit_ids = list(
            db.session.scalars(
                select(Visit.id).where(Visit.at < cutoff, Visit.anonymised_at.is_(None))
            )
        )
        if visit_ids:
            db.session.execute(
                update(Visit)
                .where(Visit.id.in_(visit_ids))
                .values(
                    citizen_name=ANONYMOUS,
                    iin_hash=None,
                    iin_last4="",
                    phone="",
                    anonymised_at=stamp,
                )
            )
            db.session.execute(
                update(Question)
                .where(Question.visit_id.in_(visit_ids))
                .values(summary="", resolution_note="")
            )
        old_booking_ids = select(Booking.id).where(Booking.created_at < cutoff)
        comments = _blank(
            Feedback,
            Feedback.booking_id.in_(old_booking_ids),
            Feedback.comment != "",
            comment="",
        )
        old_question_ids = (
            select(Question.id).join(Visit, Visit.id == Question.visit_id).where(Visit.at < cutoff)
        )
        notes = _blank(
            QuestionEvent,
            QuestionEvent.question_id.in_(old_question_ids),
            QuestionEvent.note != "",
            note="",
        )
        # A message still waiting to be sent keeps its address until it is sent or given up.
        messages = _blank(
            Notification,
            or_(Notification.created_at < cutoff, Notification.booking_id.in_(old_booking_ids)),
            Notification.status != DeliveryStatus.pending.value,
            Notification.recipient != "",
            recipient="",
            payload={},
        )
        counts = {
            "bookings": len(booking_ids),
            "visits": len(visit_ids),
            "feedback_comments": comments,
            "question_notes": notes,
            "notifications": messages,
        }
        audit("retention.purged", "booking", None, older_than_days=older_than_days, **counts)
    return counts


def _blank(model: type, *where: object, **values: object) -> int:
    """Overwrite `values` in the rows matching `where`; the number of rows changed."""
    ids = list(db.session.scalars(select(model.id).where(*where)))  # type: ignore[attr-defined]
    if ids:
        db.session.execute(update(model).where(model.id.in_(ids)).values(**values))  # type: ignore[attr-defined]
    return len(ids)
