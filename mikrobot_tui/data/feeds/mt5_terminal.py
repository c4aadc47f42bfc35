"""One MetaTrader 5 terminal: the module found lazily, every call behind one lock, errors sorted.

The MetaTrader5 package exists only for Windows. `load_module` finds what this machine has, in
this order: an mt5linux bridge when `mt5.bridge` is set (an RPyC client on Linux exposing the
same functions, `pip install mt5linux`, not a dependency of mikrobot), else `import MetaTrader5`
(Windows: `pip install -e ".[mt5]"`). With neither, a ConfigError names the alternatives. Tests
pass a stand-in object with the same functions instead (`from_settings(..., module=...)`).

The module is not thread-safe and its `last_error()` is global, so `Terminal` holds one lock
around each call and reads the error under the same hold. A call that fails raises `CallFailed`
with MetaTrader's code; `ConnectionLost` (a subclass) is the kind the feed answers by
re-initializing: an IPC code (-10000 to -10005: -10004 no IPC connection, -10005 timeout), or an
exception from the module itself (a bridge that went away). The MT5 password is passed to
`initialize` and to nothing else; every message that leaves this module is scrubbed of it.

Instruments come from `symbol_info` (`instrument_from_info`, the rules are in its docstring).
"""

from __future__ import annotations

import difflib
import importlib
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from mikrobot_tui.config import ConfigError, MT5Settings
from mikrobot_tui.domain.instruments import AssetClass, Instrument

IPC_CODES = frozenset({-10000, -10001, -10002, -10003, -10004, -10005})
INVALID_PARAMS = -2  # RES_E_INVALID_PARAMS
NOT_FOUND = -4  # RES_E_NOT_FOUND: no history (no ticks in the window asked for)
AUTH_FAILED = -6  # RES_E_AUTH_FAILED
INIT_FAILED = -10003  # RES_E_INTERNAL_FAIL_INIT: the terminal was not found or did not start
TIMEOUT_MS = 10_000  # initialize's timeout (MetaTrader's default is 60 s)
REDACTED = "**********"

NO_MT5 = (
    "engine.feed: the MetaTrader 5 feed needs the MetaTrader5 package, which exists only for "
    "Windows, and this machine has none. Either: on Windows, install the mt5 extra "
    '(pip install -e ".[mt5]") beside a MetaTrader 5 terminal; or, on Linux, run an mt5linux '
    "bridge next to the terminal (pip install mt5linux, its server under Wine, bound to "
    '127.0.0.1) and set mt5.bridge = "127.0.0.1:18812"; or do without MetaTrader 5: '
    'engine.feed = "sim", or "mixed" with a [[feeds]] table of venue = "sim" for the forex '
    "symbols"
)


class CallFailed(Exception):
    """A MetaTrader 5 call that returned None or False; `code` is its last_error() code."""

    def __init__(self, call: str, code: int | None, message: str) -> None:
        self.call, self.code, self.message = call, code, message
        what = f"error {code}" if code is not None else "error"
        super().__init__(f"MetaTrader 5 {call}: {what} ({message})")


class ConnectionLost(CallFailed):
    """The terminal cannot be reached (an IPC error, a bridge gone): re-initialize."""


# ---------------------------------------------------------------- finding the module


def load_module(settings: MT5Settings) -> Callable[[], Any]:
    """A factory of the MetaTrader5 API object this machine has; ConfigError if none.

    A bridge's client is built by each call (a new RPyC connection after one dropped); the
    Windows module is imported once and returned every time.
    """
    if settings.bridge is not None:
        try:
            mt5linux = importlib.import_module("mt5linux")
        except ImportError:
            raise ConfigError(
                f"mt5.bridge: {settings.bridge} is set but the mt5linux package is not "
                "installed: pip install mt5linux (its server runs beside the terminal under "
                "Wine); or clear mt5.bridge to use the MetaTrader5 package on Windows"
            ) from None
        host, _, port = settings.bridge.rpartition(":")
        return lambda: mt5linux.MetaTrader5(host=host, port=int(port))
    try:
        module = importlib.import_module("MetaTrader5")
    except ImportError:
        raise ConfigError(NO_MT5) from None
    return lambda: module


# ---------------------------------------------------------------- the terminal


class Terminal:
    """The terminal behind one lock; `call` is the only way to reach it."""

    def __init__(
        self, factory: Callable[[], Any], settings: MT5Settings, timeout_ms: int = TIMEOUT_MS
    ) -> None:
        self._factory = factory
        self._settings = settings
        self._timeout_ms = timeout_ms
        self._secret = settings.password.get_secret_value() if settings.password else ""
        self._mt5: Any = None
        self.lock = threading.Lock()  # around every call into the module
        self.connected = False

    def scrub(self, text: str) -> str:
        """`text` without the password (a bridge's error may quote the call it made)."""
        return text.replace(self._secret, REDACTED) if self._secret else text

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return self._call(name, *args, **kwargs)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            if self._mt5 is None:
                self._mt5 = self._factory()
            result = getattr(self._mt5, name)(*args, **kwargs)
            if result is not None and result is not False:
                return result
            code, message = self._mt5.last_error()
        except Exception as exc:  # the module itself failed: a bridge gone, a broken pipe
            self._mt5 = None  # built again on the next call
            self.connected = False
            text = self.scrub(f"{type(exc).__name__}: {exc}")
            raise ConnectionLost(name, None, text) from None
        kind = ConnectionLost if code in IPC_CODES else CallFailed
        if kind is ConnectionLost:
            self.connected = False
        raise kind(name, int(code), self.scrub(str(message)))

    def connect(self) -> None:
        """(Re-)initialize: shut down what was there, initialize with path, login, server and
        the password. A refused login or invalid parameters raise CallFailed; any other failure
        raises ConnectionLost (the terminal cannot be reached, yet)."""
        s = self._settings
        kwargs: dict[str, Any] = {"timeout": self._timeout_ms}
        if s.login:
            kwargs["login"] = s.login
        if self._secret:
            kwargs["password"] = self._secret
        if s.server:
            kwargs["server"] = s.server
        args = (str(s.path),) if s.path is not None else ()
        with self.lock:
            self.connected = False
            if self._mt5 is not None:
                try:
                    self._mt5.shutdown()
                except Exception:
                    self._mt5 = None  # a bridge that is gone: built again below
            try:
                self._call("initialize", *args, **kwargs)
            except ConnectionLost:
                raise
            except CallFailed as exc:
                if exc.code in (AUTH_FAILED, INVALID_PARAMS):
                    raise
                raise ConnectionLost(exc.call, exc.code, exc.message) from None
            self.connected = True

    def close(self) -> None:
        """Shut the connection down, unless a call is under way (it would block the caller)."""
        if not self.lock.acquire(blocking=False):
            return
        try:
            if self._mt5 is not None:
                self._mt5.shutdown()
        except Exception:
            pass
        finally:
            self.connected = False
            self.lock.release()

    def select(self, symbol: str) -> tuple[Any, Any]:
        """symbol_select(symbol, True), then (symbol_info, symbol_info_tick or None)."""
        with self.lock:
            self._call("symbol_select", symbol, True)
            info = self._call("symbol_info", symbol)
            try:
                tick = self._call("symbol_info_tick", symbol)
            except ConnectionLost:
                raise
            except CallFailed:
                tick = None  # a symbol that never ticked
            return info, tick

    def similar(self, symbol: str) -> list[str]:
        """Names the broker has that look like `symbol` (for a message), best effort."""
        try:
            found = self.call("symbols_get")
        except CallFailed:
            return []
        names = [str(getattr(s, "name", s)) for s in found]
        return difflib.get_close_matches(symbol, names, n=5, cutoff=0.6)


# ---------------------------------------------------------------- instruments

TRADE_MODE_DISABLED = 0  # SYMBOL_TRADE_MODE_DISABLED: no trading, the market is closed
METALS = frozenset({"XAU", "XAG", "XPT", "XPD"})
FIAT = frozenset(
    "USD EUR JPY GBP CHF AUD NZD CAD SEK NOK DKK PLN HUF CZK TRY ZAR MXN SGD HKD CNH CNY RUB "  # noqa: SIM905
    "ILS THB KRW INR BRL".split()
)
CRYPTO = frozenset(
    "BTC ETH LTC XRP BCH SOL ADA DOGE DOT BNB LINK AVAX TRX XLM EOS UNI MATIC XMR".split()  # noqa: SIM905
)
_PATH_WORDS = (  # the first word found in symbol_info.path (lower case) decides
    ("crypto", AssetClass.CRYPTO),
    ("metal", AssetClass.METALS),
    ("energ", AssetClass.ENERGIES),
    ("oil", AssetClass.ENERGIES),
    ("indic", AssetClass.INDICES),
    ("index", AssetClass.INDICES),
    ("forex", AssetClass.FOREX),
    ("fx", AssetClass.FOREX),
    ("currenc", AssetClass.FOREX),
)


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """What symbol_info says beyond an Instrument's fields, kept for later rooms."""

    digits: int
    point: float
    tick_value: float  # value of one tick_size move of 1 lot, in the account currency
    tick_size: float
    volume_max: float
    currency_margin: str
    path: str
    trade_mode: int


def catalogue_entry(symbol: str, catalogue: dict[str, Instrument]) -> Instrument | None:
    """The catalogue's instrument for a broker's name: exact, or the longest catalogue name
    it starts with (brokers add suffixes: EURUSD.m, EURUSDm, XAUUSD.pro), renamed."""
    if symbol in catalogue:
        return catalogue[symbol]
    prefixes = [name for name in catalogue if symbol.upper().startswith(name)]
    if not prefixes:
        return None
    return replace(catalogue[max(prefixes, key=len)], symbol=symbol)


def asset_class(info: Any, known: Instrument | None) -> AssetClass:
    """The asset class of a broker's symbol, by the first rule that applies:

    1. a metal as base currency (XAU, XAG, XPT, XPD) -> metals (brokers file gold under Forex);
    2. a word in symbol_info.path: crypto, metal, energ/oil, indic/index, forex/fx/currenc;
    3. the currencies: a crypto base -> crypto; two fiat currencies -> forex;
    4. the built-in catalogue's class for the same name (suffixes allowed);
    5. otherwise indices (a CFD that is neither a currency pair nor a commodity).
    Forex quoted in JPY (currency_profit) is forex_jpy.
    """
    base = str(getattr(info, "currency_base", "") or "").upper()
    quote = str(getattr(info, "currency_profit", "") or "").upper()
    path = str(getattr(info, "path", "") or "").lower()
    found: AssetClass | None = AssetClass.METALS if base in METALS else None
    if found is None:
        found = next((cls for word, cls in _PATH_WORDS if word in path), None)
    if found is None and base in CRYPTO:
        found = AssetClass.CRYPTO
    if found is None and base in FIAT and quote in FIAT and base != quote:
        found = AssetClass.FOREX
    if found is None and known is not None:
        found = known.asset_class
    found = found or AssetClass.INDICES
    if found in (AssetClass.FOREX, AssetClass.FOREX_JPY):
        return AssetClass.FOREX_JPY if quote == "JPY" else AssetClass.FOREX
    return found


def _positive(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def instrument_from_info(
    symbol: str, info: Any, catalogue: dict[str, Instrument]
) -> tuple[Instrument, SymbolSpec] | None:
    """The Instrument a broker's symbol_info describes, or None when it is unusable.

    - tick size: the point (10 ** -digits), or trade_tick_size when the broker's step is
      coarser (an index quoted in points that moves in 0.25s);
    - pip size: 10 x point for forex quoted with 5 or 3 digits, else the point;
    - contract size: trade_contract_size; lot step and minimum lot: volume_step, volume_min;
    - base and quote: currency_base and currency_profit; for indices and energies the base is
      the symbol itself, so a CFD whose two currencies are both USD never enters the currency
      conversion table as a pair;
    - commission: the catalogue's for the same name (brokers do not publish it in
      symbol_info), else none.
    """
    point = _positive(getattr(info, "point", None))
    contract = _positive(getattr(info, "trade_contract_size", None))
    step = _positive(getattr(info, "volume_step", None))
    min_lot = _positive(getattr(info, "volume_min", None))
    quote = str(getattr(info, "currency_profit", "") or "").upper()
    if point is None or contract is None or step is None or min_lot is None or not quote:
        return None
    digits = int(getattr(info, "digits", 0) or 0)
    known = catalogue_entry(symbol, catalogue)
    cls = asset_class(info, known)
    fx = cls in (AssetClass.FOREX, AssetClass.FOREX_JPY)
    pip = point * 10 if fx and digits in (3, 5) else point
    tick_size = _positive(getattr(info, "trade_tick_size", None)) or point
    tick = tick_size if tick_size > point * (1 + 1e-9) else point
    base = str(getattr(info, "currency_base", "") or "").upper()
    if cls in (AssetClass.INDICES, AssetClass.ENERGIES) or not base:
        base = symbol
    instrument = Instrument(
        symbol=symbol,
        asset_class=cls,
        base=base,
        quote=quote,
        pip_size=pip,
        tick_size=tick,
        contract_size=contract,
        lot_step=step,
        min_lot=min_lot,
        commission_per_lot=known.commission_per_lot if known else 0.0,
        commission_bps=known.commission_bps if known else 0.0,
        max_lot=_positive(getattr(info, "volume_max", None)) or 100.0,
    )
    spec = SymbolSpec(
        digits=digits,
        point=point,
        tick_value=float(getattr(info, "trade_tick_value", 0.0) or 0.0),
        tick_size=tick_size,
        volume_max=float(getattr(info, "volume_max", 0.0) or 0.0),
        currency_margin=str(getattr(info, "currency_margin", "") or ""),
        path=str(getattr(info, "path", "") or ""),
        trade_mode=int(getattr(info, "trade_mode", 4)),
    )
    return instrument, spec
