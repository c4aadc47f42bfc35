"""The Binance feed: public spot market data over combined WebSocket streams, no key needed.

The streams are driven by our own WebSocket manager (data/ws.py: reconnects for ever, reconnects
a silent stream, rotates before Binance's 24-hour cut with an overlap, fails over to the
fallback endpoints, stays under Binance's limits); REST (exchangeInfo for tick sizes, lot steps
and minimum notionals) goes through python-binance (binance_rest.py). Frames become records in
binance_parse.py:

- quotes (TICK_DTYPE) from bookTicker, the stream that drives the pipeline. bookTicker carries
  no time, so a quote's `ts_event` is its receive time (wall clock), the same as `ts_recv`;
- trades (TRADE_DTYPE, `take_trades`) from the trade stream, at Binance's trade time: a trade
  is its own record, never a copy of a quote;
- `depth`: the latest top-20 book per symbol (a `Depth`), for the execution simulator;
- `klines`: the latest closed 1-minute kline per symbol, for checks;
- rejects (`take_rejects`): frames that never became a record, with the reason and raw text;
- failures (`take_failures`): each dropped, stale or refused connection, for the breaker.

Quotes wait in the parser until `batches` hands them on; past `max_pending` of them it keeps
the newest per symbol and counts the rest as conflated on the connection's health.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

import numpy as np

from mikrobot_tui.clock import Clock
from mikrobot_tui.config import BinanceSettings, Settings
from mikrobot_tui.data.feeds.binance_parse import BinanceDialect, BinanceParser, Kline, stream_names
from mikrobot_tui.data.feeds.binance_rest import fetch_instruments
from mikrobot_tui.data.feeds.health import FeedHealth
from mikrobot_tui.data.feeds.rejects import FeedReject
from mikrobot_tui.data.ws import Connect, WsManager, WsSettings
from mikrobot_tui.domain.instruments import Instrument
from mikrobot_tui.domain.market import NS_PER_SECOND, Depth


def ws_settings(b: BinanceSettings) -> WsSettings:
    return WsSettings(
        endpoints=(b.stream_url, *b.fallback_urls),
        stale_after_s=b.stale_after_s,
        rotate_after_s=b.rotate_after_h * 3600.0,
    )


class BinanceFeed:
    mode = "LIVE"
    name = "binance"

    def __init__(
        self,
        symbols: Sequence[str],
        instruments: dict[str, Instrument],
        streams: Sequence[str],
        ws: WsSettings,
        *,
        wall: Callable[[], int] = time.time_ns,
        connect: Connect | None = None,
        max_pending: int = 50_000,
        notes: Sequence[str] = (),
    ) -> None:
        if "bookTicker" not in streams:
            raise ValueError("bookTicker is the quote that drives the pipeline")
        self._symbols = list(symbols)
        self._instruments = {s: instruments[s] for s in self._symbols if s in instruments}
        self.parser = BinanceParser(
            self._symbols,
            streams,
            max_pending=max_pending,
            reset_after_ns=round(ws.stale_after_s * NS_PER_SECOND),
            on_conflated=self._conflated,
        )
        bundles = [stream_names(s, streams) for s in self._symbols]
        self.ws = WsManager(
            "binance",
            "binance",
            BinanceDialect(),
            bundles,
            ws,
            self.parser,
            wall=wall,
            connect=connect,
        )
        self._slot_of_sym = np.asarray(self.ws.slot_of_bundle, dtype=np.int64)
        self.notes = list(notes)
        if self.notes:
            self.ws.slots[0].meter.detail = self.notes[0]

    @property
    def symbols(self) -> list[str]:
        return self._symbols

    @property
    def depth(self) -> dict[str, Depth]:
        """The latest top-20 book per symbol."""
        return self.parser.depth

    @property
    def klines(self) -> dict[str, Kline]:
        """The latest closed 1-minute kline per symbol."""
        return self.parser.klines

    def instruments(self) -> dict[str, Instrument]:
        return dict(self._instruments)

    def health(self) -> list[FeedHealth]:
        return self.ws.health()

    def history(self) -> Iterator[np.ndarray]:
        """Nothing: the engine warms its strategies from the bars it stored on earlier runs."""
        return iter(())

    def take_trades(self) -> np.ndarray:
        return self.parser.take_trades()

    def books(self) -> dict[str, Depth]:
        """The latest top-20 book per symbol, a copy of the dict (the Depths are never
        written after they are made), for the execution simulator's `Books`."""
        return dict(self.parser.depth)

    def take_rejects(self) -> list[FeedReject]:
        return self.parser.rejects.take()

    def take_failures(self) -> list[tuple[int, str]]:
        return self.ws.take_failures()

    def _conflated(self, dropped_per_sym: np.ndarray) -> None:
        per_slot = np.bincount(
            self._slot_of_sym, weights=dropped_per_sym, minlength=len(self.ws.slots)
        )
        for slot, n in enumerate(per_slot.tolist()):
            if n:
                self.ws.conflated(slot, int(n))

    async def batches(self, stop: asyncio.Event) -> AsyncIterator[np.ndarray]:
        """The quotes as they arrive, one batch per wake-up, until `stop` is set."""
        wake = asyncio.Event()
        self.parser.wake = wake.set
        streams = asyncio.create_task(self.ws.run(stop), name="binance-streams")
        stopper = asyncio.create_task(stop.wait())
        for task in (streams, stopper):
            task.add_done_callback(lambda _: wake.set())
        try:
            while not stop.is_set() and not streams.done():
                await wake.wait()
                wake.clear()
                batch = self.parser.take_quotes()
                if batch is not None:
                    yield batch
            if streams.done() and not streams.cancelled():
                streams.result()  # the manager never ends by itself: say why it did
        finally:
            self.parser.wake = None
            for task in (streams, stopper):
                task.cancel()
            await asyncio.gather(streams, stopper, return_exceptions=True)


def from_settings(settings: Settings, clock: Clock, symbols: list[str] | None) -> BinanceFeed:
    """The feed of config.toml's [binance], on `symbols` when a mixed feed gives them.

    Reads the instruments from `binance.rest_url` first (a ConfigError names symbols that
    cannot be described); the streams open when the engine starts consuming `batches`.
    """
    b = settings.binance
    chosen = list(symbols) if symbols is not None else list(b.symbols)
    instruments, notes = fetch_instruments(b.rest_url, chosen)
    return BinanceFeed(chosen, instruments, b.streams, ws_settings(b), notes=notes)
