"""Schedules as staff enter them, and the sessions and slots materialised from them."""

from __future__ import annotations

import enum
from datetime import date, datetime, time
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
    Time,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..database import UTCDateTime, utcnow
from ..extensions import db
from ..geography.models import Region
from ..institutions.models import Institution


class ScheduleStatus(enum.StrEnum):
    active = "active"
    paused = "paused"


class SessionStatus(enum.StrEnum):
    planned = "planned"
    held = "held"
    cancelled = "cancelled"


# A session the system withdrew because its schedule changed (nobody had booked it), as opposed
# to one that staff cancelled with a reason; only the former comes back if the schedule does.
SYSTEM_CANCEL_CODE = "schedule_changed"


class ScheduleFields:
    """Columns shared by a schedule and a region's unified open-door rule."""

    rrule: Mapped[str] = mapped_column(String(200))
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    slot_minutes: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)
    walk_in_places: Mapped[int] = mapped_column(Integer, default=0)
    breaks: Mapped[list[Any]] = mapped_column(JSON, default=list)
    day_off_policy: Mapped[str] = mapped_column(String(30), default="previous_working_day")
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)


class UnifiedOpenDoorRule(ScheduleFields, db.Model):
    """The open-door day a regional akimat sets for every institution of its region."""

    __tablename__ = "unified_open_door_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"), unique=True)
    location_hint: Mapped[str] = mapped_column(String(300), default="")
    set_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    region: Mapped[Region] = relationship()


class UnifiedRuleException(db.Model):
    """An institution the regional officer allowed to keep its own open-door schedule."""

    __tablename__ = "unified_rule_exception"
    __table_args__ = (UniqueConstraint("institution_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)
    allowed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    allowed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The schedule the region's rule had given the institution, detached for it to keep: it
    # follows the rule again when the exception is withdrawn.
    detached_schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("schedule.id", ondelete="SET NULL")
    )


class Schedule(ScheduleFields, db.Model):
    __tablename__ = "schedule"
    __table_args__ = (
        CheckConstraint("capacity >= 1", name="capacity_positive"),
        CheckConstraint("slot_minutes >= 1", name="slot_minutes_positive"),
        CheckConstraint("walk_in_places >= 0", name="walk_in_places_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10), default=ScheduleStatus.active.value)
    host_name: Mapped[str] = mapped_column(String(200), default="")
    host_position: Mapped[str] = mapped_column(String(200), default="")
    location: Mapped[str] = mapped_column(String(300), default="")
    exclusions: Mapped[list[str]] = mapped_column(JSON, default=list)
    booking_opens_days: Mapped[int] = mapped_column(Integer, default=30)
    booking_closes_hours: Mapped[int] = mapped_column(Integer, default=2)
    cancel_hours_before: Mapped[int] = mapped_column(Integer, default=2)
    unified_rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("unified_open_door_rule.id", ondelete="SET NULL"), index=True
    )
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    institution: Mapped[Institution] = relationship()
    unified_rule: Mapped[UnifiedOpenDoorRule | None] = relationship()
    sessions: Mapped[list[ScheduledSession]] = relationship(
        back_populates="schedule", order_by="ScheduledSession.starts_at"
    )

    __mapper_args__ = {"version_id_col": version}


class ScheduledSession(db.Model):
    """One dated occurrence of a schedule (the glossary's "session")."""

    __tablename__ = "session"
    # One session per schedule and start, except those the system withdrew (`in_force` NULL:
    # NULLs never collide): a withdrawn session keeps its time and the bookings that were made
    # and cancelled for it, and the schedule may bring a new session at that time. Not a partial
    # index: SQLite prepares again, on every run, a statement whose bound parameter could decide
    # whether a partial index applies (any `status = ?` on sessions), which cost every booking.
    __table_args__ = (UniqueConstraint("schedule_id", "starts_at", "in_force"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedule.id", ondelete="CASCADE"))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    local_date: Mapped[date] = mapped_column(Date, index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    moved_from: Mapped[date | None] = mapped_column(Date)
    walk_in_places: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), default=SessionStatus.planned.value, index=True)
    in_force: Mapped[bool | None] = mapped_column(Boolean, default=True, server_default=true())
    # Kept as it is for its bookings though its schedule's rule no longer has it so: it takes no
    # new bookings until staff keep it (`kept_by_staff`) or cancel it, or the rule has it again.
    # Stored, so that the public pages and the booking's slot read leave it out by one column.
    awaiting_decision: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # Staff chose to keep it as it is: an ordinary session again, which the rule leaves as it is
    # (no conflict, no session of the rule beside it) until the rule has it so again.
    kept_by_staff: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    cancel_code: Mapped[str | None] = mapped_column(String(30))
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_count: Mapped[int | None] = mapped_column(Integer)
    closeout_reminders: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    schedule: Mapped[Schedule] = relationship(back_populates="sessions")
    institution: Mapped[Institution] = relationship()
    slots: Mapped[list[Slot]] = relationship(
        back_populates="session", order_by="Slot.starts_at", cascade="all, delete-orphan"
    )

    @property
    def booked(self) -> int:
        return sum(slot.booked for slot in self.slots)

    @property
    def free(self) -> int:
        return sum(slot.free for slot in self.slots)


class Slot(db.Model):
    """A bookable time inside a session; `booked` only moves by one conditional UPDATE."""

    __tablename__ = "slot"
    __table_args__ = (
        UniqueConstraint("session_id", "starts_at"),
        CheckConstraint("booked >= 0", name="booked_not_negative"),
        CheckConstraint("booked <= capacity", name="booked_within_capacity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("session.id", ondelete="CASCADE"), index=True
    )
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer, default=0)

    session: Mapped[ScheduledSession] = relationship(back_populates="slots")

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.booked)


class CalendarDayKind(enum.StrEnum):
    working = "working"  # a weekend day made working by a government transfer
    day_off = "day_off"  # an extra day off (the other half of a transfer, or a decree)


class CalendarDay(db.Model):
    """Transferred working days and extra days off that an administrator enters per year."""

    __tablename__ = "calendar_day"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CalendarChange(db.Model):
    """What a date added to or removed from the working calendar did to the sessions: which
    schedules it reached, how far bringing them in line has got, and what came of it. Any web
    instance shows it; the runner that works through it (the request itself, an RQ worker, a
    thread or `flask schedules calendar-changes`) claims it with one conditional UPDATE."""

    __tablename__ = "calendar_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    kind: Mapped[str] = mapped_column(String(10))  # CalendarDayKind of the date added or removed
    added: Mapped[bool] = mapped_column(Boolean)
    requested_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    # queued | running | done | failed
    status: Mapped[str] = mapped_column(String(10), default="queued")
    schedule_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    schedules_done: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    withdrawn: Mapped[int] = mapped_column(Integer, default=0)
    # Booked sessions kept as they are though the calendar no longer has them so: for staff.
    conflict_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")
