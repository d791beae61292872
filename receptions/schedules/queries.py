"""Read-side queries for public pages and calendar feeds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import groupby
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import contains_eager, joinedload, selectinload

from scheduling import (
    BookingStatus,
    BookingWindow,
    CalendarEvent,
    ScheduleKind,
    describe,
    event_uid,
    parse_rule,
    render_calendar,
)
from scheduling.rules import booking_status

from ..clock import now as clock_now
from ..extensions import db
from ..geography.models import District
from ..i18n import current_language
from ..institutions.models import Institution
from .models import Schedule, ScheduledSession, ScheduleStatus, SessionStatus, Slot

FEED_PAST_DAYS = 31
OPEN_DOOR_PICKER_DAYS = 42


@dataclass(frozen=True)
class SlotView:
    slot: Slot
    status: BookingStatus

    @property
    def bookable(self) -> bool:
        return self.status is BookingStatus.open and self.slot.free > 0


@dataclass(frozen=True)
class SessionView:
    session: ScheduledSession
    slots: list[SlotView]

    @property
    def free(self) -> int:
        return sum(s.slot.free for s in self.slots if s.bookable)


def window_of(schedule: Schedule) -> BookingWindow:
    return BookingWindow(
        opens_days_ahead=schedule.booking_opens_days,
        closes_hours_before=schedule.booking_closes_hours,
    )


def _upcoming(at: datetime, *, with_awaiting: bool = False) -> Select[tuple[ScheduledSession]]:
    """Planned sessions not over at `at`; for the public, without those kept for their bookings
    that await staff's decision (they take no new bookings): staff see those too."""
    query = (
        select(ScheduledSession)
        .where(
            ScheduledSession.status == SessionStatus.planned.value, ScheduledSession.ends_at > at
        )
        .order_by(ScheduledSession.starts_at)
    )
    if with_awaiting:
        return query
    return query.where(ScheduledSession.awaiting_decision.is_(False))


def institution_sessions(
    institution_id: int,
    *,
    days: int = 21,
    start: datetime | None = None,
    end: datetime | None = None,
    open_door_days_ahead: int = OPEN_DOOR_PICKER_DAYS,
    at: datetime | None = None,
    with_awaiting: bool = False,
) -> list[SessionView]:
    """Upcoming sessions with each slot's booking status, for the slot picker.

    Receptions are shown from `start` (now when not given) until `end` (`days` later when not
    given); on the first page open-door days further ahead too, so that the next monthly one is
    always on the page (last Fridays can be five weeks apart). `with_awaiting`: for staff, with
    the sessions that await their decision.
    """
    at = at or clock_now()
    first_page = start is None or start <= at
    start = at if first_page or start is None else start
    shown = ScheduledSession.starts_at < (end or start + timedelta(days=days))
    if not first_page:
        shown = and_(ScheduledSession.starts_at >= start, shown)
    else:
        shown = or_(
            shown,
            and_(
                ScheduledSession.kind == ScheduleKind.open_door.value,
                ScheduledSession.starts_at < at + timedelta(days=open_door_days_ahead),
            ),
        )
    sessions = db.session.scalars(
        _upcoming(at, with_awaiting=with_awaiting)
        .where(
            ScheduledSession.institution_id == institution_id,
            shown,
        )
        .options(selectinload(ScheduledSession.slots), joinedload(ScheduledSession.schedule))
    ).all()
    views = []
    for session in sessions:
        window = window_of(session.schedule)
        views.append(
            SessionView(
                session,
                [
                    SlotView(slot, booking_status(slot.starts_at, at, window))
                    for slot in session.slots
                ],
            )
        )
    return views


def has_sessions_from(institution_id: int, moment: datetime) -> bool:
    """Whether the institution has a planned session starting at `moment` or later."""
    return (
        db.session.scalars(
            _upcoming(moment)
            .where(
                ScheduledSession.institution_id == institution_id,
                ScheduledSession.starts_at >= moment,
            )
            .limit(1)
        ).first()
        is not None
    )


def next_open_door_day(institution_id: int, at: datetime | None = None) -> ScheduledSession | None:
    return db.session.scalars(
        _upcoming(at or clock_now())
        .where(
            ScheduledSession.institution_id == institution_id, ScheduledSession.kind == "open_door"
        )
        .limit(1)
    ).first()


def active_schedules(institution_id: int) -> list[Schedule]:
    return list(
        db.session.scalars(
            select(Schedule)
            .where(
                Schedule.institution_id == institution_id,
                Schedule.status == ScheduleStatus.active.value,
            )
            .order_by(Schedule.kind, Schedule.id)
        )
    )


def describe_schedule(schedule: Schedule, language: str | None = None) -> str:
    return describe(parse_rule(schedule.rrule), language or current_language())


def open_door_days(
    *,
    district_id: int | None = None,
    region_id: int | None = None,
    at: datetime | None = None,
    limit: int = 200,
) -> list[ScheduledSession]:
    """Upcoming open-door days of active institutions: the announcements akimats publish."""
    query = (
        _upcoming(at or clock_now())
        .join(ScheduledSession.institution)
        .join(Institution.district)
        .where(ScheduledSession.kind == "open_door", Institution.active.is_(True))
        .options(contains_eager(ScheduledSession.institution).contains_eager(Institution.district))
        .limit(limit)
    )
    if district_id is not None:
        query = query.where(Institution.district_id == district_id)
    if region_id is not None:
        query = query.where(District.region_id == region_id)
    return list(db.session.scalars(query))


def group_by_local_date(sessions: list[Any], tz: str) -> list[tuple[date, list[Any]]]:
    zone = ZoneInfo(tz)

    def key(item: Any) -> date:
        session = item.session if isinstance(item, SessionView) else item
        return session.starts_at.astimezone(zone).date()

    return [(day, list(items)) for day, items in groupby(sessions, key=key)]


# --- calendar feeds ----------------------------------------------------------------------------


def _feed_sessions(query: Select[tuple[ScheduledSession]]) -> list[ScheduledSession]:
    since = clock_now() - timedelta(days=FEED_PAST_DAYS)
    return list(
        db.session.scalars(
            # Cancelled sessions stay in the feed so that subscribed calendars drop them too.
            query.where(ScheduledSession.starts_at >= since)
            .options(
                joinedload(ScheduledSession.schedule), joinedload(ScheduledSession.institution)
            )
            .order_by(ScheduledSession.starts_at, ScheduledSession.id)
        )
    )


def session_event(
    session: ScheduledSession, *, domain: str, url: str, kind_labels: dict[str, str]
) -> CalendarEvent:
    schedule = session.schedule
    summary = f"{kind_labels.get(session.kind, session.kind)}: {session.institution.name}"
    position = session.institution.host_position(schedule.host_name, schedule.host_position)
    description = schedule.host_name + (f", {position}" if position else "")
    if session.status == SessionStatus.cancelled and session.cancel_reason:
        description = f"{description}\n{session.cancel_reason}".strip()
    return CalendarEvent(
        uid=event_uid("session", session.id, domain),
        start=session.starts_at,
        end=session.ends_at,
        summary=summary,
        location=schedule.location or session.institution.address,
        description=description,
        status=_event_status(session),
        sequence=session.sequence,
        url=url,
        last_modified=session.updated_at,
    )


def _event_status(session: ScheduledSession) -> str:
    """A session kept for its bookings that awaits staff's decision is tentative: it may be
    cancelled, and takes no new bookings meanwhile (its bookings' own .ics stay confirmed)."""
    if session.status == SessionStatus.cancelled:
        return "CANCELLED"
    return "TENTATIVE" if session.awaiting_decision else "CONFIRMED"


def feed_for(
    sessions: list[ScheduledSession],
    *,
    tz: str,
    name: str,
    domain: str,
    url_for_session: Any,
    kind_labels: dict[str, str],
) -> bytes:
    events = [
        session_event(s, domain=domain, url=url_for_session(s), kind_labels=kind_labels)
        for s in sessions
    ]
    stamp = max((s.updated_at for s in sessions), default=None)
    return render_calendar(events, tz=tz, name=name, stamp=stamp)


def institution_feed_sessions(institution_id: int) -> list[ScheduledSession]:
    return _feed_sessions(
        select(ScheduledSession).where(ScheduledSession.institution_id == institution_id)
    )


def district_feed_sessions(district_id: int) -> list[ScheduledSession]:
    return _feed_sessions(
        select(ScheduledSession)
        .join(ScheduledSession.institution)
        .where(
            Institution.district_id == district_id,
            Institution.active.is_(True),
            ScheduledSession.kind == "open_door",
        )
    )
