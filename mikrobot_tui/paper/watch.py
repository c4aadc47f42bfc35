"""What happens to accounts as the market moves, tick by tick: equity points, swap, margin.

- An equity point per account per minute of market time goes to the `equity` table: the
  account as of the last tick of each minute, keyed by the minute's start.
- At each daily rollover (17:00 New York) every open position is charged or paid its swap,
  triple on Wednesday for forex and metals (paper/costs.py), as a `swap` event.
- Margin level (equity over used margin, in percent) is watched at every tick while an
  account has positions (paper/margin_scan.py finds where it changes): falling below the
  account's margin call level is a `margin_call` event (and the positions pane turns red),
  climbing back a `margin_recovered`; reaching the stop-out level closes the largest losing
  position at market through the simulator, again at the same tick until it recovers.
- The account limits (a `LimitsWatch`, engine/limits.py) judge each account at every equity
  point, after every step that changed a balance (`settle`), and at the first tick where its
  equity leaves the band its state holds in (paper/margin_scan.py `first_outside`): a loss
  limit bites at the tick it is crossed, in tick order with margin calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.instruments import AssetClass
from mikrobot_tui.domain.market import NS_PER_SECOND
from mikrobot_tui.paper import booking, costs
from mikrobot_tui.paper.execution import BatchQuotes
from mikrobot_tui.paper.ledger import Ledger
from mikrobot_tui.paper.margin_scan import MarginScan
from mikrobot_tui.paper.portfolio import AccountState
from mikrobot_tui.store.schema import COLUMNS

MINUTE = 60 * NS_PER_SECOND
TakeAtMarket = Callable[[str, str, int, int, str], None]  # account, position, index, ts, reason


class LimitsWatch(Protocol):
    """What the account watch asks of the account limits (engine/limits.py)."""

    def band(self, account: str) -> tuple[float, float] | None:
        """Equity (low, high) within which the account's limit state holds; None: no search."""
        ...

    def judge(self, acct: AccountState, quotes: BatchQuotes | None, k: int, ts: int) -> None:
        """Feed the account's balance and equity at batch tick k; log what changed."""
        ...

    def settle(self, quotes: BatchQuotes | None, k: int, ts: int) -> None:
        """Judge every account whose balance changed since it was last judged."""
        ...


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
        self._scan = MarginScan(ledger)
        self.limits: LimitsWatch | None = None
        self._band: dict[str, tuple[tuple, int, int | None]] = {}  # account -> cached search

    # ---------------------------------------------------------------- a batch

    def begin(self, quotes: BatchQuotes, stream: np.ndarray) -> None:
        self._quotes, self._stream = quotes, stream
        self._margin.clear()
        self._band.clear()
        self._scan.begin(quotes, len(stream))
        if len(stream) == 1:  # a quiet live feed's batch: the same in Python integers
            minute = int(stream[0]) // MINUTE
            new = self.last_minute is not None and minute != self.last_minute
            self._minutes = [0] if new else []
        else:
            minutes = stream // MINUTE
            prev = np.empty_like(minutes)  # np.r_ costs more than the rest on a small batch
            if len(prev):
                prev[0] = self.last_minute if self.last_minute is not None else minutes[0]
                prev[1:] = minutes[:-1]
            self._minutes = np.flatnonzero(minutes != prev).tolist()
        self._rollovers = []
        if self.last_ts and len(stream):
            # every class charged a swap rolls over at the same instants (costs.rollovers,
            # ascending), crypto at none: one class asks for all
            charged = next((ac for ac in self._classes if ac is not AssetClass.CRYPTO), None)
            if charged is not None:
                self._rollovers = [
                    (int(np.searchsorted(stream, ts)), ts)
                    for ts, _ in costs.rollovers(self.last_ts, int(stream[-1]), charged)
                ]
        self._carried_minute = self.last_minute
        if len(stream):
            self.last_ts = int(stream[-1])
            self.last_minute = self.last_ts // MINUTE

    def changed(self, account: str) -> None:
        self._margin.pop(account, None)
        self._band.pop(account, None)

    def settle(self, k: int) -> None:
        """After a step at batch tick k: the limits judge the balances it changed."""
        if self.limits is not None:
            self.limits.settle(self._quotes, k, int(self._stream[k]))

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
            for j in (self._margin_index(acct, at), self._band_index(acct, at)):
                if j is not None and j < stop and (best is None or j < best):
                    best = j
        return best

    def apply(self, k: int) -> None:
        ts = int(self._stream[k])
        limits = self.limits
        if self._minutes and self._minutes[0] == k:
            self._minutes.pop(0)
            self._equity_points(k)
            if limits is not None:  # at least once a minute: a new day starts on time
                for acct in list(self.ledger.state.accounts.values()):
                    limits.judge(acct, self._quotes, k, ts)
                    self._band.pop(acct.name, None)
        while self._rollovers and self._rollovers[0][0] == k:
            _, when = self._rollovers.pop(0)
            self._swap(k, ts, when)
        for acct in list(self.ledger.state.accounts.values()):
            if self._margin_index(acct, k) == k:
                self._margin_event(acct, k, ts)
        if limits is None:
            return
        limits.settle(self._quotes, k, ts)
        for acct in list(self.ledger.state.accounts.values()):
            if self._band_index(acct, k) == k:
                limits.judge(acct, self._quotes, k, ts)
                self._band_index(acct, k + 1, fresh=True)

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
        j = self._scan.search(acct, at)
        self._margin[acct.name] = (version, at, j)
        return j

    def _band_index(self, acct: AccountState, at: int, *, fresh: bool = False) -> int | None:
        """The first batch index at or after `at` where the account's equity leaves the band
        its limit state holds in (`fresh`: searched anew, what lay before has been judged)."""
        if self.limits is None:
            return None
        band = self.limits.band(acct.name)
        if band is None:
            return None
        if not acct.positions:  # the equity is the balance: a comparison, nothing to cache
            return self._scan.first_outside(acct, at, *band)
        version = (acct.balance, band, tuple(id(p) for p in acct.positions.values()))
        cached = self._band.get(acct.name)
        if (
            not fresh
            and cached is not None
            and cached[0] == version
            and (cached[2] is None or cached[2] >= at)
        ):
            return cached[2]
        j = self._scan.first_outside(acct, at, *band)
        self._band[acct.name] = (version, at, j)
        return j

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
        j = self._scan.search(acct, k + 1)
        version = (acct.balance, acct.margin_call, tuple(id(p) for p in acct.positions.values()))
        self._margin[acct.name] = (version, k + 1, j)
