"""Refuse to plan on time-zone data that predates Kazakhstan's single time zone.

Since 2024-03-01 the whole country is at UTC+05 (tzdata 2024a). `zoneinfo` reads the system's
data before the `tzdata` package, so a host with older data would put every slot of the eastern
regions an hour late, silently; starting fails instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from typing import Final
from zoneinfo import ZoneInfo

# Zones that moved from +06 to +05 on 2024-03-01, and the other Kazakhstan zones (+05 already).
_MOVED: Final = ("Asia/Almaty", "Asia/Qostanay")
_BEFORE: Final = datetime(2024, 2, 29, 12)
_AFTER: Final = datetime(2024, 3, 1, 12)


class StaleTimeZoneData(RuntimeError):
    pass


def require_current_zone_data(zone: Callable[[str], tzinfo] = ZoneInfo) -> None:
    """Raise StaleTimeZoneData unless Almaty and Qostanay are +06 before 2024-03-01 and +05 after."""
    for name in _MOVED:
        before = zone(name).utcoffset(_BEFORE)
        after = zone(name).utcoffset(_AFTER)
        if (before, after) != (timedelta(hours=6), timedelta(hours=5)):
            raise StaleTimeZoneData(
                f"{name} is {after} on {_AFTER.date()} in this host's time-zone data (UTC+05 "
                "since 2024-03-01): install the current tzdata on the host, or leave PYTHONTZPATH "
                "empty so that the tzdata Python package is read"
            )
