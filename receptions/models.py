"""Every feature's models, imported together so that Alembic and create_all see the whole schema."""

from .audit.models import AuditEvent
from .auth.models import PasswordToken, User
from .geography.models import District, Region
from .institutions.models import Institution
from .schedules.models import (
    CalendarDay,
    Schedule,
    ScheduledSession,
    Slot,
    UnifiedOpenDoorRule,
    UnifiedRuleException,
)

__all__ = [
    "AuditEvent",
    "CalendarDay",
    "District",
    "Institution",
    "PasswordToken",
    "Region",
    "Schedule",
    "ScheduledSession",
    "Slot",
    "UnifiedOpenDoorRule",
    "UnifiedRuleException",
    "User",
]
