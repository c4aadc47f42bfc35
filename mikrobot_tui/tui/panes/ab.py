"""A/B results: each experiment's variants, how they fare against the control, and the verdict.

The verdict, both p-values and the bandit's allocation are what a trader acts on, so they never
drop out: a narrow pane loses the params first, then the interval of the difference, the win
rate, the account name, and the trades and mean (column priorities, highest dropped first).
"""

from __future__ import annotations

from mikrobot_tui.store.queries import ABRow
from mikrobot_tui.tui.panes._dated import Dated
from mikrobot_tui.tui.panes._table import Cell, Column, KeyedTable

COLUMNS = (
    Column("variant", "Var"),
    Column("account", "Account", priority=2),
    Column("trades", "Trades", "right", priority=1),
    Column("win_rate", "Win %", "right", priority=3),
    Column("mean", "Mean", "right", priority=1),
    Column("diff", "Δ vs A [CI]", "right", priority=4),
    Column("p", "p", "right"),
    Column("avp", "AV p", "right"),
    Column("share", "Alloc", "right"),
    Column("verdict", "Verdict"),
    Column("params", "Params", priority=5),
)
NA: Cell = ("n/a", "muted")


def _num(x: float, metric: str) -> str:
    return f"{x * 100:+.2f}%" if metric == "return_pct" else f"{x:+.2f}R"


def _p(p: float | None, alpha: float | None) -> Cell:
    if p is None:
        return NA
    return (f"{p:.3f}", "bold" if alpha is not None and p < alpha else "")


def ab_cells(r: ABRow, *, named: bool = False) -> tuple[Cell, ...]:
    """The row's cells; `named`: the variant with its experiment's name (several shown)."""
    win = NA if r.win_rate is None else f"{r.win_rate * 100:.1f}%"
    if r.mean_return is None:
        mean: Cell = NA
    else:
        mean = (_num(r.mean_return, r.metric), "up" if r.mean_return > 0 else "down")
    if r.diff is None:
        diff: Cell = ("control", "muted") if r.verdict == "control" else NA
    else:
        ci = ""
        if r.diff_low is not None and r.diff_high is not None:
            ci = f" [{_num(r.diff_low, r.metric)}, {_num(r.diff_high, r.metric)}]"
        diff = (f"{_num(r.diff, r.metric)}{ci}", "up" if r.diff > 0 else "down")
    share: Cell = NA if r.share is None else f"{r.share * 100:.0f}%"
    if r.share is not None and not r.bandit:
        share = (share if isinstance(share, str) else share[0], "muted")
    if r.verdict.endswith(" better"):
        verdict: Cell = (r.verdict, "bold")
    elif r.verdict in ("collecting", "control"):
        verdict = (r.verdict, "muted")
    else:
        verdict = r.verdict or NA
    return (
        f"{r.experiment}/{r.variant}" if named else r.variant,
        r.account,
        f"{r.trades:,}",
        win,
        mean,
        diff,
        _p(r.p_value, r.alpha),
        _p(r.always_valid_p, r.alpha),
        share,
        verdict,
        r.params,
    )


class ABPane(Dated, KeyedTable):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(COLUMNS, id=id)
        self.border_title = "A/B results"

    def show(self, rows: list[ABRow]) -> int:
        experiments = list(dict.fromkeys(r.experiment for r in rows))
        methods = sorted({r.ci_method for r in rows if r.ci_method})
        seeds = sorted({r.ci_seed for r in rows if r.ci_seed is not None})
        parts = []
        if experiments:  # what each number is: Welch's p, the always-valid (mSPRT) p decides
            parts.append(", ".join(experiments))
            parts.append("p Welch · AV p mSPRT")
        if methods:
            names = ", ".join(m.replace("percentile_bootstrap", "bootstrap") for m in methods)
            parts.append(f"CI {names} seed {', '.join(map(str, seeds))}")
        self.set_subtitle(" · ".join(parts))
        named = len(experiments) > 1
        return self.apply({f"{r.experiment}/{r.variant}": ab_cells(r, named=named) for r in rows})
