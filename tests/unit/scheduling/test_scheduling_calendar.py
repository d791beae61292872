"""Kazakhstan working calendar."""

from __future__ import annotations

from datetime import date

import pytest

from scheduling.calendar import WorkingCalendar


@pytest.mark.parametrize(
    "day",
    [
        date(2025, 1, 1),
        date(2025, 1, 2),
        date(2025, 3, 8),
        date(2025, 3, 21),
        date(2025, 3, 22),
        date(2025, 3, 23),
        date(2025, 5, 1),
        date(2025, 5, 7),
        date(2025, 5, 9),
        date(2025, 7, 6),
        date(2025, 8, 30),
        date(2025, 10, 25),
        date(2025, 12, 16),
        date(2025, 6, 6),  # Kurban ait 2025
    ],
)
def test_known_public_holidays_are_days_off(kz_calendar: WorkingCalendar, day: date) -> None:
    assert kz_calendar.is_public_holiday(day)
    assert kz_calendar.is_day_off(day)
    assert kz_calendar.holiday_name(day, "en")


def test_ordinary_weekday_is_working_and_weekend_is_off(kz_calendar: WorkingCalendar) -> None:
    assert kz_calendar.is_working_day(date(2026, 11, 24))  # Tuesday
    assert kz_calendar.is_day_off(date(2026, 11, 28))  # Saturday
    assert kz_calendar.holiday_name(date(2026, 11, 24), "kk") is None


def test_open_weekday_keeps_saturday_working_but_not_a_holiday(
    kz_calendar: WorkingCalendar,
) -> None:
    assert kz_calendar.is_working_day(date(2026, 11, 28), open_weekdays={5})
    assert kz_calendar.is_day_off(date(2025, 3, 22), open_weekdays={5})  # Nauryz on a Saturday


def test_transferred_working_day_overrides_weekend_and_extra_day_off_closes() -> None:
    calendar = WorkingCalendar.for_years(
        [2026],
        transferred_working_days=[date(2026, 11, 28)],
        extra_days_off=[date(2026, 11, 27)],
    )
    assert calendar.is_working_day(date(2026, 11, 28))
    assert calendar.is_day_off(date(2026, 11, 27))
    assert calendar.previous_working_day(date(2026, 11, 30)) == date(2026, 11, 28)
    assert calendar.previous_working_day(date(2026, 11, 28)) == date(2026, 11, 26)


def test_library_known_transfer_is_honoured(kz_calendar: WorkingCalendar) -> None:
    # Saturday 2024-05-04 was worked in exchange for Wednesday 2024-05-08 off.
    assert kz_calendar.is_working_day(date(2024, 5, 4))
    assert kz_calendar.is_day_off(date(2024, 5, 8))


def test_previous_working_day_skips_nauryz_and_weekend(kz_calendar: WorkingCalendar) -> None:
    # 2026-03-21..25 are Nauryz days (incl. observed); 2026-03-20 is a Friday.
    assert kz_calendar.previous_working_day(date(2026, 3, 26)) == date(2026, 3, 20)


def test_holiday_names_in_kk_en_and_ru_fallback(kz_calendar: WorkingCalendar) -> None:
    day = date(2026, 1, 1)
    assert kz_calendar.holiday_name(day, "kk") == "Жаңа жыл"
    assert kz_calendar.holiday_name(day, "en") == "New Year's Day"
    assert kz_calendar.holiday_name(day, "ru") == "Жаңа жыл"


def test_year_outside_preloaded_range_is_loaded_lazily() -> None:
    calendar = WorkingCalendar.for_years([2026])
    assert calendar.is_day_off(date(2030, 12, 16))
    assert calendar.is_working_day(date(2030, 12, 17))
    assert calendar == WorkingCalendar.for_years([2026])
