"""Retention: personal data of citizens is anonymised after a period, the counts stay."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from ..audit.services import record as audit
from ..booking.models import Booking
from ..clock import now as clock_now
from ..database import write_transaction
from ..extensions import db
from ..visits.models import Question, Visit

ANONYMOUS = "—"


def purge_personal_data(*, older_than_days: int, at: datetime | None = None) -> dict[str, int]:
    """Blank names, IIN hashes, phones, e-mails and question texts of old bookings and visits.

    Topics, outcomes, dates and statuses stay, so every figure the reports need is unchanged.
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
        audit(
            "retention.purged",
            "booking",
            None,
            bookings=len(booking_ids),
            visits=len(visit_ids),
            older_than_days=older_than_days,
        )
    return {"bookings": len(booking_ids), "visits": len(visit_ids)}
