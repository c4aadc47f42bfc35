"""The arithmetic of the spike estimator's variance: an EWMA of squared returns, without scipy.

    v[j] = alpha x[j] + (1 - alpha) v[j - 1],   v[0] = 0 before a symbol's first return

is computed as a scaled cumulative sum on a fixed grid of CELL returns per symbol (the grid
counts the symbol's returns from its first, whatever the batches). Within a cell that starts at
return j0, with q = j - j0 and c = 1 - alpha,

    T[j] = T[j0 - 1] c^CELL + sum over i in j0..j of x[i] c^-(i - j0),   v[j] = alpha c^q T[j]

Every step is an elementwise product or a cumulative sum (numpy's is strictly sequential), and
a batch continues the sum from the carried T exactly as one long batch would: the numbers do
not depend on how the stream is cut. They agree with the recurrence computed one return at a
time (scipy.signal.lfilter) to about 1e-15 relative, not to the last bit: lfilter rounds twice
per return, which only a compiled loop reproduces at speed. c^-(CELL - 1) is about 1e35, far
from overflow for any return that passes the quality checks.
"""

from __future__ import annotations

import numpy as np

ALPHA = 2.0 / 101.0  # per accepted return
CELL = 4096
_C = 1.0 - ALPHA
_UP = _C ** -np.arange(CELL, dtype=np.float64)  # c^-q
_DOWN = ALPHA * _C ** np.arange(CELL, dtype=np.float64)  # alpha c^q
_CELL_DECAY = _C**CELL
_UP_LIST, _DOWN_LIST = _UP.tolist(), _DOWN.tolist()  # Python floats for the one-return step


def variance_of(t: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The EWMA after a symbol's n-th return, from its accumulator t (0 when n is 0)."""
    return _DOWN[(n - 1) % CELL] * t


def variance_after(t: float, n: int) -> float:
    """`variance_of` for one symbol, in Python floats."""
    return _DOWN_LIST[(n - 1) % CELL] * t


def step(x: float, t: float, n: int) -> float:
    """`run` for a single return, in Python floats (the same operations in the same order, so
    the same bits): the accumulator after x, continuing from n returns and accumulator t."""
    q = n % CELL
    if q == 0:
        t = t * _CELL_DECAY
    return x * _UP_LIST[q] + t


def run(x: np.ndarray, t: float, n: int, out: np.ndarray, acc: np.ndarray) -> float:
    """The EWMA after each of x into `out`, continuing a symbol that has had n returns and
    accumulator t; `acc` receives the accumulator after each (to continue from any of them).
    Returns the last accumulator."""
    q = n % CELL
    a, b = 0, len(x)
    if q and q + b <= CELL:  # within one cell, the usual case
        np.multiply(x, _UP[q : q + b], out=acc)
        acc[0] += t
        np.add.accumulate(acc, out=acc)
        np.multiply(acc, _DOWN[q : q + b], out=out)
        return float(acc[-1])
    while a < b:
        e = min(b, a + CELL - q)
        if q == 0:
            t = t * _CELL_DECAY
        cs = acc[a:e]
        np.multiply(x[a:e], _UP[q : q + e - a], out=cs)
        cs[0] += t
        np.add.accumulate(cs, out=cs)
        np.multiply(cs, _DOWN[q : q + e - a], out=out[a:e])
        t = float(cs[-1])
        a, q = e, 0
    return t
