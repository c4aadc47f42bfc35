"""The virtual accounts: balance, equity and margin, their open positions, their working orders.

An account in margin call (the engine says so, or its margin level is below its margin-call
level) is shown red, and the pane's border with it. Each account's limit state (ACTIVE,
REDUCING amber, HALTED red) and the day's loss used of its allowance stand beside it. On a
narrow pane the least needed columns go first (the currency, the balance, the trade count,
then free margin), never the margin level or the limit state.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from mikrobot_tui.store.queries import AccountRow, PositionRow, WorkingOrderRow
from mikrobot_tui.tui.panes._dated import Dated
from mikrobot_tui.tui.panes._format import direction, fmt_money, fmt_price, fmt_qty
from mikrobot_tui.tui.panes._table import Cell, Column, KeyedTable

ACCOUNT_COLUMNS = (
    Column("account", "Account"),
    Column("currency", "Ccy", priority=6),
    Column("balance", "Balance", "right", priority=4),
    Column("equity", "Equity", "right"),
    Column("free", "Free mgn", "right", priority=1),
    Column("level", "Mgn lvl", "right"),
    Column("state", "State"),
    Column("day", "Day loss", "right", priority=4),
    Column("open", "Open", "right", priority=2),
    Column("working", "Wkg", "right", priority=3),
    Column("trades", "Trades", "right", priority=5),
)
POSITION_COLUMNS = (
    Column("account", "Account"),
    Column("symbol", "Symbol"),
    Column("side", "Side"),
    Column("size", "Size", "right", priority=2),
    Column("entry", "Entry", "right", priority=3),
    Column("mark", "Mark", "right", priority=1),
    Column("pnl", "P&L", "right"),
)
ORDER_COLUMNS = (
    Column("account", "Account"),
    Column("symbol", "Symbol"),
    Column("type", "Type"),
    Column("side", "Side"),
    Column("size", "Size", "right", priority=1),
    Column("price", "Price", "right"),
    Column("trigger", "Trigger", "right"),
    Column("tif", "TIF", priority=2),
    Column("id", "Order", priority=3),
)
ORDER_TYPES = {"market": "MKT", "limit": "LMT", "stop": "STP", "stop_limit": "STP LMT"}


STATE_STYLES = {"ACTIVE": "", "REDUCING": "warn", "HALTED": "alarm"}
STATE_SHORT = {"ACTIVE": "ok", "REDUCING": "REDUCE", "HALTED": "HALT"}


def limit_state(a: AccountRow) -> Cell:
    if a.trading_state is None:
        return "-"
    return (
        STATE_SHORT.get(a.trading_state, a.trading_state),
        STATE_STYLES.get(a.trading_state, ""),
    )


def day_loss(a: AccountRow) -> Cell:
    """The day's loss used of its allowance, `432/500`; warm as it nears the limit."""
    if a.daily_loss_used is None or not a.daily_loss_limit:
        return "-"
    share = a.daily_loss_used / a.daily_loss_limit
    style = "down" if share >= 1 else "warn" if share >= 0.5 else ""
    return (f"{a.daily_loss_used:,.0f}/{a.daily_loss_limit:,.0f}", style)


def account_cells(a: AccountRow) -> tuple[Cell, ...]:
    level = "-" if a.margin_level is None else f"{a.margin_level:,.1f}%"
    cells: tuple[Cell, ...] = (
        (a.name, "bold"),
        a.currency,
        f"{a.balance:,.2f}",
        (f"{a.equity:,.2f}", direction(round(a.equity - a.balance, 2))),
        (f"{a.free_margin:,.2f}", "down" if a.free_margin < 0 else ""),
        level,
        limit_state(a),
        day_loss(a),
        f"{a.open_positions:,}",
        f"{len(a.working_orders):,}",
        f"{a.trades:,}",
    )
    if a.in_margin_call:
        return tuple((c if isinstance(c, str) else c[0], "alarm") for c in cells)
    return cells


def position_cells(p: PositionRow) -> tuple[Cell, ...]:
    side = p.side.upper()
    return (
        p.account,
        (p.symbol, "bold"),
        (side, "up" if side in ("BUY", "LONG") else "down"),
        fmt_qty(p.quantity, p.symbol),
        fmt_price(p.symbol, p.entry_price),
        fmt_price(p.symbol, p.mark),
        (fmt_money(p.unrealized_pnl), direction(p.unrealized_pnl)),
    )


def order_cells(o: WorkingOrderRow) -> tuple[Cell, ...]:
    side = o.side.upper()
    size = fmt_qty(o.lots, o.symbol)
    if o.filled_lots:
        size = f"{fmt_qty(o.filled_lots, o.symbol)}/{size}"
    tif = o.tif + (" RO" if o.reduce_only else "")
    return (
        o.account,
        (o.symbol, "bold"),
        ORDER_TYPES.get(o.type, o.type),
        (side, "up" if side == "BUY" else "down"),
        size,
        fmt_price(o.symbol, o.price),
        fmt_price(o.symbol, o.trigger),
        tif,
        (o.order_id, "muted"),
    )


class PositionsPane(Dated, Vertical):
    DEFAULT_CSS = """
    PositionsPane { height: auto; overflow-y: auto; scrollbar-size-vertical: 1; }
    PositionsPane > #accounts-table { margin-bottom: 1; }
    PositionsPane > #no-positions { color: $text-muted; }
    PositionsPane > #orders-title { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Positions"

    def compose(self) -> ComposeResult:
        yield KeyedTable(ACCOUNT_COLUMNS, id="accounts-table")
        yield Static("no open positions", id="no-positions")
        yield KeyedTable(POSITION_COLUMNS, id="positions-table")
        yield Static("Working orders", id="orders-title")
        yield KeyedTable(ORDER_COLUMNS, id="orders-table")

    def show(self, accounts: list[AccountRow], positions: list[PositionRow]) -> int:
        accounts_table = self.query_one("#accounts-table", KeyedTable)
        accounts_table.display = bool(accounts)
        touched = accounts_table.apply({a.name: account_cells(a) for a in accounts})
        table = self.query_one("#positions-table", KeyedTable)
        self.query_one("#no-positions").display = not positions
        table.display = bool(positions)
        touched += table.apply({p.position_id: position_cells(p) for p in positions})
        orders = [o for a in accounts for o in a.working_orders]
        orders_table = self.query_one("#orders-table", KeyedTable)
        orders_table.display = bool(orders)
        self.query_one("#orders-title").display = bool(orders)
        touched += orders_table.apply({o.order_id: order_cells(o) for o in orders})
        called = [a.name for a in accounts if a.in_margin_call]
        self.set_class(bool(called), "-margin-call")
        parts = [f"MARGIN CALL {', '.join(called)}"] if called else []
        if positions:
            parts.append(f"{len(positions)} open")
        if orders:
            parts.append(f"{len(orders)} working")
        self.set_subtitle(" · ".join(parts))
        return touched
