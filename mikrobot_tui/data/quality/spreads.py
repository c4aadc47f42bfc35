"""Wide spreads: a spread (ask - bid) far above its symbol's usual spread.

The usual spread is an EWMA of the spreads of the symbol's accepted ticks (ewma.py: alpha
2 / 101, bias-corrected, the value before the tick's own spread). A spread above `spread_k`
times it is flagged as a problem (not rejected: a wide quote is a real quote, a trader wants to
know, a strategy should not trade on it blindly), once SPREAD_WARMUP spreads are known. Every
spread is fed to the EWMA as it is: a lasting widening (a news hour, a thin session) becomes the
usual spread after a hundred ticks or so, and stops being flagged.

`check` (numpy, any batch) and `one` (Python floats, a batch of one tick) take the same steps
in the same order (ewma.run and ewma.step give the same bits), so the flags do not depend on
batching.
"""

from __future__ import annotations

import numpy as np

from mikrobot_tui.data.quality import ewma
from mikrobot_tui.data.quality.score import SPREAD, Found
from mikrobot_tui.data.quality.segments import Segments

SPREAD_WARMUP = 20
# 1 / (1 - (1 - alpha)^n): the EWMA's bias correction after n spreads (0 for n = 0; 1 beyond)
_DEBIAS = np.concatenate(([0.0], 1.0 / (1.0 - (1.0 - ewma.ALPHA) ** np.arange(1, 2048)), [1.0]))
_DEBIAS_LIST = _DEBIAS.tolist()
_TOP = len(_DEBIAS) - 1


class Spreads:
    """The wide-spread test, with each symbol's EWMA of its spread carried between batches."""

    def __init__(self, n_symbols: int, spread_k: float) -> None:
        self.k = spread_k
        self._acc = np.zeros(n_symbols)  # the EWMA's accumulator after the last spread
        self._n = np.zeros(n_symbols, dtype=np.int64)  # spreads seen

    def usual(self, s: int) -> float:
        """The symbol's usual spread now (0 before any)."""
        n = int(self._n[s])
        return ewma.variance_after(float(self._acc[s]), n) * _DEBIAS_LIST[min(n, _TOP)]

    def check(self, seg: Segments, spread: np.ndarray) -> Found | None:
        """Wide spreads among accepted ticks (symbol order), with spread / usual."""
        k = len(spread)
        f_at, fs = seg.first, seg.sym
        seg_len = seg.length
        n0, acc0 = self._n[fs], self._acc[fs]
        v, tacc = np.zeros(k), np.empty(k)
        ends = (seg.last + 1).tolist()
        for j, (a, b, s) in enumerate(zip(f_at.tolist(), ends, fs.tolist(), strict=True)):
            self._acc[s] = ewma.run(spread[a:b], acc0[j], int(n0[j]), v[a:b], tacc[a:b])
        usual = np.empty(k)
        usual[1:] = v[:-1]
        usual[f_at] = ewma.variance_of(acc0, n0)
        n_prior = np.arange(k) + np.repeat(n0 - f_at, seg_len)
        np.minimum(n_prior, _TOP, out=n_prior)
        usual *= np.take(_DEBIAS, n_prior)
        self._n[fs] = n0 + seg_len
        wide = spread > self.k * usual
        wide &= n_prior >= SPREAD_WARMUP
        wide &= usual > 0  # a symbol always locked so far has no usual spread to compare with
        if not wide.any():
            return None
        p = np.flatnonzero(wide)
        return (SPREAD, p, spread[p] / usual[p])

    def one(self, s: int, spread: float) -> Found | None:
        """`check` for a batch of one tick of symbol s, in Python floats."""
        n0, acc0 = int(self._n[s]), float(self._acc[s])
        usual = ewma.variance_after(acc0, n0) * _DEBIAS_LIST[min(n0, _TOP)]
        self._acc[s] = ewma.step(spread, acc0, n0)
        self._n[s] = n0 + 1
        if n0 >= SPREAD_WARMUP and spread > self.k * usual and usual > 0:
            return (SPREAD, np.zeros(1, dtype=np.int64), np.array([spread / usual]))
        return None
