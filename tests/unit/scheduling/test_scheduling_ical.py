"""iCalendar export."""

from __future__ import annotations

from datetime import UTC, datetime

import icalendar
import pytest

from scheduling.ical import CalendarEvent, event_uid, render_calendar


def _events() -> list[CalendarEvent]:
    return [
        CalendarEvent(
            uid=event_uid("session", 7, "ashyq-esik.kz"),
            start=datetime(2026, 11, 24, 5, 0, tzinfo=UTC),
            end=datetime(2026, 11, 24, 5, 15, tzinfo=UTC),
            summary="Приём граждан / Азаматтарды қабылдау",
            location="Алматы, Абай даңғылы 1",
            description="A long description " * 10,
        ),
        CalendarEvent(
            uid=event_uid("booking", "AB12", "ashyq-esik.kz"),
            start=datetime(2026, 12, 1, 5, 0, tzinfo=UTC),
            end=datetime(2026, 12, 1, 5, 15, tzinfo=UTC),
            summary="Cancelled",
            status="CANCELLED",
            sequence=3,
            last_modified=datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
        ),
    ]


def _render() -> bytes:
    return render_calendar(_events(), tz="Asia/Almaty", name="Әкімдік", method="PUBLISH")


def test_output_parses_back_with_one_vtimezone_and_local_times() -> None:
    parsed = icalendar.Calendar.from_ical(_render())
    assert len(parsed.walk("VTIMEZONE")) == 1
    assert parsed["X-WR-CALNAME"] == "Әкімдік"
    assert parsed["X-WR-TIMEZONE"] == "Asia/Almaty"
    assert parsed["METHOD"] == "PUBLISH"
    first, second = parsed.walk("VEVENT")
    assert first["DTSTART"].params["TZID"] == "Asia/Almaty"
    assert first.decoded("DTSTART").replace(tzinfo=None) == datetime(2026, 11, 24, 10, 0)
    assert first.decoded("DTSTART") == datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
    assert "DTSTAMP" in first
    assert str(second["STATUS"]) == "CANCELLED"
    assert second.decoded("SEQUENCE") == 3
    assert str(second["UID"]) == "booking-AB12@ashyq-esik.kz"


def test_lines_end_with_crlf_and_are_folded() -> None:
    raw = _render()
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 75 for line in raw.split(b"\r\n"))
    assert b"BEGIN:VTIMEZONE\r\nTZID:Asia/Almaty\r\n" in raw


def test_output_is_stable_across_calls() -> None:
    assert _render() == _render()
    assert event_uid("session", 7, "ashyq-esik.kz") == "session-7@ashyq-esik.kz"


def test_invalid_events_are_rejected() -> None:
    start = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        CalendarEvent("u@x", start, start, "s")
    with pytest.raises(ValueError):
        CalendarEvent("u@x", start.replace(tzinfo=None), start, "s")
    with pytest.raises(ValueError):
        CalendarEvent("u@x", start, start.replace(hour=6), "s", status="DONE")
    with pytest.raises(ValueError):
        event_uid("session", "a b", "x.kz")


KAZAKHSTAN_ZONES = (
    "Asia/Almaty",
    "Asia/Qostanay",
    "Asia/Qyzylorda",
    "Asia/Aqtobe",
    "Asia/Aqtau",
    "Asia/Atyrau",
    "Asia/Oral",
)


@pytest.mark.parametrize("tz", KAZAKHSTAN_ZONES)
def test_every_kazakhstan_zone_reads_back_at_the_same_instant(tz: str) -> None:
    """The VTIMEZONE starts with the year of the first event: a zone whose history ends on an
    old DST observance (Atyrau, Oral, Aqtau: +05 since 2004) was read an hour off by vobject."""
    import vobject

    moments = [datetime(2026, 6, 1, 5, 0, tzinfo=UTC), datetime(2024, 2, 27, 4, 0, tzinfo=UTC)]
    for start in moments:
        event = CalendarEvent(
            uid=event_uid("session", 1, "ashyq-esik.kz"),
            start=start,
            end=start.replace(hour=start.hour + 1),
            summary="Приём",
        )
        raw = render_calendar([event], tz=tz, name="n")
        assert icalendar.Calendar.from_ical(raw).walk("VEVENT")[0].decoded("DTSTART") == start
        if start.year > 2024:  # vobject reads only the last STANDARD observance of a zone
            assert vobject.readOne(raw.decode()).vevent.dtstart.value == start
