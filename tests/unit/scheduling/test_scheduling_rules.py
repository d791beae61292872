"""Booking window, cancellation deadline and the reception desk's hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduling.rules import (
    BookingWindow,
    CancellationPolicy,
    ReceptionDesk,
    booking_status,
    is_bookable,
)

SLOT = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
WINDOW = BookingWindow(opens_days_ahead=30, closes_hours_before=2)


@pytest.mark.parametrize(
    ("now", "status"),
    [
        (SLOT - timedelta(days=31), "not_yet_open"),
        (SLOT - timedelta(days=30), "open"),
        (SLOT - timedelta(hours=2, seconds=1), "open"),
        (SLOT - timedelta(hours=2), "closed"),
        (SLOT - timedelta(minutes=1), "closed"),
        (SLOT, "past"),
        (SLOT + timedelta(days=1), "past"),
    ],
)
def test_booking_status_edges(now: datetime, status: str) -> None:
    assert booking_status(SLOT, now, WINDOW) == status
    assert is_bookable(SLOT, now, WINDOW) == (status == "open")


def test_status_compares_instants_across_zones() -> None:
    from zoneinfo import ZoneInfo

    almaty_now = datetime(2026, 11, 24, 8, 30, tzinfo=ZoneInfo("Asia/Almaty"))  # 03:30 UTC
    assert booking_status(SLOT, almaty_now, WINDOW) == "closed"


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError):
        booking_status(SLOT.replace(tzinfo=None), SLOT, WINDOW)
    with pytest.raises(ValueError):
        CancellationPolicy().can_cancel(SLOT, SLOT.replace(tzinfo=None))


def test_cancellation_deadline() -> None:
    policy = CancellationPolicy(hours_before=2)
    assert policy.deadline(SLOT) == datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    assert policy.can_cancel(SLOT, SLOT - timedelta(hours=3))
    assert not policy.can_cancel(SLOT, SLOT - timedelta(hours=2))


def test_invalid_windows_are_rejected() -> None:
    with pytest.raises(ValueError):
        BookingWindow(opens_days_ahead=-1)
    with pytest.raises(ValueError):
        BookingWindow(opens_days_ahead=0, closes_hours_before=2)
    with pytest.raises(ValueError):
        CancellationPolicy(hours_before=-1)


def test_the_desk_receives_from_half_an_hour_before_the_session_and_no_shows_from_the_slot() -> None:
    desk = ReceptionDesk()
    session_start = SLOT - timedelta(hours=2)
    assert desk.opens_at(session_start) == session_start - timedelta(minutes=30)
    assert not desk.is_open(session_start, session_start - timedelta(minutes=31))
    assert desk.is_open(session_start, session_start - timedelta(minutes=30))
    assert desk.is_open(session_start, SLOT + timedelta(days=1))  # closing is the close-out's
    assert not desk.can_mark_no_show(SLOT, SLOT - timedelta(seconds=1))
    assert desk.can_mark_no_show(SLOT, SLOT)


def test_the_desk_rejects_naive_times_and_negative_hours() -> None:
    with pytest.raises(ValueError):
        ReceptionDesk().is_open(SLOT.replace(tzinfo=None), SLOT)
    with pytest.raises(ValueError):
        ReceptionDesk().can_mark_no_show(SLOT, SLOT.replace(tzinfo=None))
    with pytest.raises(ValueError):
        ReceptionDesk(opens_minutes_before=-1)
