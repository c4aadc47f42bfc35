"""Where in a batch an account's margin state changes, by array, without a loop over ticks.

Margin level = equity / used margin x 100 at every tick while an account has positions:
equity marks each position at the bid (a long) or the ask (a short), used margin values it at
the mid over its leverage, both converted through the batch's quotes by the same path as
`conversion_rate` (a position's rate at entry where none is known). Most batches are ruled out
first from the batch's lowest and highest prices alone; the rest are searched a growing
window at a time, since the next change is usually near when events are dense.

The same equity arrays find where an account's equity leaves a band (`first_outside`): the
account limits' floors and REDUCING threshold (engine/limits.py), so a loss limit bites at the
tick the equity crosses it, whatever the batching.
"""

from __future__ import annotations

import numpy as np

from mikrobot_tui.domain.instruments import conversion_paths
from mikrobot_tui.domain.orders import Side
from mikrobot_tui.paper.execution import BatchQuotes
from mikrobot_tui.paper.ledger import Ledger
from mikrobot_tui.paper.portfolio import AccountState


class MarginScan:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._quotes: BatchQuotes | None = None
        self._n = 0
        self._ranges: dict[int, tuple[float, float, float, float]] = {}
        self._rate_ranges: dict[tuple[str, str], tuple[float, float]] = {}
        self._paths: dict[tuple[str, str], list[tuple[int, bool]] | None] = {}

    def begin(self, quotes: BatchQuotes, n: int) -> None:
        self._quotes, self._n = quotes, n
        self._ranges.clear()
        self._rate_ranges.clear()

    def search(self, acct: AccountState, at: int) -> int | None:
        """The first batch index at or after `at` where the account's margin state changes:
        below its margin call level, back above it, or at its stop-out level."""
        n = self._n
        if at >= n:
            return None
        if not acct.positions:
            return at if acct.margin_call else None  # nothing open: the call is over
        if self._cannot_change(acct):
            return None
        # the next change is usually near when events are dense: look a little way first
        a, width = at, 256
        while a < n:
            b = min(n, a + width)
            j = self._first_change(acct, a, b)
            if j is not None:
                return j
            a, width = b, width * 4
        return None

    def first_outside(self, acct: AccountState, at: int, lo: float, hi: float) -> int | None:
        """The first batch index at or after `at` where the account's equity is below `lo` or
        above `hi`; None when it stays within them to the batch's end."""
        n = self._n
        if at >= n:
            return None
        if not acct.positions:
            return at if not lo <= acct.balance <= hi else None
        bounds = self._bounds(acct)
        if bounds is not None and bounds[0] >= lo and bounds[1] <= hi:
            return None  # even the batch's extremes stay inside: no array work
        a, width = at, 256
        while a < n:
            b = min(n, a + width)
            equity, _ = self._arrays(acct, a, b)
            out = (equity < lo) | (equity > hi)
            if out.any():
                return a + int(np.argmax(out))
            a, width = b, width * 4
        return None

    def _cannot_change(self, acct: AccountState) -> bool:
        """True when even the batch's worst (and best) prices for the account's positions
        leave its margin state as it is: most accounts, most batches, with no array work."""
        bounds = self._bounds(acct)
        if bounds is None:
            return False
        worst_equity, best_equity, most_used, least_used = bounds
        if not (np.isfinite(worst_equity) and np.isfinite(best_equity) and most_used > 0):
            return False
        terms = self.ledger.account_terms(acct.name)
        worst = worst_equity / most_used * 100
        if not acct.margin_call:
            return worst >= terms.margin_call_level
        best = best_equity / least_used * 100 if least_used > 0 else np.inf
        return worst > terms.stop_out_level and best < terms.margin_call_level

    def _bounds(self, acct: AccountState) -> tuple[float, float, float, float] | None:
        """(lowest equity, highest equity, most and least used margin) the batch's extreme
        prices allow; None when a position's symbol is not the feed's."""
        led = self.ledger
        worst_equity = best_equity = acct.balance
        most_used = least_used = 0.0
        for pos in acct.positions.values():
            inst = led.instrument(pos.symbol)
            s = led.symbol_index.get(pos.symbol)
            if s is None:
                return None
            bid_lo, bid_hi, ask_lo, ask_hi = self._range(s)
            rate_lo, rate_hi = self._rate_range(inst.quote, acct.currency, pos.rate_at_entry)
            value = inst.value_per_price_unit(pos.lots)
            lo, hi = (bid_lo, bid_hi) if pos.side is Side.BUY else (ask_lo, ask_hi)
            moves = [
                (m - pos.entry_price) * pos.side.sign * value * r
                for m in (lo, hi)
                for r in (rate_lo, rate_hi)
            ]
            worst_equity += min(moves)
            best_equity += max(moves)
            leverage = led.leverage(acct.name, inst)
            most_used += value * (bid_hi + ask_hi) / 2 * rate_hi / leverage
            least_used += value * (bid_lo + ask_lo) / 2 * rate_lo / leverage
        if not (np.isfinite(worst_equity) and np.isfinite(best_equity)):
            return None
        return worst_equity, best_equity, most_used, least_used

    def _range(self, s: int) -> tuple[float, float, float, float]:
        """The symbol's lowest and highest bid and ask over the batch (with the carried quote)."""
        got = self._ranges.get(s)
        if got is None:
            assert self._quotes is not None
            own = self._quotes.ticks[self._quotes.indices(s)]
            carried = self._quotes.quote_at(s, -1)  # the quote before the batch, if any
            bid, ask = own["bid"], own["ask"]
            if len(own) == 0 and carried is None:
                got = (np.nan,) * 4
            elif len(own) == 0:
                got = (carried[0], carried[0], carried[1], carried[1])
            else:
                got = (float(bid.min()), float(bid.max()), float(ask.min()), float(ask.max()))
                if carried is not None:
                    got = (
                        min(got[0], carried[0]),
                        max(got[1], carried[0]),
                        min(got[2], carried[1]),
                        max(got[3], carried[1]),
                    )
            self._ranges[s] = got
        return got

    def _rate_range(self, src: str, dst: str, fallback: float) -> tuple[float, float]:
        path = self._path(src, dst)
        if path == []:
            return 1.0, 1.0
        key = (src, dst)
        got = self._rate_ranges.get(key)
        if got is None:
            rate = self._rate_array(src, dst, 0, self._n)
            rate = np.where(np.isnan(rate), fallback, rate)
            got = (float(rate.min()), float(rate.max()))
            self._rate_ranges[key] = got
        return got

    def _first_change(self, acct: AccountState, a: int, b: int) -> int | None:
        equity, used = self._arrays(acct, a, b)
        terms = self.ledger.account_terms(acct.name)
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.where(used > 0, equity / used * 100, np.inf)
        out = level <= terms.stop_out_level
        if acct.margin_call:
            change = out | (level >= terms.margin_call_level)
        else:
            change = level < terms.margin_call_level
        if not change.any():
            return None
        return a + int(np.argmax(change))

    def _arrays(self, acct: AccountState, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        led = self.ledger
        quotes = self._quotes
        assert quotes is not None
        equity = np.full(b - a, acct.balance, dtype=float)
        used = np.zeros(b - a)
        for pos in acct.positions.values():
            inst = led.instrument(pos.symbol)
            s = led.symbol_index.get(pos.symbol)
            if s is None:
                continue
            bid, ask = quotes.filled(s)
            bid, ask = bid[a:b], ask[a:b]
            mark = bid if pos.side is Side.BUY else ask
            if self._path(inst.quote, acct.currency) == []:
                rate: np.ndarray | float = 1.0  # the account's own currency
            else:
                rate = self._rate_array(inst.quote, acct.currency, a, b)
                rate = np.where(np.isnan(rate), pos.rate_at_entry, rate)
            value = inst.value_per_price_unit(pos.lots)
            pnl = (mark - pos.entry_price) * pos.side.sign * value * rate
            equity += np.where(np.isnan(pnl), 0.0, pnl)
            mid = (bid + ask) / 2
            mid = np.where(np.isnan(mid), pos.entry_price, mid)
            used += value * mid * rate / led.leverage(acct.name, inst)
        return equity, used

    def _rate_array(self, src: str, dst: str, a: int, b: int) -> np.ndarray:
        """The conversion rate at each batch index, by the same path `conversion_rate` takes."""
        path = self._path(src, dst)
        if path is None:
            return np.full(b - a, np.nan)
        assert self._quotes is not None
        out = np.ones(b - a)
        for s, invert in path:
            bid, ask = self._quotes.filled(s)
            mid = (bid[a:b] + ask[a:b]) / 2
            out = out * (1.0 / mid if invert else mid)
        return out

    def _path(self, src: str, dst: str) -> list[tuple[int, bool]] | None:
        key = (src, dst)
        if key not in self._paths:
            self._paths[key] = _conversion_path(self.ledger, src, dst)
        return self._paths[key]


def _conversion_path(ledger: Ledger, src: str, dst: str) -> list[tuple[int, bool]] | None:
    """The first of `conversion_paths` whose symbols this feed carries, by batch symbol."""
    index = ledger.symbol_index
    for path in conversion_paths(src, dst, ledger.pairs, ledger.equivalents):
        if all(symbol in index for symbol, _ in path):
            return [(index[symbol], invert) for symbol, invert in path]
    return None
