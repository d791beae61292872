"""Schedule specs expanded into sessions and slots."""

from __future__ import annotations

import ast
import dataclasses
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest

import scheduling
from scheduling.calendar import WorkingCalendar
from scheduling.errors import InvalidSchedule
from scheduling.slots import (
    DayOffPolicy,
    ScheduleKind,
    ScheduleSpec,
    SessionPlan,
    plan_sessions,
    validate_spec,
)


def reception(**changes: object) -> ScheduleSpec:
    spec = ScheduleSpec(
        kind=ScheduleKind.reception,
        rrule="FREQ=WEEKLY;BYDAY=TU",
        start_time=time(10, 0),
        end_time=time(12, 0),
        slot_minutes=15,
        capacity=1,
        tz="Asia/Almaty",
        valid_from=date(2026, 1, 1),
    )
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


def hhmm(moment: datetime) -> str:
    return moment.strftime("%H:%M")


def test_reception_slots_skip_the_break(kz_calendar: WorkingCalendar) -> None:
    spec = reception(breaks=((time(11, 0), time(11, 20)),))
    (session,) = plan_sessions(spec, date(2026, 11, 24), date(2026, 11, 24), kz_calendar)
    assert session.date == date(2026, 11, 24)
    assert session.start == datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
    assert session.end == datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    # 11:20-12:00 holds two 15-minute slots; the 10-minute tail is dropped.
    assert [hhmm(s.start) for s in session.slots] == [
        "05:00",
        "05:15",
        "05:30",
        "05:45",
        "06:20",
        "06:35",
    ]
    assert {s.capacity for s in session.slots} == {1}
    assert session.moved_from is None


def test_open_door_capacity_and_walk_in_reserve(kz_calendar: WorkingCalendar) -> None:
    spec = reception(
        kind=ScheduleKind.open_door,
        rrule="FREQ=MONTHLY;BYDAY=-1FR",
        slot_minutes=60,
        capacity=10,
        walk_in_places=5,
    )
    sessions = plan_sessions(spec, date(2026, 1, 1), date(2026, 2, 28), kz_calendar)
    assert [s.date for s in sessions] == [date(2026, 1, 30), date(2026, 2, 27)]
    assert all(len(s.slots) == 2 and {x.capacity for x in s.slots} == {10} for s in sessions)
    assert {s.walk_in_places for s in sessions} == {5}


def test_second_saturday_open_door_is_held_on_saturday(kz_calendar: WorkingCalendar) -> None:
    spec = reception(kind=ScheduleKind.open_door, rrule="FREQ=MONTHLY;BYDAY=2SA", capacity=20)
    sessions = plan_sessions(spec, date(2026, 1, 1), date(2026, 3, 31), kz_calendar)
    assert [s.date for s in sessions] == [date(2026, 1, 10), date(2026, 2, 14), date(2026, 3, 14)]


def test_holiday_moves_to_previous_working_day(kz_calendar: WorkingCalendar) -> None:
    # Monday 2026-03-09 is the observed Women's Day; Mondays 2026-03-23 is Nauryz.
    spec = reception(rrule="FREQ=WEEKLY;BYDAY=MO")
    sessions = plan_sessions(spec, date(2026, 3, 1), date(2026, 3, 31), kz_calendar)
    assert [(s.date, s.moved_from) for s in sessions] == [
        (date(2026, 3, 2), None),
        (date(2026, 3, 6), date(2026, 3, 9)),
        (date(2026, 3, 16), None),
        (date(2026, 3, 20), date(2026, 3, 23)),
        (date(2026, 3, 30), None),
    ]


def test_skip_policy_drops_holiday_sessions(kz_calendar: WorkingCalendar) -> None:
    spec = reception(rrule="FREQ=WEEKLY;BYDAY=MO", day_off_policy=DayOffPolicy.skip)
    sessions = plan_sessions(spec, date(2026, 3, 1), date(2026, 3, 31), kz_calendar)
    assert [s.date for s in sessions] == [date(2026, 3, 2), date(2026, 3, 16), date(2026, 3, 30)]


def test_move_into_range_from_next_month_is_planned_by_either_page(
    kz_calendar: WorkingCalendar,
) -> None:
    # Wednesday 2026-12-16 is Independence Day, so that session moves to Tuesday 2026-12-15.
    spec = reception(rrule="FREQ=WEEKLY;BYDAY=WE")
    whole = plan_sessions(spec, date(2026, 12, 1), date(2026, 12, 31), kz_calendar)
    pages = plan_sessions(spec, date(2026, 12, 1), date(2026, 12, 15), kz_calendar) + plan_sessions(
        spec, date(2026, 12, 16), date(2026, 12, 31), kz_calendar
    )
    assert whole == pages
    assert (date(2026, 12, 15), date(2026, 12, 16)) in [(s.date, s.moved_from) for s in whole]


def test_move_is_dropped_before_valid_from_or_onto_existing_session(
    kz_calendar: WorkingCalendar,
) -> None:
    spec = reception(rrule="FREQ=WEEKLY;BYDAY=MO", valid_from=date(2026, 3, 7))
    dates = [s.date for s in plan_sessions(spec, date(2026, 3, 1), date(2026, 3, 10), kz_calendar)]
    assert dates == []
    both = reception(rrule="FREQ=WEEKLY;BYDAY=FR,MO")
    moved = plan_sessions(both, date(2026, 3, 1), date(2026, 3, 10), kz_calendar)
    assert [(s.date, s.moved_from) for s in moved] == [
        (date(2026, 3, 2), None),
        (date(2026, 3, 6), None),
    ]


def test_exclusions_and_validity_range(kz_calendar: WorkingCalendar) -> None:
    spec = reception(
        valid_from=date(2026, 11, 5),
        valid_until=date(2026, 11, 24),
        exclusions=frozenset({date(2026, 11, 17)}),
    )
    sessions = plan_sessions(spec, date(2026, 11, 1), date(2026, 12, 31), kz_calendar)
    assert [s.date for s in sessions] == [date(2026, 11, 10), date(2026, 11, 24)]


def test_almaty_is_utc_plus_5_after_march_2024(kz_calendar: WorkingCalendar) -> None:
    (after,) = plan_sessions(reception(), date(2026, 11, 24), date(2026, 11, 24), kz_calendar)
    assert after.start == datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
    (before,) = plan_sessions(
        reception(valid_from=date(2024, 1, 1)), date(2024, 2, 13), date(2024, 2, 13), kz_calendar
    )
    assert before.start == datetime(2024, 2, 13, 4, 0, tzinfo=UTC)


def test_night_of_the_2024_offset_change_resolves_with_fold_0(
    kz_calendar: WorkingCalendar,
) -> None:
    # 2024-02-29 is a Thursday; 23:00-24:00 local happens twice (+06, then +05).
    spanning = reception(
        rrule="FREQ=WEEKLY;BYDAY=TH",
        valid_from=date(2024, 1, 1),
        start_time=time(22, 0),
        end_time=time(23, 59),
        slot_minutes=30,
    )
    (session,) = plan_sessions(spanning, date(2024, 2, 29), date(2024, 2, 29), kz_calendar)
    assert session.start == datetime(2024, 2, 29, 16, 0, tzinfo=UTC)
    assert session.end == datetime(2024, 2, 29, 17, 59, tzinfo=UTC)
    assert [hhmm(s.start) for s in session.slots] == ["16:00", "16:30", "17:00"]
    late = dataclasses.replace(spanning, start_time=time(23, 30), slot_minutes=15)
    (session,) = plan_sessions(late, date(2024, 2, 29), date(2024, 2, 29), kz_calendar)
    assert session.start == datetime(2024, 2, 29, 17, 30, tzinfo=UTC)
    assert [hhmm(s.start) for s in session.slots] == ["17:30"]
    assert plan_sessions(late, date(2024, 2, 29), date(2024, 2, 29), kz_calendar) == [session]
    (next_day,) = plan_sessions(
        reception(
            rrule="FREQ=WEEKLY;BYDAY=FR",
            valid_from=date(2024, 1, 1),
            start_time=time(0, 0),
            end_time=time(1, 0),
        ),
        date(2024, 3, 1),
        date(2024, 3, 1),
        kz_calendar,
    )
    assert next_day.start == datetime(2024, 2, 29, 19, 0, tzinfo=UTC)


def test_slots_in_a_dst_gap_are_dropped(kz_calendar: WorkingCalendar) -> None:
    # Europe/Berlin skips 02:00-03:00 on 2026-03-29 (a Sunday): the wall times 02:00 and 02:30
    # do not exist, so the slots that start or end there are dropped.
    spec = reception(
        rrule="FREQ=WEEKLY;BYDAY=SU",
        tz="Europe/Berlin",
        start_time=time(1, 0),
        end_time=time(4, 0),
        slot_minutes=30,
    )
    (session,) = plan_sessions(spec, date(2026, 3, 29), date(2026, 3, 29), kz_calendar)
    assert [hhmm(s.start) for s in session.slots] == ["00:00", "01:00", "01:30"]


def test_all_validation_errors_are_reported_at_once() -> None:
    spec = reception(
        rrule="FREQ=DAILY",
        start_time=time(12, 0),
        end_time=time(10, 0),
        capacity=0,
        valid_until=date(2025, 12, 31),
        breaks=((time(13, 0), time(14, 0)), (time(9, 0), time(8, 0))),
        walk_in_places=-1,
        tz="Mars/Olympus",
    )
    with pytest.raises(InvalidSchedule) as caught:
        validate_spec(spec)
    fields = {(e.code, e.field) for e in caught.value.errors}
    assert fields == {
        ("invalid_rrule", "rrule"),
        ("end_before_start", "end_time"),
        ("capacity_not_positive", "capacity"),
        ("valid_until_before_valid_from", "valid_until"),
        ("break_end_before_start", "breaks"),
        ("walk_in_places_negative", "walk_in_places"),
        ("unknown_timezone", "tz"),
    }


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"slot_minutes": 180}, "slot_longer_than_session", "slot_minutes"),
        ({"slot_minutes": 0}, "slot_not_positive", "slot_minutes"),
        ({"breaks": ((time(11, 30), time(12, 30)),)}, "break_outside_session", "breaks"),
        (
            {"breaks": ((time(10, 30), time(11, 0)), (time(10, 45), time(11, 15)))},
            "breaks_overlap",
            "breaks",
        ),
        (
            {"slot_minutes": 60, "breaks": ((time(10, 30), time(11, 30)),)},
            "no_slot_fits",
            "slot_minutes",
        ),
        ({"capacity": 3}, "reception_capacity_not_one", "capacity"),
        ({"walk_in_places": 2}, "walk_in_not_for_reception", "walk_in_places"),
    ],
)
def test_single_validation_errors(changes: dict[str, object], code: str, field: str) -> None:
    with pytest.raises(InvalidSchedule) as caught:
        validate_spec(reception(**changes))
    assert [(e.code, e.field) for e in caught.value.errors] == [(code, field)]


def test_plan_sessions_refuses_invalid_spec(kz_calendar: WorkingCalendar) -> None:
    with pytest.raises(InvalidSchedule):
        plan_sessions(reception(capacity=0), date(2026, 1, 1), date(2026, 1, 31), kz_calendar)


def test_scheduling_imports_no_web_or_database_code() -> None:
    forbidden = {"flask", "sqlalchemy", "wtforms", "receptions", "flask_sqlalchemy"}
    package = Path(scheduling.__file__).parent
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{source.name} imports {name}"


def _plan(day: int, start_hour: int, end_hour: int) -> SessionPlan:
    return SessionPlan(
        date=date(2026, 12, day),
        start=datetime(2026, 12, day, start_hour, tzinfo=UTC),
        end=datetime(2026, 12, day, end_hour, tzinfo=UTC),
        slots=(),
    )


def test_first_overlap_finds_the_earliest_clash_and_ignores_touching_sessions() -> None:
    ours = [_plan(3, 10, 12), _plan(1, 10, 12), _plan(8, 9, 10)]
    theirs = [_plan(1, 12, 13), _plan(8, 9, 11), _plan(3, 11, 12)]
    clash = scheduling.first_overlap(ours, theirs)
    assert clash == (_plan(3, 10, 12), _plan(3, 11, 12))
    assert scheduling.first_overlap([_plan(1, 10, 12)], [_plan(1, 12, 13)]) is None
    assert scheduling.first_overlap([], theirs) is None
