"""Words for booking states and status-history steps, in the reader's language."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

EVENT_LABELS = {
    "booked": _l("Booked"),
    "rescheduled": _l("Moved to another time"),
    "cancelled_by_citizen": _l("Cancelled by the citizen"),
    "cancelled_by_institution": _l("Cancelled by the institution"),
    "attended": _l("Received"),
    "no_show": _l("Did not come"),
    "feedback": _l("Meeting rated"),
    "check_in_undone": _l("Check-in corrected"),
    "resolved": _l("Resolved positively"),
    "explained": _l("Explained"),
    "pending": _l("Being resolved"),
}

STATUS_LABELS = {
    "booked": _l("Booked"),
    "cancelled_by_citizen": _l("Cancelled by you"),
    "cancelled_by_institution": _l("Cancelled by the institution"),
    "attended": _l("Received"),
    "no_show": _l("Did not come"),
}


def event_label(kind: str) -> str:
    return str(EVENT_LABELS.get(kind, kind))


def status_label(status: str) -> str:
    return str(STATUS_LABELS.get(status, status))


def accessibility_label(code: str) -> str:
    from .forms import ACCESSIBILITY_NEEDS

    return str(dict(ACCESSIBILITY_NEEDS).get(code, code))
