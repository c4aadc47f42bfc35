"""Number formats shared by the panes: one place decides how a price or a P&L reads."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from mikrobot_tui.domain.instruments import default_instruments, step_decimals

_TICK_SIZE = {symbol: i.tick_size for symbol, i in default_instruments().items()}
_LOT_STEP = {symbol: i.lot_step for symbol, i in default_instruments().items()}
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def price_decimals(symbol: str, price: float) -> int:
    """Decimals of the symbol's tick size when the catalogue knows it, else by magnitude."""
    tick = _TICK_SIZE.get(symbol)
    if tick:
        return step_decimals(tick)
    magnitude = abs(price)
    if magnitude >= 1_000:
        return 2
    if magnitude >= 50:
        return 3
    return 5


def fmt_price(symbol: str, price: float | None) -> str:
    if price is None or not math.isfinite(price):
        return "-"
    return f"{price:,.{price_decimals(symbol, price)}f}"


def fmt_money(value: float) -> str:
    return f"{value:+,.2f}"


def fmt_qty(value: float, symbol: str | None = None) -> str:
    """A size with the decimals of the symbol's lot step (1.00 beside 1.02 lots, 0.001 BTC),
    so sizes line up; a symbol the catalogue does not know: as many as the value needs."""
    step = _LOT_STEP.get(symbol) if symbol is not None else None
    if step:
        return f"{value:,.{step_decimals(step)}f}"
    return f"{value:,.5f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:,.0f}"


def direction(value: float) -> str:
    """Semantic style name for a signed number: up, down or flat."""
    if value > 0:
        return "up"
    if value < 0:
        return "down"
    return "flat"


def sparkline(values: list[float] | tuple[float, ...], width: int) -> str:
    """The last `width` values as unicode blocks scaled between their min and max."""
    if width <= 0 or not values:
        return ""
    tail = [v for v in values[-width:] if math.isfinite(v)]
    if not tail:
        return ""
    low, high = min(tail), max(tail)
    if high == low:
        return SPARK_BLOCKS[len(SPARK_BLOCKS) // 2 - 1] * len(tail)
    top = len(SPARK_BLOCKS) - 1
    return "".join(SPARK_BLOCKS[round((v - low) / (high - low) * top)] for v in tail)


def as_of_time(ts_ns: int, now_ns: int) -> str:
    """When figures were written: the time if on the same UTC day as now, else date and time."""
    then = datetime.fromtimestamp(ts_ns / 1e9, tz=UTC)
    if then.date() == datetime.fromtimestamp(now_ns / 1e9, tz=UTC).date():
        return then.strftime("%H:%M:%S")
    return then.strftime("%Y-%m-%d %H:%M")
