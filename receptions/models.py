"""Every feature's models, imported together so that Alembic and create_all see the whole schema."""

from .audit.models import AuditEvent
from .auth.models import PasswordToken, User
from .booking.models import Booking, Feedback, StatusEvent, Topic, WaitlistEntry
from .geography.models import District, Region
from .institutions.models import Institution
from .notify.models import Notification
from .reports.models import ReportExport
from .schedules.models import (
    CalendarDay,
    Schedule,
    ScheduledSession,
    Slot,
    UnifiedOpenDoorRule,
    UnifiedRuleException,
)
from .visits.models import MonthSignoff, MonthSignoffTopic, Question, QuestionEvent, Visit

__all__ = [
    "AuditEvent",
    "Booking",
    "CalendarDay",
    "District",
    "Feedback",
    "Institution",
    "MonthSignoff",
    "MonthSignoffTopic",
    "Notification",
    "PasswordToken",
    "Question",
    "QuestionEvent",
    "Region",
    "ReportExport",
    "Schedule",
    "ScheduledSession",
    "Slot",
    "StatusEvent",
    "Topic",
    "UnifiedOpenDoorRule",
    "UnifiedRuleException",
    "User",
    "Visit",
    "WaitlistEntry",
]
