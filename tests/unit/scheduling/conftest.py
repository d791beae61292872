"""Shared fixtures for the scheduling unit tests."""

from __future__ import annotations

import pytest

from scheduling.calendar import WorkingCalendar


@pytest.fixture(scope="session")
def kz_calendar() -> WorkingCalendar:
    return WorkingCalendar.for_years(range(2023, 2028))
