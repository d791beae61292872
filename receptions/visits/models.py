"""Visits (citizens actually received), their questions, outcomes and the monthly sign-off."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..auth.models import User
from ..booking.models import Booking, Topic
from ..database import UTCDateTime, utcnow
from ..extensions import db
from ..schedules.models import ScheduledSession


class Outcome(enum.StrEnum):
    resolved = "resolved"  # решён положительно / оң шешілді
    explained = "explained"  # даны разъяснения / түсіндірме берілді
    pending = "pending"  # на стадии решения / шешілу үстінде


class ReceivedBy(enum.StrEnum):
    head = "head"
    deputy = "deputy"


class Visit(db.Model):
    """A citizen actually received at a session: with a booking, or as a walk-in."""

    __tablename__ = "visit"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("session.id"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("booking.id"), unique=True)
    citizen_name: Mapped[str] = mapped_column(String(200))
    iin_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    iin_last4: Mapped[str] = mapped_column(String(4), default="")
    phone: Mapped[str] = mapped_column(String(20), default="")
    received_by: Mapped[str] = mapped_column(String(10), default=ReceivedBy.head.value)
    received_by_name: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    anonymised_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    session: Mapped[ScheduledSession] = relationship()
    booking: Mapped[Booking | None] = relationship()
    questions: Mapped[list[Question]] = relationship(
        back_populates="visit", order_by="Question.id", cascade="all, delete-orphan"
    )

    @property
    def is_walk_in(self) -> bool:
        return self.booking_id is None


class Question(db.Model):
    __tablename__ = "question"
    __table_args__ = (
        CheckConstraint(
            "outcome IS NULL OR outcome IN ('resolved', 'explained', 'pending')",
            name="outcome_known",
        ),
        CheckConstraint(
            "outcome IS NULL OR outcome <> 'pending' OR (due_date IS NOT NULL AND responsible <> '')",
            name="pending_has_owner",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visit.id", ondelete="CASCADE"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topic.id"), index=True)
    summary: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(10), index=True)
    responsible: Mapped[str] = mapped_column(String(200), default="")
    due_date: Mapped[date | None] = mapped_column(Date, index=True)
    outcome_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    visit: Mapped[Visit] = relationship(back_populates="questions")
    topic: Mapped[Topic] = relationship()
    events: Mapped[list[QuestionEvent]] = relationship(
        back_populates="question", order_by="QuestionEvent.at, QuestionEvent.id"
    )

    __mapper_args__ = {"version_id_col": version}


class QuestionEvent(db.Model):
    """Every change of a question's state; drives the citizen's status page and notifications.

    `kind`: raised, outcome, closed, or a follow-up change of a pending question: reassigned (to
    `responsible`) or due_date_changed (to `due_date`), the reason in `note`."""

    __tablename__ = "question_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[int] = mapped_column(
        ForeignKey("question.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str | None] = mapped_column(String(10))
    due_date: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")
    # Whom a "reassigned" step handed the question to; empty for every other step.
    responsible: Mapped[str] = mapped_column(String(200), default="", server_default="")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))

    question: Mapped[Question] = relationship(back_populates="events")


class MonthSignoff(db.Model):
    """The head's signature under a month's figures; a correction is a new version."""

    __tablename__ = "month_signoff"
    __table_args__ = (UniqueConstraint("institution_id", "month", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    month: Mapped[str] = mapped_column(String(7))
    version: Mapped[int] = mapped_column(Integer)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    signed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")
    # Whether the month's questions by topic were signed with it (MonthSignoffTopic); those
    # signed before topics were kept (false) leave the month's top topics to the live rows.
    topics_signed: Mapped[bool] = mapped_column(Boolean, default=True, server_default=false())

    signed_by: Mapped[User | None] = relationship()
    topics: Mapped[list[MonthSignoffTopic]] = relationship(cascade="all, delete-orphan")


class MonthSignoffTopic(db.Model):
    """How many of a signed month's questions were on one topic, as signed: the top topics beside
    the signed figures add up to the questions the head filed."""

    __tablename__ = "month_signoff_topic"

    signoff_id: Mapped[int] = mapped_column(
        ForeignKey("month_signoff.id", ondelete="CASCADE"), primary_key=True
    )
    topic_id: Mapped[int] = mapped_column(ForeignKey("topic.id"), primary_key=True)
    questions: Mapped[int] = mapped_column(Integer)
