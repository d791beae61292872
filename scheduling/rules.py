"""Time-dependent rules: when a slot can be booked, until when it can be cancelled, and from when
staff may record who came to a session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class BookingStatus(StrEnum):
    open = "open"
    not_yet_open = "not_yet_open"
    closed = "closed"
    past = "past"


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


@dataclass(frozen=True)
class BookingWindow:
    """Booking opens ``opens_days_ahead`` days (24 h each) before a slot and closes
    ``closes_hours_before`` hours before it; both edges are instants, not local midnights."""

    opens_days_ahead: int = 30
    closes_hours_before: int = 2

    def __post_init__(self) -> None:
        if self.opens_days_ahead < 0 or self.closes_hours_before < 0:
            raise ValueError("booking window bounds must not be negative")
        if timedelta(hours=self.closes_hours_before) > timedelta(days=self.opens_days_ahead):
            raise ValueError("booking window closes before it opens")

    def opens_at(self, slot_start: datetime) -> datetime:
        return slot_start - timedelta(days=self.opens_days_ahead)

    def closes_at(self, slot_start: datetime) -> datetime:
        return slot_start - timedelta(hours=self.closes_hours_before)


def booking_status(slot_start: datetime, now: datetime, window: BookingWindow) -> BookingStatus:
    """``open`` from ``opens_at`` (inclusive) until ``closes_at`` (exclusive)."""
    _require_aware("slot_start", slot_start)
    _require_aware("now", now)
    if now >= slot_start:
        return BookingStatus.past
    if now < window.opens_at(slot_start):
        return BookingStatus.not_yet_open
    if now >= window.closes_at(slot_start):
        return BookingStatus.closed
    return BookingStatus.open


def is_bookable(slot_start: datetime, now: datetime, window: BookingWindow) -> bool:
    return booking_status(slot_start, now, window) is BookingStatus.open


@dataclass(frozen=True)
class CancellationPolicy:
    """A citizen may cancel until ``hours_before`` hours before the slot (exclusive)."""

    hours_before: int = 2

    def __post_init__(self) -> None:
        if self.hours_before < 0:
            raise ValueError("hours_before must not be negative")

    def deadline(self, slot_start: datetime) -> datetime:
        _require_aware("slot_start", slot_start)
        return slot_start - timedelta(hours=self.hours_before)

    def can_cancel(self, slot_start: datetime, now: datetime) -> bool:
        _require_aware("now", now)
        return now < self.deadline(slot_start)


@dataclass(frozen=True)
class ReceptionDesk:
    """From when staff may record who came to a session.

    A citizen is received (a booking marked as come, or a walk-in registered) from
    ``opens_minutes_before`` the session starts, whatever time they booked: people queue at the door
    before it opens and are seen as the host is free, so one who comes early is not turned away
    until their slot. A booking is marked as not come only once its slot has begun: until then the
    citizen still has time to come (one who is late after all is marked again the same day).
    """

    opens_minutes_before: int = 30

    def __post_init__(self) -> None:
        if self.opens_minutes_before < 0:
            raise ValueError("opens_minutes_before must not be negative")

    def opens_at(self, session_start: datetime) -> datetime:
        _require_aware("session_start", session_start)
        return session_start - timedelta(minutes=self.opens_minutes_before)

    def is_open(self, session_start: datetime, now: datetime) -> bool:
        _require_aware("now", now)
        return now >= self.opens_at(session_start)

    def can_mark_no_show(self, slot_start: datetime, now: datetime) -> bool:
        _require_aware("slot_start", slot_start)
        _require_aware("now", now)
        return now >= slot_start
