"""The reporting service: every figure an akimat files, computed with GROUP BY in the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, and_, case, func, literal, select, text, true, union, union_all

from ..booking.models import Booking, Feedback, Topic
from ..clock import now as clock_now
from ..extensions import db
from ..geography.models import District, Region
from ..i18n import FALLBACK_ORDER, current_language, localized
from ..institutions.models import INSTITUTION_TYPE_LABELS, Institution, InstitutionType
from ..schedules.models import SYSTEM_CANCEL_CODE, ScheduledSession
from ..visits.models import MonthSignoff, MonthSignoffTopic, Question, Visit
from .scope import REPORT_ZONE, Scope, month_start, next_month, previous_month

GROUPINGS = ("region", "district", "institution_type", "institution")
STREAM_BATCH = 1000  # rows fetched per round trip when an export streams a roll-up

# The citizens' word, not the institution's: ratings come after the meeting and "was it really
# resolved?" is asked 30 days after the outcome, so most arrive once the month is signed. A head
# cannot vouch for them or correct them; every month, signed or not, reports them as they stand,
# and one arriving late neither changes what was signed nor calls for a correction.
CITIZENS_ANSWERS = (
    "ratings",
    "rating_sum",
    "satisfied",
    "really_resolved_yes",
    "really_resolved_no",
    "staff_resolved_citizen_no",
)
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
    # Sessions of a month in progress that have not started yet: they count in no other figure
    # (see `_window_sessions`), so that a month's planned and held mean "to date" until it ends.
    "open_door_to_come",
    "reception_to_come",
    *CITIZENS_ANSWERS,
)
# States of today, not facts a head signs: questions past their due date, sessions past their
# end that nobody closed (a session reopened after sign-off is open again) and sessions still to
# come (none once the month is over, when it can be signed). A signed month takes them from the
# live rows, as the follow-up and close-out pages do.
LIVE_STATES = frozenset(
    ("overdue", "sessions_not_closed", "open_door_to_come", "reception_to_come")
)
# What a head signs off: what the institution held, received and recorded. A signed month is
# reported with these as signed, and the rest from the live rows.
SIGNED_FIGURES = tuple(
    name for name in COUNTS if name not in LIVE_STATES and name not in CITIZENS_ANSWERS
)


def figure(counts: Mapping[str, int], name: str) -> int:
    """One figure of a month's counts, signed or live: a count, or one derived from them."""
    derive = DERIVED_FIGURES.get(name)
    return derive(counts) if derive else counts.get(name, 0)


def changes_since_signoff(
    signed: Mapping[str, int], live: Mapping[str, int]
) -> dict[str, tuple[int, int]]:
    """The signed figures that today's rows no longer give, each as (signed, now), with those
    derived from them: the month page offers the head a correction, and the dashboard flags the
    month, for these and only these (a derived one changes only with a signed one)."""
    return {
        name: (figure(signed, name), figure(live, name))
        for name in (*SIGNED_FIGURES, *DERIVED_FIGURES)
        if figure(signed, name) != figure(live, name)
    }


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
    def sessions_to_come(self) -> int:
        return self.counts["open_door_to_come"] + self.counts["reception_to_come"]

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
    # None while the period is in progress: part of a month is not compared with a whole one.
    previous_total: Figures | None
    top_topics: list[tuple[str, int]]
    # The moment an unfinished period's figures run up to; None once the period is over.
    until: datetime | None = None

    def change(self, name: str) -> float | None:
        return figure_change(self.total, self.previous_total, name)


def questions_without_outcome(counts: Mapping[str, int]) -> int:
    """Questions raised that have no outcome yet: what the outcome counts leave of the questions."""
    return counts.get("questions", 0) - sum(
        counts.get(name, 0) for name in ("resolved", "explained", "pending")
    )


# Figures a month page shows beside the counts, computed from them.
DERIVED_FIGURES: dict[str, Callable[[Mapping[str, int]], int]] = {
    "without_outcome": questions_without_outcome
}


def figure_change(total: Figures, previous: Figures | None, name: str) -> float | None:
    """Change on the period before: a difference of counts, or of the unrounded shares (a
    fraction of 1), rounded only where it is shown, so that the page and the downloads agree;
    None without a period before to compare with (the period is in progress)."""
    if previous is None:
        return None
    now, before = total[name], previous[name]
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


def unfinished_until(month: str, months: int, at: datetime) -> datetime | None:
    """`at` when the period of `months` months from `month` is not over at `at`, else None."""
    return at if at < _month_range(month, months)[1] else None


def _month_of(starts_at: Any, months: list[str]) -> Any:
    """The YYYY-MM (report zone) of a session start already known to lie in `months`."""
    if len(months) == 1:
        return literal(months[0])
    return case(
        *((starts_at < month_start(next_month(m)), literal(m)) for m in months[:-1]),
        else_=literal(months[-1]),
    )


def _group_column(grouping: str) -> Any:
    """The institution's column a group is keyed by (months are keyed by the session's month)."""
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
    # Also the live sums, to tell whether a signed group's rows still give its snapshot.
    compare: bool = False
    # The first month reported when the window also holds the period before (month-on-month).
    current: str | None = None

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        return _month_range(self.months[0], len(self.months))

    @property
    def today(self) -> date:
        return self.at.astimezone(REPORT_ZONE).date()

    @property
    def unfinished(self) -> bool:
        """The window's last month is in progress: some of its sessions are still to come."""
        return self.at < self.bounds[1]


def _sessions_in_scope(query: Select[Any], window: _Window) -> Select[Any]:
    if window.scope.level != "nation" or window.scope.institution_type:
        # Bookings, visits and questions carry their session's institution; the scope is applied
        # again on their own institution below, this only keeps a region from reading the nation.
        in_scope = _scoped(select(Institution.id), window.scope)
        query = query.where(ScheduledSession.institution_id.in_(in_scope))
    return query


def _window_sessions(window: _Window) -> Any:
    """Every session of the window that has started by `window.at`, with its report month:
    read once, by starts_at. In a month in progress "planned" thus means planned to date, for
    the held share, the rankings and the public results alike; the sessions still to come are
    counted apart (`_to_come_part`), and with them their bookings, visits and questions wait."""
    start, end = window.bounds
    session = ScheduledSession
    query = select(
        session.id,
        session.institution_id,
        session.status,
        session.kind,
        session.ends_at,
        session.cancel_code,
        _month_of(session.starts_at, window.months).label("month"),
    ).where(session.starts_at >= start, session.starts_at < end)
    if window.unfinished:
        query = query.where(session.starts_at <= window.at)
    return _sessions_in_scope(query, window).cte("window_session")


def _to_come_part(window: _Window) -> Any:
    """The window's planned sessions that start after `window.at`, per kind: only a window
    whose last month is in progress has any."""
    end = window.bounds[1]
    session = ScheduledSession
    return _per_institution_month(
        "to_come_figures",
        session.institution_id,
        _month_of(session.starts_at, window.months),
        [
            _count_if(session.kind == "open_door").label("open_door_to_come"),
            _count_if(session.kind == "reception").label("reception_to_come"),
        ],
        _sessions_in_scope(
            select()
            .select_from(session)
            .where(
                session.starts_at > window.at,
                session.starts_at < end,
                session.status == "planned",
            ),
            window,
        ),
    )


_MONTH_KEY = ("institution_id", "month")


def _per_institution_month(
    name: str, institution_id: Any, month: Any, columns: list[Any], source: Select[Any]
) -> Any:
    """One aggregate per institution-month, the grain at which signed snapshots replace rows;
    a CTE, so that the database computes it once for the list of keys and for the figures."""
    return (
        source.add_columns(institution_id.label("institution_id"), month.label("month"), *columns)
        .group_by(institution_id, month)
        .cte(name)
    )


def _within_ids(column: Any, ids: Any) -> Any:
    """`column` between the least and greatest of `ids`: true of every row the join keeps, and
    it lets the index on `column` be read for the window's range instead of from end to end
    (a month's sessions and visits get neighbouring ids; the planner merged over all 12 months)."""
    return column.between(
        select(func.min(ids)).scalar_subquery(), select(func.max(ids)).scalar_subquery()
    )


def _live_parts(window: _Window) -> list[Any]:
    """Sessions, bookings with their feedback, visits and questions: each table read once,
    reached from the window's sessions through session_id and visit_id."""
    sessions = _window_sessions(window)
    visits = (
        select(Visit.id, Visit.institution_id, Visit.booking_id, sessions.c.month)
        .join(sessions, sessions.c.id == Visit.session_id)
        .where(_within_ids(Visit.session_id, sessions.c.id))
        .cte("window_visit")
    )
    questions = (
        select(
            Question.institution_id,
            Question.outcome,
            Question.closed_at,
            Question.due_date,
            visits.c.booking_id,
            visits.c.month,
        )
        .join(visits, visits.c.id == Question.visit_id)
        .where(_within_ids(Question.visit_id, visits.c.id))
        .cte("window_question")
    )
    status, kind = sessions.c.status, sessions.c.kind
    session_part = _per_institution_month(
        "session_figures",
        sessions.c.institution_id,
        sessions.c.month,
        [
            func.count().label("sessions_planned"),
            _count_if(status == "held").label("sessions_held"),
            _count_if(status == "cancelled").label("sessions_cancelled"),
            _count_if(and_(status == "planned", sessions.c.ends_at <= window.at)).label(
                "sessions_not_closed"
            ),
            _count_if(kind == "open_door").label("open_door_planned"),
            _count_if(and_(kind == "open_door", status == "held")).label("open_door_held"),
            _count_if(kind == "reception").label("reception_planned"),
            _count_if(and_(kind == "reception", status == "held")).label("reception_held"),
        ],
        # A session the system withdrew before anyone could come was never planned for real.
        select()
        .select_from(sessions)
        .where(func.coalesce(sessions.c.cancel_code, "") != SYSTEM_CANCEL_CODE),
    )
    # Bookings whose visit has a question recorded resolved. A booking's visit is made at check-in
    # at the booking's own session, so it is among the window's visits; read from them rather
    # than by a subquery per booking, which PostgreSQL ran as a scan of every resolved question.
    staff_resolved = (
        select(questions.c.booking_id)
        .where(questions.c.booking_id.isnot(None), questions.c.outcome == "resolved")
        .group_by(questions.c.booking_id)
        .subquery()
    )
    # A booking has at most one feedback row, so joining it keeps one row per booking.
    booking_part = _per_institution_month(
        "booking_figures",
        Booking.institution_id,
        sessions.c.month,
        [
            _count_if(Booking.status.in_(("booked", "attended", "no_show"))).label(
                "citizens_booked"
            ),
            _count_if(Booking.status == "no_show").label("no_shows"),
            _count_if(Feedback.rating.isnot(None)).label("ratings"),
            func.coalesce(func.sum(Feedback.rating), 0).label("rating_sum"),
            _count_if(Feedback.rating >= 4).label("satisfied"),
            _count_if(Feedback.really_resolved.is_(True)).label("really_resolved_yes"),
            _count_if(Feedback.really_resolved.is_(False)).label("really_resolved_no"),
            _count_if(
                and_(Feedback.really_resolved.is_(False), staff_resolved.c.booking_id.isnot(None))
            ).label("staff_resolved_citizen_no"),
        ],
        select()
        .select_from(Booking)
        .join(sessions, sessions.c.id == Booking.session_id)
        .where(_within_ids(Booking.session_id, sessions.c.id))
        .outerjoin(Feedback, Feedback.booking_id == Booking.id)
        .outerjoin(staff_resolved, staff_resolved.c.booking_id == Booking.id),
    )
    visit_part = _per_institution_month(
        "visit_figures",
        visits.c.institution_id,
        visits.c.month,
        [
            func.count().label("citizens_received"),
            _count_if(visits.c.booking_id.is_(None)).label("walk_ins"),
        ],
        select().select_from(visits),
    )
    outcome = questions.c.outcome
    question_part = _per_institution_month(
        "question_figures",
        questions.c.institution_id,
        questions.c.month,
        [
            func.count().label("questions"),
            _count_if(outcome == "resolved").label("resolved"),
            _count_if(outcome == "explained").label("explained"),
            _count_if(outcome == "pending").label("pending"),
            _count_if(
                and_(
                    outcome == "pending",
                    questions.c.closed_at.is_(None),
                    questions.c.due_date < window.today,
                )
            ).label("overdue"),
        ],
        select().select_from(questions),
    )
    parts = [session_part, booking_part, visit_part, question_part]
    return [*parts, _to_come_part(window)] if window.unfinished else parts


def _latest_signoffs(months: list[str], *columns: Any) -> Select[Any]:
    """`columns` of the latest signed version of every institution-month of `months`."""
    latest = (
        select(
            MonthSignoff.institution_id,
            MonthSignoff.month,
            func.max(MonthSignoff.version).label("version"),
        )
        .where(MonthSignoff.month.in_(months))
        .group_by(MonthSignoff.institution_id, MonthSignoff.month)
        .subquery()
    )
    return (
        select(*columns)
        .select_from(MonthSignoff)
        .join(
            latest,
            and_(
                latest.c.institution_id == MonthSignoff.institution_id,
                latest.c.month == MonthSignoff.month,
                latest.c.version == MonthSignoff.version,
            ),
        )
    )


def _signed(window: _Window) -> Any:
    """The latest signed version of every institution-month in the window, one row each."""
    return _latest_signoffs(
        window.months,
        MonthSignoff.institution_id,
        MonthSignoff.month,
        *(
            func.coalesce(MonthSignoff.figures[name].as_integer(), 0).label(name)
            for name in SIGNED_FIGURES
        ),
    ).cte("signed_figures")


def _figures_by_group(window: _Window) -> Any:
    """Live figures and signed snapshots merged per institution-month, then summed per group.

    A signed institution-month counts with its snapshot of the `SIGNED_FIGURES` (the rest live),
    any other with its live rows; with
    `window.compare` the live sums of the signed figures come along too (the drift flag), and with
    `window.current`
    the months before it are summed apart as `previous_*` (the change on the period before).
    """
    parts = _live_parts(window)
    signed = _signed(window) if window.snapshots else None
    sources = [*parts, *([signed] if signed is not None else [])]
    months = union(*(select(p.c.institution_id, p.c.month) for p in sources)).subquery()
    part_of = {c.name: part for part in parts for c in part.c if c.name not in _MONTH_KEY}
    key = months.c.month if window.grouping == "month" else _group_column(window.grouping)
    is_signed = signed.c.institution_id.isnot(None) if signed is not None else None
    current = months.c.month >= window.current if window.current else None

    def summed(value: Any, name: str, *, before: bool = False) -> Any:
        if current is not None:
            value = case((~current if before else current, value), else_=0)
        return func.sum(value).label(name)

    columns = []
    for name in COUNTS:
        # What is still to come has no part in a window that is over.
        live = func.coalesce(part_of[name].c[name], 0) if name in part_of else literal(0)
        served = (
            live
            if signed is None or name not in SIGNED_FIGURES
            else case((is_signed, signed.c[name]), else_=live)
        )
        columns.append(summed(served, name))
        if current is not None:
            columns.append(summed(served, f"previous_{name}", before=True))
        if window.compare and name in SIGNED_FIGURES:
            columns.append(summed(live, f"live_{name}"))
    columns.append(
        literal(0).label("signed_months")
        if is_signed is None
        else summed(case((is_signed, 1), else_=0), "signed_months")
    )
    columns.append(func.max(1 if current is None else case((current, 1), else_=0)).label("here"))
    query = (
        select(key.label("key"), *columns)
        .select_from(months)
        .join(Institution, Institution.id == months.c.institution_id)
    )
    for source in sources:
        query = query.outerjoin(
            source,
            and_(
                source.c.institution_id == months.c.institution_id,
                source.c.month == months.c.month,
            ),
        )
    return _scoped(query, window.scope).group_by(key).subquery()


def _keys(window: _Window) -> Any:
    """Every group the scope has, whether or not anything happened in it."""
    if window.grouping == "month":
        return union_all(*(select(literal(m).label("key")) for m in window.months)).subquery()
    key = _group_column(window.grouping)
    return (
        _scoped(select(key.label("key")).select_from(Institution), window.scope)
        .group_by(key)
        .subquery()
    )


LABEL_TABLES = {"region": Region, "district": District, "institution": Institution}


def _statement(window: _Window) -> Select[Any]:
    """One statement: the groups, their figures (signed snapshots merged in), ordered by name."""
    keys = _keys(window)
    figures = _figures_by_group(window)
    extra = ["signed_months"]
    if window.current:
        extra += [f"previous_{name}" for name in COUNTS]
    if window.compare:
        extra += [f"live_{name}" for name in SIGNED_FIGURES]
    query = select(
        keys.c.key,
        func.coalesce(figures.c.here, 0).label("present"),
        *(func.coalesce(figures.c[name], 0).label(name) for name in [*COUNTS, *extra]),
    ).outerjoin(figures, figures.c.key == keys.c.key)
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
    compare: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Figures]:
    """The rows of a roll-up as the database sends them: a server-side cursor, never a list.

    Signed institution-months count with their latest signed snapshot of the `SIGNED_FIGURES`
    (what the head filed) and today's rows for the rest;
    `snapshots=False` gives the live figures, which is what a sign-off itself records.
    `compare=True` also flags signed rows whose live figures no longer give the snapshot.
    """
    if grouping not in (*GROUPINGS, "month"):
        raise ValueError(grouping)
    window = _Window(
        scope, grouping, month_list(month, months), at or clock_now(), snapshots, compare
    )
    for figures, present, _ in _read(window, progress):
        if present or grouping == "month":
            yield figures


def figures_and_previous(
    scope: Scope,
    grouping: str,
    month: str,
    months: int = 1,
    *,
    at: datetime | None = None,
    live: bool = False,
    compare: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[Iterator[Figures], Figures | None]:
    """The rows of `iter_figures` and the period before's total, read by the same statement:
    the total is complete once the rows have all been read (a download writes it last). A
    period in progress has no total before it (None): part of a month against a whole one
    would mislead, and a same-days cut of the month before could not be had from its signed
    figures, which are the whole month's."""
    at = at or clock_now()
    if unfinished_until(month, months, at) is not None:
        rows = iter_figures(
            scope,
            grouping,
            month,
            months,
            at=at,
            snapshots=not live,
            compare=compare,
            progress=progress,
        )
        return rows, None
    before = previous_period(month, months)
    window = _Window(
        scope,
        grouping,
        month_list(before, 2 * months),
        at,
        snapshots=not live,
        compare=compare,
        current=month,
    )
    previous = Figures("previous", "")

    def rows() -> Iterator[Figures]:
        for figures, present, earlier in _read(window, progress):
            for name, value in (earlier or {}).items():
                previous.counts[name] += value
            if present:
                yield figures

    return rows(), previous


def _read(
    window: _Window, progress: Callable[[int], None] | None = None
) -> Iterator[tuple[Figures, bool, dict[str, int] | None]]:
    """Each group's figures, whether anything happened in it, and the period before's counts
    when the window holds them; straight from a server-side cursor."""
    _without_jit()
    result = db.session.execute(_statement(window), execution_options={"yield_per": STREAM_BATCH})
    for row in result:
        if progress is not None:
            progress(1)
        mapping = row._mapping
        figures = Figures(row.key, _label(window.grouping, row))
        figures.counts = {name: int(mapping[name] or 0) for name in COUNTS}
        figures.signed_months = int(row.signed_months or 0)
        if window.compare and figures.signed_months:
            live = {name: int(mapping[f"live_{name}"] or 0) for name in SIGNED_FIGURES}
            figures.changed_since_signoff = bool(changes_since_signoff(figures.counts, live))
        previous = None
        if window.current:
            previous = {name: int(mapping[f"previous_{name}"] or 0) for name in COUNTS}
        yield figures, bool(row.present), previous


def _without_jit() -> None:
    """PostgreSQL's JIT compiles the roll-up's hundreds of expressions on every call, which took
    longer than the aggregation itself (EXPLAIN ANALYZE: ~240 of 470 ms at 5,000 institutions);
    for the rest of this transaction only."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL jit = off"))


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


def signed_versions(scope: Scope, months: list[str]) -> dict[int, dict[str, int]]:
    """The latest signed version of each institution-month of `months` in `scope`, by institution
    and month: the version whose snapshot the roll-up serves (`_latest_signoffs`, as `_signed`)."""
    signoffs: Select[Any] = _latest_signoffs(
        months, MonthSignoff.institution_id, MonthSignoff.month, MonthSignoff.version
    ).join(Institution, Institution.id == MonthSignoff.institution_id)
    query = _scoped(signoffs, scope)
    versions: dict[int, dict[str, int]] = {}
    for institution_id, month, version in db.session.execute(query):
        versions.setdefault(institution_id, {})[month] = version
    return versions


def _topic_counts(scope: Scope, months: list[str], live: bool, at: datetime | None = None) -> Any:
    """Questions per topic in the scope, reached like the roll-up: the window's sessions, their
    visits, their questions. A signed institution-month counts with the topics signed with it,
    as its figures do with their snapshot, unless it was signed before topics were kept."""
    window = _Window(scope, "institution", months, at or clock_now(), snapshots=not live)
    sessions = _window_sessions(window)
    visits = (
        select(Visit.id, sessions.c.month)
        .join(sessions, sessions.c.id == Visit.session_id)
        .where(_within_ids(Visit.session_id, sessions.c.id))
        .cte("window_visit")
    )
    # Counted per institution-month first: the scope then joins a few thousand rows, not every
    # question, and a signed institution-month is replaced whole.
    per_month: Any = (
        select(
            Question.institution_id,
            visits.c.month,
            Question.topic_id,
            func.count().label("n"),
        )
        .join(visits, visits.c.id == Question.visit_id)
        .where(_within_ids(Question.visit_id, visits.c.id))
        .group_by(Question.institution_id, visits.c.month, Question.topic_id)
    )
    if window.snapshots:
        signed = (
            _latest_signoffs(
                months, MonthSignoff.id, MonthSignoff.institution_id, MonthSignoff.month
            )
            .where(MonthSignoff.topics_signed.is_(True))
            .subquery()
        )
        unsigned = per_month.outerjoin(
            signed,
            and_(
                signed.c.institution_id == Question.institution_id,
                signed.c.month == visits.c.month,
            ),
        ).where(signed.c.id.is_(None))
        as_signed = select(
            signed.c.institution_id,
            signed.c.month,
            MonthSignoffTopic.topic_id,
            MonthSignoffTopic.questions,
        ).join(MonthSignoffTopic, MonthSignoffTopic.signoff_id == signed.c.id)
        per_month = union_all(unsigned, as_signed)
    per_month = per_month.subquery()
    return (
        _scoped(
            select(per_month.c.topic_id, func.sum(per_month.c.n).label("n")).join(
                Institution, Institution.id == per_month.c.institution_id
            ),
            scope,
        )
        .group_by(per_month.c.topic_id)
        .subquery()
    )


def top_topics(
    scope: Scope,
    month: str,
    months: int = 1,
    limit: int = 10,
    *,
    live: bool = False,
    at: datetime | None = None,
) -> list[tuple[str, int]]:
    """The most raised topics; a signed month's as signed (see `_topic_counts`), or today's with
    `live=True`."""
    counts = _topic_counts(scope, month_list(month, months), live, at)
    query = (
        select(Topic, counts.c.n)
        .join(counts, counts.c.topic_id == Topic.id)
        .order_by(counts.c.n.desc(), Topic.id)
        .limit(limit)
    )
    return [(topic.name, int(n)) for topic, n in db.session.execute(query)]


def topic_questions(scope: Scope, month: str) -> dict[int, int]:
    """Today's questions of the month per topic id: what a sign-off records with its figures."""
    counts = _topic_counts(scope, [month], live=True)
    return {int(topic): int(n) for topic, n in db.session.execute(select(counts))}


def topic_heat(
    scope: Scope, month: str, months: int = 1, *, at: datetime | None = None
) -> tuple[list[str], list[tuple[str, list[int]]]]:
    """Topics x districts: how many questions each district raised on each topic, at the
    sessions that have started by `at` (as the roll-up counts a month in progress)."""
    start, end = _month_range(month, months)
    at = at or clock_now()
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
        .where(ScheduledSession.starts_at <= at if at < end else true())
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
    what an akimat filed stays what it filed (what is overdue or not closed, and the citizens'
    ratings and answers, are today's all the same); `live=True` reads today's rows instead.
    """
    if grouping not in GROUPINGS:
        raise ValueError(grouping)
    at = at or clock_now()
    # One statement for the period and the one before it: the change needs only their totals.
    figures, previous = figures_and_previous(
        scope,
        grouping,
        month,
        months,
        at=at,
        live=live,
        compare=grouping == "institution" and not live,
    )
    rows = sorted(figures, key=lambda r: r.label)
    total = Figures("total", "")
    for row in rows:
        total.add(row)
        if grouping == "institution":
            row.signed = row.signed_months == months
    return Rollup(
        scope,
        month,
        months,
        grouping,
        rows,
        total,
        previous,
        top_topics(scope, month, months, live=live, at=at),
        unfinished_until(month, months, at),
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
