"""Pure scheduling domain: recurrence, working calendar, sessions and slots, booking rules, iCal."""

from .calendar import WorkingCalendar
from .errors import InvalidSchedule, SchedulingError
from .ical import CalendarEvent, event_uid, render_calendar
from .recurrence import Recurrence, describe, occurrences, parse_rule, preset_rules
from .rules import BookingStatus, BookingWindow, CancellationPolicy, booking_status, is_bookable
from .slots import (
    DayOffPolicy,
    ScheduleKind,
    ScheduleSpec,
    SessionPlan,
    SlotPlan,
    calendar_change_moves,
    calendar_change_reach,
    first_overlap,
    plan_sessions,
    validate_spec,
)

__all__ = [
    "BookingStatus",
    "BookingWindow",
    "CalendarEvent",
    "CancellationPolicy",
    "DayOffPolicy",
    "InvalidSchedule",
    "Recurrence",
    "ScheduleKind",
    "ScheduleSpec",
    "SchedulingError",
    "SessionPlan",
    "SlotPlan",
    "WorkingCalendar",
    "booking_status",
    "calendar_change_moves",
    "calendar_change_reach",
    "describe",
    "event_uid",
    "first_overlap",
    "is_bookable",
    "occurrences",
    "parse_rule",
    "plan_sessions",
    "preset_rules",
    "render_calendar",
    "validate_spec",
]
