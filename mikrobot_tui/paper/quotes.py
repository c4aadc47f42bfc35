"""The last clean quote of every symbol the feed carries, and how far market time has come.

Between batches this is the market as the engine knows it: what marks an open position, what
converts a P&L into the account currency, what a flatten is due after, what the ticks pane
shows. Only clean, non-spike ticks move it.
"""

from __future__ import annotations

import math

import numpy as np

from mikrobot_tui.domain.market import TICK_DTYPE

_FEW = 16


class LastQuotes:
    def __init__(self, symbols: list[str], market_now: int = 0) -> None:
        n = len(symbols)
        self.symbols = list(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.bid = np.full(n, np.nan)
        self.ask = np.full(n, np.nan)
        self.last = np.full(n, np.nan)
        self.ts = np.zeros((n, 2), dtype=np.int64)  # ts_event, ts_recv of the last quote
        self.open_mid = np.full(n, np.nan)  # first mid of the session: the change column's base
        self.market_now = market_now  # the latest event time of a clean tick (or event)

    def update(self, clean: np.ndarray) -> None:
        """Carry each symbol's last tick of a batch of clean ticks."""
        if len(clean) == 1 and clean.dtype == TICK_DTYPE:  # a quiet live feed's batch
            t, recv, s, bid, ask, last, _ = clean[0].item()
            self.bid[s], self.ask[s], self.last[s] = bid, ask, last
            self.ts[s] = (t, recv)
            if math.isnan(self.open_mid[s]):
                self.open_mid[s] = (bid + ask) / 2
            self.market_now = max(self.market_now, t)
            return
        syms = clean["sym"]
        # index of each symbol's last tick in the batch: on a few ticks (a quiet live feed) a
        # dict keeping the last write costs far less than np.unique; on thousands, far more
        if len(syms) <= _FEW:
            last_at = list({s: k for k, s in enumerate(syms.tolist())}.values())
        else:
            last_at = (len(syms) - 1 - np.unique(syms[::-1], return_index=True)[1]).tolist()
        for k in last_at:
            row = clean[k]
            s = int(row["sym"])
            self.bid[s], self.ask[s] = row["bid"], row["ask"]
            self.last[s] = row["last"]
            self.ts[s] = (row["ts_event"], row["ts_recv"])
            if math.isnan(self.open_mid[s]):
                first = int(np.flatnonzero(syms == s)[0])
                self.open_mid[s] = (clean["bid"][first] + clean["ask"][first]) / 2
        self.market_now = max(self.market_now, int(clean["ts_event"].max()))

    def restore(self, symbol: str, bid: float, ask: float, open_mid: float) -> None:
        """A quote from an earlier session (the `latest` table), so marks exist at once."""
        s = self.index.get(symbol)
        if s is not None:
            self.bid[s], self.ask[s], self.open_mid[s] = bid, ask, open_mid

    def quote(self, s: int) -> tuple[float, float] | None:
        if math.isnan(self.bid[s]):
            return None
        return float(self.bid[s]), float(self.ask[s])

    def mid(self, symbol: str) -> float | None:
        s = self.index.get(symbol)
        if s is None:
            return None
        q = self.quote(s)
        return None if q is None else (q[0] + q[1]) / 2
