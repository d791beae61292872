"""The reporting service: every figure an akimat files, computed with GROUP BY in the database."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, and_, case, func, literal, select

from ..booking.models import Booking, Feedback, Topic
from ..clock import now as clock_now
from ..extensions import db
from ..geography.models import District, Region
from ..i18n import localized
from ..institutions.models import INSTITUTION_TYPE_LABELS, Institution, InstitutionType
from ..schedules.models import SYSTEM_CANCEL_CODE, ScheduledSession
from ..visits.models import MonthSignoff, Question, Visit
from .scope import REPORT_ZONE, Scope, month_start, next_month, previous_month

GROUPINGS = ("region", "district", "institution_type", "institution")

COUNTS = (
    "sessions_planned",
    "sessions_held",
    "sessions_cancelled",
    "sessions_not_closed",
    "open_door_planned",
    "open_door_held",
    "reception_planned",
    "reception_held",
    "citizens_booked",
    "citizens_received",
    "walk_ins",
    "no_shows",
    "questions",
    "resolved",
    "explained",
    "pending",
    "overdue",
    "ratings",
    "rating_sum",
    "satisfied",
    "really_resolved_yes",
    "really_resolved_no",
    "staff_resolved_citizen_no",
)


@dataclass
class Figures:
    """Counts for one group, with the derived shares people read."""

    key: Any
    label: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    signed: bool | None = None

    def __getitem__(self, name: str) -> Any:
        if name in self.counts:
            return self.counts[name]
        return getattr(self, name)

    def add(self, other: Figures) -> None:
        for name in COUNTS:
            self.counts[name] += other.counts[name]

    @staticmethod
    def _share(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    @property
    def held_share(self) -> float | None:
        return self._share(self.counts["sessions_held"], self.counts["sessions_planned"])

    @property
    def resolved_share(self) -> float | None:
        return self._share(self.counts["resolved"], self.counts["questions"])

    @property
    def explained_share(self) -> float | None:
        return self._share(self.counts["explained"], self.counts["questions"])

    @property
    def pending_share(self) -> float | None:
        return self._share(self.counts["pending"], self.counts["questions"])

    @property
    def average_rating(self) -> float | None:
        return (
            self.counts["rating_sum"] / self.counts["ratings"] if self.counts["ratings"] else None
        )

    @property
    def satisfied_share(self) -> float | None:
        return self._share(self.counts["satisfied"], self.counts["ratings"])


@dataclass
class Rollup:
    scope: Scope
    month: str
    months: int
    grouping: str
    rows: list[Figures]
    total: Figures
    previous_total: Figures
    top_topics: list[tuple[str, int]]

    def change(self, name: str) -> int:
        return self.total.counts[name] - self.previous_total.counts[name]


def _month_range(month: str, months: int) -> tuple[datetime, datetime]:
    end_month = month
    for _ in range(months):
        end_month = next_month(end_month)
    first = month
    return month_start(first), month_start(end_month)


def _group_column(grouping: str) -> Any:
    return {
        "region": District.region_id,
        "district": Institution.district_id,
        "institution_type": Institution.type,
        "institution": Institution.id,
    }[grouping]


def _scoped(query: Select[Any], scope: Scope) -> Select[Any]:
    return query.join(Institution.district).where(scope.condition())


def _count_if(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _grouped(
    scope: Scope,
    grouping: str,
    start: datetime,
    end: datetime,
    source: Any,
    joins: list[tuple[Any, Any]],
    columns: list[Any],
    *conditions: Any,
) -> dict[Any, dict[str, int]]:
    """One GROUP BY over rows whose session starts in [start, end), inside the scope."""
    key = _group_column(grouping)
    query = select(key.label("key"), *columns).select_from(source)
    for target, on in joins:
        query = query.join(target, on)
    query = _scoped(query, scope).where(
        ScheduledSession.starts_at >= start, ScheduledSession.starts_at < end, *conditions
    )
    return _rows(query.group_by(key))


def _sessions(
    scope: Scope, grouping: str, start: datetime, end: datetime, at: datetime
) -> dict[Any, dict[str, int]]:
    status, kind = ScheduledSession.status, ScheduledSession.kind
    return _grouped(
        scope,
        grouping,
        start,
        end,
        ScheduledSession,
        [(Institution, Institution.id == ScheduledSession.institution_id)],
        [
            func.count().label("sessions_planned"),
            _count_if(status == "held").label("sessions_held"),
            _count_if(status == "cancelled").label("sessions_cancelled"),
            _count_if(and_(status == "planned", ScheduledSession.ends_at <= at)).label(
                "sessions_not_closed"
            ),
            _count_if(kind == "open_door").label("open_door_planned"),
            _count_if(and_(kind == "open_door", status == "held")).label("open_door_held"),
            _count_if(kind == "reception").label("reception_planned"),
            _count_if(and_(kind == "reception", status == "held")).label("reception_held"),
        ],
        # A session the system withdrew before anyone could come was never planned for real.
        func.coalesce(ScheduledSession.cancel_code, "") != SYSTEM_CANCEL_CODE,
    )


def _bookings(
    scope: Scope, grouping: str, start: datetime, end: datetime
) -> dict[Any, dict[str, int]]:
    return _grouped(
        scope,
        grouping,
        start,
        end,
        Booking,
        [
            (ScheduledSession, ScheduledSession.id == Booking.session_id),
            (Institution, Institution.id == Booking.institution_id),
        ],
        [
            _count_if(Booking.status.in_(("booked", "attended", "no_show"))).label(
                "citizens_booked"
            ),
            _count_if(Booking.status == "no_show").label("no_shows"),
        ],
    )


def _visits(
    scope: Scope, grouping: str, start: datetime, end: datetime
) -> dict[Any, dict[str, int]]:
    return _grouped(
        scope,
        grouping,
        start,
        end,
        Visit,
        [
            (ScheduledSession, ScheduledSession.id == Visit.session_id),
            (Institution, Institution.id == Visit.institution_id),
        ],
        [
            func.count().label("citizens_received"),
            _count_if(Visit.booking_id.is_(None)).label("walk_ins"),
        ],
    )


def _questions(
    scope: Scope, grouping: str, start: datetime, end: datetime, today: date
) -> dict[Any, dict[str, int]]:
    return _grouped(
        scope,
        grouping,
        start,
        end,
        Question,
        [
            (Visit, Visit.id == Question.visit_id),
            (ScheduledSession, ScheduledSession.id == Visit.session_id),
            (Institution, Institution.id == Question.institution_id),
        ],
        [
            func.count().label("questions"),
            _count_if(Question.outcome == "resolved").label("resolved"),
            _count_if(Question.outcome == "explained").label("explained"),
            _count_if(Question.outcome == "pending").label("pending"),
            _count_if(
                and_(
                    Question.outcome == "pending",
                    Question.closed_at.is_(None),
                    Question.due_date < today,
                )
            ).label("overdue"),
        ],
    )


def _feedback(
    scope: Scope, grouping: str, start: datetime, end: datetime
) -> dict[Any, dict[str, int]]:
    staff_resolved = (
        select(literal(1))
        .select_from(Question)
        .join(Visit, Visit.id == Question.visit_id)
        .where(Visit.booking_id == Booking.id, Question.outcome == "resolved")
        .exists()
    )
    return _grouped(
        scope,
        grouping,
        start,
        end,
        Feedback,
        [
            (Booking, Booking.id == Feedback.booking_id),
            (ScheduledSession, ScheduledSession.id == Booking.session_id),
            (Institution, Institution.id == Booking.institution_id),
        ],
        [
            _count_if(Feedback.rating.isnot(None)).label("ratings"),
            func.coalesce(func.sum(Feedback.rating), 0).label("rating_sum"),
            _count_if(Feedback.rating >= 4).label("satisfied"),
            _count_if(Feedback.really_resolved.is_(True)).label("really_resolved_yes"),
            _count_if(Feedback.really_resolved.is_(False)).label("really_resolved_no"),
            _count_if(and_(Feedback.really_resolved.is_(False), staff_resolved)).label(
                "staff_resolved_citizen_no"
            ),
        ],
    )


def _rows(query: Select[Any]) -> dict[Any, dict[str, int]]:
    return {
        row.key: {k: int(v or 0) for k, v in row._mapping.items() if k != "key"}
        for row in db.session.execute(query)
    }


def top_topics(
    scope: Scope, start: datetime, end: datetime, limit: int = 10
) -> list[tuple[str, int]]:
    query = (
        _scoped(
            select(Topic, func.count().label("n"))
            .select_from(Question)
            .join(Topic, Topic.id == Question.topic_id)
            .join(Visit, Visit.id == Question.visit_id)
            .join(ScheduledSession, ScheduledSession.id == Visit.session_id)
            .join(Institution, Institution.id == Question.institution_id),
            scope,
        )
        .where(ScheduledSession.starts_at >= start, ScheduledSession.starts_at < end)
        .group_by(Topic.id)
        .order_by(func.count().desc(), Topic.id)
        .limit(limit)
    )
    return [(topic.name, n) for topic, n in db.session.execute(query)]


def topic_heat(
    scope: Scope, month: str, months: int = 1
) -> tuple[list[str], list[tuple[str, list[int]]]]:
    """Topics x districts: how many questions each district raised on each topic."""
    start, end = _month_range(month, months)
    query = (
        _scoped(
            select(District.id, Topic.id, func.count())
            .select_from(Question)
            .join(Topic, Topic.id == Question.topic_id)
            .join(Visit, Visit.id == Question.visit_id)
            .join(ScheduledSession, ScheduledSession.id == Visit.session_id)
            .join(Institution, Institution.id == Question.institution_id),
            scope,
        )
        .where(ScheduledSession.starts_at >= start, ScheduledSession.starts_at < end)
        .group_by(District.id, Topic.id)
    )
    cells = {(d, t): n for d, t, n in db.session.execute(query)}
    topics = list(db.session.scalars(select(Topic).order_by(Topic.position, Topic.slug)))
    district_ids = sorted({d for d, _ in cells})
    districts = {
        d.id: d for d in db.session.scalars(select(District).where(District.id.in_(district_ids)))
    }
    rows = [(districts[d].name, [cells.get((d, t.id), 0) for t in topics]) for d in district_ids]
    return [t.name for t in topics], sorted(rows)


def _labels(grouping: str, keys: Iterable[Any]) -> dict[Any, str]:
    keys = [k for k in keys if k is not None]
    if grouping == "institution_type":
        return {k: str(INSTITUTION_TYPE_LABELS.get(InstitutionType(k), k)) for k in keys}
    model = {"region": Region, "district": District, "institution": Institution}[grouping]
    return {
        row.id: localized(row, "name")
        for row in db.session.scalars(select(model).where(model.id.in_(keys)))
    }


def _signed(keys: Iterable[int], month: str) -> set[int]:
    return set(
        db.session.scalars(
            select(MonthSignoff.institution_id).where(
                MonthSignoff.institution_id.in_(list(keys)), MonthSignoff.month == month
            )
        )
    )


def collect(
    scope: Scope, grouping: str, start: datetime, end: datetime, at: datetime
) -> dict[Any, Figures]:
    today = at.astimezone(REPORT_ZONE).date()
    parts = (
        _sessions(scope, grouping, start, end, at),
        _bookings(scope, grouping, start, end),
        _visits(scope, grouping, start, end),
        _questions(scope, grouping, start, end, today),
        _feedback(scope, grouping, start, end),
    )
    figures: dict[Any, Figures] = {}
    for part in parts:
        for key, counts in part.items():
            figures.setdefault(key, Figures(key, "")).counts.update(counts)
    return figures


def rollup(
    scope: Scope,
    month: str,
    *,
    grouping: str = "district",
    months: int = 1,
    at: datetime | None = None,
) -> Rollup:
    """Figures for `months` months from `month`, one row per group, with totals and last month's."""
    if grouping not in GROUPINGS:
        raise ValueError(grouping)
    at = at or clock_now()
    start, end = _month_range(month, months)
    figures = collect(scope, grouping, start, end, at)
    labels = _labels(grouping, figures)
    signed = _signed(figures, month) if grouping == "institution" and months == 1 else set()
    rows = []
    for key, row in figures.items():
        row.label = labels.get(key, str(key))
        if grouping == "institution" and months == 1:
            row.signed = key in signed
        rows.append(row)
    rows.sort(key=lambda r: r.label)
    total = Figures("total", "")
    for row in rows:
        total.add(row)
    before = previous_month(month)
    previous = Figures("previous", "")
    for row in collect(scope, "region", *_month_range(before, 1), at).values():
        previous.add(row)
    return Rollup(
        scope, month, months, grouping, rows, total, previous, top_topics(scope, start, end)
    )


def monthly_trend(
    scope: Scope, month: str, count: int = 12, at: datetime | None = None
) -> list[tuple[str, Figures]]:
    """The scope's totals for each of the `count` months ending with `month`."""
    months = [month]
    while len(months) < count:
        months.insert(0, previous_month(months[0]))
    at = at or clock_now()
    trend = []
    for item in months:
        total = Figures(item, item)
        for row in collect(scope, "region", *_month_range(item, 1), at).values():
            total.add(row)
        trend.append((item, total))
    return trend
