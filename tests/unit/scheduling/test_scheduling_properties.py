"""Property tests: invariants of planned sessions and slots for random valid specs."""

from __future__ import annotations

from datetime import date, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduling.calendar import WorkingCalendar
from scheduling.recurrence import is_day_off_for, parse_rule
from scheduling.slots import (
    DayOffPolicy,
    ScheduleKind,
    ScheduleSpec,
    SessionPlan,
    calendar_change_moves,
    calendar_change_reach,
    first_overlap,
    plan_sessions,
    validate_spec,
)

CALENDAR = WorkingCalendar.for_years(
    range(2023, 2028),
    transferred_working_days=[date(2026, 11, 28)],
    extra_days_off=[date(2026, 6, 1), date(2026, 6, 2)],
)

RULES = st.sampled_from(
    [
        "FREQ=WEEKLY;BYDAY=TU",
        "FREQ=WEEKLY;BYDAY=MO,WE,FR",
        "FREQ=WEEKLY;BYDAY=SA,SU",
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=TH",
        "FREQ=MONTHLY;BYDAY=-1FR",
        "FREQ=MONTHLY;BYDAY=2SA",
        "FREQ=MONTHLY;BYDAY=1MO,3MO",
        "FREQ=MONTHLY;BYDAY=MO;X-WORKING=1",
        "FREQ=MONTHLY;INTERVAL=3;BYDAY=1WE",
    ]
)
DAYS = st.dates(min_value=date(2023, 6, 1), max_value=date(2027, 6, 30))


@st.composite
def specs(draw: st.DrawFn) -> ScheduleSpec:
    start_minutes = draw(st.integers(min_value=0, max_value=22 * 60)) // 5 * 5
    length = draw(st.integers(min_value=15, max_value=min(8 * 60, 24 * 60 - 1 - start_minutes)))
    end_minutes = start_minutes + length
    slot = draw(st.sampled_from([5, 10, 15, 20, 30, 45, 60]).filter(lambda m: m <= length))
    breaks: tuple[tuple[time, time], ...] = ()
    if draw(st.booleans()) and length >= 2 * slot + 10:
        b_start = draw(st.integers(min_value=start_minutes + slot, max_value=end_minutes - 10))
        b_end = draw(st.integers(min_value=b_start + 5, max_value=end_minutes))
        breaks = ((time(b_start // 60, b_start % 60), time(b_end // 60, b_end % 60)),)
    kind = draw(st.sampled_from(ScheduleKind))
    valid_from = draw(DAYS)
    valid_until = draw(st.none() | st.integers(0, 400).map(lambda n: valid_from + timedelta(n)))
    exclusions = frozenset(draw(st.lists(DAYS, max_size=5)))
    return ScheduleSpec(
        kind=kind,
        rrule=draw(RULES),
        start_time=time(start_minutes // 60, start_minutes % 60),
        end_time=time(end_minutes // 60, end_minutes % 60),
        slot_minutes=slot,
        capacity=1 if kind is ScheduleKind.reception else draw(st.integers(1, 50)),
        tz=draw(st.sampled_from(["Asia/Almaty", "Asia/Aqtobe", "UTC", "Europe/Berlin"])),
        valid_from=valid_from,
        valid_until=valid_until,
        breaks=breaks,
        exclusions=exclusions,
        day_off_policy=draw(st.sampled_from(DayOffPolicy)),
        walk_in_places=0 if kind is ScheduleKind.reception else draw(st.integers(0, 20)),
    )


def _check_invariants(
    spec: ScheduleSpec, sessions: list[SessionPlan], date_from: date, date_to: date
) -> None:
    rule = parse_rule(spec.rrule)
    previous_end = None
    for session in sessions:
        assert date_from <= session.date <= date_to
        assert spec.valid_from <= session.date
        assert spec.valid_until is None or session.date <= spec.valid_until
        assert session.date not in spec.exclusions
        assert not is_day_off_for(rule, session.date, CALENDAR)
        assert session.start.utcoffset() == timedelta(0)
        assert session.start < session.end
        if spec.day_off_policy is DayOffPolicy.skip:
            assert session.moved_from is None
        for slot in session.slots:
            assert session.start <= slot.start < slot.end <= session.end
            assert previous_end is None or previous_end <= slot.start
            assert slot.capacity == spec.capacity
            previous_end = slot.end
    assert [s.date for s in sessions] == sorted({s.date for s in sessions})


@settings(max_examples=100, deadline=None)
@given(specs(), DAYS, st.integers(min_value=0, max_value=120))
def test_planned_sessions_keep_their_invariants(
    spec: ScheduleSpec, date_from: date, span: int
) -> None:
    validate_spec(spec)
    date_to = date_from + timedelta(days=span)
    sessions = plan_sessions(spec, date_from, date_to, CALENDAR)
    _check_invariants(spec, sessions, date_from, date_to)
    assert plan_sessions(spec, date_from, date_to, CALENDAR) == sessions


@settings(max_examples=50, deadline=None)
@given(specs(), DAYS, st.integers(min_value=1, max_value=90), st.integers(1, 89))
def test_planning_in_pages_equals_planning_at_once(
    spec: ScheduleSpec, date_from: date, span: int, cut: int
) -> None:
    date_to = date_from + timedelta(days=span)
    middle = date_from + timedelta(days=min(cut, span) - 1)
    whole = plan_sessions(spec, date_from, date_to, CALENDAR)
    pages = plan_sessions(spec, date_from, middle, CALENDAR) + plan_sessions(
        spec, middle + timedelta(days=1), date_to, CALENDAR
    )
    assert whole == pages


@settings(max_examples=60, deadline=None)
@given(specs(), specs(), DAYS, st.integers(min_value=0, max_value=60))
def test_two_schedules_of_one_host_overlap_exactly_when_the_check_says_so(
    ours: ScheduleSpec, theirs: ScheduleSpec, date_from: date, span: int
) -> None:
    """The rule the service applies to one host's schedules, against a brute-force search."""
    date_to = date_from + timedelta(days=span)
    a = plan_sessions(ours, date_from, date_to, CALENDAR)
    b = plan_sessions(theirs, date_from, date_to, CALENDAR)
    pairs = [(x, y) for x in a for y in b if x.start < y.end and y.start < x.end]
    found = first_overlap(a, b)
    if not pairs:
        assert found is None
    else:
        assert found is not None and found in pairs
        assert found[0].start == min(x.start for x, _ in pairs)


def _toggled(calendar: WorkingCalendar, day: date) -> WorkingCalendar:
    """The calendar with `day` made a day off if it is a working day, a working day otherwise."""
    if calendar.is_day_off(day):
        return WorkingCalendar.for_years(
            calendar.years,
            transferred_working_days=calendar.transferred_working_days | {day},
            extra_days_off=calendar.extra_days_off - {day},
        )
    return WorkingCalendar.for_years(
        calendar.years,
        transferred_working_days=calendar.transferred_working_days - {day},
        extra_days_off=calendar.extra_days_off | {day},
    )


@settings(max_examples=150, deadline=None)
@given(specs(), DAYS)
def test_a_calendar_change_moves_sessions_only_within_its_reach(
    spec: ScheduleSpec, day: date
) -> None:
    after = _toggled(CALENDAR, day)
    first, last = calendar_change_reach(day, after)
    assert (first, last) == calendar_change_reach(day, CALENDAR)
    assert first < day <= last and last.month == day.month
    date_from, date_to = first - timedelta(days=70), last + timedelta(days=70)
    plans_before = plan_sessions(spec, date_from, date_to, CALENDAR)
    plans_after = plan_sessions(spec, date_from, date_to, after)
    outside = [(p.date, p.moved_from) for p in plans_before if not first <= p.date <= last] == [
        (p.date, p.moved_from) for p in plans_after if not first <= p.date <= last
    ]
    assert outside
    inside = plans_before != plans_after
    assert calendar_change_moves(spec, first, last, CALENDAR, after) is inside
