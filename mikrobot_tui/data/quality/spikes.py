"""Spikes: returns far beyond a robust estimate of their symbol's volatility.

A spike is a log return of the mid, against the symbol's previous accepted mid, beyond
`spike_sigma` standard deviations. The variance is an EWMA of squared returns over accepted
ticks (ewma.py: alpha 2 / 101, bias-corrected, the sigma before the tick's own return, floored
at `min_sigma`); spikes are flagged only after SPIKE_WARMUP returns. A flagged return that
follows a flagged return of the opposite sign is the way back from the same spike and is not
counted again.

Robust: the variance is fed a flagged return winsorised at the threshold, spike_sigma x the
sigma before it, so one bad print cannot inflate the estimate enough to hide the next ones (a
price far off is already rejected as a jump by validity.py; a lesser one still would). Flagging
changes the variance from that return on, so the rest of that symbol's run in the batch is
computed again from the flagged return, one flagged return at a time; spikes are rare. Every
step depends only on the returns before it, so the flags do not depend on batching.
"""

from __future__ import annotations

import math

import numpy as np

from mikrobot_tui.data.quality import ewma
from mikrobot_tui.data.quality.score import SPIKE, Found
from mikrobot_tui.data.quality.segments import Segments

EWMA_ALPHA = ewma.ALPHA  # for the variance of returns, per accepted tick
SPIKE_WARMUP = 20
# 1 / (1 - (1 - alpha)^n): the EWMA's bias correction after n returns (0 for n = 0; 1 beyond)
_DEBIAS = np.concatenate(([0.0], 1.0 / (1.0 - (1.0 - EWMA_ALPHA) ** np.arange(1, 2048)), [1.0]))
# r^2 > _LOOSE spike_sigma^2 max(var, min_sigma^2) holds for every spike, rounding included
_LOOSE = 0.9
_DEBIAS_LIST = _DEBIAS.tolist()


class Spikes:
    """The spike test, with each symbol's variance estimate carried from batch to batch."""

    def __init__(self, n_symbols: int, spike_sigma: float, min_sigma: float) -> None:
        self.sigma = spike_sigma
        self.min_sigma = min_sigma
        self._acc = np.zeros(n_symbols)  # the EWMA's accumulator after the last return
        self._n_ret = np.zeros(n_symbols, dtype=np.int64)
        self._prev_spike = np.zeros(n_symbols, dtype=np.int8)  # sign of a flagged last return

    def check(self, seg: Segments, r: np.ndarray, f_has: np.ndarray) -> Found | None:
        """Spikes among returns r (symbol order; a symbol's very first tick, where f_has is
        False, has none), with their z; moves the estimate on."""
        k = len(r)
        # a quiet live feed's batch: Python floats, a tenth of the numpy calls (a zero
        # min_sigma would divide by zero, which Python refuses and numpy lets through)
        if k == 1 and self.min_sigma > 0:
            return self.one(int(seg.sym[0]), float(r[0]), bool(f_has[0]))
        f_at, last_at, fs = seg.first, seg.last, seg.sym
        # the EWMA of squared returns, per symbol, continued from the carried accumulator
        seg_len = last_at - f_at + 1
        r0 = f_at + (~f_has).astype(np.int64)  # position of the first return of each segment
        n0, acc0 = self._n_ret[fs], self._acc[fs]
        r2 = np.square(r)
        v, tacc = np.zeros(k), np.empty(k)
        ends = (last_at + 1).tolist()
        for j, (a, b, s) in enumerate(zip(r0.tolist(), ends, fs.tolist(), strict=True)):
            if b > a:
                self._acc[s] = ewma.run(r2[a:b], acc0[j], int(n0[j]), v[a:b], tacc[a:b])
        prior = np.empty(k)
        prior[1:] = v[:-1]
        prior[f_at] = ewma.variance_of(acc0, n0)
        debias = None
        n_prior = None
        if not bool((n0 >= len(_DEBIAS)).all()):
            n_prior = np.arange(k) + np.repeat(n0 - r0, seg_len)
            # np.clip's Python wrapper costs more than these two ufuncs on a small batch
            np.minimum(n_prior, len(_DEBIAS) - 1, out=n_prior)
            np.maximum(n_prior, 0, out=n_prior)
            debias = np.take(_DEBIAS, n_prior)
            prior *= debias
        self._n_ret[fs] = n0 + (last_at + 1 - r0)

        at, z_at = self._over(r, r2, prior, n_prior)
        if len(at):
            at, z_at = self._robust(seg, r0, n0, acc0, at, z_at, r, r2, v, tacc, prior, debias)
        if not len(at):
            self._prev_spike[fs] = 0
            return None
        sign = np.zeros(k, dtype=np.int8)
        sg = np.sign(r[at]).astype(np.int8)
        sign[at] = sg
        seg_at = np.searchsorted(f_at, at, side="right") - 1
        is_first = f_at[seg_at] == at
        p_sign = sign[at - 1]
        p_sign[is_first] = self._prev_spike[fs[seg_at[is_first]]]
        back = p_sign == -sg  # the way back from the spike before
        self._prev_spike[fs] = sign[last_at]
        if back.any():
            at, z_at = at[~back], z_at[~back]
        return (SPIKE, at, z_at) if len(at) else None

    def one(self, s: int, r: float, has: bool) -> Found | None:
        """`check` for a batch of one tick of symbol s: the same steps on Python floats (the
        arithmetic of `_over`, `_robust` and the sign of the way back, in the same order)."""
        ms, sigma = self.min_sigma, self.sigma
        n0, acc0 = int(self._n_ret[s]), float(self._acc[s])
        prior = ewma.variance_after(acc0, n0)
        n_prior: int | None = None
        if n0 < len(_DEBIAS):
            n_prior = min(max(n0 - (not has), 0), len(_DEBIAS) - 1)
            prior *= _DEBIAS_LIST[n_prior]
        if has:  # a symbol's very first tick has no return
            self._acc[s] = ewma.step(r * r, acc0, n0)
            self._n_ret[s] = n0 + 1
        over = True
        if ms >= 1e-150:
            bound = max(prior, ms * ms)
            bound *= _LOOSE * sigma * sigma
            over = r * r > bound
        z = 0.0
        if over:
            z = abs(r) / max(math.sqrt(prior), ms)
            over = z > sigma and (n_prior is None or n_prior >= SPIKE_WARMUP)
        if not over:
            self._prev_spike[s] = 0
            return None
        winsorised = (sigma * max(math.sqrt(prior), ms)) ** 2
        self._acc[s] = ewma.step(winsorised, acc0, n0 - (not has))
        sign = 1 if r > 0 else -1
        back = int(self._prev_spike[s]) == -sign  # the way back from the spike before
        self._prev_spike[s] = sign
        return None if back else (SPIKE, np.zeros(1, dtype=np.int64), np.array([z]))

    def _over(
        self, r: np.ndarray, r2: np.ndarray, prior: np.ndarray, n_prior: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Positions where |r| / sigma > spike_sigma after the warm-up, and their z = |r| /
        sigma, with sigma the square root of `prior` floored at min_sigma. Only the ticks
        that pass a looser test on r^2 (a sure superset) get the exact one."""
        ms, sigma = self.min_sigma, self.sigma
        if ms >= 1e-150:
            bound = np.maximum(prior, ms * ms)
            bound *= _LOOSE * sigma * sigma
            cand = np.flatnonzero(r2 > bound)
        else:
            cand = np.arange(len(r))
        z = np.abs(r[cand]) / np.maximum(np.sqrt(prior[cand]), ms)
        raw = z > sigma
        if n_prior is not None:
            raw &= n_prior[cand] >= SPIKE_WARMUP
        return cand[raw], z[raw]

    def _robust(
        self,
        seg: Segments,
        r0: np.ndarray,
        n0: np.ndarray,
        acc0: np.ndarray,
        at: np.ndarray,
        z_at: np.ndarray,
        r: np.ndarray,
        r2: np.ndarray,
        v: np.ndarray,
        tacc: np.ndarray,
        prior: np.ndarray,
        debias: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The spikes once each flagged return is fed to the EWMA winsorised: per symbol, from
        its first flagged return on, the EWMA and the test again after each one."""
        ms, sigma = self.min_sigma, self.sigma
        x = r2.copy()
        seg_at = np.searchsorted(seg.first, at, side="right") - 1
        firsts = np.flatnonzero(np.append(True, seg_at[1:] != seg_at[:-1]))
        spikes: list[int] = []
        zs: list[float] = []
        for i in firsts.tolist():
            j = int(seg_at[i])
            a, b, s = int(r0[j]), int(seg.last[j]) + 1, int(seg.sym[j])
            f, z = int(at[i]), float(z_at[i])
            while True:
                spikes.append(f)
                zs.append(z)
                x[f] = (sigma * max(float(np.sqrt(prior[f])), ms)) ** 2
                t = tacc[f - 1] if f > a else acc0[j]
                n = int(n0[j]) + f - a
                self._acc[s] = ewma.run(x[f:b], t, n, v[f:b], tacc[f:b])
                lo = f + 1
                if lo >= b:
                    break
                prior[lo:b] = v[f : b - 1]
                if debias is not None:
                    prior[lo:b] *= debias[lo:b]
                n_prior = None if debias is None else self._n_prior_of(n, lo - f, b - lo)
                p, zz = self._over(r[lo:b], r2[lo:b], prior[lo:b], n_prior)
                if not len(p):
                    break
                f, z = lo + int(p[0]), float(zz[0])
        return np.array(spikes, dtype=np.int64), np.array(zs)

    @staticmethod
    def _n_prior_of(n_at_f: int, ahead: int, length: int) -> np.ndarray:
        """Returns before each of `length` positions starting `ahead` after a return that had
        n_at_f returns before it (clipped like the debias table)."""
        n_prior = np.arange(n_at_f + ahead, n_at_f + ahead + length)
        return np.minimum(n_prior, len(_DEBIAS) - 1)
