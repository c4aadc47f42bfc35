"""What taking liquidity costs: through the book where the feed has depth, else at the touch
plus slippage and square-root impact.

With depth (Binance's top 20) a market order walks the book level by level and may fill only
in part, at the volume-weighted price of what it took. Without depth it fills in full at the
touch, plus slippage = `slippage_spread` x spread + `slippage_volatility` x volatility, plus
impact = `impact_k` x volatility x sqrt(lots beyond the touch / typical lots per minute),
where volatility is ATR(14) of the symbol's closed M1 bars, as of the fill's tick.
"""

from __future__ import annotations

import numpy as np

from mikrobot_tui.domain.market import BAR_DTYPE
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
        self._m1 = np.zeros(0, dtype=BAR_DTYPE)
        self._m1_closes = np.zeros(0, dtype=np.int64)
        self._m1_seen = 0

    def begin(self, m1: np.ndarray, m1_closes: np.ndarray) -> None:
        """A batch's closed M1 bars and the index of the tick that closed each."""
        self._m1, self._m1_closes, self._m1_seen = m1, m1_closes, 0

    def note_bars(self, m1: np.ndarray) -> None:
        """Closed M1 bars: the recent volatility that slippage and impact scale with."""
        for sym, high, low, close in zip(
            m1["sym"].tolist(),
            m1["high"].tolist(),
            m1["low"].tolist(),
            m1["close"].tolist(),
            strict=True,
        ):
            self.volatility.on_bar(sym, high, low, close)

    def catch_up(self, k: int) -> None:
        """Learn from the batch's bars closed at or before tick k."""
        upto = int(np.searchsorted(self._m1_closes, k, side="right"))
        if upto > self._m1_seen:
            self.note_bars(self._m1[self._m1_seen : upto])
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
