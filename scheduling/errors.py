"""Domain errors of the scheduling package, identified by stable machine codes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

INVALID_RRULE: Final = "invalid_rrule"
END_BEFORE_START: Final = "end_before_start"
SLOT_NOT_POSITIVE: Final = "slot_not_positive"
SLOT_LONGER_THAN_SESSION: Final = "slot_longer_than_session"
NO_SLOT_FITS: Final = "no_slot_fits"
CAPACITY_NOT_POSITIVE: Final = "capacity_not_positive"
RECEPTION_CAPACITY_NOT_ONE: Final = "reception_capacity_not_one"
WALK_IN_NEGATIVE: Final = "walk_in_places_negative"
WALK_IN_NOT_FOR_RECEPTION: Final = "walk_in_not_for_reception"
VALID_UNTIL_BEFORE_VALID_FROM: Final = "valid_until_before_valid_from"
BREAK_END_BEFORE_START: Final = "break_end_before_start"
BREAK_OUTSIDE_SESSION: Final = "break_outside_session"
BREAKS_OVERLAP: Final = "breaks_overlap"
UNKNOWN_TIMEZONE: Final = "unknown_timezone"
HOST_BUSY: Final = "host_busy"
BOOKING_WINDOW_INVERTED: Final = "booking_window_inverted"
INVALID_SCHEDULE: Final = "invalid_schedule"

# The Flask side needs a translated message for each of these; a test there can check coverage.
ALL_CODES: Final = frozenset(
    {
        INVALID_RRULE,
        END_BEFORE_START,
        SLOT_NOT_POSITIVE,
        SLOT_LONGER_THAN_SESSION,
        NO_SLOT_FITS,
        CAPACITY_NOT_POSITIVE,
        RECEPTION_CAPACITY_NOT_ONE,
        WALK_IN_NEGATIVE,
        WALK_IN_NOT_FOR_RECEPTION,
        VALID_UNTIL_BEFORE_VALID_FROM,
        BREAK_END_BEFORE_START,
        BREAK_OUTSIDE_SESSION,
        BREAKS_OVERLAP,
        UNKNOWN_TIMEZONE,
        HOST_BUSY,
        BOOKING_WINDOW_INVERTED,
        INVALID_SCHEDULE,
    }
)


class SchedulingError(ValueError):
    """A scheduling problem with a stable ``code`` and the form ``field`` it concerns.

    ``detail`` is for logs and developers only; user-facing text is chosen by ``code``.
    """

    def __init__(self, code: str, field: str | None = None, detail: str = "") -> None:
        message = code if field is None else f"{code} ({field})"
        if detail:
            message = f"{message}: {detail}"
        super().__init__(message)
        self.code = code
        self.field = field
        self.detail = detail


class InvalidSchedule(SchedulingError):
    """Every problem found in one schedule, so a form can mark all its fields at once."""

    def __init__(self, errors: Iterable[SchedulingError]) -> None:
        collected = tuple(errors)
        if not collected:
            raise ValueError("InvalidSchedule needs at least one error")
        super().__init__(INVALID_SCHEDULE, None, "; ".join(str(e) for e in collected))
        self.errors: tuple[SchedulingError, ...] = collected

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(e.code for e in self.errors)

    def by_field(self) -> dict[str | None, tuple[SchedulingError, ...]]:
        grouped: dict[str | None, list[SchedulingError]] = {}
        for error in self.errors:
            grouped.setdefault(error.field, []).append(error)
        return {name: tuple(items) for name, items in grouped.items()}
