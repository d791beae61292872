"""Words for session states and the month's figures, in the reader's language."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

SESSION_STATUS_LABELS = {
    "planned": _l("Planned"),
    "held": _l("Held"),
    "cancelled": _l("Did not take place"),
}

# The figures a head signs off (`reports.services.SIGNED_FIGURES`, so that the page shows every
# change that calls for a correction, and `DERIVED_FIGURES`) and the sessions not closed, which
# must be none to sign; in the order the month page shows them.
MONTH_FIGURES = (
    ("sessions_planned", _l("Sessions planned")),
    ("open_door_planned", _l("Open-door days planned")),
    ("reception_planned", _l("Receptions planned")),
    ("sessions_held", _l("Sessions held")),
    ("open_door_held", _l("Open-door days held")),
    ("reception_held", _l("Receptions held")),
    ("sessions_cancelled", _l("Sessions cancelled")),
    ("sessions_not_closed", _l("Sessions not closed")),
    ("citizens_booked", _l("Citizens booked")),
    ("citizens_received", _l("Citizens received")),
    ("walk_ins", _l("of them walk-ins")),
    ("no_shows", _l("No-shows")),
    ("questions", _l("Questions")),
    ("resolved", _l("Resolved positively")),
    ("explained", _l("Explained")),
    ("pending", _l("Being resolved")),
    ("without_outcome", _l("No outcome recorded")),  # so that the outcomes add up to the questions
)


def session_status_label(status: str) -> str:
    return str(SESSION_STATUS_LABELS.get(status, status))
