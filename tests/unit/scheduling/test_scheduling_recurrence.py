"""Recurrence rules: parsing, expansion and kk/ru/en descriptions."""

from __future__ import annotations

from datetime import date

import pytest

from scheduling.calendar import WorkingCalendar
from scheduling.errors import SchedulingError
from scheduling.recurrence import describe, occurrences, parse_rule, preset_rules


@pytest.mark.parametrize(
    "text",
    [
        "FREQ=WEEKLY;BYDAY=TU",
        "RRULE:FREQ=WEEKLY;BYDAY=TU",
        "rrule:freq=weekly;byday=tu",
        "FREQ=MONTHLY;BYDAY=-1FR",
        "FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1",
        "FREQ=MONTHLY;BYDAY=MO;X-WORKING=1",
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH",
    ],
)
def test_valid_rules_parse_and_round_trip(text: str) -> None:
    rule = parse_rule(text)
    assert parse_rule(rule.text) == rule


def test_bysetpos_is_normalised_to_ordinal_form() -> None:
    assert parse_rule("FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1") == parse_rule("FREQ=MONTHLY;BYDAY=-1FR")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "FREQ=DAILY",
        "FREQ=YEARLY;BYDAY=MO",
        "FREQ=WEEKLY;BYDAY=TU;COUNT=5",
        "FREQ=WEEKLY;BYDAY=TU;UNTIL=20261231",
        "DTSTART:20260101\nRRULE:FREQ=WEEKLY;BYDAY=TU",
        "FREQ=WEEKLY;BYDAY=TU;DTSTART=20260101",
        "FREQ=WEEKLY;BYDAY=XX",
        "FREQ=WEEKLY",
        "FREQ=WEEKLY;BYDAY=TU;INTERVAL=0",
        "FREQ=WEEKLY;BYDAY=TU;INTERVAL=two",
        "FREQ=WEEKLY;BYDAY=1TU",
        "FREQ=MONTHLY;BYDAY=TU",
        "FREQ=MONTHLY;BYDAY=5TU",
        "FREQ=MONTHLY;BYDAY=MO,TU;X-WORKING=1",
        "FREQ=WEEKLY;BYDAY=MO;X-WORKING=1",
        "FREQ=MONTHLY;BYDAY=MO;X-WORKING=2",
        "FREQ=WEEKLY;BYDAY=TU;BYHOUR=10",
        "FREQ=WEEKLY;FREQ=MONTHLY;BYDAY=TU",
        "garbage",
    ],
)
def test_invalid_rules_raise_invalid_rrule_on_rrule_field(text: str) -> None:
    with pytest.raises(SchedulingError) as caught:
        parse_rule(text)
    assert caught.value.code == "invalid_rrule"
    assert caught.value.field == "rrule"


def test_weekly_tuesday(kz_calendar: WorkingCalendar) -> None:
    rule = parse_rule("FREQ=WEEKLY;BYDAY=TU")
    got = occurrences(rule, date(2026, 11, 1), date(2026, 11, 30), calendar=kz_calendar)
    assert got == [date(2026, 11, 3), date(2026, 11, 10), date(2026, 11, 17), date(2026, 11, 24)]


def test_last_friday(kz_calendar: WorkingCalendar) -> None:
    rule = parse_rule("FREQ=MONTHLY;BYDAY=-1FR")
    got = occurrences(rule, date(2026, 1, 1), date(2026, 4, 30), calendar=kz_calendar)
    assert got == [date(2026, 1, 30), date(2026, 2, 27), date(2026, 3, 27), date(2026, 4, 24)]


def test_second_saturday(kz_calendar: WorkingCalendar) -> None:
    rule = parse_rule("FREQ=MONTHLY;BYDAY=2SA")
    got = occurrences(rule, date(2026, 1, 1), date(2026, 3, 31), calendar=kz_calendar)
    assert got == [date(2026, 1, 10), date(2026, 2, 14), date(2026, 3, 14)]


def test_first_working_monday_skips_capital_day(kz_calendar: WorkingCalendar) -> None:
    # 2026-07-06 (Capital Day) is the first Monday of July 2026 and a public holiday.
    rule = parse_rule("FREQ=MONTHLY;BYDAY=MO;X-WORKING=1")
    got = occurrences(rule, date(2026, 6, 1), date(2026, 8, 31), calendar=kz_calendar)
    assert got == [date(2026, 6, 1), date(2026, 7, 13), date(2026, 8, 3)]


def test_first_working_monday_does_not_start_mid_month(kz_calendar: WorkingCalendar) -> None:
    # Querying from July 10 must not turn July 13 (second Monday) into "the first".
    rule = parse_rule("FREQ=MONTHLY;BYDAY=MO;X-WORKING=1")
    assert occurrences(rule, date(2026, 7, 14), date(2026, 7, 31), calendar=kz_calendar) == []
    assert occurrences(rule, date(2026, 7, 10), date(2026, 7, 31), calendar=kz_calendar) == [
        date(2026, 7, 13)
    ]


def test_first_working_monday_honours_extra_day_off() -> None:
    calendar = WorkingCalendar.for_years([2026], extra_days_off=[date(2026, 6, 1)])
    rule = parse_rule("FREQ=MONTHLY;BYDAY=MO;X-WORKING=1")
    assert occurrences(rule, date(2026, 6, 1), date(2026, 6, 30), calendar=calendar) == [
        date(2026, 6, 8)
    ]


def test_every_other_tuesday_counts_from_anchor(kz_calendar: WorkingCalendar) -> None:
    rule = parse_rule("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU")
    anchor = date(2026, 11, 10)
    full = occurrences(
        rule, date(2026, 11, 1), date(2026, 12, 31), calendar=kz_calendar, anchor=anchor
    )
    assert full == [date(2026, 11, 10), date(2026, 11, 24), date(2026, 12, 8), date(2026, 12, 22)]
    later = occurrences(
        rule, date(2026, 12, 1), date(2026, 12, 31), calendar=kz_calendar, anchor=anchor
    )
    assert later == [date(2026, 12, 8), date(2026, 12, 22)]


def test_occurrence_range_is_inclusive_and_empty_when_reversed(
    kz_calendar: WorkingCalendar,
) -> None:
    rule = parse_rule("FREQ=WEEKLY;BYDAY=TU")
    day = date(2026, 11, 24)
    assert occurrences(rule, day, day, calendar=kz_calendar) == [day]
    assert occurrences(rule, day, date(2026, 11, 1), calendar=kz_calendar) == []


DESCRIPTIONS = {
    "FREQ=WEEKLY;BYDAY=TU": ("әр сейсенбі", "каждый вторник", "every Tuesday"),
    "FREQ=MONTHLY;BYDAY=-1FR": (
        "әр айдың соңғы жұмасы",
        "каждая последняя пятница месяца",
        "last Friday of every month",
    ),
    "FREQ=MONTHLY;BYDAY=2SA": (
        "әр айдың екінші сенбісі",
        "каждая вторая суббота месяца",
        "second Saturday of every month",
    ),
    "FREQ=MONTHLY;BYDAY=1MO": (
        "әр айдың бірінші дүйсенбісі",
        "каждый первый понедельник месяца",
        "first Monday of every month",
    ),
    "FREQ=MONTHLY;BYDAY=MO;X-WORKING=1": (
        "әр айдың жұмыс күні болатын бірінші дүйсенбісі",
        "каждый первый рабочий понедельник месяца",
        "first working Monday of every month",
    ),
    "FREQ=WEEKLY;BYDAY=TU,TH": (
        "әр сейсенбі және бейсенбі",
        "по вторникам и четвергам",
        "every Tuesday and Thursday",
    ),
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU": (
        "екі аптада бір рет, сейсенбі күні",
        "каждый второй вторник",
        "every other Tuesday",
    ),
    "FREQ=WEEKLY;BYDAY=WE": ("әр сәрсенбі", "каждую среду", "every Wednesday"),
    "FREQ=WEEKLY;BYDAY=SU": ("әр жексенбі", "каждое воскресенье", "every Sunday"),
}


@pytest.mark.parametrize("text", sorted(DESCRIPTIONS))
@pytest.mark.parametrize("locale", ["kk", "ru", "en"])
def test_describe_in_three_languages(text: str, locale: str) -> None:
    expected = dict(zip(("kk", "ru", "en"), DESCRIPTIONS[text], strict=True))[locale]
    assert describe(parse_rule(text), locale) == expected


def test_every_preset_parses_and_is_described(kz_calendar: WorkingCalendar) -> None:
    presets = preset_rules()
    assert set(presets) == {
        "weekly_tuesday",
        "monthly_last_friday",
        "monthly_second_saturday",
        "monthly_first_working_monday",
    }
    for text in presets.values():
        rule = parse_rule(text)
        assert text in DESCRIPTIONS
        for locale in ("kk", "ru", "en"):
            assert describe(rule, locale)
        assert occurrences(rule, date(2026, 1, 1), date(2026, 12, 31), calendar=kz_calendar)


def test_describe_rejects_unknown_locale() -> None:
    with pytest.raises(ValueError):
        describe(parse_rule("FREQ=WEEKLY;BYDAY=TU"), "de")
