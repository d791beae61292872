"""Recurrence rules (RRULE text) for schedules: parsing, expansion to dates, kk/ru/en descriptions.

Supported subset of RFC 5545 RRULE, parsed with python-dateutil:

* ``FREQ=WEEKLY`` with ``BYDAY`` weekdays (no ordinals), optional ``INTERVAL`` and ``WKST``;
* ``FREQ=MONTHLY`` with ``BYDAY`` ordinals 1..4 or -1 (``BYDAY=-1FR``; ``BYDAY=FR;BYSETPOS=-1``
  is accepted and normalised to that form), optional ``INTERVAL``;
* the extension ``X-WORKING=1`` on ``FREQ=MONTHLY;BYDAY=<one weekday>`` meaning "the first such
  weekday of the month that is a working day" (``FREQ=MONTHLY;BYDAY=MO;X-WORKING=1`` is the first
  working Monday). RFC 5545 lets producers add ``X-`` parts, so the text stays one string in the
  database; dateutil does not know the part, so it is stripped before dateutil sees the rule.

``COUNT``, ``UNTIL`` and ``DTSTART`` are rejected: a schedule's bounds are its ``valid_from`` and
``valid_until`` fields, and two sources for one fact would disagree sooner or later.
``INTERVAL`` > 1 counts weeks or months from an anchor date (the schedule's ``valid_from``).

Weekend rule: a weekday that the rule names explicitly (``BYDAY=SA``) is worked on that
schedule, so Saturday open-door days are not days off; public holidays and admin-entered
extra days off always are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from typing import Final

from dateutil.rrule import rrule, rrulestr

from .calendar import WorkingCalendar
from .errors import INVALID_RRULE, SchedulingError

WEEKDAY_CODES: Final = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
ALLOWED_ORDINALS: Final = frozenset({1, 2, 3, 4, -1})
LOCALES: Final = frozenset({"kk", "ru", "en"})
# Fixed default anchor so that "every other Tuesday" does not depend on the queried range.
DEFAULT_ANCHOR: Final = date(2000, 1, 3)

_ALLOWED_PARTS: Final = frozenset({"FREQ", "INTERVAL", "BYDAY", "BYSETPOS", "WKST", "X-WORKING"})
_FORBIDDEN_PARTS: Final[Mapping[str, str]] = {
    "COUNT": "COUNT is not allowed; use valid_until",
    "UNTIL": "UNTIL is not allowed; use valid_until",
    "DTSTART": "DTSTART is not allowed; use valid_from",
}


class Frequency(StrEnum):
    weekly = "WEEKLY"
    monthly = "MONTHLY"


@dataclass(frozen=True, order=True)
class WeekdayRef:
    """A weekday (0 = Monday) with an optional ordinal within the month (-1 = last)."""

    weekday: int
    ordinal: int | None = None

    @property
    def code(self) -> str:
        prefix = "" if self.ordinal is None else str(self.ordinal)
        return f"{prefix}{WEEKDAY_CODES[self.weekday]}"


@dataclass(frozen=True)
class Recurrence:
    """A parsed, validated recurrence rule; build it with :func:`parse_rule`."""

    freq: Frequency
    days: tuple[WeekdayRef, ...]
    interval: int = 1
    working: bool = False
    wkst: int = 0

    @property
    def dateutil_text(self) -> str:
        """The rule without our extension, as dateutil and RFC 5545 consumers read it."""
        parts = [f"FREQ={self.freq.value}"]
        if self.interval != 1:
            parts.append(f"INTERVAL={self.interval}")
        parts.append("BYDAY=" + ",".join(day.code for day in self.days))
        if self.wkst != 0:
            parts.append(f"WKST={WEEKDAY_CODES[self.wkst]}")
        return ";".join(parts)

    @property
    def text(self) -> str:
        """Canonical rule text, suitable for storing and for re-parsing."""
        return self.dateutil_text + (";X-WORKING=1" if self.working else "")

    @property
    def named_weekdays(self) -> frozenset[int]:
        return frozenset(day.weekday for day in self.days)

    def __str__(self) -> str:
        return self.text


def _invalid(detail: str) -> SchedulingError:
    return SchedulingError(INVALID_RRULE, "rrule", detail)


def _split_parts(text: str) -> dict[str, str]:
    body = text.strip()
    if "\n" in body or "\r" in body:
        raise _invalid("one RRULE line expected")
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:") :]
    if not body:
        raise _invalid("empty rule")
    parts: dict[str, str] = {}
    for chunk in body.split(";"):
        if not chunk:
            continue
        name, sep, value = chunk.partition("=")
        name = name.strip().upper()
        if not sep or not value.strip():
            raise _invalid(f"malformed part {chunk!r}")
        if name in parts:
            raise _invalid(f"{name} given twice")
        parts[name] = value.strip().upper()
    return parts


def _parse_days(value: str) -> tuple[WeekdayRef, ...]:
    days: list[WeekdayRef] = []
    for item in value.split(","):
        item = item.strip()
        code, number = item[-2:], item[:-2]
        if code not in WEEKDAY_CODES:
            raise _invalid(f"invalid BYDAY {item!r}")
        try:
            ordinal = int(number) if number else None
        except ValueError as exc:
            raise _invalid(f"invalid BYDAY {item!r}") from exc
        days.append(WeekdayRef(WEEKDAY_CODES.index(code), ordinal))
    if len(set(days)) != len(days):
        raise _invalid("BYDAY repeats a day")
    return tuple(
        sorted(
            days, key=lambda d: (d.ordinal is not None and d.ordinal < 0, d.ordinal or 0, d.weekday)
        )
    )


def parse_rule(text: str) -> Recurrence:
    """Parse RRULE text (with or without ``RRULE:``) or raise ``SchedulingError(invalid_rrule)``."""
    parts = _split_parts(text)
    for name, reason in _FORBIDDEN_PARTS.items():
        if name in parts:
            raise _invalid(reason)
    unknown = sorted(set(parts) - _ALLOWED_PARTS)
    if unknown:
        raise _invalid("unsupported parts: " + ", ".join(unknown))
    try:
        freq = Frequency(parts.get("FREQ", ""))
    except ValueError as exc:
        raise _invalid("FREQ must be WEEKLY or MONTHLY") from exc
    try:
        interval = int(parts.get("INTERVAL", "1"))
    except ValueError as exc:
        raise _invalid("INTERVAL must be a whole number") from exc
    if not 1 <= interval <= 12:
        raise _invalid("INTERVAL must be between 1 and 12")
    wkst_code = parts.get("WKST", "MO")
    if wkst_code not in WEEKDAY_CODES:
        raise _invalid("invalid WKST")
    if "BYDAY" not in parts:
        raise _invalid("BYDAY is required")
    days = _parse_days(parts["BYDAY"])
    working = parts.get("X-WORKING") is not None
    if working and parts["X-WORKING"] != "1":
        raise _invalid("X-WORKING must be 1")

    if "BYSETPOS" in parts:
        try:
            setpos = int(parts["BYSETPOS"])
        except ValueError as exc:
            raise _invalid("BYSETPOS must be one number") from exc
        if freq is not Frequency.monthly or len(days) != 1 or days[0].ordinal is not None:
            raise _invalid("BYSETPOS is only supported with MONTHLY and one plain weekday")
        days = (WeekdayRef(days[0].weekday, setpos),)

    if freq is Frequency.weekly:
        if working:
            raise _invalid("X-WORKING needs FREQ=MONTHLY")
        if any(day.ordinal is not None for day in days):
            raise _invalid("weekly BYDAY takes no ordinals")
    elif working:
        if len(days) != 1 or days[0].ordinal is not None:
            raise _invalid("X-WORKING needs exactly one weekday without ordinal")
    elif any(day.ordinal not in ALLOWED_ORDINALS for day in days):
        raise _invalid("monthly BYDAY needs an ordinal 1..4 or -1, e.g. -1FR")

    rule = Recurrence(freq, days, interval, working, WEEKDAY_CODES.index(wkst_code))
    # dateutil has the last word on syntax; our own checks only narrow what it accepts.
    try:
        rrulestr(rule.dateutil_text, dtstart=datetime.combine(DEFAULT_ANCHOR, time()))
    except (ValueError, TypeError) as exc:
        raise _invalid(str(exc)) from exc
    return rule


def _expand(rule: Recurrence, dtstart: date, date_from: date, date_to: date) -> list[date]:
    expanded = rrulestr(rule.dateutil_text, dtstart=datetime.combine(dtstart, time()))
    assert isinstance(expanded, rrule)
    found = expanded.between(
        datetime.combine(date_from, time()), datetime.combine(date_to, time()), inc=True
    )
    return [moment.date() for moment in found]


def occurrences(
    rule: Recurrence,
    date_from: date,
    date_to: date,
    *,
    calendar: WorkingCalendar,
    anchor: date | None = None,
) -> list[date]:
    """Dates of ``rule`` within ``[date_from, date_to]``, sorted and without duplicates.

    ``anchor`` is the first date the rule may fire on and the origin of ``INTERVAL`` counting;
    schedules pass their ``valid_from``. The calendar only matters for ``X-WORKING`` rules.
    """
    start = DEFAULT_ANCHOR if anchor is None else anchor
    lo = max(date_from, start)
    if date_to < lo:
        return []
    # With INTERVAL=1 the origin does not change the result, so start near the range for speed.
    origin = start if rule.interval > 1 else lo
    if not rule.working:
        return _expand(rule, origin, lo, date_to)

    # Candidates are all the named weekdays of each month; keep the first working one. The
    # origin goes back to the 1st so a month that starts before `lo` is judged whole.
    origin = origin.replace(day=1)
    first_by_month: dict[tuple[int, int], date] = {}
    for day in _expand(rule, origin, lo.replace(day=1), date_to):
        key = (day.year, day.month)
        if key in first_by_month:
            continue
        if calendar.is_working_day(day, open_weekdays=rule.named_weekdays):
            first_by_month[key] = day
    return sorted(d for d in first_by_month.values() if lo <= d <= date_to)


def is_day_off_for(rule: Recurrence, d: date, calendar: WorkingCalendar) -> bool:
    """Whether ``d`` is a day off for a schedule following ``rule`` (see the weekend rule above)."""
    return calendar.is_day_off(d, open_weekdays=rule.named_weekdays)


def previous_working_day_for(rule: Recurrence, d: date, calendar: WorkingCalendar) -> date:
    return calendar.previous_working_day(d, open_weekdays=rule.named_weekdays)


def preset_rules() -> dict[str, str]:
    """Common rules the UI offers as one-click choices, keyed by a stable name."""
    return {
        "weekly_tuesday": "FREQ=WEEKLY;BYDAY=TU",
        "monthly_last_friday": "FREQ=MONTHLY;BYDAY=-1FR",
        "monthly_second_saturday": "FREQ=MONTHLY;BYDAY=2SA",
        "monthly_first_working_monday": "FREQ=MONTHLY;BYDAY=MO;X-WORKING=1",
    }


# --- descriptions -----------------------------------------------------------------------------

_EN_DAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EN_ORD: Final[Mapping[int, str]] = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}

_KK_DAYS: Final = ("дүйсенбі", "сейсенбі", "сәрсенбі", "бейсенбі", "жұма", "сенбі", "жексенбі")
# Third-person possessive ("айдың ... жұмасы"); every Kazakh weekday name ends in a vowel.
_KK_DAYS_POSS: Final = tuple(
    name + ("сы" if name.endswith(("а", "ы")) else "сі") for name in _KK_DAYS
)
_KK_ORD: Final[Mapping[int, str]] = {
    1: "бірінші",
    2: "екінші",
    3: "үшінші",
    4: "төртінші",
    -1: "соңғы",
}
_KK_NUMBERS: Final[Mapping[int, str]] = {2: "екі", 3: "үш", 4: "төрт", 5: "бес", 6: "алты"}

_RU_DAYS: Final = (
    "понедельник",
    "вторник",
    "среда",
    "четверг",
    "пятница",
    "суббота",
    "воскресенье",
)
_RU_DAYS_DATIVE_PL: Final = (
    "понедельникам",
    "вторникам",
    "средам",
    "четвергам",
    "пятницам",
    "субботам",
    "воскресеньям",
)
_RU_GENDER: Final = ("m", "m", "f", "m", "f", "f", "n")
_RU_EACH: Final[Mapping[str, str]] = {"m": "каждый", "f": "каждую", "n": "каждое"}
_RU_EACH_NOM: Final[Mapping[str, str]] = {"m": "каждый", "f": "каждая", "n": "каждое"}
_RU_SECOND_ACC: Final[Mapping[str, str]] = {"m": "второй", "f": "вторую", "n": "второе"}
_RU_ORD: Final[Mapping[int, Mapping[str, str]]] = {
    1: {"m": "первый", "f": "первая", "n": "первое"},
    2: {"m": "второй", "f": "вторая", "n": "второе"},
    3: {"m": "третий", "f": "третья", "n": "третье"},
    4: {"m": "четвёртый", "f": "четвёртая", "n": "четвёртое"},
    -1: {"m": "последний", "f": "последняя", "n": "последнее"},
}
_RU_WORKING: Final[Mapping[str, str]] = {"m": "рабочий", "f": "рабочая", "n": "рабочее"}
# Accusative (в субботу, во вторник) is only needed for "every <day>", hence two tables.
_RU_DAYS_ACC: Final = (
    "понедельник",
    "вторник",
    "среду",
    "четверг",
    "пятницу",
    "субботу",
    "воскресенье",
)


def _join(items: list[str], conjunction: str) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + f" {conjunction} " + items[-1]


def _ru_plural(n: int, one: str, few: str, many: str) -> str:
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def _describe_en(rule: Recurrence) -> str:
    if rule.freq is Frequency.weekly:
        names = _join([_EN_DAYS[d.weekday] for d in rule.days], "and")
        if rule.interval == 1:
            return f"every {names}"
        if rule.interval == 2 and len(rule.days) == 1:
            return f"every other {names}"
        period = "every other week" if rule.interval == 2 else f"every {rule.interval} weeks"
        return f"{period} on {names}"
    months = {1: "every month", 2: "every other month"}.get(
        rule.interval, f"every {rule.interval} months"
    )
    if rule.working:
        return f"first working {_EN_DAYS[rule.days[0].weekday]} of {months}"
    refs = [f"{_EN_ORD[d.ordinal or 1]} {_EN_DAYS[d.weekday]}" for d in rule.days]
    return f"{_join(refs, 'and')} of {months}"


def _describe_ru(rule: Recurrence) -> str:
    if rule.freq is Frequency.weekly:
        if len(rule.days) == 1:
            day = rule.days[0].weekday
            gender = _RU_GENDER[day]
            if rule.interval == 1:
                return f"{_RU_EACH[gender]} {_RU_DAYS_ACC[day]}"
            if rule.interval == 2:
                return f"{_RU_EACH[gender]} {_RU_SECOND_ACC[gender]} {_RU_DAYS_ACC[day]}"
        names = "по " + _join([_RU_DAYS_DATIVE_PL[d.weekday] for d in rule.days], "и")
        if rule.interval == 1:
            return names
        weeks = _ru_plural(rule.interval, "неделю", "недели", "недель")
        period = "раз в две недели" if rule.interval == 2 else f"раз в {rule.interval} {weeks}"
        return f"{period} {names}"
    if rule.working:
        day = rule.days[0].weekday
        gender = _RU_GENDER[day]
        phrase = f"{_RU_ORD[1][gender]} {_RU_WORKING[gender]} {_RU_DAYS[day]}"
        if rule.interval == 1:
            return f"{_RU_EACH_NOM[gender]} {phrase} месяца"
    else:
        refs = [
            f"{_RU_ORD[d.ordinal or 1][_RU_GENDER[d.weekday]]} {_RU_DAYS[d.weekday]}"
            for d in rule.days
        ]
        if rule.interval == 1:
            if len(refs) == 1:
                gender = _RU_GENDER[rule.days[0].weekday]
                return f"{_RU_EACH_NOM[gender]} {refs[0]} месяца"
            return f"{_join(refs, 'и')} каждого месяца"
        phrase = _join(refs, "и")
    months = _ru_plural(rule.interval, "месяц", "месяца", "месяцев")
    period = "раз в два месяца" if rule.interval == 2 else f"раз в {rule.interval} {months}"
    return f"{phrase} месяца, {period}"


def _describe_kk(rule: Recurrence) -> str:
    if rule.freq is Frequency.weekly:
        names = _join([_KK_DAYS[d.weekday] for d in rule.days], "және")
        if rule.interval == 1:
            return f"әр {names}"
        count = _KK_NUMBERS.get(rule.interval, str(rule.interval))
        suffix = "күні" if len(rule.days) == 1 else "күндері"
        return f"{count} аптада бір рет, {names} {suffix}"
    if rule.working:
        phrase = f"жұмыс күні болатын бірінші {_KK_DAYS_POSS[rule.days[0].weekday]}"
    else:
        phrase = _join(
            [f"{_KK_ORD[d.ordinal or 1]} {_KK_DAYS_POSS[d.weekday]}" for d in rule.days], "және"
        )
    if rule.interval == 1:
        return f"әр айдың {phrase}"
    count = _KK_NUMBERS.get(rule.interval, str(rule.interval))
    return f"{count} айда бір рет, айдың {phrase}"


def describe(rule: Recurrence, locale: str) -> str:
    """A short lower-case phrase for ``rule`` in kk, ru or en (capitalise it in the template)."""
    if locale == "kk":
        return _describe_kk(rule)
    if locale == "ru":
        return _describe_ru(rule)
    if locale == "en":
        return _describe_en(rule)
    raise ValueError(f"unsupported locale {locale!r}; expected one of {sorted(LOCALES)}")


def compose_rule(
    freq: Frequency,
    weekdays: Iterable[int],
    *,
    ordinal: int | None = None,
    working: bool = False,
    interval: int = 1,
) -> Recurrence:
    """Build a rule from the choices a form offers (frequency, weekdays, which one in the month).

    The result goes through :func:`parse_rule`, so a form can never store what parsing rejects.
    """
    chosen = sorted(set(weekdays))
    if freq is Frequency.weekly:
        days = tuple(WeekdayRef(w) for w in chosen)
    else:
        days = tuple(WeekdayRef(w, None if working else ordinal) for w in chosen)
    return parse_rule(Recurrence(freq, days, interval, working and freq is Frequency.monthly).text)
