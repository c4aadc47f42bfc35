"""Open positions across the virtual accounts, under each account's balance and equity."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from mikrobot_tui.store.queries import AccountRow, PositionRow
from mikrobot_tui.tui.panes._dated import Dated
from mikrobot_tui.tui.panes._format import direction, fmt_money, fmt_price, fmt_qty
from mikrobot_tui.tui.panes._table import Cell, Column, KeyedTable

ACCOUNT_COLUMNS = (
    Column("account", "Account"),
    Column("balance", "Balance", "right"),
    Column("equity", "Equity", "right"),
    Column("open", "Open", "right"),
    Column("trades", "Trades", "right"),
)
POSITION_COLUMNS = (
    Column("account", "Account"),
    Column("symbol", "Symbol"),
    Column("side", "Side"),
    Column("size", "Size", "right"),
    Column("entry", "Entry", "right"),
    Column("mark", "Mark", "right"),
    Column("pnl", "P&L", "right"),
)


def account_cells(a: AccountRow) -> tuple[Cell, ...]:
    return (
        (a.name, "bold"),
        f"{a.balance:,.2f} {a.currency}",
        (f"{a.equity:,.2f} {a.currency}", direction(round(a.equity - a.balance, 2))),
        f"{a.open_positions:,}",
        f"{a.trades:,}",
    )


def position_cells(p: PositionRow) -> tuple[Cell, ...]:
    side = p.side.upper()
    return (
        p.account,
        (p.symbol, "bold"),
        (side, "up" if side in ("BUY", "LONG") else "down"),
        fmt_qty(p.quantity),
        fmt_price(p.symbol, p.entry_price),
        fmt_price(p.symbol, p.mark),
        (fmt_money(p.unrealized_pnl), direction(p.unrealized_pnl)),
    )


class PositionsPane(Dated, Vertical):
    DEFAULT_CSS = """
    PositionsPane { height: auto; }
    PositionsPane > #accounts-table { margin-bottom: 1; }
    PositionsPane > #no-positions { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Positions"

    def compose(self) -> ComposeResult:
        yield KeyedTable(ACCOUNT_COLUMNS, id="accounts-table")
        yield Static("no open positions", id="no-positions")
        yield KeyedTable(POSITION_COLUMNS, id="positions-table")

    def show(self, accounts: list[AccountRow], positions: list[PositionRow]) -> int:
        accounts_table = self.query_one("#accounts-table", KeyedTable)
        accounts_table.display = bool(accounts)
        touched = accounts_table.apply({a.name: account_cells(a) for a in accounts})
        table = self.query_one("#positions-table", KeyedTable)
        self.query_one("#no-positions").display = not positions
        table.display = bool(positions)
        self.set_subtitle(f"{len(positions)} open" if positions else "")
        return touched + table.apply({p.position_id: position_cells(p) for p in positions})
