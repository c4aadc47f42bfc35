"""The embedded simulated market: realistic-looking quotes for every built-in instrument.

Per symbol: a log-mid random walk whose volatility clusters (a log-volatility AR(1) regime on a
100 ms grid, half-life about five minutes), Poisson tick arrivals whose rate rises with the
regime, spreads drawn per tick in a range typical of the asset class and widening with the
regime, prices on the instrument's tick grid (bid < ask always, except injected faults). Crypto
ticks carry a trade (`last` at the bid or the ask, a lognormal `volume` on the lot step); FX and
CFD ticks have last = volume = NaN. ts_recv = ts_event + a lognormal synthetic latency.

Generation runs on a fixed grid of blocks (30 s of simulated time, 300 steps of 100 ms), one
random generator per symbol seeded from (settings.seed, crc32(symbol)), so the ticks do not
depend on how `advance()` is called, nor on which other symbols are simulated.

Faults (settings.faults): each symbol starts a fault with probability `fault_rate` per simulated
second, one of: a spike (one tick 0.5-3 % off, then back), a gap (silent 6-20 s), a crossed
burst (1-3 ticks with bid > ask), a stale period (the quote frozen for 6-15 s while ticks keep
coming), a NaN price, a timestamp from the past (1-10 s early), an exact duplicate tick, a
latency burst (300-2000 ms extra for 2-10 s). The quality monitor sees every one of them.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from mikrobot_tui.config import SimSettings
from mikrobot_tui.domain.instruments import AssetClass, Instrument, step_decimals
from mikrobot_tui.domain.market import NS_PER_MS, NS_PER_SECOND, TICK_DTYPE

STEP_NS = 100 * NS_PER_MS
BLOCK_STEPS = 300
BLOCK_NS = STEP_NS * BLOCK_STEPS
_STEP_S = STEP_NS / NS_PER_SECOND
_REGIME_PHI = 0.5 ** (1.0 / 3000.0)  # half-life 300 s on the 100 ms grid
_REGIME_SD = 0.4  # stationary standard deviation of the log-volatility
_REGIME_SHOCK = _REGIME_SD * math.sqrt(1.0 - _REGIME_PHI**2)

FAULTS = ("spike", "gap", "crossed", "stale", "nan", "past", "duplicate", "latency")


@dataclass(frozen=True)
class Profile:
    mid: float
    spread: tuple[float, float]  # in price units
    rate: float  # ticks per second
    daily_vol: float  # standard deviation of a day's log return
    latency_ms: float  # median synthetic latency


PROFILES = {
    "EURUSD": Profile(1.08, (0.00006, 0.00010), 4.0, 0.005, 5.0),
    "GBPUSD": Profile(1.27, (0.00009, 0.00014), 4.0, 0.006, 5.0),
    "USDJPY": Profile(150.0, (0.008, 0.012), 4.0, 0.006, 5.0),
    "AUDUSD": Profile(0.66, (0.00008, 0.00012), 3.0, 0.007, 5.0),
    "USDCHF": Profile(0.88, (0.00010, 0.00016), 3.0, 0.005, 5.0),
    "EURJPY": Profile(162.5, (0.014, 0.020), 3.0, 0.006, 5.0),
    "XAUUSD": Profile(2400.0, (0.20, 0.30), 6.0, 0.010, 6.0),
    "XAGUSD": Profile(29.5, (0.020, 0.030), 4.0, 0.018, 6.0),
    "US30": Profile(39000.0, (2.0, 3.0), 6.0, 0.009, 6.0),
    "USOIL": Profile(78.0, (0.03, 0.04), 5.0, 0.020, 6.0),
    "BTCUSDT": Profile(65000.0, (0.01, 1.0), 15.0, 0.030, 15.0),
    "ETHUSDT": Profile(3400.0, (0.01, 0.2), 10.0, 0.040, 15.0),
}

_CLASS_DEFAULTS = {
    AssetClass.FOREX: Profile(1.0, (0.00008, 0.00012), 3.0, 0.006, 5.0),
    AssetClass.FOREX_JPY: Profile(150.0, (0.010, 0.015), 3.0, 0.006, 5.0),
    AssetClass.METALS: Profile(100.0, (0.02, 0.04), 4.0, 0.012, 6.0),
    AssetClass.INDICES: Profile(10000.0, (1.0, 2.0), 5.0, 0.010, 6.0),
    AssetClass.ENERGIES: Profile(70.0, (0.03, 0.04), 5.0, 0.020, 6.0),
    AssetClass.CRYPTO: Profile(100.0, (0.01, 0.05), 8.0, 0.040, 15.0),
}


def profile_of(instrument: Instrument) -> Profile:
    return PROFILES.get(instrument.symbol, _CLASS_DEFAULTS[instrument.asset_class])


def _ar1(shocks: np.ndarray, z: float) -> tuple[np.ndarray, float]:
    """h[n] = shocks[n] + phi h[n - 1], from the carried z = phi h[-1]; returns h and the new z.

    One step at a time in the order scipy.signal.lfilter's loop uses (h = z + shock, then
    z = phi h), so the regime, and with it every simulated tick, is the same to the last bit
    as when the simulator ran through lfilter. 300 steps per block: a plain loop is enough.
    """
    phi = _REGIME_PHI
    h = shocks.tolist()
    for i, shock in enumerate(h):
        h[i] = y = z + shock
        z = y * phi
    return np.array(h), z


class _Symbol:
    """One symbol's generator and the state carried from block to block."""

    def __init__(
        self, index: int, inst: Instrument, settings: SimSettings, mid: float | None
    ) -> None:
        p = profile_of(inst)
        self.index = index
        self.inst = inst
        self.profile = p
        self.crypto = inst.asset_class is AssetClass.CRYPTO
        self.tick = inst.tick_size
        self.dec = step_decimals(inst.tick_size)
        self.lot = inst.lot_step
        self.lot_dec = step_decimals(inst.lot_step)
        seq = np.random.SeedSequence([settings.seed, zlib.crc32(inst.symbol.encode())])
        self.rng = np.random.default_rng(seq)
        self.log_mid = math.log(mid if mid is not None and mid > 0 else p.mid)
        self.sigma_s = p.daily_vol / math.sqrt(86_400.0) * settings.volatility_scale
        self.h_zi = 0.0  # AR(1) regime filter state
        self.faults = settings.faults
        self.p_fault = min(1.0, settings.fault_rate * _STEP_S)
        self.silent_until = 0
        self.stale_until = 0
        self.stale_quote = (math.nan, math.nan, math.nan, math.nan)
        self.lat_until = 0
        self.lat_extra = 0

    def block(self, t0: int) -> tuple[np.ndarray, np.ndarray]:
        """Ticks of this symbol in [t0, t0 + BLOCK_NS): (arrival times, TICK_DTYPE rows)."""
        rng, p = self.rng, self.profile
        h, self.h_zi = _ar1(rng.standard_normal(BLOCK_STEPS) * _REGIME_SHOCK, self.h_zi)
        rate = p.rate * np.exp(0.5 * h)
        counts = rng.poisson(rate * _STEP_S)
        k = int(counts.sum())
        step = np.repeat(np.arange(BLOCK_STEPS), counts)
        arr = np.sort(t0 + step * STEP_NS + rng.integers(1, STEP_NS + 1, k))
        hk = h[step]
        sigma = self.sigma_s * np.exp(hk) / np.sqrt(rate[step])
        log_mid = self.log_mid + np.cumsum(rng.standard_normal(k) * sigma)
        if k:
            self.log_mid = float(log_mid[-1])
        mid = np.exp(log_mid)
        lo, hi = p.spread
        u = rng.random(k)
        spread = lo * (hi / lo) ** u if self.crypto else lo + (hi - lo) * u
        spread_ticks = np.maximum(1.0, np.rint(spread * np.exp(0.3 * hk) / self.tick))
        bid_ticks = np.rint(mid / self.tick - spread_ticks * 0.5)
        out = np.zeros(k, dtype=TICK_DTYPE)
        out["sym"] = self.index
        out["bid"] = np.round(bid_ticks * self.tick, self.dec)
        out["ask"] = np.round((bid_ticks + spread_ticks) * self.tick, self.dec)
        if self.crypto:
            side = rng.random(k) < 0.5
            out["last"] = np.where(side, out["bid"], out["ask"])
            size = np.exp(rng.normal(math.log(2_000.0 / math.exp(self.log_mid)), 1.2, k))
            out["volume"] = np.round(
                np.maximum(1.0, np.rint(size / self.lot)) * self.lot, self.lot_dec
            )
        else:
            out["last"] = np.nan
            out["volume"] = np.nan
        latency = np.exp(rng.normal(math.log(p.latency_ms * NS_PER_MS), 0.5, k)).astype(np.int64)
        out["ts_event"] = arr
        if self.faults:
            arr, out, latency = self._faults(t0, arr, out, latency)
        out["ts_recv"] = arr + latency
        return arr, out

    def _faults(
        self, t0: int, arr: np.ndarray, out: np.ndarray, latency: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = self.rng
        fault_steps = np.flatnonzero(rng.random(BLOCK_STEPS) < self.p_fault)
        kinds = rng.integers(0, len(FAULTS), len(fault_steps))
        params = rng.random((len(fault_steps), 3))  # the third is spare: keeps the stream stable
        keep = np.ones(len(arr), dtype=bool)
        dups: list[int] = []
        # carried from the previous block
        keep &= arr >= self.silent_until
        self._freeze(arr, out, arr < self.stale_until)
        latency[arr < self.lat_until] += self.lat_extra
        for st, kind, (u1, u2, _u3) in zip(
            fault_steps.tolist(), kinds.tolist(), params, strict=True
        ):
            tf = t0 + st * STEP_NS + STEP_NS // 2
            j = int(np.searchsorted(arr, tf))
            name = FAULTS[kind]
            if name == "gap":
                end = tf + int((6.0 + 14.0 * u1) * NS_PER_SECOND)
                keep &= ~((arr >= tf) & (arr < end))
                self.silent_until = max(self.silent_until, end)
            elif name == "stale":
                if j > 0:
                    row = out[j - 1]
                    self.stale_quote = (row["bid"], row["ask"], row["last"], row["volume"])
                    self.stale_until = tf + int((6.0 + 9.0 * u1) * NS_PER_SECOND)
                    self._freeze(arr, out, (arr >= tf) & (arr < self.stale_until))
            elif name == "latency":
                self.lat_until = tf + int((2.0 + 8.0 * u1) * NS_PER_SECOND)
                self.lat_extra = int((300.0 + 1700.0 * u2) * NS_PER_MS)
                latency[(arr >= tf) & (arr < self.lat_until)] += self.lat_extra
            elif j >= len(arr):
                continue
            elif name == "spike":
                factor = 1.0 + (0.005 + 0.025 * u1) * (1.0 if u2 < 0.5 else -1.0)
                for f in ("bid", "ask"):
                    if not np.isnan(out[f][j]):  # an earlier fault may have made it NaN
                        p = round(out[f][j] * factor / self.tick)
                        out[f][j] = round(p * self.tick, self.dec)
            elif name == "crossed":
                burst = slice(j, j + 1 + int(3 * u1))
                bid = out["bid"][burst].copy()
                out["bid"][burst] = out["ask"][burst]
                out["ask"][burst] = bid
            elif name == "nan":
                out["bid" if u1 < 0.5 else "ask"][j] = np.nan
            elif name == "past":
                out["ts_event"][j] -= int((1.0 + 9.0 * u1) * NS_PER_SECOND)
            elif name == "duplicate":
                dups.append(j)
        if dups:
            at = np.array(dups) + 1
            arr = np.insert(arr, at, arr[at - 1])
            out = np.insert(out, at, out[at - 1])
            latency = np.insert(latency, at, latency[at - 1])
            keep = np.insert(keep, at, keep[at - 1])
        return arr[keep], out[keep], latency[keep]

    def _freeze(self, arr: np.ndarray, out: np.ndarray, mask: np.ndarray) -> None:
        if mask.any():
            for f, v in zip(("bid", "ask", "last", "volume"), self.stale_quote, strict=True):
                out[f][mask] = v


class SimMarket:
    """A simulated venue for `instruments`; sym is the index into that list."""

    def __init__(
        self,
        instruments: list[Instrument],
        settings: SimSettings,
        start_ns: int,
        start_mids: dict[str, float] | None = None,
    ) -> None:
        mids = start_mids or {}
        self.instruments = list(instruments)
        self.settings = settings
        self.start_ns = int(start_ns)
        self._symbols = [
            _Symbol(i, inst, settings, mids.get(inst.symbol)) for i, inst in enumerate(instruments)
        ]
        self._generated_to = self.start_ns
        self._until = self.start_ns
        self._buf_arr = np.zeros(0, dtype=np.int64)
        self._buf = np.zeros(0, dtype=TICK_DTYPE)

    @property
    def symbols(self) -> list[str]:
        return [i.symbol for i in self.instruments]

    @property
    def now_ns(self) -> int:
        """The simulated time reached by the last advance()."""
        return self._until

    def advance(self, until_ns: int) -> np.ndarray:
        """All ticks that arrived in (previous until, until_ns], ordered by arrival.

        Arrival order is ts_event order except for injected "timestamp from the past" ticks.
        """
        if until_ns <= self._until:
            return np.zeros(0, dtype=TICK_DTYPE)
        parts_arr, parts = [self._buf_arr], [self._buf]
        while self._generated_to < until_ns:
            a, t = self._block()
            parts_arr.append(a)
            parts.append(t)
        arr = np.concatenate(parts_arr)
        ticks = np.concatenate(parts)
        cut = int(np.searchsorted(arr, until_ns, side="right"))
        self._buf_arr, self._buf = arr[cut:], ticks[cut:]
        self._until = until_ns
        return ticks[:cut]

    def _block(self) -> tuple[np.ndarray, np.ndarray]:
        t0 = self._generated_to
        self._generated_to = t0 + BLOCK_NS
        pieces = [s.block(t0) for s in self._symbols]
        arr = np.concatenate([a for a, _ in pieces])
        ticks = np.concatenate([t for _, t in pieces])
        order = np.lexsort((ticks["sym"], arr))
        return arr[order], ticks[order]


def generate_ticks(
    instruments: list[Instrument], settings: SimSettings, start_ns: int, n_ticks: int
) -> np.ndarray:
    """Exactly n_ticks simulated ticks from start_ns (replay files, benchmarks)."""
    market = SimMarket(instruments, settings, start_ns)
    parts, total = [], 0
    while total < n_ticks:
        _, t = market._block()
        parts.append(t)
        total += len(t)
    return np.concatenate(parts)[:n_ticks] if parts else np.zeros(0, dtype=TICK_DTYPE)
