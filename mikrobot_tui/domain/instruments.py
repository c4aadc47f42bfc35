"""Instruments, asset classes and pip math.

Pip value and P&L are converted to the account currency with the current rate of a pair that
links the two currencies (USDJPY for a JPY-quoted pair), never with a hard-coded constant.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

CRYPTO_MAX_LOT = 1000.0  # base units: a venue that says nothing caps one order at 1000 BTC


class AssetClass(StrEnum):
    FOREX = "forex"
    FOREX_JPY = "forex_jpy"
    METALS = "metals"
    INDICES = "indices"
    ENERGIES = "energies"
    CRYPTO = "crypto"


# Asset classes whose volatility traders count in pips; the others in basis points of the price
PIP_CLASSES = (AssetClass.FOREX, AssetClass.FOREX_JPY)
# A usable M5 ATR, in basis points of the price, for the classes not counted in pips: below is
# a dead market, above a wild one (the house strategy's gate and the orchestrator's ATR band)
ATR_BANDS_BPS: dict[AssetClass, tuple[float, float]] = {
    AssetClass.METALS: (3.0, 40.0),
    AssetClass.INDICES: (3.0, 40.0),
    AssetClass.ENERGIES: (5.0, 60.0),
    AssetClass.CRYPTO: (5.0, 80.0),
}


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    asset_class: AssetClass
    base: str
    quote: str
    pip_size: float  # the price step traders count in (0.0001 EURUSD, 0.01 USDJPY)
    tick_size: float  # the smallest price increment
    contract_size: float  # units of base per 1.0 lot
    lot_step: float  # smallest quantity increment, in lots
    min_lot: float
    commission_per_lot: float = 0.0  # per side, in the quote currency
    commission_bps: float = 0.0  # per side, in basis points of notional
    min_notional: float = 0.0  # smallest order value the venue takes, in the quote currency
    # largest order the venue takes, in lots: MT5's volume_max, Binance's LOT_SIZE maxQty. The
    # default 100 lots suits forex, metals, indices and energies; the crypto catalogue uses
    # 1000 base units (a venue's own figure replaces either)
    max_lot: float = 100.0

    def round_price(self, price: float) -> float:
        return round_to_step(price, self.tick_size)

    def round_lots(self, lots: float) -> float:
        """Round a quantity down to the lot step: sizing never rounds risk up."""
        steps = math.floor(lots / self.lot_step + 1e-9)
        return round_to_step(steps * self.lot_step, self.lot_step)

    def pips(self, price_distance: float) -> float:
        return price_distance / self.pip_size

    def value_per_price_unit(self, lots: float) -> float:
        """Quote-currency value of a 1.0 move in price for `lots` lots."""
        return lots * self.contract_size

    def pip_value(self, lots: float, quote_to_account: float) -> float:
        """Value of one pip for `lots` lots, in the account currency."""
        return self.pip_size * self.contract_size * lots * quote_to_account

    def commission(self, lots: float, price: float, quote_to_account: float) -> float:
        """Commission for one side of a trade, in the account currency."""
        in_quote = lots * self.commission_per_lot + (
            abs(lots) * self.contract_size * price * self.commission_bps / 10_000
        )
        return in_quote * quote_to_account


@functools.lru_cache(maxsize=256)  # a handful of steps, asked for on every price rounded
def step_decimals(step: float) -> int:
    """Decimal places of a price or quantity step: 0.00001 -> 5, 0.25 -> 2, 1 or 100 -> 0."""
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def round_to_step(value: float, step: float) -> float:
    return round(round(value / step) * step, step_decimals(step))


def _fx(symbol: str, commission: float = 3.5) -> Instrument:
    base, quote = symbol[:3], symbol[3:]
    jpy = quote == "JPY"
    return Instrument(
        symbol=symbol,
        asset_class=AssetClass.FOREX_JPY if jpy else AssetClass.FOREX,
        base=base,
        quote=quote,
        pip_size=0.01 if jpy else 0.0001,
        tick_size=0.001 if jpy else 0.00001,
        contract_size=100_000,
        lot_step=0.01,
        min_lot=0.01,
        commission_per_lot=commission if quote == "USD" else 0.0,
        commission_bps=0.0 if quote == "USD" else 0.35,
    )


def default_instruments() -> dict[str, Instrument]:
    """The built-in catalogue: MT5-style CFD conventions and Binance spot filters."""
    items = [
        _fx("EURUSD"),
        _fx("GBPUSD"),
        _fx("USDJPY"),
        _fx("AUDUSD"),
        _fx("USDCHF"),
        _fx("EURJPY"),
        Instrument("XAUUSD", AssetClass.METALS, "XAU", "USD", 0.1, 0.01, 100, 0.01, 0.01, 3.5),
        Instrument("XAGUSD", AssetClass.METALS, "XAG", "USD", 0.01, 0.001, 5000, 0.01, 0.01, 3.5),
        Instrument("US30", AssetClass.INDICES, "US30", "USD", 1.0, 0.1, 1, 0.1, 0.1),
        Instrument("USOIL", AssetClass.ENERGIES, "OIL", "USD", 0.01, 0.001, 1000, 0.01, 0.01, 3.5),
        Instrument(
            "BTCUSDT",
            AssetClass.CRYPTO,
            "BTC",
            "USDT",
            0.01,
            0.01,
            1,
            1e-5,
            1e-5,
            0,
            10,
            max_lot=CRYPTO_MAX_LOT,
        ),
        Instrument(
            "ETHUSDT",
            AssetClass.CRYPTO,
            "ETH",
            "USDT",
            0.01,
            0.01,
            1,
            1e-4,
            1e-4,
            0,
            10,
            max_lot=CRYPTO_MAX_LOT,
        ),
    ]
    return {i.symbol: i for i in items}


def currency_pairs(
    instruments: Iterable[Instrument], equivalents: Mapping[str, str] | None = None
) -> dict[tuple[str, str], str]:
    """(base, quote) -> symbol for every instrument, currencies mapped through `equivalents`."""
    eq = equivalents or {}
    return {(eq.get(i.base, i.base), eq.get(i.quote, i.quote)): i.symbol for i in instruments}


Path = list[tuple[str, bool]]  # (symbol, whether to invert its mid), multiplied in order


def conversion_paths(
    from_ccy: str,
    to_ccy: str,
    pairs: Mapping[tuple[str, str], str],
    equivalents: Mapping[str, str] | None = None,
) -> list[Path]:
    """The ways to turn `from_ccy` into `to_ccy`, in the order they are tried: the direct pair
    (or its inverse), then a cross through USD. `[[]]` when the currencies are the same."""
    eq = equivalents or {}
    src, dst = eq.get(from_ccy, from_ccy), eq.get(to_ccy, to_ccy)
    if src == dst:
        return [[]]

    def direct(a: str, b: str) -> Path | None:
        if (a, b) in pairs:
            return [(pairs[(a, b)], False)]
        if (b, a) in pairs:
            return [(pairs[(b, a)], True)]
        return None

    out = []
    path = direct(src, dst)
    if path is not None:
        out.append(path)
    if "USD" not in (src, dst):
        first, second = direct(src, "USD"), direct("USD", dst)
        if first is not None and second is not None:
            out.append(first + second)
    return out


def conversion_rate(
    from_ccy: str,
    to_ccy: str,
    instruments: Iterable[Instrument],
    mid_of: Callable[[str], float | None],
    equivalents: Mapping[str, str] | None = None,
    pairs: Mapping[tuple[str, str], str] | None = None,
) -> float | None:
    """Rate that turns an amount in `from_ccy` into `to_ccy` using current mids.

    `equivalents` maps a currency to the one it is pegged to (USDT -> USD) as configured by the
    operator. Tries a direct pair, then the inverse, then a cross through USD. Returns None when
    no quoted pair links the currencies yet (no price seen), so callers can refuse rather than
    guess. `pairs` is `currency_pairs(instruments, equivalents)` for callers that ask often.
    """
    if pairs is None:
        pairs = currency_pairs(instruments, equivalents)
    for path in conversion_paths(from_ccy, to_ccy, pairs, equivalents):
        rate = 1.0
        for symbol, invert in path:
            m = mid_of(symbol)
            if not m or m <= 0:
                break
            rate *= 1.0 / m if invert else m
        else:
            return rate
    return None
