"""What happens to accounts as the market moves, tick by tick: equity points, swap, margin.

- An equity point per account per minute of market time goes to the `equity` table: the
  account as of the last tick of each minute, keyed by the minute's start.
- At each daily rollover (17:00 New York) every open position is charged or paid its swap,
  triple on Wednesday for forex and metals (paper/costs.py), as a `swap` event.
- Margin level (equity over used margin, in percent) is computed for every tick while an
  account has positions, by array: falling below the account's margin call level is a
  `margin_call` event (and the positions pane turns red), climbing back a `margin_recovered`;
  reaching the stop-out level closes the largest losing position at market through the
  simulator, again and again at the same tick until the level recovers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.market import NS_PER_SECOND
from mikrobot_tui.domain.orders import Side
from mikrobot_tui.paper import booking, costs
from mikrobot_tui.paper.execution import BatchQuotes
from mikrobot_tui.paper.ledger import Ledger
from mikrobot_tui.paper.portfolio import AccountState
from mikrobot_tui.store.schema import COLUMNS

MINUTE = 60 * NS_PER_SECOND
TakeAtMarket = Callable[[str, str, int, int, str], None]  # account, position, index, ts, reason


class AccountWatch:
    def __init__(self, ledger: Ledger, take_at_market: TakeAtMarket) -> None:
        self.ledger = ledger
        self._take = take_at_market
        self.last_minute: int | None = None  # the minute of the last tick seen (market time)
        self.last_ts = 0  # the stream time of the last tick seen
        self._quotes: BatchQuotes | None = None
        self._stream = np.zeros(0, dtype=np.int64)
        self._minutes: list[int] = []  # batch indices that start a new minute
        self._rollovers: list[tuple[int, int]] = []  # (batch index, rollover time)
        self._carried_minute: int | None = None
        self._classes = {i.asset_class for i in ledger.instruments}
        self._margin: dict[str, tuple[tuple, int, int | None]] = {}  # account -> cached search
        self._paths: dict[tuple[str, str], list[tuple[int, bool]] | None] = {}

    # ---------------------------------------------------------------- a batch

    def begin(self, quotes: BatchQuotes, stream: np.ndarray) -> None:
        self._quotes, self._stream = quotes, stream
        self._margin.clear()
        self._ranges: dict[int, tuple[float, float, float, float]] = {}
        self._rate_ranges: dict[tuple[str, str], tuple[float, float]] = {}
        minutes = stream // MINUTE
        prev = np.r_[self.last_minute if self.last_minute is not None else minutes[0], minutes[:-1]]
        self._minutes = np.flatnonzero(minutes != prev).tolist()
        self._rollovers = []
        if self.last_ts and len(stream):
            found = {
                ts
                for ac in self._classes
                for ts, _ in costs.rollovers(self.last_ts, int(stream[-1]), ac)
            }
            self._rollovers = [(int(np.searchsorted(stream, ts)), ts) for ts in sorted(found)]
        self._carried_minute = self.last_minute
        if len(stream):
            self.last_minute = int(minutes[-1])
            self.last_ts = int(stream[-1])

    def changed(self, account: str) -> None:
        self._margin.pop(account, None)

    def next_index(self, at: int, stop: int) -> int | None:
        best: int | None = None
        while self._minutes and self._minutes[0] < at:
            self._minutes.pop(0)
        if self._minutes and self._minutes[0] < stop:
            best = self._minutes[0]
        while self._rollovers and self._rollovers[0][0] < at:
            self._rollovers.pop(0)
        if self._rollovers and self._rollovers[0][0] < stop:
            best = self._rollovers[0][0] if best is None else min(best, self._rollovers[0][0])
        for acct in self.ledger.state.accounts.values():
            j = self._margin_index(acct, at)
            if j is not None and j < stop and (best is None or j < best):
                best = j
        return best

    def apply(self, k: int) -> None:
        ts = int(self._stream[k])
        if self._minutes and self._minutes[0] == k:
            self._minutes.pop(0)
            self._equity_points(k)
        while self._rollovers and self._rollovers[0][0] == k:
            _, when = self._rollovers.pop(0)
            self._swap(k, ts, when)
        for acct in list(self.ledger.state.accounts.values()):
            if self._margin_index(acct, k) == k:
                self._margin_event(acct, k, ts)

    # ---------------------------------------------------------------- equity and swap

    def _equity_points(self, k: int) -> None:
        """The minute that ended before tick k, as of its last tick."""
        led = self.ledger
        before = k - 1
        if before >= 0:
            minute, quotes = int(self._stream[before]) // MINUTE, self._quotes
        elif self._carried_minute is not None:
            minute, quotes = self._carried_minute, None  # the last quotes: the batch before
        else:
            return
        rows = []
        for acct in led.state.accounts.values():
            m = led.margin(acct, quotes, max(before, 0))
            rows.append(
                (acct.name, minute * MINUTE, m.balance, m.equity, m.used_margin, m.margin_level)
            )
        led.writer.upsert("equity", COLUMNS["equity"], rows)

    def _swap(self, k: int, ts: int, when: int) -> None:
        led = self.ledger
        for acct in led.state.accounts.values():
            for pos in list(acct.positions.values()):
                if pos.ts_opened >= when:
                    continue
                inst = led.instrument(pos.symbol)
                mult = dict(costs.rollovers(when - 1, when, inst.asset_class)).get(when)
                if not mult:
                    continue
                rate = led.rate(inst.quote, acct.currency, self._quotes, k) or pos.rate_at_entry
                amount = costs.swap_amount(led.paper, inst, pos.side, pos.lots, mult, rate)
                if amount:
                    booking.charge_swap(led, acct, pos, amount, ts, mult)
            self.changed(acct.name)

    # ---------------------------------------------------------------- margin

    def _margin_index(self, acct: AccountState, at: int) -> int | None:
        """The first batch index at or after `at` where the account's margin state changes."""
        if not acct.positions and not acct.margin_call:
            return None
        version = (acct.balance, acct.margin_call, tuple(id(p) for p in acct.positions.values()))
        cached = self._margin.get(acct.name)
        # a search from a later index is still good: what lay between has been handled
        if cached is not None and cached[0] == version and (cached[2] is None or cached[2] >= at):
            return cached[2]
        j = self._search(acct, at)
        self._margin[acct.name] = (version, at, j)
        return j

    def _search(self, acct: AccountState, at: int) -> int | None:
        n = len(self._stream)
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

    def _cannot_change(self, acct: AccountState) -> bool:
        """True when even the batch's worst (and best) prices for the account's positions
        leave its margin state as it is: most accounts, most batches, with no array work."""
        led = self.ledger
        worst_equity = best_equity = acct.balance
        most_used = least_used = 0.0
        for pos in acct.positions.values():
            inst = led.instrument(pos.symbol)
            s = led.symbol_index.get(pos.symbol)
            if s is None:
                return False
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
        if not (np.isfinite(worst_equity) and np.isfinite(best_equity) and most_used > 0):
            return False
        terms = led.account_terms(acct.name)
        worst = worst_equity / most_used * 100
        if not acct.margin_call:
            return worst >= terms.margin_call_level
        best = best_equity / least_used * 100 if least_used > 0 else np.inf
        return worst > terms.stop_out_level and best < terms.margin_call_level

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
            rate = self._rate_array(src, dst, 0, len(self._stream))
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
            out = out / mid if invert else out * mid
        return out

    def _path(self, src: str, dst: str) -> list[tuple[int, bool]] | None:
        key = (src, dst)
        if key not in self._paths:
            self._paths[key] = _conversion_path(self.ledger, src, dst)
        return self._paths[key]

    def _margin_event(self, acct: AccountState, k: int, ts: int) -> None:
        led = self.ledger
        terms = led.account_terms(acct.name)
        for _ in range(len(acct.positions) + 1):
            m = led.margin(acct, self._quotes, k)
            level = m.margin_level
            figures = {
                "equity": m.equity,
                "used_margin": m.used_margin,
                "margin_level": level,
            }
            if level is not None and level <= terms.stop_out_level and acct.positions:
                loser = min(
                    acct.positions.values(), key=lambda p: led.open_pnl(acct, p, self._quotes, k)[1]
                )
                led.emit(
                    ts, EventKind.STOP_OUT, acct.name, {"position_id": loser.position_id, **figures}
                )
                self._take(acct.name, loser.position_id, k, ts, "stop_out")
                continue
            if not acct.margin_call and level is not None and level < terms.margin_call_level:
                led.emit(ts, EventKind.MARGIN_CALL, acct.name, figures)
            elif acct.margin_call and (level is None or level >= terms.margin_call_level):
                led.emit(ts, EventKind.MARGIN_RECOVERED, acct.name, figures)
            break
        j = self._search(acct, k + 1)
        version = (acct.balance, acct.margin_call, tuple(id(p) for p in acct.positions.values()))
        self._margin[acct.name] = (version, k + 1, j)


def _conversion_path(ledger: Ledger, src: str, dst: str) -> list[tuple[int, bool]] | None:
    """The symbols (and whether to invert their mid) that turn `src` into `dst`: a direct pair,
    its inverse, or a cross through USD, as `conversion_rate` tries them."""
    eq = ledger.equivalents
    src, dst = eq.get(src, src), eq.get(dst, dst)
    if src == dst:
        return []
    pairs = ledger.pairs

    def direct(a: str, b: str) -> list[tuple[int, bool]] | None:
        for key, invert in (((a, b), False), ((b, a), True)):
            symbol = pairs.get(key)
            if symbol is not None and symbol in ledger.symbol_index:
                return [(ledger.symbol_index[symbol], invert)]
        return None

    path = direct(src, dst)
    if path is not None:
        return path
    if "USD" not in (src, dst):
        first, second = direct(src, "USD"), direct("USD", dst)
        if first is not None and second is not None:
            return first + second
    return None
