"""What taking liquidity costs: through the book where the feed has depth, else at the touch
plus slippage and square-root impact.

With depth (Binance's top 20) a market order walks the book level by level and may fill only
in part, at the volume-weighted price of what it took. Without depth it fills in full at the
touch, plus slippage = `slippage_spread` x spread + `slippage_volatility` x volatility, plus
impact = `impact_k` x volatility x sqrt(lots beyond the touch / typical lots per minute),
where volatility is ATR(14) of the symbol's closed M1 bars, as of the fill's tick.
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np

from mikrobot_tui.domain.orders import Side
from mikrobot_tui.paper import fillmodel
from mikrobot_tui.paper.ledger import Ledger


class Pricing:
    def __init__(
        self,
        ledger: Ledger,
        books: fillmodel.Books | None = None,
        volatility: fillmodel.RecentVolatility | None = None,
    ) -> None:
        self.ledger = ledger
        self.books = books or fillmodel.Books()
        self.volatility = volatility or fillmodel.RecentVolatility()
        self._liquidity = [fillmodel.liquidity_for(ledger.paper, i) for i in ledger.instruments]
        # the batch's M1 bars as (sym, high, low, close) and the tick that closed each, as
        # lists: the venue catches up at every decision point, a bar or none at a time
        self._m1: list[tuple[int, float, float, float]] = []
        self._m1_closes: list[int] = []
        self._m1_seen = 0

    def begin(self, m1: np.ndarray, m1_closes: np.ndarray) -> None:
        """A batch's closed M1 bars and the index of the tick that closed each."""
        if not len(m1):  # most small batches close none
            self._m1, self._m1_closes, self._m1_seen = [], [], 0
            return
        self._m1 = _volatility_rows(m1)
        self._m1_closes, self._m1_seen = m1_closes.tolist(), 0

    def note_bars(self, m1: np.ndarray) -> None:
        """Closed M1 bars: the recent volatility that slippage and impact scale with."""
        for row in _volatility_rows(m1):
            self.volatility.on_bar(*row)

    def catch_up(self, k: int) -> None:
        """Learn from the batch's bars closed at or before tick k."""
        upto = bisect_right(self._m1_closes, k)
        if upto > self._m1_seen:
            for row in self._m1[self._m1_seen : upto]:
                self.volatility.on_bar(*row)
            self._m1_seen = upto

    def volatility_at(self, sym: int, k: int) -> float:
        """The volatility as of batch tick k: bars closed at or before it count."""
        self.catch_up(k)
        return self.volatility.value(sym)

    def take(
        self,
        symbol: str,
        side: Side,
        lots: float,
        bid: float,
        ask: float,
        k: int,
        ts: int,
        limit: float | None,
    ) -> tuple[float, float]:
        """(lots that fill, average price) of taking `lots` now, never worse than `limit`."""
        levels = self.books.levels(symbol, side, ts)
        if levels is not None:
            return fillmodel.walk_book(levels, lots, limit, side)
        sym = self.ledger.symbol_index[symbol]
        vol = self.volatility_at(sym, k)
        touch_lots, typical = self._liquidity[sym]
        paper = self.ledger.paper
        slip = fillmodel.slippage(ask - bid, vol, paper)
        slip += fillmodel.impact(lots, touch_lots, typical, vol, paper.impact_k)
        price = ask + slip if side is Side.BUY else bid - slip
        if limit is not None:
            price = min(price, limit) if side is Side.BUY else max(price, limit)
        return lots, price


def _volatility_rows(m1: np.ndarray) -> list[tuple[int, float, float, float]]:
    """(sym, high, low, close) of each bar, as the volatility model takes them."""
    return list(
        zip(
            m1["sym"].tolist(),
            m1["high"].tolist(),
            m1["low"].tolist(),
            m1["close"].tolist(),
            strict=True,
        )
    )
