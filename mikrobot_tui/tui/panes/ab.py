"""A/B results: each experiment's variants, how they fare against the control, and the verdict.

The verdict, both p-values and the bandit's allocation are what a trader acts on, so they never
drop out: a narrow pane loses the params first, then the interval of the difference, the win
rate, the account name, and the trades and mean (column priorities, highest dropped first).

Under the table, a line per model an account trades by (issue 12): the batch model's AUC
beside the online model's over the outcomes taught so far, the entries it skipped, the features
that drifted (amber). A narrow pane drops the log losses first, then the model's kind and
label, then shortens the words; with no model served the lines take no room at all.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from mikrobot_tui.store.queries import ABRow, ModelRow
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


def _fig(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _auc(x: float | None) -> str:
    """An AUC in three characters (.64), a dash while there is none."""
    return "-" if x is None else f"{x:.2f}".removeprefix("0")


def model_lines(m: ModelRow) -> list[tuple[str, str]]:
    """The model's line, then ever shorter ones, each as (the line up to its drift, the
    drift): the log losses go first, then the kind and label, then the words; the shortest
    names the drift only when there is some."""
    n, k = m.online_updates, m.skipped
    drift = f"drift {', '.join(m.drifted)}" if m.drifted else "drift none"
    count = f"drift {len(m.drifted)}" if m.drifted else "no drift"
    name = f"{m.account}: {m.model} v{m.version}"
    model = f"{name} {m.kind}/{m.label}"
    batch, online = _fig(m.batch_auc), _fig(m.online_auc)
    b, o = _auc(m.batch_auc), _auc(m.online_auc)
    return [
        (
            f"{model}  batch AUC {batch} LL {_fig(m.batch_log_loss, 3)}  "
            f"online AUC {online} LL {_fig(m.online_log_loss, 3)} over {n}  skipped {k}  ",
            drift,
        ),
        (f"{model}  batch AUC {batch}  online AUC {online} over {n}  skipped {k}  ", drift),
        (f"{name}  AUC {batch} batch, {online} online ({n})  skipped {k}  ", drift),
        (f"{m.account} {m.model}: AUC {b} batch {o} online/{n} skip {k} ", count),
        (f"{m.account} AUC {b}/{o}({n}) skip {k}", f" drift {len(m.drifted)}" * bool(m.drifted)),
    ]


def model_line(m: ModelRow, width: int) -> tuple[str, str]:
    """The longest of the model's lines that fits `width` (the shortest when none does)."""
    lines = model_lines(m)
    for text, drift in lines:
        if cell_len(text + drift) <= width:
            return text, drift
    return lines[-1]


class ModelLines(Static):
    """The served models' lines, each as long as the pane's width allows."""

    # docked: in a short pane the lines stay in view and the experiments scroll above them
    DEFAULT_CSS = "ModelLines { height: auto; dock: bottom; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[ModelRow] = []

    def show(self, rows: list[ModelRow]) -> None:
        self.display = bool(rows)
        if rows != self.rows:
            self.rows = list(rows)
            self.refresh(layout=True)

    def render(self) -> Text:
        width = self.content_region.width or 80
        warn = self.app.theme_variables["warning"]
        out = Text(no_wrap=True, overflow="ellipsis")
        for i, m in enumerate(self.rows):
            text, drift = model_line(m, width)
            rest = text.removeprefix(m.account)
            out.append("\n" * bool(i))
            out.append(text[: len(text) - len(rest)], style="bold")  # the account, as above
            out.append(rest)
            out.append(drift, style=warn if m.drifted else "dim")
        return out


class ABPane(Dated, Vertical):
    DEFAULT_CSS = "ABPane { height: auto; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "A/B results"

    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, id="ab-table")
        models = ModelLines(id="ab-models")
        models.display = False
        yield models

    def show(self, rows: list[ABRow], models: list[ModelRow] | None = None) -> int:
        self.query_one(ModelLines).show(models or [])
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
        table = self.query_one(KeyedTable)
        return table.apply({f"{r.experiment}/{r.variant}": ab_cells(r, named=named) for r in rows})
