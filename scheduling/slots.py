"""Schedule specifications and their expansion into dated sessions and bookable slots.

Day-off handling: a rule occurrence on a day off (see the weekend rule in
:mod:`scheduling.recurrence`) either moves to the previous working day or is skipped, per
``DayOffPolicy``. A move is dropped when the target is before ``valid_from``, is excluded, or
already holds a session (regular occurrences win; among moved ones the earliest source wins).
The plan for a range is the full plan restricted to session dates in that range, so planning
month by month gives the same sessions as planning a year at once.

Time zones: wall times are resolved in ``spec.tz`` with ``fold=0`` (the earlier instant for a
repeated hour, e.g. 23:30 on 2024-02-29 in Asia/Almaty is +06). A slot whose start or end falls
into a skipped hour (a DST gap, not seen in Kazakhstan) does not exist that day and is dropped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import errors as codes
from .calendar import WorkingCalendar
from .errors import InvalidSchedule, SchedulingError
from .recurrence import Recurrence, is_day_off_for, occurrences, parse_rule


class ScheduleKind(StrEnum):
    open_door = "open_door"
    reception = "reception"


class DayOffPolicy(StrEnum):
    previous_working_day = "previous_working_day"
    skip = "skip"


@dataclass(frozen=True)
class ScheduleSpec:
    """What staff enter for a schedule; validate with :func:`validate_spec`.

    For ``reception`` every slot holds one citizen; for ``open_door`` ``capacity`` is per slot
    and ``walk_in_places`` is a per-session reserve that online booking never takes.
    """

    kind: ScheduleKind
    rrule: str
    start_time: time
    end_time: time
    slot_minutes: int
    capacity: int
    tz: str
    valid_from: date
    valid_until: date | None = None
    breaks: tuple[tuple[time, time], ...] = ()
    exclusions: frozenset[date] = field(default_factory=frozenset)
    day_off_policy: DayOffPolicy = DayOffPolicy.previous_working_day
    walk_in_places: int = 0


@dataclass(frozen=True)
class SlotPlan:
    start: datetime
    end: datetime
    capacity: int


# SessionPlan has a field called `date`; this alias keeps the type visible inside the class.
LocalDate = date


@dataclass(frozen=True)
class SessionPlan:
    """One dated session; ``date`` is local, ``start``/``end`` and slots are UTC."""

    date: LocalDate
    start: datetime
    end: datetime
    slots: tuple[SlotPlan, ...]
    moved_from: LocalDate | None = None
    walk_in_places: int = 0


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def _slot_starts(spec: ScheduleSpec) -> list[tuple[int, int]]:
    """Slots as (start, end) minutes after midnight, local wall time."""
    breaks = sorted((_minutes(a), _minutes(b)) for a, b in spec.breaks)
    end = _minutes(spec.end_time)
    cursor = _minutes(spec.start_time)
    result: list[tuple[int, int]] = []
    while cursor + spec.slot_minutes <= end:
        slot_end = cursor + spec.slot_minutes
        blocking = next((b for b in breaks if b[0] < slot_end and cursor < b[1]), None)
        if blocking is not None:
            cursor = blocking[1]
            continue
        result.append((cursor, slot_end))
        cursor = slot_end
    return result


def _collect_errors(spec: ScheduleSpec) -> list[SchedulingError]:
    found: list[SchedulingError] = []

    def add(code: str, field_name: str, detail: str = "") -> None:
        found.append(SchedulingError(code, field_name, detail))

    try:
        parse_rule(spec.rrule)
    except SchedulingError as exc:
        found.append(exc)
    try:
        ZoneInfo(spec.tz)
    except (ZoneInfoNotFoundError, ValueError):
        add(codes.UNKNOWN_TIMEZONE, "tz", spec.tz)

    times = [spec.start_time, spec.end_time, *(t for pair in spec.breaks for t in pair)]
    if any(t.tzinfo is not None for t in times):
        # Wall times are interpreted in spec.tz; a second zone on the time would be ambiguous.
        add(codes.UNKNOWN_TIMEZONE, "tz", "times must be naive wall-clock times")
    start, end = _minutes(spec.start_time), _minutes(spec.end_time)
    session_ok = end > start
    if not session_ok:
        add(codes.END_BEFORE_START, "end_time")
    if spec.slot_minutes <= 0:
        add(codes.SLOT_NOT_POSITIVE, "slot_minutes")
    elif session_ok and spec.slot_minutes > end - start:
        add(codes.SLOT_LONGER_THAN_SESSION, "slot_minutes")

    breaks_ok = True
    for b_start, b_end in spec.breaks:
        if _minutes(b_end) <= _minutes(b_start):
            add(codes.BREAK_END_BEFORE_START, "breaks", f"{b_start}-{b_end}")
            breaks_ok = False
        elif session_ok and not (start <= _minutes(b_start) and _minutes(b_end) <= end):
            add(codes.BREAK_OUTSIDE_SESSION, "breaks", f"{b_start}-{b_end}")
            breaks_ok = False
    ordered = sorted((_minutes(a), _minutes(b)) for a, b in spec.breaks)
    if any(nxt[0] < prev[1] for prev, nxt in itertools.pairwise(ordered)):
        add(codes.BREAKS_OVERLAP, "breaks")
        breaks_ok = False
    if session_ok and breaks_ok and 0 < spec.slot_minutes <= end - start and not _slot_starts(spec):
        add(codes.NO_SLOT_FITS, "slot_minutes")

    if spec.capacity < 1:
        add(codes.CAPACITY_NOT_POSITIVE, "capacity")
    elif spec.kind is ScheduleKind.reception and spec.capacity != 1:
        add(codes.RECEPTION_CAPACITY_NOT_ONE, "capacity")
    if spec.walk_in_places < 0:
        add(codes.WALK_IN_NEGATIVE, "walk_in_places")
    elif spec.kind is ScheduleKind.reception and spec.walk_in_places != 0:
        add(codes.WALK_IN_NOT_FOR_RECEPTION, "walk_in_places")
    if spec.valid_until is not None and spec.valid_until < spec.valid_from:
        add(codes.VALID_UNTIL_BEFORE_VALID_FROM, "valid_until")
    return found


def validate_spec(spec: ScheduleSpec) -> None:
    """Raise :class:`InvalidSchedule` listing every problem in ``spec``, or return None."""
    found = _collect_errors(spec)
    if found:
        raise InvalidSchedule(found)


def _resolve(day: date, minutes: int, zone: ZoneInfo) -> tuple[datetime, bool]:
    """UTC instant for a local wall time (fold=0) and whether that wall time exists."""
    local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=zone)
    instant = local.astimezone(UTC)
    exists = instant.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None)
    return instant, exists


def _build_session(
    spec: ScheduleSpec,
    day: date,
    pieces: list[tuple[int, int]],
    zone: ZoneInfo,
    moved_from: date | None,
) -> SessionPlan | None:
    start, _ = _resolve(day, _minutes(spec.start_time), zone)
    end, _ = _resolve(day, _minutes(spec.end_time), zone)
    if end <= start:
        return None
    slots: list[SlotPlan] = []
    for piece_start, piece_end in pieces:
        slot_start, start_exists = _resolve(day, piece_start, zone)
        slot_end, end_exists = _resolve(day, piece_end, zone)
        # Guards keep the invariants (inside the session, no overlap) even across a DST gap.
        if not (start_exists and end_exists and start <= slot_start < slot_end <= end):
            continue
        if slots and slot_start < slots[-1].end:
            continue
        slots.append(SlotPlan(slot_start, slot_end, spec.capacity))
    return SessionPlan(day, start, end, tuple(slots), moved_from, spec.walk_in_places)


def session_dates(
    spec: ScheduleSpec,
    rule: Recurrence,
    date_from: date,
    date_to: date,
    calendar: WorkingCalendar,
) -> list[tuple[date, date | None]]:
    """(session date, moved from) pairs within the validity and requested ranges, sorted."""
    lo = max(date_from, spec.valid_from)
    hi = date_to if spec.valid_until is None else min(date_to, spec.valid_until)
    if hi < lo:
        return []
    # An occurrence after `hi` can only move into the range if every day between is off.
    lookahead = hi
    limit = date.max if spec.valid_until is None else spec.valid_until
    while lookahead < limit and is_day_off_for(rule, lookahead + timedelta(days=1), calendar):
        lookahead += timedelta(days=1)

    found = [
        d
        for d in occurrences(rule, lo, lookahead, calendar=calendar, anchor=spec.valid_from)
        if d not in spec.exclusions
    ]
    regular = {d for d in found if not is_day_off_for(rule, d, calendar)}
    taken: dict[date, date | None] = {d: None for d in regular}
    if spec.day_off_policy is DayOffPolicy.previous_working_day:
        for source in found:
            if source in regular:
                continue
            target = calendar.previous_working_day(source, open_weekdays=rule.named_weekdays)
            if target < spec.valid_from or target in spec.exclusions or target in taken:
                continue
            taken[target] = source
    return sorted((d, moved) for d, moved in taken.items() if lo <= d <= hi)


def plan_sessions(
    spec: ScheduleSpec, date_from: date, date_to: date, calendar: WorkingCalendar
) -> list[SessionPlan]:
    """Sessions of ``spec`` whose local date is in ``[date_from, date_to]``, sorted by date.

    Raises :class:`InvalidSchedule` if the spec is invalid.
    """
    validate_spec(spec)
    rule = parse_rule(spec.rrule)
    zone = ZoneInfo(spec.tz)
    pieces = _slot_starts(spec)
    plans: list[SessionPlan] = []
    for day, moved_from in session_dates(spec, rule, date_from, date_to, calendar):
        plan = _build_session(spec, day, pieces, zone, moved_from)
        if plan is not None:
            plans.append(plan)
    return plans


def all_slots(sessions: Iterable[SessionPlan]) -> list[SlotPlan]:
    return [slot for session in sessions for slot in session.slots]


def first_overlap(
    ours: Iterable[SessionPlan], theirs: Iterable[SessionPlan]
) -> tuple[SessionPlan, SessionPlan] | None:
    """The earliest pair of sessions, one from each side, whose times overlap; None if none do.

    One person cannot receive citizens in two places at once: two schedules of the same host
    must not overlap. Touching sessions (one ends as the other starts) do not overlap.
    """
    a = sorted(ours, key=lambda p: p.start)
    b = sorted(theirs, key=lambda p: p.start)
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i].start < b[j].end and b[j].start < a[i].end:
            return a[i], b[j]
        if a[i].end <= b[j].end:
            i += 1
        else:
            j += 1
    return None


def calendar_change_reach(day: date, calendar: WorkingCalendar) -> tuple[date, date]:
    """The local dates whose sessions can change when ``day`` becomes a day off or stops being one.

    A session on ``day`` itself; a session moved off a day off to the working day before it,
    which ``day`` may now be or stop being (the days off after ``day`` send their sessions to
    ``day`` or to the working day before it, and the first session moved there wins the day);
    and a "first working <weekday>" of the month, which may move later within ``day``'s month.
    Hence from the working day before ``day`` (by the weekend rule without a schedule's own
    weekdays, the earliest any schedule can have) to the end of ``day``'s month. ``calendar`` may
    be the one before the change or after it: every date but ``day`` is the same on both.
    """
    first = calendar.previous_working_day(day)
    next_month = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return first, next_month - timedelta(days=1)


def calendar_change_moves(
    spec: ScheduleSpec,
    date_from: date,
    date_to: date,
    before: WorkingCalendar,
    after: WorkingCalendar,
) -> bool:
    """Whether ``spec`` has other session dates (or sessions moved from other days) within
    ``[date_from, date_to]`` on the calendar ``after`` than on ``before``. A session's times
    follow from its date, so its dates are all a calendar changes."""
    if date_to < date_from:
        return False
    rule = parse_rule(spec.rrule)
    return session_dates(spec, rule, date_from, date_to, before) != session_dates(
        spec, rule, date_from, date_to, after
    )
