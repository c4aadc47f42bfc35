"""Broker clocks: a MetaTrader 5 server's time as a named zone plus a fixed shift.

MT5 stamps ticks and bars with the broker's server clock, not UTC. Most brokers run "New York
close" time: New York's clock plus seven hours, so UTC+2 in the northern winter and UTC+3 while
the US keeps daylight saving (the switch follows the US dates, not Europe's). That is written
`America/New_York+7`. A broker that follows Europe's dates is `Europe/Athens`; one on a fixed
offset is `UTC+2`. The form is `<IANA zone>[+|-hours]`; the shift may be fractional.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

NS_PER_SECOND = 1_000_000_000
_SHIFT = re.compile(r"^(?P<zone>.+?)(?P<shift>[+-]\d+(?:\.\d+)?)$")


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_server_zone(text: str) -> tuple[ZoneInfo, timedelta]:
    """(zone, shift) of a broker clock written as `<IANA zone>[+|-hours]`; ValueError if not."""
    name = text.strip()
    zone = _zone(name) if name else None  # a whole IANA name, Etc/GMT-2 included
    if zone is not None:
        return zone, timedelta(0)
    m = _SHIFT.match(name)
    zone = _zone(m["zone"]) if m else None
    if m is None or zone is None:
        raise ValueError(
            f"{text!r} is not a broker clock: write an IANA zone with an optional shift in "
            "hours, e.g. America/New_York+7, Europe/Athens or UTC+2"
        )
    shift = timedelta(hours=float(m["shift"]))
    if abs(shift) > timedelta(hours=14):
        raise ValueError(f"a shift of more than 14 hours in {text!r} is not a clock")
    return zone, shift


def server_to_utc_ns(server_ns: int, zone: ZoneInfo, shift: timedelta) -> int:
    """A broker timestamp (nanoseconds of the server's wall clock, as MT5 gives them) in UTC."""
    wall = datetime(1970, 1, 1) + timedelta(microseconds=server_ns // 1_000)  # naive: server clock
    local = (wall - shift).replace(tzinfo=zone)
    utc = local.astimezone(UTC)
    rest = server_ns % 1_000
    return int((utc - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)) * 1_000 + rest


def utc_to_server_ns(utc_ns: int, zone: ZoneInfo, shift: timedelta) -> int:
    """A UTC timestamp as the broker's server clock reads it (the inverse of server_to_utc_ns;
    in a repeated server hour, the later reading)."""
    offset = datetime.fromtimestamp(utc_ns // NS_PER_SECOND, zone).utcoffset() or timedelta(0)
    return utc_ns + int((offset + shift) / timedelta(microseconds=1)) * 1_000
