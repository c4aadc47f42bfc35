"""Trading hours and the daily rollover, on New York's clock.

Forex, metals, energies and indices (as CFDs at an MT5 broker) trade from Sunday 17:00 to
Friday 17:00 America/New_York; crypto spot never closes. The daily rollover, when financing
(swap) is charged, is 17:00 New York: 22:00 UTC in the northern winter, 21:00 UTC while the US
keeps daylight saving. Holidays and a broker's daily break are not modelled.

Both questions are asked once per batch, so each keeps the window of time its last answer
holds for and answers from it until a timestamp falls outside.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from mikrobot_tui.domain.instruments import AssetClass

NEW_YORK = ZoneInfo("America/New_York")
ROLLOVER = time(17, 0)
NS_PER_SECOND = 1_000_000_000
_FRIDAY, _SATURDAY, _SUNDAY = 4, 5, 6


def ny_date(ts_ns: int) -> date:
    """New York's calendar date at a UTC nanosecond timestamp."""
    return datetime.fromtimestamp(ts_ns // NS_PER_SECOND, NEW_YORK).date()


def at_five_pm(day: date) -> int:
    """17:00 New York on `day`, in UTC nanoseconds (never in a DST gap: those are at 02:00)."""
    local = datetime.combine(day, ROLLOVER, tzinfo=NEW_YORK)
    return int(local.astimezone(UTC).timestamp()) * NS_PER_SECOND


def _week_open_at_or_before(ts_ns: int) -> int:
    """The last Sunday 17:00 New York at or before `ts_ns`."""
    day = ny_date(ts_ns)
    sunday = day - timedelta(days=(day.weekday() - _SUNDAY) % 7)
    opened = at_five_pm(sunday)
    return opened if opened <= ts_ns else at_five_pm(sunday - timedelta(days=7))


# (from_ns, to_ns, open): every ts in [from_ns, to_ns) has the answer `open`
_session: tuple[int, int, bool] = (0, 0, False)


def market_open(asset_class: AssetClass, ts_ns: int) -> bool:
    """Whether the venue of `asset_class` trades at `ts_ns` (closed from Friday 17:00 New York
    to Sunday 17:00 New York; crypto always open)."""
    global _session
    if asset_class is AssetClass.CRYPTO:
        return True
    lo, hi, is_open = _session
    if lo <= ts_ns < hi:
        return is_open
    week_open = _week_open_at_or_before(ts_ns)
    sunday = ny_date(week_open)
    closes = at_five_pm(sunday + timedelta(days=5))
    if ts_ns < closes:
        _session = (week_open, closes, True)
    else:
        _session = (closes, at_five_pm(sunday + timedelta(days=7)), False)
    return _session[2]


def closed_ns(lo_ns: int, hi_ns: int) -> int:
    """Nanoseconds of [lo_ns, hi_ns) during which the Sunday-to-Friday markets (forex, metals,
    indices, energies) are closed: the overlap with each Friday 17:00 to Sunday 17:00 New York.
    0 when hi_ns <= lo_ns. Pure (no cache), so any caller gets the same answer."""
    if hi_ns <= lo_ns:
        return 0
    total = 0
    sunday = ny_date(_week_open_at_or_before(lo_ns))
    while True:
        closes = at_five_pm(sunday + timedelta(days=5))
        if closes >= hi_ns:
            return total
        sunday += timedelta(days=7)
        reopens = at_five_pm(sunday)
        total += max(0, min(reopens, hi_ns) - max(closes, lo_ns))


def next_rollover(after_ns: int) -> int:
    """The first weekday (Monday to Friday) 17:00 New York strictly after `after_ns`."""
    day = ny_date(after_ns)
    while True:
        if day.weekday() < _SATURDAY:
            at = at_five_pm(day)
            if at > after_ns:
                return at
        day += timedelta(days=1)


def rollover_multiplier(rollover_ns: int, asset_class: AssetClass) -> int:
    """Nights a rollover charges: 3 on Wednesday (the weekend's value dates, MT5's triple
    swap), else 1; 0 for crypto (Binance spot has no financing)."""
    if asset_class is AssetClass.CRYPTO:
        return 0
    return 3 if ny_date(rollover_ns).weekday() == 2 else 1


# (from_ns, next_ns): no rollover lies in (from_ns, next_ns), and next_ns is one
_next: tuple[int, int] = (0, 0)


def rollovers_between(start_ns: int, end_ns: int) -> list[int]:
    """Rollover instants in (start_ns, end_ns]; cheap when there is none."""
    global _next
    lo, nxt = _next
    if not lo <= start_ns < nxt:
        nxt = next_rollover(start_ns)
        _next = (start_ns, nxt)
    out: list[int] = []
    while nxt <= end_ns:
        out.append(nxt)
        nxt = next_rollover(nxt)
    return out


# The three sessions traders speak of, each on its own city's clock so daylight saving moves
# it as it moves the desks there: 09:00-18:00 Tokyo, 08:00-17:00 London, 08:00-17:00 New York.
SESSION_HOURS: dict[str, tuple[ZoneInfo, time, time]] = {
    "asia": (ZoneInfo("Asia/Tokyo"), time(9, 0), time(18, 0)),
    "london": (ZoneInfo("Europe/London"), time(8, 0), time(17, 0)),
    "new_york": (NEW_YORK, time(8, 0), time(17, 0)),
}


# the minute last asked and its sessions: every decision asks, and sessions open and close on
# whole local hours and every zone's offset is whole minutes, so a UTC minute has one answer
_sessions_minute: tuple[int | None, tuple[str, ...]] = (None, ())


def sessions_open(ts_ns: int) -> tuple[str, ...]:
    """The sessions open at a UTC nanosecond timestamp (weekdays only, local time), in the
    order of SESSION_HOURS; London and New York both open is their overlap."""
    global _sessions_minute
    minute = ts_ns // (60 * NS_PER_SECOND)
    if _sessions_minute[0] == minute:
        return _sessions_minute[1]
    out = []
    for name, (zone, start, end) in SESSION_HOURS.items():
        local = datetime.fromtimestamp(ts_ns // NS_PER_SECOND, zone)
        if local.weekday() < _SATURDAY and start <= local.time() < end:
            out.append(name)
    _sessions_minute = (minute, tuple(out))
    return _sessions_minute[1]


def session_words(open_now: tuple[str, ...]) -> str:
    """How a trader names the moment: "London/New York overlap", "Asia", "off-session"."""
    if "london" in open_now and "new_york" in open_now:
        return "London/New York overlap"
    names = {"asia": "Asia", "london": "London", "new_york": "New York"}
    return " + ".join(names[s] for s in open_now) or "off-session"
