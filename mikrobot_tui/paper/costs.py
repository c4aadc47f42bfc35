"""What trading costs besides the spread: commission, leverage and swap (financing).

- Commission: forex, metals, indices and energies pay `commission_per_lot` of the account, a
  round turn in the account currency, half on each side (7.0 -> 3.5 a lot to open, 3.5 to
  close). Crypto pays basis points of the notional: `maker_bps` for a resting limit that filled,
  `taker_bps` for everything else (10 bps = 0.1%, Binance spot's base rate).
- Leverage: the account's `leverage` when set, else `[paper.leverage]` for the symbol, else
  for its asset class.
- Swap: charged at each rollover a position is held over, 17:00 New York on weekdays, three
  nights on Wednesday; `[paper.swap.<symbol>]` long and short rates in points (tick sizes) per
  lot per night, positive paid to the account. Crypto spot has none.
"""

from __future__ import annotations

from mikrobot_tui.config import AccountSettings, PaperSettings
from mikrobot_tui.domain.hours import rollover_multiplier, rollovers_between
from mikrobot_tui.domain.instruments import AssetClass, Instrument
from mikrobot_tui.domain.orders import Side

MAKER = "maker"


def commission(
    account: AccountSettings,
    inst: Instrument,
    lots: float,
    price: float,
    liquidity: str,
    quote_to_account: float,
) -> float:
    """Commission for one side of a fill of `lots` at `price`, in the account currency.

    The per-lot figure is already in the account currency, so `quote_to_account` converts only
    the notional of the basis-point model.
    """
    if inst.asset_class is AssetClass.CRYPTO:
        bps = account.maker_bps if liquidity == MAKER else account.taker_bps
        return abs(lots) * inst.contract_size * price * bps / 10_000 * quote_to_account
    return abs(lots) * account.commission_per_lot / 2


def leverage_for(account: AccountSettings, paper: PaperSettings, inst: Instrument) -> float:
    """The leverage a position in `inst` gets (30 means margin = notional / 30)."""
    if account.leverage is not None:
        return account.leverage
    by_symbol = paper.leverage.get(inst.symbol)
    if by_symbol is not None:
        return by_symbol
    return paper.leverage.get(inst.asset_class.value, 1.0)


def rollovers(start_ns: int, end_ns: int, asset_class: AssetClass) -> list[tuple[int, int]]:
    """Rollovers in (start_ns, end_ns] with the nights each charges (3 on Wednesday), for a
    position of `asset_class` held over that span; none for crypto."""
    if asset_class is AssetClass.CRYPTO or end_ns <= start_ns:
        return []
    found = rollovers_between(start_ns, end_ns)
    return [(ts, rollover_multiplier(ts, asset_class)) for ts in found]


def swap_amount(
    paper: PaperSettings,
    inst: Instrument,
    side: Side,
    lots: float,
    multiplier: int,
    quote_to_account: float,
) -> float:
    """Swap for `lots` held over one rollover charging `multiplier` nights, in the account
    currency; positive is paid to the account, negative charged.

    points x tick_size x contract_size x lots x multiplier x quote_to_account.
    """
    rates = paper.swap.get(inst.symbol)
    if rates is None or inst.asset_class is AssetClass.CRYPTO:
        return 0.0
    points = rates.long if side is Side.BUY else rates.short
    return points * inst.tick_size * inst.contract_size * abs(lots) * multiplier * quote_to_account
