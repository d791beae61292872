"""iCalendar (RFC 5545) export of sessions and bookings, with a VTIMEZONE for the local zone."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final
from zoneinfo import ZoneInfo

import icalendar

STATUSES: Final = frozenset({"CONFIRMED", "CANCELLED", "TENTATIVE"})
# The VTIMEZONE covers every event: from the first of January of the earliest event's year (a
# zone's history before it only confuses readers: Atyrau's ends on a DST observance from 2004,
# and vobject then read 2026 as +04) up to this bound.
_TZ_LAST: Final = date(2100, 1, 1)
_UID_PART: Final = re.compile(r"^[A-Za-z0-9._-]+$")


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


@dataclass(frozen=True)
class CalendarEvent:
    uid: str
    start: datetime
    end: datetime
    summary: str
    location: str = ""
    description: str = ""
    status: str = "CONFIRMED"
    sequence: int = 0
    url: str = ""
    last_modified: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware("start", self.start)
        _require_aware("end", self.end)
        if self.last_modified is not None:
            _require_aware("last_modified", self.last_modified)
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {sorted(STATUSES)}")
        if self.sequence < 0:
            raise ValueError("sequence must not be negative")
        if not self.uid or any(c.isspace() for c in self.uid):
            raise ValueError("uid must be non-empty without whitespace")


def event_uid(kind: str, ident: int | str, domain: str) -> str:
    """A UID that stays the same for one session or booking across exports and re-sends."""
    for part in (kind, str(ident), domain):
        if not _UID_PART.match(part):
            raise ValueError(f"invalid uid part {part!r}")
    return f"{kind}-{ident}@{domain}"


@functools.lru_cache(maxsize=64)
def _vtimezone_ical(tz: str, first_year: int) -> bytes:
    # Building a VTIMEZONE walks the tz database over decades; the text is cached and parsed
    # per calendar so that no mutable component is shared between calendars.
    first = date(first_year, 1, 1)
    component = icalendar.Timezone.from_tzid(tz, first_date=first, last_date=_TZ_LAST)
    return bytes(component.to_ical())


def vtimezone(tz: str, first_year: int) -> icalendar.Timezone:
    """The zone's VTIMEZONE from the first of January of `first_year` on."""
    ZoneInfo(tz)
    parsed = icalendar.Timezone.from_ical(_vtimezone_ical(tz, first_year))
    assert isinstance(parsed, icalendar.Timezone)
    return parsed


def render_calendar(
    events: Iterable[CalendarEvent],
    *,
    tz: str,
    name: str,
    prodid: str = "-//Ashyq Esik//receptions//EN",
    method: str | None = None,
    stamp: datetime | None = None,
) -> bytes:
    """One VCALENDAR with a VTIMEZONE for ``tz`` and a VEVENT per event.

    DTSTAMP is ``stamp`` when given, else the event's ``last_modified``, else its start: the
    output is then a pure function of its inputs, so repeated exports are byte-identical.
    """
    zone = ZoneInfo(tz)
    if stamp is not None:
        _require_aware("stamp", stamp)
    events = list(events)
    # An empty calendar still names its zone; its VTIMEZONE starts with Kazakhstan's last change.
    first_year = min((item.start.astimezone(zone).year for item in events), default=2024)
    calendar = icalendar.Calendar()
    calendar.add("prodid", prodid)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    if method is not None:
        calendar.add("method", method.upper())
    calendar.add("x-wr-calname", name)
    calendar.add("x-wr-timezone", tz)
    calendar.add_component(vtimezone(tz, first_year))
    for item in events:
        event = icalendar.Event()
        event.add("uid", item.uid)
        dtstamp = stamp or item.last_modified or item.start
        event.add("dtstamp", dtstamp.astimezone(UTC))
        event.add("dtstart", item.start.astimezone(zone))
        event.add("dtend", item.end.astimezone(zone))
        event.add("summary", item.summary)
        if item.location:
            event.add("location", item.location)
        if item.description:
            event.add("description", item.description)
        if item.url:
            event.add("url", item.url)
        event.add("status", item.status)
        event.add("sequence", item.sequence)
        if item.last_modified is not None:
            event.add("last-modified", item.last_modified.astimezone(UTC))
        calendar.add_component(event)
    return bytes(calendar.to_ical())
