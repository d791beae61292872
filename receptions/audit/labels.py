"""Words for the audit trail's actions and kinds of record, in the reader's language."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

ACTION_LABELS = {
    "booking.check_in": _l("Citizen checked in"),
    "calendar.day_added": _l("Date added to the working calendar"),
    "calendar.day_removed": _l("Date removed from the working calendar"),
    "calendar.sessions_followed": _l("Sessions brought in line with the working calendar"),
    "institution.created": _l("Institution created"),
    "institution.updated": _l("Institution changed"),
    "month.signed": _l("Month signed off"),
    "notification.retried": _l("Message sent again"),
    "personal_data.viewed": _l("Personal data viewed"),
    "question.added": _l("Question recorded"),
    "question.outcome": _l("Outcome recorded"),
    "question.follow_up_changed": _l("Responsible person or due date of a question changed"),
    "retention.purged": _l("Old personal data removed"),
    "schedule.saved": _l("Schedule saved"),
    "schedule.status": _l("Schedule paused or resumed"),
    "session.cancelled": _l("Session cancelled"),
    "session.closed": _l("Session closed"),
    "session.kept": _l("Session kept as it is after a schedule change"),
    "session.reopened": _l("Session reopened"),
    "topic.added": _l("Topic added"),
    "topic.active": _l("Topic offered again"),
    "topic.retired": _l("Topic withdrawn"),
    "unified_rule.set": _l("Region's open-door day set"),
    "unified_rule.exception": _l("Exception from the region's open-door day allowed"),
    "unified_rule.exception_withdrawn": _l("Exception from the region's open-door day withdrawn"),
    "user.invited": _l("User invited"),
    "user.link_issued": _l("New sign-in link issued"),
    "user.password_set": _l("Password set"),
    "user.updated": _l("User changed"),
    "visit.received_by": _l("Receiving person recorded"),
    "visit.walk_in": _l("Walk-in registered"),
}

RECORD_TYPE_LABELS = {
    "booking": _l("Booking"),
    "calendar_change": _l("Calendar change"),
    "calendar_day": _l("Calendar date"),
    "institution": _l("Institution"),
    "notification": _l("Message"),
    "question": _l("Question"),
    "region": _l("Region"),
    "schedule": _l("Schedule"),
    "session": _l("Session"),
    "topic": _l("Topic"),
    "user": _l("User"),
    "visit": _l("Visit"),
}


def action_label(action: str) -> str:
    """The action in words; an action without a label (from an older version) as stored."""
    label = ACTION_LABELS.get(action)
    return str(label) if label is not None else action


def record_type_label(record_type: str) -> str:
    label = RECORD_TYPE_LABELS.get(record_type)
    return str(label) if label is not None else record_type
