"""Topics, bookings, their public status history, feedback and the waitlist."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..database import UTCDateTime, utcnow
from ..extensions import db
from ..i18n import localized
from ..institutions.models import Institution
from ..schedules.models import Schedule, ScheduledSession, Slot


class Topic(db.Model):
    """A subject citizens raise (housing and utilities, education, …), managed by admins."""

    __tablename__ = "topic"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name_kk: Mapped[str] = mapped_column(String(120))
    name_ru: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(Integer, default=100)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    @property
    def name(self) -> str:
        return localized(self, "name")


class BookingStatus(enum.StrEnum):
    booked = "booked"
    cancelled_by_citizen = "cancelled_by_citizen"
    cancelled_by_institution = "cancelled_by_institution"
    attended = "attended"
    no_show = "no_show"


ACTIVE_STATUSES = (BookingStatus.booked.value,)


class Booking(db.Model):
    __tablename__ = "booking"
    __table_args__ = (CheckConstraint("length(iin_last4) = 4", name="iin_last4_length"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slot.id"), index=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("session.id"), index=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedule.id"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    reference: Mapped[str] = mapped_column(String(12), unique=True)
    manage_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # HMAC of the form's one-time key (services.idempotency_hash): recognises a second submission
    # of the same form; neither the key nor the manage token can be rebuilt from it.
    idempotency_hash: Mapped[str] = mapped_column(String(64), unique=True)
    citizen_name: Mapped[str] = mapped_column(String(200))
    iin_hash: Mapped[str] = mapped_column(String(64), index=True)
    iin_last4: Mapped[str] = mapped_column(String(4))
    phone: Mapped[str] = mapped_column(String(20))
    email: Mapped[str] = mapped_column(String(200), default="")
    locale: Mapped[str] = mapped_column(String(5), default="kk")
    topic_id: Mapped[int] = mapped_column(ForeignKey("topic.id"))
    question: Mapped[str] = mapped_column(Text)
    accessibility: Mapped[list[str]] = mapped_column(JSON, default=list)
    accessibility_note: Mapped[str] = mapped_column(String(300), default="")
    consent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consent_version: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(30), default=BookingStatus.booked.value, index=True)
    channel: Mapped[str] = mapped_column(String(10), default="online")
    month: Mapped[str] = mapped_column(
        String(7)
    )  # local YYYY-MM of the slot, for per-citizen limits
    reminder_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    feedback_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_check_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the citizen chose the current time (booked it, or last moved the booking to it).
    booked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    anonymised_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    slot: Mapped[Slot] = relationship()
    session: Mapped[ScheduledSession] = relationship()
    schedule: Mapped[Schedule] = relationship()
    institution: Mapped[Institution] = relationship()
    topic: Mapped[Topic] = relationship()
    events: Mapped[list[StatusEvent]] = relationship(
        back_populates="booking", order_by="StatusEvent.at, StatusEvent.id"
    )

    @property
    def is_active(self) -> bool:
        return self.status == BookingStatus.booked


class StatusEvent(db.Model):
    """One step of a booking's public history; the status page shows these and nothing else."""

    __tablename__ = "status_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(
        ForeignKey("booking.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(30))
    due_date: Mapped[date | None] = mapped_column(Date)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    booking: Mapped[Booking] = relationship(back_populates="events")


class Feedback(db.Model):
    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="rating_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(
        ForeignKey("booking.id", ondelete="CASCADE"), unique=True
    )
    rating: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The later "was your question actually resolved?" answer (None until asked and answered).
    really_resolved: Mapped[bool | None] = mapped_column(Boolean)
    really_resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WaitlistEntry(db.Model):
    """ "Tell me if an earlier slot frees up": at most three notices, then it stops by itself."""

    __tablename__ = "waitlist_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(
        ForeignKey("schedule.id", ondelete="CASCADE"), index=True
    )
    booking_id: Mapped[int] = mapped_column(
        ForeignKey("booking.id", ondelete="CASCADE"), unique=True
    )
    notices_sent: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    booking: Mapped[Booking] = relationship()
