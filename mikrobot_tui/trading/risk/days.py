"""When a trading day starts: midnight in a configured time zone (FTMO: Europe/Prague).

Prague's midnight is 23:00 UTC in winter (CET, UTC+1) and 22:00 UTC in summer (CEST, UTC+2);
the zone's own rules decide, so the switch follows Europe's dates. Midnight always exists in
Europe's zones (the clocks change at 02:00 and 03:00 local time).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

NS_PER_SECOND = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _local_midnight_ns(day: datetime, zone: ZoneInfo) -> int:
    midnight = datetime.combine(day.date(), time(0), tzinfo=zone)
    return (midnight - _EPOCH) // timedelta(microseconds=1) * 1_000


def day_start_ns(ts_ns: int, zone: ZoneInfo) -> int:
    """UTC nanoseconds of the midnight (in `zone`) that starts the day holding `ts_ns`."""
    local = datetime.fromtimestamp(ts_ns // NS_PER_SECOND, zone)
    return _local_midnight_ns(local, zone)


def next_day_start_ns(ts_ns: int, zone: ZoneInfo) -> int:
    """UTC nanoseconds of the next midnight in `zone` after `ts_ns` (the day's end)."""
    local = datetime.fromtimestamp(ts_ns // NS_PER_SECOND, zone)
    # noon of the next day is a day later whatever the clocks did overnight
    return _local_midnight_ns(local.replace(hour=12) + timedelta(days=1), zone)
