"""Publishing schedules and keeping their sessions and slots in step with them."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from scheduling import (
    DayOffPolicy,
    InvalidSchedule,
    ScheduleKind,
    ScheduleSpec,
    SchedulingError,
    SessionPlan,
    WorkingCalendar,
    calendar_change_moves,
    calendar_change_reach,
    first_overlap,
    plan_sessions,
    validate_spec,
)
from scheduling import errors as codes

from .. import access
from ..audit.services import record as audit
from ..auth.models import Role, User
from ..clock import now as clock_now
from ..database import write_transaction
from ..errors import Conflict, DomainError, Forbidden
from ..extensions import db
from ..geography.models import District, Region
from ..institutions.models import Institution
from .models import (
    SYSTEM_CANCEL_CODE,
    CalendarChange,
    CalendarDay,
    CalendarDayKind,
    Schedule,
    ScheduledSession,
    ScheduleStatus,
    SessionStatus,
    Slot,
    UnifiedOpenDoorRule,
    UnifiedRuleException,
)
from .queries import window_of

SPEC_FIELDS = (
    "rrule",
    "start_time",
    "end_time",
    "slot_minutes",
    "capacity",
    "walk_in_places",
    "breaks",
    "day_off_policy",
    "valid_from",
    "valid_until",
)
SCHEDULE_FIELDS = (
    *SPEC_FIELDS,
    "kind",
    "host_name",
    "host_position",
    "location",
    "exclusions",
    "booking_opens_days",
    "booking_closes_hours",
    "cancel_hours_before",
)
UNIFIED_FIELDS = (*SPEC_FIELDS, "location_hint")


class ScheduleRejected(DomainError):
    """The schedule's fields break a rule of the domain; `errors` maps fields to codes."""

    status_code = 422
    message = _l("Please correct the schedule.")

    def __init__(self, invalid: InvalidSchedule) -> None:
        super().__init__()
        self.invalid = invalid


def horizon_days() -> int:
    return int(current_app.config.get("SCHEDULE_HORIZON_DAYS", 120))


# --- the working calendar -------------------------------------------------------------------


def working_calendar(years: Iterable[int]) -> WorkingCalendar:
    """Kazakhstan's public holidays plus the transfers an administrator entered."""
    years = sorted(set(years))
    rows = db.session.scalars(
        select(CalendarDay).where(
            CalendarDay.day >= date(years[0], 1, 1), CalendarDay.day <= date(years[-1], 12, 31)
        )
    ).all()
    return WorkingCalendar.for_years(
        years,
        transferred_working_days=[r.day for r in rows if r.kind == CalendarDayKind.working],
        extra_days_off=[r.day for r in rows if r.kind == CalendarDayKind.day_off],
    )


def add_calendar_day(actor: User, day: date, kind: CalendarDayKind, note: str) -> CalendarChange:
    """Add the date and bring the schedules it reaches in line with their rules: in the same
    transaction when they are few, else in a background job (the change says which)."""
    if actor.role_enum is not Role.admin:
        raise Forbidden()
    with write_transaction():
        if db.session.scalars(select(CalendarDay).where(CalendarDay.day == day)).first():
            raise Conflict(str(_l("This date is already in the calendar.")))
        before = _calendar_around(day)
        row = CalendarDay(day=day, kind=kind.value, note=note.strip())
        db.session.add(row)
        db.session.flush()
        audit("calendar.day_added", "calendar_day", row.id, kind=kind.value)
        change = _follow_calendar(actor, day, kind, True, before)
    _hand_off(change)
    return change


def remove_calendar_day(actor: User, day_id: int) -> CalendarChange:
    if actor.role_enum is not Role.admin:
        raise Forbidden()
    with write_transaction():
        row = db.session.get(CalendarDay, day_id)
        if row is None:
            raise access.NotInScope()
        day, kind = row.day, CalendarDayKind(row.kind)
        before = _calendar_around(day)
        audit("calendar.day_removed", "calendar_day", row.id)
        db.session.delete(row)
        db.session.flush()
        change = _follow_calendar(actor, day, kind, False, before)
    _hand_off(change)
    return change


def _calendar_around(day: date) -> WorkingCalendar:
    """The working calendar for `day`'s year and the year before: a change of `day` reaches
    back to the working day before it and on to the end of its month."""
    return working_calendar((day.year - 1, day.year))


def _follow_calendar(
    actor: User, day: date, kind: CalendarDayKind, added: bool, before: WorkingCalendar
) -> CalendarChange:
    """Record what the change of `day` is to do to sessions, and do it now if it is small."""
    change = CalendarChange(
        day=day,
        kind=kind.value,
        added=added,
        requested_by_id=actor.id,
        status="queued",
        schedule_ids=_schedules_reached(day, before, _calendar_around(day)),
        schedules_done=0,
        created=0,
        updated=0,
        withdrawn=0,
        conflict_ids=[],
        error="",
    )
    db.session.add(change)
    db.session.flush()
    limit = int(current_app.config.get("CALENDAR_CHANGE_INLINE_SCHEDULES", 25))
    if len(change.schedule_ids) <= limit:
        change.status = "running"
        for schedule_id in change.schedule_ids:
            follow_calendar_in(change, schedule_id)
        finish_calendar_change(change)
    return change


def _schedules_reached(day: date, before: WorkingCalendar, after: WorkingCalendar) -> list[int]:
    """The active schedules whose sessions the change of `day` (the calendar `before` becoming
    `after`) moves, added or withdrawn, from today to as far as sessions are planned."""
    first, last = calendar_change_reach(day, after)
    now = clock_now()
    planned_until = db.session.scalar(
        select(func.max(ScheduledSession.local_date)).where(
            ScheduledSession.status == SessionStatus.planned.value
        )
    )
    rows = db.session.execute(
        select(Schedule, Region.timezone)
        .join(Institution, Institution.id == Schedule.institution_id)
        .join(District, District.id == Institution.district_id)
        .join(Region, Region.id == District.region_id)
        .where(
            Schedule.status == ScheduleStatus.active.value,
            Schedule.valid_from <= last,
            or_(Schedule.valid_until.is_(None), Schedule.valid_until >= first),
        )
        .order_by(Schedule.institution_id, Schedule.id)
    ).all()
    # Schedules of one rule (a region's open-door day) move alike: each rule is asked once.
    moves: dict[tuple[Any, ...], bool] = {}
    reached: list[int] = []
    for schedule, tz in rows:
        today = local_today(tz, now)
        reach = max(today + timedelta(days=horizon_days()), planned_until or today)
        spec = spec_from(schedule, tz)
        start, end = max(first, today), min(last, reach)
        key = (spec.rrule, spec.valid_from, spec.valid_until, spec.exclusions, spec.day_off_policy)
        if (key, start, end) not in moves:
            moves[key, start, end] = calendar_change_moves(spec, start, end, before, after)
        if moves[key, start, end]:
            reached.append(schedule.id)
    return reached


def follow_calendar_in(change: CalendarChange, schedule_id: int) -> None:
    """Bring one schedule the change reached in line, in the caller's transaction, and count
    what it did in the change."""
    schedule = db.session.get(Schedule, schedule_id)
    if schedule is not None:  # deleted with its institution meanwhile
        result = materialise_schedule(schedule)
        change.created += result.created
        change.updated += result.updated
        change.withdrawn += result.withdrawn
        known = set(change.conflict_ids)
        change.conflict_ids = [
            *change.conflict_ids,
            *(s.id for s in result.conflicts if s.id not in known),
        ]
    change.schedules_done += 1
    change.heartbeat_at = clock_now()


def finish_calendar_change(change: CalendarChange) -> None:
    change.status, change.finished_at = "done", clock_now()
    audit(
        "calendar.sessions_followed",
        "calendar_change",
        change.id,
        schedules=len(change.schedule_ids),
        created=change.created,
        updated=change.updated,
        withdrawn=change.withdrawn,
        conflicts=len(change.conflict_ids),
    )


def _hand_off(change: CalendarChange) -> None:
    if change.status == "queued":
        from .jobs import start

        start(change.id)


def recent_calendar_changes(limit: int = 10) -> list[CalendarChange]:
    return list(
        db.session.scalars(
            select(CalendarChange).order_by(CalendarChange.id.desc()).limit(limit)
        )
    )


def sessions_needing_attention(
    changes: Iterable[CalendarChange],
) -> dict[int, list[ScheduledSession]]:
    """For each change (by id), the sessions it kept for their bookings that still await staff's
    decision (keep or cancel, on the institution's schedules page)."""
    changes = list(changes)
    ids = {session_id for change in changes for session_id in change.conflict_ids}
    if not ids:
        return {}
    waiting = {s.id: s for s in _still_booked(_awaiting().where(ScheduledSession.id.in_(ids)))}
    return {
        change.id: [waiting[i] for i in change.conflict_ids if i in waiting] for change in changes
    }


def open_door_days_awaiting_decision(region_id: int) -> list[ScheduledSession]:
    """The region's open-door days kept for their bookings though its rule (or an institution's
    own schedule) no longer has them so, that await the institution's decision."""
    return _still_booked(
        _awaiting()
        .join(Institution, Institution.id == ScheduledSession.institution_id)
        .join(District, District.id == Institution.district_id)
        .where(
            District.region_id == region_id,
            ScheduledSession.kind == ScheduleKind.open_door.value,
        )
    )


def _awaiting() -> Any:
    """Sessions to come that were kept for their bookings and await staff's decision."""
    return select(ScheduledSession).where(
        ScheduledSession.awaiting_decision.is_(True),
        ScheduledSession.status == SessionStatus.planned.value,
        ScheduledSession.starts_at > clock_now(),
    )


def _still_booked(query: Any) -> list[ScheduledSession]:
    """The sessions of `query` (from `_awaiting`) that still have bookings, from the earliest: one
    whose bookings all left is settled as they leave (`settle_if_unheld`), or by the next run
    if that failed."""
    sessions = db.session.scalars(
        query.options(
            selectinload(ScheduledSession.slots),
            selectinload(ScheduledSession.institution),
        ).order_by(ScheduledSession.starts_at, ScheduledSession.id)
    )
    return [s for s in sessions if s.booked]


def keep_session(actor: User, session_id: int) -> ScheduledSession:
    """Staff keep a session that awaits their decision as it is: it takes bookings again, and
    the rule leaves it alone until it has it again as it is."""
    session = db.session.get(ScheduledSession, session_id)
    if session is None:
        raise access.NotInScope()
    _require_schedule_editor(actor, session.institution_id)
    with write_transaction():
        session = db.session.get(
            ScheduledSession, session_id, with_for_update=True, populate_existing=True
        )
        assert session is not None
        if session.status != SessionStatus.planned or not session.awaiting_decision:
            raise Conflict(str(_l("This session no longer awaits a decision.")))
        _set_awaiting(session, False)
        session.kept_by_staff = True
        audit("session.kept", "session", session.id)
        db.session.flush()
    return session


def settle_if_unheld(session_id: int) -> bool:
    """A session kept for its bookings whose last booking has just left (cancelled or moved) is
    brought in line with its schedule at once, in a transaction of its own after the citizen's:
    withdrawn, or given the rule's plan for that day, which citizens can then book. Nobody is
    left to keep it for, so staff have nothing to decide. True if it was settled."""
    with write_transaction():
        session = db.session.get(
            ScheduledSession, session_id, with_for_update=True, populate_existing=True
        )
        if (
            session is None
            or session.status != SessionStatus.planned
            or not session.awaiting_decision
            or db.session.scalar(
                select(func.coalesce(func.sum(Slot.booked), 0)).where(Slot.session_id == session.id)
            )
        ):
            return False
        materialise_schedule(session.schedule)
    return True


# --- specs and plans ---------------------------------------------------------------------------


def _parse_time(value: Any) -> time:
    return value if isinstance(value, time) else time.fromisoformat(str(value))


def spec_from(values: Any, tz: str) -> ScheduleSpec:
    """A domain spec from a schedule, a unified rule, or a dict of form values."""
    get = (
        values.get
        if isinstance(values, dict)
        else lambda name, default=None: getattr(values, name, default)
    )
    kind = get("kind", ScheduleKind.open_door.value) or ScheduleKind.open_door.value
    return ScheduleSpec(
        kind=ScheduleKind(kind),
        rrule=get("rrule"),
        start_time=get("start_time"),
        end_time=get("end_time"),
        slot_minutes=int(get("slot_minutes")),
        capacity=int(get("capacity")),
        walk_in_places=int(get("walk_in_places", 0) or 0),
        tz=tz,
        valid_from=get("valid_from"),
        valid_until=get("valid_until"),
        breaks=tuple((_parse_time(a), _parse_time(b)) for a, b in get("breaks", None) or ()),
        exclusions=frozenset(
            d if isinstance(d, date) else date.fromisoformat(d)
            for d in get("exclusions", None) or ()
        ),
        day_off_policy=DayOffPolicy(get("day_off_policy", None) or "previous_working_day"),
    )


def local_today(tz: str, at: datetime | None = None) -> date:
    return (at or clock_now()).astimezone(ZoneInfo(tz)).date()


class PreviewState(enum.StrEnum):
    planned = "planned"  # as the rule has it
    conflict = "conflict"  # kept as it is for its bookings, awaiting staff's decision
    kept = "kept"  # kept as it is by staff's decision
    cancelled = "cancelled"  # a day the rule has, which staff cancelled


@dataclass(frozen=True)
class PreviewSession:
    """A session as it will be once the schedule is saved."""

    start: datetime
    end: datetime
    slots: int
    moved_from: date | None = None
    state: PreviewState = PreviewState.planned
    booked: int = 0

    @classmethod
    def of_plan(cls, plan: SessionPlan) -> PreviewSession:
        return cls(plan.start, plan.end, len(plan.slots), plan.moved_from)

    @classmethod
    def of_session(cls, session: ScheduledSession, state: PreviewState) -> PreviewSession:
        return cls(
            session.starts_at,
            session.ends_at,
            len(session.slots),
            session.moved_from,
            state,
            session.booked,
        )


def preview(
    values: dict[str, Any], tz: str, count: int = 6, *, schedule: Schedule | None = None
) -> list[PreviewSession]:
    """The next `count` sessions as they will be once `values` are saved (for `schedule`, or as a
    new schedule), saving nothing: the save's own comparison of the rule with the stored
    sessions, so that sessions kept for their bookings and days staff cancelled show as such."""
    spec = spec_from(values, tz)
    try:
        validate_spec(spec)
    except InvalidSchedule as invalid:
        raise ScheduleRejected(invalid) from invalid
    if schedule is None:
        rule = _Rule(None, True, spec)
    else:
        rule = _Rule(schedule.id, schedule.status == ScheduleStatus.active, spec)
    today, now = local_today(tz), clock_now()
    first = max(today, spec.valid_from)
    window = 62
    while True:
        # From today, as the save compares: a stored session before `valid_from` is retired.
        sessions = _after_saving(_diff(rule, today, first + timedelta(days=window), None, now))
        window *= 2
        if len(sessions) >= count or window > 800:
            return sessions[:count]


def _after_saving(diff: _Diff) -> list[PreviewSession]:
    """The coming sessions as the save of `diff` leaves them, from the earliest."""
    settled_days = {session.local_date for session in diff.settled}
    not_taken = {plan.date for plan in diff.not_taken}
    found = [
        PreviewSession.of_plan(plan)
        for day, plan in diff.plans.items()
        if day not in settled_days and day not in not_taken
    ]
    found += [PreviewSession.of_session(s, PreviewState.conflict) for s in diff.conflicts]
    found += [PreviewSession.of_session(s, PreviewState.kept) for s in diff.kept]
    found += [
        PreviewSession.of_session(s, PreviewState.cancelled)
        for s in diff.settled
        if s.status == SessionStatus.cancelled
        and s.cancel_code != SYSTEM_CANCEL_CODE
        and s.local_date in diff.plans
    ]
    return sorted(found, key=lambda session: session.start)


# --- materialisation -------------------------------------------------------------------------


@dataclass
class MaterialiseResult:
    created: int = 0
    updated: int = 0
    withdrawn: int = 0
    conflicts: list[ScheduledSession] = field(default_factory=list)

    def add(self, other: MaterialiseResult) -> None:
        self.created += other.created
        self.updated += other.updated
        self.withdrawn += other.withdrawn
        self.conflicts.extend(other.conflicts)


def _layout(
    starts_at: datetime, ends_at: datetime, slots: Iterable[tuple[datetime, datetime, int]]
) -> tuple[Any, ...]:
    return (starts_at, ends_at, tuple(slots))


def _plan_layout(plan: SessionPlan) -> tuple[Any, ...]:
    return _layout(plan.start, plan.end, ((s.start, s.end, s.capacity) for s in plan.slots))


def _session_layout(session: ScheduledSession) -> tuple[Any, ...]:
    return _layout(
        session.starts_at,
        session.ends_at,
        ((s.starts_at, s.ends_at, s.capacity) for s in session.slots),
    )


def _take_details(session: ScheduledSession, plan: SessionPlan) -> None:
    """What a plan says of a session besides its times and slots."""
    session.moved_from, session.walk_in_places = plan.moved_from, plan.walk_in_places


def _fill(session: ScheduledSession, plan: SessionPlan) -> None:
    session.starts_at, session.ends_at = plan.start, plan.end
    session.local_date = plan.date
    _take_details(session, plan)
    if session.slots:
        # Old slots go first: the unit of work would otherwise insert the new ones before
        # deleting the old and trip the (session, starts_at) unique constraint.
        session.slots.clear()
        db.session.flush()
    session.slots = [
        Slot(starts_at=s.start, ends_at=s.end, capacity=s.capacity, booked=0) for s in plan.slots
    ]


@dataclass(frozen=True)
class _Rule:
    """What stored sessions are compared with: a schedule's rule as saved, or as a form would
    save it (a new schedule has no id, and no sessions yet)."""

    schedule_id: int | None
    active: bool
    spec: ScheduleSpec


def _rule_of(schedule: Schedule) -> _Rule:
    return _Rule(
        schedule.id,
        schedule.status == ScheduleStatus.active,
        spec_from(schedule, schedule.institution.district.region.timezone),
    )


@dataclass
class _Diff:
    """What it takes to bring a schedule's stored sessions in line with its rule."""

    create: list[SessionPlan] = field(default_factory=list)
    refill: list[tuple[ScheduledSession, SessionPlan]] = field(default_factory=list)
    revive: list[tuple[ScheduledSession, SessionPlan]] = field(default_factory=list)
    withdraw: list[ScheduledSession] = field(default_factory=list)
    # Booked sessions the rule no longer has as they are: kept, awaiting staff's decision.
    conflicts: list[ScheduledSession] = field(default_factory=list)
    details: list[tuple[ScheduledSession, SessionPlan]] = field(default_factory=list)
    more_seats: list[tuple[ScheduledSession, SessionPlan]] = field(default_factory=list)
    # Sessions kept (awaiting a decision, or by staff) that the rule has again as they are.
    ordinary_again: list[ScheduledSession] = field(default_factory=list)
    # Sessions staff chose to keep as they are, which the rule does not have so: left alone.
    kept: list[ScheduledSession] = field(default_factory=list)
    # What the preview shows besides: the rule's plans, the plans a kept session stands in for,
    # and the sessions of the days nothing changes (begun, held, cancelled by staff).
    plans: dict[date, SessionPlan] = field(default_factory=dict)
    not_taken: list[SessionPlan] = field(default_factory=list)
    settled: list[ScheduledSession] = field(default_factory=list)


def _times(layout: tuple[Any, ...]) -> tuple[Any, ...]:
    starts_at, ends_at, slots = layout
    return starts_at, ends_at, tuple((start, end) for start, end, _ in slots)


def _only_more_seats(session: ScheduledSession, plan: SessionPlan) -> bool:
    """The plan keeps the session's times and gives no slot fewer seats than it has: applied
    in place, whoever booked it (a seat taken meanwhile cannot exceed a capacity that grows)."""
    return _times(_session_layout(session)) == _times(_plan_layout(plan)) and all(
        planned.capacity >= slot.capacity
        for slot, planned in zip(session.slots, plan.slots, strict=True)
    )


def _with_history(session_ids: Iterable[int]) -> set[int]:
    """The sessions that citizens booked (whatever became of the bookings) or were received at:
    those records point at its slots, so they are never replaced."""
    from ..booking.models import Booking
    from ..visits.models import Visit

    ids = list(session_ids)
    if not ids:
        return set()
    booked = select(Booking.session_id).where(Booking.session_id.in_(ids))
    visited = select(Visit.session_id).where(Visit.session_id.in_(ids))
    return set(db.session.scalars(booked.union(visited)))


def _settled(session: ScheduledSession, now: datetime) -> bool:
    """A session that has begun, was held, or that staff cancelled settles its day: nothing on
    that day is changed and nothing is added to it (a session the system withdrew does not)."""
    if session.status == SessionStatus.cancelled:
        return session.cancel_code != SYSTEM_CANCEL_CODE
    return session.status != SessionStatus.planned or session.starts_at <= now


def _diff(
    rule: _Rule,
    start: date,
    end: date,
    calendar: WorkingCalendar | None,
    now: datetime,
    *,
    lock: bool = False,
) -> _Diff:
    """`lock`: for a change, lock the stored sessions FOR UPDATE before their seats are read, so
    that no seat is taken in a session between that read and its withdrawal or its being held
    for a decision (the booking's conditional UPDATE reads its session FOR KEY SHARE and waits;
    on SQLite the write lock that the change holds serialises them anyway)."""
    query = (
        select(ScheduledSession)
        .where(
            ScheduledSession.schedule_id == rule.schedule_id,
            ScheduledSession.local_date >= start,
        )
        .options(selectinload(ScheduledSession.slots))
    )
    if lock:
        # Seats and statuses as they are once the lock is held, not as this session read them.
        query = query.with_for_update(of=ScheduledSession).execution_options(
            populate_existing=True
        )
    existing = db.session.scalars(query).all() if rule.schedule_id is not None else []
    # Every stored session is compared with the rule, also those planned further ahead than
    # the horizon (a longer run of the nightly job).
    last = max((s.local_date for s in existing), default=end)
    if last > end:
        end, calendar = last, None
    plans: dict[date, SessionPlan] = {}
    if rule.active:
        calendar = calendar or working_calendar(range(start.year, end.year + 1))
        plans = {
            p.date: p
            for p in plan_sessions(rule.spec, start, end, calendar)
            if p.start > now  # today's session the rule puts before now is not made
        }
    days: dict[date, list[ScheduledSession]] = {}
    for session in existing:
        days.setdefault(session.local_date, []).append(session)
    open_days = {
        day: sessions
        for day, sessions in days.items()
        if not any(_settled(s, now) for s in sessions)
    }
    history: set[int] | None = None

    def has_history(session: ScheduledSession) -> bool:
        nonlocal history
        if history is None:  # read once, and only when a session is to be replaced
            history = _with_history(s.id for sessions in open_days.values() for s in sessions)
        return session.id in history

    diff = _Diff(plans=plans)
    diff.settled = [s for day, sessions in days.items() if day not in open_days for s in sessions]

    def retire(session: ScheduledSession) -> None:
        if session.kept_by_staff:  # staff keep it, whatever the rule says
            diff.kept.append(session)
        else:
            (diff.conflicts if session.booked else diff.withdraw).append(session)

    for day in sorted(set(open_days) | (set(plans) - set(days))):
        sessions, plan = open_days.get(day, []), plans.get(day)
        live = [s for s in sessions if s.status == SessionStatus.planned]
        if plan is None:
            for session in live:
                retire(session)
            continue
        same = next((s for s in live if _session_layout(s) == _plan_layout(plan)), None)
        current = same or next(iter(live), None)
        for session in live:
            if session is not current:
                retire(session)
        if current is not None and (same is not None or _only_more_seats(current, plan)):
            if same is None:
                diff.more_seats.append((current, plan))
            if (current.walk_in_places, current.moved_from) != (
                plan.walk_in_places,
                plan.moved_from,
            ):
                diff.details.append((current, plan))
            if current.awaiting_decision or current.kept_by_staff:
                diff.ordinary_again.append(current)
            continue
        if current is not None and (current.booked or current.kept_by_staff):
            (diff.kept if current.kept_by_staff else diff.conflicts).append(current)
            diff.not_taken.append(plan)
            continue
        # The plan goes into a session of that day that nobody holds a seat of: one withdrawn
        # just as the plan has it (it comes back as it was, with its history and its calendar
        # entry), else one that can be refilled, having no history; otherwise a new one.
        withdrawn = [s for s in sessions if s.status == SessionStatus.cancelled]
        as_planned = [s for s in withdrawn if _session_layout(s) == _plan_layout(plan)]
        target = next(
            (
                s
                for s in (*as_planned, *([current] if current else []), *withdrawn)
                if s in as_planned or not has_history(s)
            ),
            None,
        )
        if current is not None and target is not current:
            diff.withdraw.append(current)
        if target is None:
            diff.create.append(plan)
        elif target is current:
            diff.refill.append((current, plan))
        else:
            diff.revive.append((target, plan))
    return diff


def _set_awaiting(session: ScheduledSession, awaiting: bool) -> None:
    """Hold a kept session back from new bookings, or let it take them again; subscribed
    calendars see the change (the feed marks it tentative meanwhile)."""
    if session.awaiting_decision != awaiting:
        session.awaiting_decision = awaiting
        session.sequence += 1


def _window(schedule: Schedule, today: date | None, days: int | None) -> tuple[date, date]:
    start = today or local_today(schedule.institution.district.region.timezone)
    return start, start + timedelta(days=days or horizon_days())


def materialise_schedule(
    schedule: Schedule,
    *,
    today: date | None = None,
    days: int | None = None,
    calendar: WorkingCalendar | None = None,
) -> MaterialiseResult:
    """Bring the schedule's future sessions in line with its rule, inside the caller's transaction.

    Idempotent. A session that has begun, was held or was cancelled by staff is never touched,
    and its day gets no other session. A session that has bookings is never changed or dropped
    silently: it is kept as it is, takes no new bookings (`awaiting_decision`) and is reported
    as a conflict for staff to keep or cancel (a change that only adds seats is applied to it);
    one staff kept is left as it is. Either is an ordinary session again once the rule has it
    so again. A session that citizens booked and cancelled, or
    were received at, keeps its slots (the records point at them): when the rule moves it, it
    is withdrawn and a new session takes its place.
    """
    start, end = _window(schedule, today, days)
    diff = _diff(_rule_of(schedule), start, end, calendar, clock_now(), lock=True)
    for session, plan in diff.details:
        _take_details(session, plan)
    for session, plan in diff.more_seats:
        for slot, planned in zip(session.slots, plan.slots, strict=True):
            slot.capacity = planned.capacity
    for session in diff.ordinary_again:
        _set_awaiting(session, False)
        session.kept_by_staff = False
    for session in diff.conflicts:
        _set_awaiting(session, True)
    for session in diff.withdraw:
        session.status = SessionStatus.cancelled.value
        session.cancel_code = SYSTEM_CANCEL_CODE
        session.in_force = None  # its time may be planned again
        session.awaiting_decision = False
        session.sequence += 1
    # Withdrawals first: a session revived or created at the time of one just withdrawn is in
    # force only once that one is not.
    db.session.flush()
    for session, plan in diff.refill:
        _fill(session, plan)
        session.awaiting_decision = False  # its bookings left while it awaited a decision
        session.sequence += 1
    for session, plan in diff.revive:
        session.status, session.cancel_code = SessionStatus.planned.value, None
        session.in_force = True
        session.awaiting_decision = False
        session.sequence += 1
        if _session_layout(session) != _plan_layout(plan):
            _fill(session, plan)
        else:
            _take_details(session, plan)
    for plan in diff.create:
        session = ScheduledSession(
            schedule=schedule,
            institution_id=schedule.institution_id,
            kind=schedule.kind,
            status=SessionStatus.planned.value,
        )
        _fill(session, plan)
        db.session.add(session)
    db.session.flush()
    return MaterialiseResult(
        created=len(diff.create),
        updated=len(diff.refill) + len(diff.revive) + len(diff.more_seats),
        withdrawn=len(diff.withdraw),
        conflicts=diff.conflicts,
    )


def materialise_all(
    *, days: int | None = None, progress: Callable[[int], None] | None = None
) -> MaterialiseResult:
    """Materialise every schedule for the rolling horizon, one transaction per institution."""
    institution_ids = db.session.scalars(
        select(Schedule.institution_id).distinct().order_by(Schedule.institution_id)
    ).all()
    db.session.rollback()
    total = MaterialiseResult()
    calendars: dict[tuple[int, int], WorkingCalendar] = {}
    for institution_id in institution_ids:
        with write_transaction():
            schedules = db.session.scalars(
                select(Schedule)
                .where(Schedule.institution_id == institution_id)
                .options(
                    selectinload(Schedule.institution)
                    .selectinload(Institution.district)
                    .selectinload(District.region)
                )
            ).all()
            for schedule in schedules:
                tz = schedule.institution.district.region.timezone
                start = local_today(tz)
                end = start + timedelta(days=days or horizon_days())
                key = (start.year, end.year)
                if key not in calendars:
                    calendars[key] = working_calendar(range(start.year, end.year + 1))
                total.add(
                    materialise_schedule(schedule, today=start, days=days, calendar=calendars[key])
                )
        if progress:
            progress(1)
    return total


# --- publishing --------------------------------------------------------------------------------


def _require_schedule_editor(actor: User, institution_id: int) -> Institution:
    if actor.role_enum not in (
        Role.staff,
        Role.head,
        Role.admin,
        Role.district_officer,
        Role.region_officer,
    ):
        raise Forbidden()
    return access.get_institution_in_scope(actor, institution_id)


def _validated(values: dict[str, Any], tz: str) -> None:
    try:
        validate_spec(spec_from(values, tz))
    except InvalidSchedule as invalid:
        raise ScheduleRejected(invalid) from invalid


def save_schedule(
    actor: User,
    institution_id: int,
    values: dict[str, Any],
    *,
    schedule_id: int | None = None,
    expected_version: int | None = None,
) -> tuple[Schedule, MaterialiseResult]:
    """Create or edit a schedule and re-materialise its sessions in the same transaction."""
    institution = _require_schedule_editor(actor, institution_id)
    tz = institution.district.region.timezone
    _validated(values, tz)
    try:
        with write_transaction():
            institution = access.get_institution_in_scope(actor, institution_id)
            if schedule_id is None:
                schedule = Schedule(institution=institution)
                db.session.add(schedule)
            else:
                schedule = _schedule_in(institution, schedule_id)
                if expected_version is not None and schedule.version != expected_version:
                    raise Conflict()
                _refuse_inherited(schedule)
            for name in SCHEDULE_FIELDS:
                if name in values:
                    setattr(schedule, name, values[name])
            _check_booking_window(schedule)
            _check_host_is_free(schedule, institution.id, tz)
            db.session.flush()
            result = materialise_schedule(schedule)
            audit(
                "schedule.saved",
                "schedule",
                schedule.id,
                created=schedule_id is None,
                conflicts=len(result.conflicts),
            )
    except StaleDataError as error:
        raise Conflict() from error
    return schedule, result


def _check_booking_window(schedule: Schedule) -> None:
    """Booking must open before it closes; each bound alone is checked by the form."""
    try:
        window_of(schedule)
    except ValueError as error:
        raise ScheduleRejected(
            InvalidSchedule(
                [SchedulingError(codes.BOOKING_WINDOW_INVERTED, "booking_closes_hours", str(error))]
            )
        ) from error


def _refuse_inherited(schedule: Schedule) -> None:
    """The region's open-door day is changed (or paused) only by the akimat, for every
    institution at once, or given up through an exception."""
    if schedule.unified_rule_id is not None:
        raise DomainError(
            str(
                _l(
                    "This open-door day is set by the regional akimat for every institution "
                    "of the region. Ask the akimat for an exception to change it."
                )
            )
        )


def _same_host(a: str, b: str) -> bool:
    return bool(a.strip()) and " ".join(a.casefold().split()) == " ".join(b.casefold().split())


def _check_host_is_free(schedule: Schedule, institution_id: int, tz: str) -> None:
    """One person cannot receive citizens in two places at once: refuse a schedule whose
    sessions overlap, within the horizon, another active schedule of the same host here."""
    others = [
        other
        for other in db.session.scalars(
            select(Schedule).where(
                Schedule.institution_id == institution_id,
                Schedule.status == ScheduleStatus.active.value,
            )
        )
        if other is not schedule and _same_host(other.host_name or "", schedule.host_name or "")
    ]
    if not others:
        return
    start = local_today(tz)
    end = start + timedelta(days=horizon_days())
    calendar = working_calendar(range(start.year, end.year + 1))
    ours = plan_sessions(spec_from(schedule, tz), start, end, calendar)
    for other in others:
        clash = first_overlap(ours, plan_sessions(spec_from(other, tz), start, end, calendar))
        if clash is not None:
            detail = f"schedule {other.id} on {clash[1].date.isoformat()}"
            raise ScheduleRejected(
                InvalidSchedule([SchedulingError(codes.HOST_BUSY, "start_time", detail)])
            )


def _schedule_in(institution: Institution, schedule_id: int) -> Schedule:
    schedule = db.session.get(Schedule, schedule_id)
    if schedule is None or schedule.institution_id != institution.id:
        raise access.NotInScope()
    return schedule


def get_schedule(actor: User, schedule_id: int) -> Schedule:
    schedule = db.session.get(Schedule, schedule_id)
    if schedule is None:
        raise access.NotInScope()
    _require_schedule_editor(actor, schedule.institution_id)
    return schedule


def set_schedule_status(
    actor: User, schedule_id: int, status: ScheduleStatus
) -> tuple[Schedule, MaterialiseResult]:
    """Pause (no new sessions; unbooked future ones withdrawn) or resume a schedule."""
    schedule = get_schedule(actor, schedule_id)
    with write_transaction():
        schedule = _schedule_in(schedule.institution, schedule_id)
        if status is ScheduleStatus.paused:
            _refuse_inherited(schedule)
        schedule.status = status.value
        db.session.flush()
        result = materialise_schedule(schedule)
        audit("schedule.status", "schedule", schedule.id, status=status.value)
    return schedule, result


def conflicts(schedule: Schedule) -> list[ScheduledSession]:
    """Booked future sessions that the current rule no longer produces as they are."""
    start, end = _window(schedule, None, None)
    return _diff(_rule_of(schedule), start, end, None, clock_now()).conflicts


def cancel_session(actor: User, session_id: int, reason: str) -> ScheduledSession:
    """Staff cancel one session with a reason; its bookings are told (through the outbox)."""
    reason = reason.strip()
    if not reason:
        raise DomainError(str(_l("Give the reason for cancelling.")))
    session = db.session.get(ScheduledSession, session_id)
    if session is None:
        raise access.NotInScope()
    _require_schedule_editor(actor, session.institution_id)
    with write_transaction():
        # Locked as check-ins and walk-ins lock it: none is recorded while it is being cancelled.
        session = db.session.get(ScheduledSession, session_id, with_for_update=True)
        assert session is not None
        if session.status != SessionStatus.planned:
            raise Conflict(str(_l("This session is no longer planned.")))
        if session.starts_at <= clock_now():
            # Citizens may have been received already: a session under way or over is closed
            # (held or not held), which keeps what happened at it.
            raise DomainError(
                str(
                    _l(
                        "A session that has begun cannot be cancelled: close it as held or "
                        "not held instead."
                    )
                )
            )
        from ..visits.services import CitizensReceived, received_or_marked

        if received_or_marked(session):
            raise CitizensReceived()
        session.status = SessionStatus.cancelled.value
        session.cancel_reason = reason
        session.cancel_code = None
        session.sequence += 1
        from ..booking.services import cancel_for_session

        outbox = cancel_for_session(session)
        audit("session.cancelled", "session", session.id)
        db.session.flush()
    from ..notify.services import deliver_after_commit

    deliver_after_commit(outbox)
    return session


# --- unified open-door day --------------------------------------------------------------------


def set_unified_rule(
    actor: User, region_id: int, values: dict[str, Any]
) -> tuple[UnifiedOpenDoorRule, MaterialiseResult]:
    """Set the region's open-door day and apply it to every institution without an exception."""
    if actor.role_enum not in (Role.region_officer, Role.admin):
        raise Forbidden()
    region = access.get_region_in_scope(actor, region_id)
    _validated({**values, "kind": ScheduleKind.open_door.value}, region.timezone)
    total = MaterialiseResult()
    with write_transaction():
        rule = db.session.scalars(
            select(UnifiedOpenDoorRule).where(UnifiedOpenDoorRule.region_id == region_id)
        ).first()
        if rule is None:
            rule = UnifiedOpenDoorRule(region_id=region_id)
            db.session.add(rule)
        for name in UNIFIED_FIELDS:
            if name in values:
                setattr(rule, name, values[name])
        rule.set_by_id = actor.id
        db.session.flush()
        exempt = set(db.session.scalars(select(UnifiedRuleException.institution_id)))
        institutions = db.session.scalars(
            select(Institution)
            .join(Institution.district)
            .where(District.region_id == region_id, Institution.active.is_(True))
        ).all()
        for institution in institutions:
            if institution.id in exempt:
                continue
            total.add(_apply_unified(rule, institution))
        audit("unified_rule.set", "region", region_id, institutions=len(institutions))
    return rule, total


def _apply_unified(rule: UnifiedOpenDoorRule, institution: Institution) -> MaterialiseResult:
    schedule = db.session.scalars(
        select(Schedule).where(
            Schedule.institution_id == institution.id, Schedule.unified_rule_id == rule.id
        )
    ).first()
    if schedule is None:
        schedule = Schedule(
            institution=institution,
            kind=ScheduleKind.open_door.value,
            unified_rule_id=rule.id,
            host_name=institution.head_name,
            host_position="",  # the head's, in each reader's language
        )
        db.session.add(schedule)
    for name in SPEC_FIELDS:
        setattr(schedule, name, getattr(rule, name))
    schedule.location = rule.location_hint or schedule.location
    db.session.flush()
    return materialise_schedule(schedule)


def allow_exception(actor: User, institution_id: int, reason: str) -> UnifiedRuleException:
    """Let one institution keep its own open-door schedule instead of the region's."""
    if actor.role_enum not in (Role.region_officer, Role.admin):
        raise Forbidden()
    if not reason.strip():
        raise DomainError(str(_l("Give the reason for the exception.")))
    access.get_institution_in_scope(actor, institution_id)
    with write_transaction():
        existing = db.session.scalars(
            select(UnifiedRuleException).where(
                UnifiedRuleException.institution_id == institution_id
            )
        ).first()
        if existing is not None:
            raise Conflict(str(_l("This institution already has an exception.")))
        # The inherited schedule stays, detached, so the institution starts from it; the
        # exception remembers it for the day it is withdrawn.
        inherited = db.session.scalars(
            select(Schedule).where(
                Schedule.institution_id == institution_id, Schedule.unified_rule_id.isnot(None)
            )
        ).all()
        for schedule in inherited:
            schedule.unified_rule_id = None
        exception = UnifiedRuleException(
            institution_id=institution_id,
            reason=reason.strip(),
            allowed_by_id=actor.id,
            detached_schedule_id=inherited[0].id if inherited else None,
        )
        db.session.add(exception)
        db.session.flush()
        audit("unified_rule.exception", "institution", institution_id)
    return exception


def withdraw_exception(actor: User, institution_id: int) -> MaterialiseResult:
    """The institution follows the region's open-door day again."""
    if actor.role_enum not in (Role.region_officer, Role.admin):
        raise Forbidden()
    institution = access.get_institution_in_scope(actor, institution_id)
    with write_transaction():
        exception = db.session.scalars(
            select(UnifiedRuleException).where(
                UnifiedRuleException.institution_id == institution_id
            )
        ).first()
        if exception is None:
            raise Conflict(str(_l("This institution has no exception.")))
        detached_id = exception.detached_schedule_id
        db.session.delete(exception)
        rule = unified_rule_for(institution.district.region_id)
        result = MaterialiseResult()
        if rule is not None:
            result = _follow_rule_again(rule, institution, detached_id)
        audit("unified_rule.exception_withdrawn", "institution", institution_id)
    return result


def _follow_rule_again(
    rule: UnifiedOpenDoorRule, institution: Institution, detached_id: int | None
) -> MaterialiseResult:
    """The region's day is the institution's open-door day again: the schedule the exception
    detached follows the rule once more (its sessions at the rule's times, and their bookings,
    stay), and the institution's own open-door schedules are paused (their booked sessions stay,
    listed as conflicts), so that it never holds two open-door days."""
    result = MaterialiseResult()
    own = db.session.scalars(
        select(Schedule).where(
            Schedule.institution_id == institution.id,
            Schedule.kind == ScheduleKind.open_door.value,
            Schedule.unified_rule_id.is_(None),
        )
    ).all()
    for schedule in own:
        if schedule.id == detached_id:
            schedule.unified_rule_id, schedule.status = rule.id, ScheduleStatus.active.value
        elif schedule.status == ScheduleStatus.active:
            schedule.status = ScheduleStatus.paused.value
            db.session.flush()
            result.add(materialise_schedule(schedule))
    result.add(_apply_unified(rule, institution))
    return result


def follow_region_rule(institution: Institution) -> MaterialiseResult:
    """Give an institution that is new to a region (created, moved there or shown again) the
    region's open-door day, unless it has an exception; inside the caller's transaction."""
    rule = unified_rule_for(institution.district.region_id)
    exempt = db.session.scalars(
        select(UnifiedRuleException.id).where(
            UnifiedRuleException.institution_id == institution.id
        )
    ).first()
    result = MaterialiseResult()
    # A schedule another region's rule gave it (the institution moved) no longer applies.
    for stale in db.session.scalars(
        select(Schedule).where(
            Schedule.institution_id == institution.id,
            Schedule.unified_rule_id.isnot(None),
            Schedule.unified_rule_id != (rule.id if rule is not None else 0),
        )
    ).all():
        stale.unified_rule_id, stale.status = None, ScheduleStatus.paused.value
        db.session.flush()
        result.add(materialise_schedule(stale))
    if rule is not None and exempt is None and institution.active:
        result.add(_apply_unified(rule, institution))
    return result


def unified_rule_for(region_id: int) -> UnifiedOpenDoorRule | None:
    return db.session.scalars(
        select(UnifiedOpenDoorRule).where(UnifiedOpenDoorRule.region_id == region_id)
    ).first()


def exceptions_in_region(region_id: int) -> dict[int, UnifiedRuleException]:
    rows = db.session.scalars(
        select(UnifiedRuleException)
        .join(Institution, Institution.id == UnifiedRuleException.institution_id)
        .join(Institution.district)
        .where(District.region_id == region_id)
    )
    return {row.institution_id: row for row in rows}
