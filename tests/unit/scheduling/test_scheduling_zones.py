"""The time-zone data check that runs when the application starts."""

from __future__ import annotations

from datetime import timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from scheduling.zones import StaleTimeZoneData, require_current_zone_data


def test_this_host_has_kazakhstan_s_single_time_zone() -> None:
    require_current_zone_data()


def test_data_from_before_2024a_is_refused() -> None:
    def old_data(name: str) -> timezone | ZoneInfo:
        # tzdata before 2024a: Almaty and Qostanay still at +06 after 1 March 2024.
        return (
            timezone(timedelta(hours=6))
            if name in ("Asia/Almaty", "Asia/Qostanay")
            else ZoneInfo(name)
        )

    with pytest.raises(StaleTimeZoneData, match="Asia/Almaty"):
        require_current_zone_data(old_data)
