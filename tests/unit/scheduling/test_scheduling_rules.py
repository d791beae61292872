"""Booking window and cancellation deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduling.rules import BookingWindow, CancellationPolicy, booking_status, is_bookable

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
