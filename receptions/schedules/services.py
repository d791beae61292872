"""Publishing schedules and keeping their sessions and slots in step with them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select
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
from ..geography.models import District
from ..institutions.models import Institution
from .models import (
    SYSTEM_CANCEL_CODE,
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


def add_calendar_day(actor: User, day: date, kind: CalendarDayKind, note: str) -> CalendarDay:
    if actor.role_enum is not Role.admin:
        raise Forbidden()
    with write_transaction():
        if db.session.scalars(select(CalendarDay).where(CalendarDay.day == day)).first():
            raise Conflict(str(_l("This date is already in the calendar.")))
        row = CalendarDay(day=day, kind=kind.value, note=note.strip())
        db.session.add(row)
        db.session.flush()
        audit("calendar.day_added", "calendar_day", row.id, kind=kind.value)
    return row


def remove_calendar_day(actor: User, day_id: int) -> None:
    if actor.role_enum is not Role.admin:
        raise Forbidden()
    with write_transaction():
        row = db.session.get(CalendarDay, day_id)
        if row is None:
            raise access.NotInScope()
        audit("calendar.day_removed", "calendar_day", row.id)
        db.session.delete(row)


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


def preview(values: dict[str, Any], tz: str, count: int = 6) -> list[SessionPlan]:
    """The next `count` sessions a schedule would produce, without saving anything."""
    spec = spec_from(values, tz)
    try:
        validate_spec(spec)
    except InvalidSchedule as invalid:
        raise ScheduleRejected(invalid) from invalid
    start = max(local_today(tz), spec.valid_from)
    plans: list[SessionPlan] = []
    window = 62
    while len(plans) < count and window <= 800:
        end = start + timedelta(days=window)
        plans = plan_sessions(spec, start, end, working_calendar(range(start.year, end.year + 1)))
        window *= 2
    return plans[:count]


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


def _fill(session: ScheduledSession, plan: SessionPlan) -> None:
    session.starts_at, session.ends_at = plan.start, plan.end
    session.local_date, session.moved_from = plan.date, plan.moved_from
    session.walk_in_places = plan.walk_in_places
    if session.slots:
        # Old slots go first: the unit of work would otherwise insert the new ones before
        # deleting the old and trip the (session, starts_at) unique constraint.
        session.slots.clear()
        db.session.flush()
    session.slots = [
        Slot(starts_at=s.start, ends_at=s.end, capacity=s.capacity, booked=0) for s in plan.slots
    ]


@dataclass
class _Diff:
    """What it takes to bring a schedule's stored sessions in line with its rule."""

    create: list[SessionPlan] = field(default_factory=list)
    refill: list[tuple[ScheduledSession, SessionPlan]] = field(default_factory=list)
    revive: list[tuple[ScheduledSession, SessionPlan]] = field(default_factory=list)
    withdraw: list[ScheduledSession] = field(default_factory=list)
    conflicts: list[ScheduledSession] = field(default_factory=list)
    walk_ins: list[tuple[ScheduledSession, int]] = field(default_factory=list)


def _diff(schedule: Schedule, start: date, end: date, calendar: WorkingCalendar | None) -> _Diff:
    tz = schedule.institution.district.region.timezone
    plans: dict[date, SessionPlan] = {}
    if schedule.status == ScheduleStatus.active:
        calendar = calendar or working_calendar(range(start.year, end.year + 1))
        plans = {p.date: p for p in plan_sessions(spec_from(schedule, tz), start, end, calendar)}
    existing = (
        db.session.scalars(
            select(ScheduledSession)
            .where(
                ScheduledSession.schedule_id == schedule.id,
                ScheduledSession.local_date >= start,
                ScheduledSession.local_date <= end,
            )
            .options(selectinload(ScheduledSession.slots))
        ).all()
        if schedule.id is not None
        else []
    )
    live = {s.local_date: s for s in existing if s.status == SessionStatus.planned}
    withdrawn = {
        (s.local_date, s.starts_at): s
        for s in existing
        if s.status == SessionStatus.cancelled and s.cancel_code == SYSTEM_CANCEL_CODE
    }
    staff_cancelled = {
        s.starts_at
        for s in existing
        if s.status == SessionStatus.cancelled and s.cancel_code != SYSTEM_CANCEL_CODE
    }

    diff = _Diff()
    for day, session in live.items():
        plan = plans.get(day)
        if plan is not None and _session_layout(session) == _plan_layout(plan):
            if session.walk_in_places != plan.walk_in_places:
                diff.walk_ins.append((session, plan.walk_in_places))
            continue
        if session.booked:
            diff.conflicts.append(session)
        elif plan is None:
            diff.withdraw.append(session)
        else:
            diff.refill.append((session, plan))
    for day, plan in plans.items():
        if day in live or plan.start in staff_cancelled:
            continue
        revived = withdrawn.get((day, plan.start))
        if revived is not None:
            diff.revive.append((revived, plan))
        else:
            diff.create.append(plan)
    return diff


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

    Idempotent. Past sessions are never touched. A session that has bookings is never changed
    or dropped silently: it is kept as it is and reported as a conflict for staff to resolve.
    """
    start, end = _window(schedule, today, days)
    diff = _diff(schedule, start, end, calendar)
    for session, places in diff.walk_ins:
        session.walk_in_places = places
    for session in diff.withdraw:
        session.status = SessionStatus.cancelled.value
        session.cancel_code = SYSTEM_CANCEL_CODE
        session.sequence += 1
    for session, plan in diff.refill:
        _fill(session, plan)
        session.sequence += 1
    for session, plan in diff.revive:
        session.status, session.cancel_code = SessionStatus.planned.value, None
        session.sequence += 1
        _fill(session, plan)
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
        updated=len(diff.refill) + len(diff.revive),
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
                if schedule.unified_rule_id is not None:
                    raise DomainError(
                        str(
                            _l(
                                "This open-door day is set by the regional akimat for every institution "
                                "of the region. Ask the akimat for an exception to change it."
                            )
                        )
                    )
            for name in SCHEDULE_FIELDS:
                if name in values:
                    setattr(schedule, name, values[name])
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
        schedule.status = status.value
        db.session.flush()
        result = materialise_schedule(schedule)
        audit("schedule.status", "schedule", schedule.id, status=status.value)
    return schedule, result


def conflicts(schedule: Schedule) -> list[ScheduledSession]:
    """Booked future sessions that the current rule no longer produces as they are."""
    start, end = _window(schedule, None, None)
    return _diff(schedule, start, end, None).conflicts


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
        session = db.session.get(ScheduledSession, session_id)
        assert session is not None
        if session.status != SessionStatus.planned:
            raise Conflict(str(_l("This session is no longer planned.")))
        if session.ends_at <= clock_now():
            raise DomainError(str(_l("A session in the past cannot be cancelled.")))
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
            host_position=institution.head_position_ru,
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
        exception = UnifiedRuleException(
            institution_id=institution_id, reason=reason.strip(), allowed_by_id=actor.id
        )
        db.session.add(exception)
        # The inherited schedule stays, detached, so the institution starts from it.
        for schedule in db.session.scalars(
            select(Schedule).where(
                Schedule.institution_id == institution_id, Schedule.unified_rule_id.isnot(None)
            )
        ):
            schedule.unified_rule_id = None
        db.session.flush()
        audit("unified_rule.exception", "institution", institution_id)
    return exception


def withdraw_exception(actor: User, institution_id: int) -> MaterialiseResult:
    """The institution follows the region's open-door day again."""
    if actor.role_enum not in (Role.region_officer, Role.admin):
        raise Forbidden()
    institution = access.get_institution_in_scope(actor, institution_id)
    with write_transaction():
        db.session.execute(
            delete(UnifiedRuleException).where(
                UnifiedRuleException.institution_id == institution_id
            )
        )
        rule = db.session.scalars(
            select(UnifiedOpenDoorRule).where(
                UnifiedOpenDoorRule.region_id == institution.district.region_id
            )
        ).first()
        result = _apply_unified(rule, institution) if rule else MaterialiseResult()
        audit("unified_rule.exception_withdrawn", "institution", institution_id)
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
