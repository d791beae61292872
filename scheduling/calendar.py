"""Kazakhstan working calendar: weekends, public holidays, transferred working days."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Final

import holidays

COUNTRY: Final = "KZ"
WEEKEND: Final = frozenset({5, 6})

# The holidays package ships KZ names in kk (its default language) and en_US only; Russian and
# any other locale fall back to Kazakh, the state language, rather than to English.
_HOLIDAY_LANGUAGES: Final[Mapping[str, str]] = {"kk": "kk", "en": "en_US"}
_FALLBACK_LANGUAGE: Final = "kk"

# A search for the previous working day that walks further than this means the calendar data is
# wrong (e.g. a whole year marked as days off), not that the answer is far away.
_MAX_SEARCH_DAYS: Final = 366


def _load_year(year: int, language: str | None) -> dict[date, str]:
    public = holidays.country_holidays(COUNTRY, years=year, language=language)
    return {day: name for day, name in public.items() if day.year == year}


def _library_working_days(year: int) -> frozenset[date]:
    # The package already knows some government transfers (e.g. Saturday 2024-05-04 worked for
    # Wednesday 2024-05-08 off); honour them next to those the admin enters.
    known: Iterable[date] = getattr(
        holidays.country_holidays(COUNTRY, years=year), "weekend_workdays", ()
    )
    return frozenset(d for d in known if d.year == year)


@dataclass(frozen=True)
class WorkingCalendar:
    """Which dates are days off in Kazakhstan.

    ``years`` are loaded eagerly by :meth:`for_years`; any other year is loaded lazily on first
    use and cached, so queries outside the preloaded range are still correct, only slower once.
    Equality compares the configuration (years and admin overrides), not the caches.
    """

    years: frozenset[int]
    transferred_working_days: frozenset[date] = frozenset()
    extra_days_off: frozenset[date] = frozenset()
    _holidays: dict[date, str] = field(default_factory=dict, compare=False, repr=False)
    _working: set[date] = field(default_factory=set, compare=False, repr=False)
    _loaded: set[int] = field(default_factory=set, compare=False, repr=False)
    _names: dict[tuple[str, int], dict[date, str]] = field(
        default_factory=dict, compare=False, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @classmethod
    def for_years(
        cls,
        years: Iterable[int],
        *,
        transferred_working_days: Iterable[date] = (),
        extra_days_off: Iterable[date] = (),
    ) -> WorkingCalendar:
        calendar = cls(
            years=frozenset(years),
            transferred_working_days=frozenset(transferred_working_days),
            extra_days_off=frozenset(extra_days_off),
        )
        for year in sorted(calendar.years):
            calendar._ensure_year(year)
        return calendar

    def _ensure_year(self, year: int) -> None:
        if year in self._loaded:
            return
        with self._lock:
            if year in self._loaded:
                return
            self._holidays.update(_load_year(year, None))
            self._working.update(_library_working_days(year))
            self._loaded.add(year)

    def is_public_holiday(self, d: date) -> bool:
        self._ensure_year(d.year)
        return d in self._holidays

    def is_day_off(self, d: date, *, open_weekdays: Iterable[int] = ()) -> bool:
        """True for a weekend, public holiday or extra day off, unless a transferred working day.

        ``open_weekdays`` (0 = Monday) are weekend days the caller works on as a rule, such as
        a school's Saturday open-door day; holidays and extra days off still close them.
        """
        if d in self.transferred_working_days:
            return False
        self._ensure_year(d.year)
        if d in self._working:
            return False
        if d in self.extra_days_off or d in self._holidays:
            return True
        return d.weekday() in WEEKEND and d.weekday() not in frozenset(open_weekdays)

    def is_working_day(self, d: date, *, open_weekdays: Iterable[int] = ()) -> bool:
        return not self.is_day_off(d, open_weekdays=open_weekdays)

    def previous_working_day(self, d: date, *, open_weekdays: Iterable[int] = ()) -> date:
        """The latest working day strictly before ``d``."""
        open_days = frozenset(open_weekdays)
        candidate = d
        for _ in range(_MAX_SEARCH_DAYS):
            candidate -= timedelta(days=1)
            if self.is_working_day(candidate, open_weekdays=open_days):
                return candidate
        raise ValueError(f"no working day within {_MAX_SEARCH_DAYS} days before {d}")

    def holiday_name(self, d: date, locale: str) -> str | None:
        """Name of the public holiday on ``d`` in ``locale`` (kk, ru, en), or None.

        Admin-entered extra days off have no name here; the Flask side stores their reason.
        """
        if not self.is_public_holiday(d):
            return None
        language = _HOLIDAY_LANGUAGES.get(locale, _FALLBACK_LANGUAGE)
        key = (language, d.year)
        names = self._names.get(key)
        if names is None:
            names = _load_year(d.year, language)
            self._names[key] = names
        return names.get(d, self._holidays[d])
