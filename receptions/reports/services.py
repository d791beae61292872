"""The reporting service: every figure an akimat files, computed with GROUP BY in the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, and_, case, func, literal, or_, select, text, tuple_, union_all

from ..booking.models import Booking, Feedback, Topic
from ..clock import now as clock_now
from ..extensions import db
from ..geography.models import District, Region
from ..i18n import FALLBACK_ORDER, current_language, localized
from ..institutions.models import INSTITUTION_TYPE_LABELS, Institution, InstitutionType
from ..schedules.models import SYSTEM_CANCEL_CODE, ScheduledSession
from ..visits.models import MonthSignoff, Question, Visit
from .scope import REPORT_ZONE, Scope, month_start, next_month, previous_month

GROUPINGS = ("region", "district", "institution_type", "institution")
STREAM_BATCH = 1000  # rows fetched per round trip when an export streams a roll-up

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
    # Institution-months in the row served from a sign-off snapshot.
    signed_months: int = 0
    # Signed, and today's rows no longer give the signed figures (a correction may be due).
    changed_since_signoff: bool = False

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

    def change(self, name: str) -> float | None:
        """Change on the period before: a difference of counts, or of shares in points."""
        now, before = self.total[name], self.previous_total[name]
        if now is None or before is None:
            return None
        return now - before  # type: ignore[no-any-return]


def month_list(month: str, months: int) -> list[str]:
    """`months` consecutive months starting with `month`."""
    out = [month]
    while len(out) < months:
        out.append(next_month(out[-1]))
    return out


def _month_range(month: str, months: int) -> tuple[datetime, datetime]:
    last = month_list(month, months)[-1]
    return month_start(month), month_start(next_month(last))


def _month_of(starts_at: Any, months: list[str]) -> Any:
    """The YYYY-MM (report zone) of a session start already known to lie in `months`."""
    if len(months) == 1:
        return literal(months[0])
    return case(
        *((starts_at < month_start(next_month(m)), literal(m)) for m in months[:-1]),
        else_=literal(months[-1]),
    )


def _group_column(grouping: str, months: list[str]) -> Any:
    if grouping == "month":
        return _month_of(ScheduledSession.starts_at, months)
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


@dataclass(frozen=True)
class _Window:
    """What one roll-up statement covers."""

    scope: Scope
    grouping: str
    months: list[str]
    at: datetime
    snapshots: bool

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        return _month_range(self.months[0], len(self.months))

    @property
    def today(self) -> date:
        return self.at.astimezone(REPORT_ZONE).date()


def _unsigned(window: _Window) -> Any:
    """The institution-month of the row has no sign-off: signed months come from the snapshot."""
    return ~(
        select(literal(1))
        .select_from(MonthSignoff)
        .where(
            MonthSignoff.institution_id == Institution.id,
            MonthSignoff.month == _month_of(ScheduledSession.starts_at, window.months),
        )
        .exists()
    )


def _grouped(
    window: _Window,
    source: Any,
    joins: list[tuple[Any, Any]],
    columns: list[Any],
    *conditions: Any,
) -> Any:
    """One GROUP BY over rows whose session starts in the window, inside the scope."""
    start, end = window.bounds
    key = _group_column(window.grouping, window.months)
    query = select(key.label("key"), *columns).select_from(source)
    for target, on in joins:
        query = query.join(target, on)
    query = _scoped(query, window.scope).where(
        ScheduledSession.starts_at >= start, ScheduledSession.starts_at < end, *conditions
    )
    if window.snapshots:
        query = query.where(_unsigned(window))
    # By position: a key with bound parameters (the month CASE) is not "the same expression"
    # to PostgreSQL in SELECT and in GROUP BY.
    return query.group_by(text("1")).subquery()


def _sessions(window: _Window) -> Any:
    status, kind = ScheduledSession.status, ScheduledSession.kind
    return _grouped(
        window,
        ScheduledSession,
        [(Institution, Institution.id == ScheduledSession.institution_id)],
        [
            func.count().label("sessions_planned"),
            _count_if(status == "held").label("sessions_held"),
            _count_if(status == "cancelled").label("sessions_cancelled"),
            _count_if(and_(status == "planned", ScheduledSession.ends_at <= window.at)).label(
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


def _bookings(window: _Window) -> Any:
    return _grouped(
        window,
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


def _visits(window: _Window) -> Any:
    return _grouped(
        window,
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


def _questions(window: _Window) -> Any:
    return _grouped(
        window,
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
                    Question.due_date < window.today,
                )
            ).label("overdue"),
        ],
    )


def _feedback(window: _Window) -> Any:
    staff_resolved = (
        select(literal(1))
        .select_from(Question)
        .join(Visit, Visit.id == Question.visit_id)
        .where(Visit.booking_id == Booking.id, Question.outcome == "resolved")
        .exists()
    )
    return _grouped(
        window,
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


def _snapshot(window: _Window) -> Any:
    """The latest signed version of every institution-month in the window, summed per group."""
    latest = (
        select(MonthSignoff.institution_id, MonthSignoff.month, func.max(MonthSignoff.version))
        .where(MonthSignoff.month.in_(window.months))
        .group_by(MonthSignoff.institution_id, MonthSignoff.month)
    )
    key = (
        MonthSignoff.month
        if window.grouping == "month"
        else _group_column(window.grouping, window.months)
    )
    query = _scoped(
        select(
            key.label("key"),
            func.count().label("signed_months"),
            *(
                func.coalesce(func.sum(MonthSignoff.figures[name].as_integer()), 0).label(name)
                for name in COUNTS
            ),
        )
        .select_from(MonthSignoff)
        .join(Institution, Institution.id == MonthSignoff.institution_id),
        window.scope,
    ).where(
        tuple_(MonthSignoff.institution_id, MonthSignoff.month, MonthSignoff.version).in_(latest)
    )
    return query.group_by(text("1")).subquery()


def _keys(window: _Window) -> Any:
    """Every group the scope has, whether or not anything happened in it."""
    if window.grouping == "month":
        return union_all(*(select(literal(m).label("key")) for m in window.months)).subquery()
    key = _group_column(window.grouping, window.months)
    return (
        _scoped(select(key.label("key")).select_from(Institution), window.scope)
        .group_by(key)
        .subquery()
    )


LABEL_TABLES = {"region": Region, "district": District, "institution": Institution}


def _statement(window: _Window) -> Select[Any]:
    """One statement: the groups, their live figures and the signed snapshots, ordered by name."""
    keys = _keys(window)
    parts = [
        _sessions(window),
        _bookings(window),
        _visits(window),
        _questions(window),
        _feedback(window),
    ]
    snapshot = _snapshot(window) if window.snapshots else None
    live = {c.name: part for part in parts for c in part.c if c.name != "key"}
    columns = []
    for name in COUNTS:
        value = func.coalesce(live[name].c[name], 0)
        if snapshot is not None:
            value = value + func.coalesce(snapshot.c[name], 0)
        columns.append(value.label(name))
    present = [part.c.key.isnot(None) for part in parts]
    if snapshot is not None:
        columns.append(func.coalesce(snapshot.c.signed_months, 0).label("signed_months"))
        present.append(snapshot.c.key.isnot(None))
    else:
        columns.append(literal(0).label("signed_months"))
    query = select(keys.c.key, case((or_(*present), 1), else_=0).label("present"), *columns)
    for part in [*parts, *([snapshot] if snapshot is not None else [])]:
        query = query.outerjoin(part, part.c.key == keys.c.key)
    table = LABEL_TABLES.get(window.grouping)
    if table is None:
        return query.order_by(keys.c.key)
    names = [getattr(table, f"name_{lang}") for lang in FALLBACK_ORDER[current_language()]]
    query = query.add_columns(*(n.label(n.key) for n in names)).join(table, table.id == keys.c.key)
    label = func.coalesce(*(func.nullif(n, "") for n in names))
    return query.order_by(_binary(label), keys.c.key)


def _binary(expression: Any) -> Any:
    """Code-point order on both databases, as Python sorts strings."""
    if db.engine.dialect.name == "postgresql":
        return expression.collate("C")
    return expression


def iter_figures(
    scope: Scope,
    grouping: str,
    month: str,
    months: int = 1,
    *,
    at: datetime | None = None,
    snapshots: bool = True,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Figures]:
    """The rows of a roll-up as the database sends them: a server-side cursor, never a list.

    Signed institution-months count with their latest signed snapshot (what the head filed);
    `snapshots=False` gives the live figures, which is what a sign-off itself records.
    """
    if grouping not in (*GROUPINGS, "month"):
        raise ValueError(grouping)
    window = _Window(scope, grouping, month_list(month, months), at or clock_now(), snapshots)
    result = db.session.execute(_statement(window), execution_options={"yield_per": STREAM_BATCH})
    for row in result:
        if progress is not None:
            progress(1)
        if not row.present and grouping != "month":
            continue
        figures = Figures(row.key, _label(grouping, row))
        figures.counts = {name: int(row._mapping[name] or 0) for name in COUNTS}
        figures.signed_months = int(row.signed_months or 0)
        yield figures


def _label(grouping: str, row: Any) -> str:
    if grouping == "month":
        return str(row.key)
    if grouping == "institution_type":
        return str(INSTITUTION_TYPE_LABELS.get(InstitutionType(row.key), row.key))
    return localized(row, "name")


def count_groups(scope: Scope, grouping: str) -> int:
    """How many rows `iter_figures` reads at most: the progress bar's length."""
    window = _Window(scope, grouping, [], clock_now(), False)
    return int(db.session.scalar(select(func.count()).select_from(_keys(window))) or 0)


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


def period_total(
    scope: Scope, month: str, months: int = 1, *, at: datetime | None = None
) -> Figures:
    total = Figures("total", "")
    for row in iter_figures(scope, "region", month, months, at=at):
        total.add(row)
    return total


def previous_period(month: str, months: int) -> str:
    """The first month of the `months` months just before `month`."""
    first = month
    for _ in range(months):
        first = previous_month(first)
    return first


def rollup(
    scope: Scope,
    month: str,
    *,
    grouping: str = "district",
    months: int = 1,
    at: datetime | None = None,
    live: bool = False,
) -> Rollup:
    """Figures for `months` months from `month`, one row per group, with totals and the period
    before's. Signed institution-months are served from their latest sign-off snapshot, so that
    what an akimat filed stays what it filed; `live=True` reads today's rows instead.
    """
    if grouping not in GROUPINGS:
        raise ValueError(grouping)
    at = at or clock_now()
    rows = list(iter_figures(scope, grouping, month, months, at=at, snapshots=not live))
    rows.sort(key=lambda r: r.label)
    total = Figures("total", "")
    for row in rows:
        total.add(row)
        if grouping == "institution":
            row.signed = row.signed_months == months
    if grouping == "institution" and not live and any(r.signed_months for r in rows):
        current = {
            r.key: r.counts
            for r in iter_figures(scope, grouping, month, months, at=at, snapshots=False)
        }
        for row in rows:
            if row.signed_months:
                row.changed_since_signoff = current.get(row.key, {}) != row.counts
    previous = Figures("previous", "")
    for row in iter_figures(
        scope, "region", previous_period(month, months), months, at=at, snapshots=not live
    ):
        previous.add(row)
    start, end = _month_range(month, months)
    return Rollup(
        scope, month, months, grouping, rows, total, previous, top_topics(scope, start, end)
    )


def monthly_trend(
    scope: Scope, month: str, count: int = 12, at: datetime | None = None
) -> list[tuple[str, Figures]]:
    """The scope's totals for each of the `count` months ending with `month`, in one statement."""
    first = previous_period(month, count - 1) if count > 1 else month
    return [(row.key, row) for row in iter_figures(scope, "month", first, count, at=at)]


@dataclass
class PublicCells:
    """Which published figures are withheld, so that no citizen can be singled out."""

    rows: list[tuple[Figures, bool]]
    total_hidden: bool


def suppress_small_cells(rows: list[Figures], total: Figures, minimum: int) -> PublicCells:
    """Primary suppression of groups under `minimum` visits, then complementary suppression.

    A lone hidden row could be recomputed as the total minus the rows shown, and two hidden rows
    that add up to less than `minimum` still single people out; so the next smallest rows are
    hidden too until the hidden rows are at least two and together reach `minimum`. When the rows
    run out before that, the total is withheld instead.
    """
    received = "citizens_received"
    if total[received] < minimum:
        return PublicCells([(row, True) for row in rows], True)
    hidden = {id(row) for row in rows if row[received] < minimum}
    if hidden:
        shown = sorted((r for r in rows if id(r) not in hidden), key=lambda r: r[received])
        hidden_sum = sum(r[received] for r in rows if id(r) in hidden)
        while (len(hidden) < 2 or hidden_sum < minimum) and shown:
            row = shown.pop(0)
            hidden.add(id(row))
            hidden_sum += row[received]
        if len(hidden) < 2 or hidden_sum < minimum:
            return PublicCells([(row, True) for row in rows], True)
    return PublicCells([(row, id(row) in hidden) for row in rows], False)
