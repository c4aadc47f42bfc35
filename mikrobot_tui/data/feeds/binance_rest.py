"""Binance's instruments from exchangeInfo, through python-binance's REST client.

The client is python-binance's `Client`, pointed at `binance.rest_url` by its `API_URL` (the
client builds every spot address from it: `<rest_url>/api/v3/exchangeInfo`). One request names
the symbols; when Binance refuses one of them as invalid, the whole exchangeInfo is read to
tell which. Per symbol: PRICE_FILTER tickSize (the tick and the pip), LOT_SIZE stepSize and
minQty (lot step and minimum lot; a lot is one unit of the base asset), NOTIONAL or MIN_NOTIONAL
minNotional, base and quote assets.

The request weight is respected: the used weight (`X-MBX-USED-WEIGHT-1M`) is read from every
answer and a request waits for the next minute when the last answer had used most of it; a
429 is retried after its Retry-After (when that is short), a 418 (the IP is banned) is not
retried at all. When the endpoint cannot be reached, symbols the built-in catalogue knows are
described from it, with a warning; any other symbol is refused with a ConfigError naming it.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from mikrobot_tui.config import ConfigError
from mikrobot_tui.domain.instruments import (
    CRYPTO_MAX_LOT,
    AssetClass,
    Instrument,
    default_instruments,
)

log = logging.getLogger("mikrobot_tui.binance")

USED_WEIGHT = "X-MBX-USED-WEIGHT-1M"
WEIGHT_LIMIT = 6000  # Binance spot's request weight per minute per IP
WEIGHT_CAREFUL = 0.9  # above this share of the limit the next request waits for a new minute
COMMISSION_BPS = 10.0  # Binance spot's standard fee, per side


class RestUnavailable(Exception):
    """The REST endpoint cannot answer now (unreachable, rate limited, banned)."""


def make_client(rest_url: str, timeout_s: float = 5.0) -> Any:
    """python-binance's REST client on `rest_url` (no request is made)."""
    with warnings.catch_warnings():  # python-binance imports a deprecated websockets name
        warnings.simplefilter("ignore", DeprecationWarning)
        from binance.client import Client

        client = Client(ping=False, requests_params={"timeout": timeout_s})
    client.API_URL = rest_url.rstrip("/") + "/api"
    return client


class RestWeight:
    """The used weight Binance reports, and the wait it asks for."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep, clock=time.time) -> None:
        self.used: int | None = None
        self.banned_until: float | None = None
        self._sleep, self._clock = sleep, clock

    def before(self, max_wait_s: float) -> None:
        now = self._clock()
        if self.banned_until is not None and now < self.banned_until:
            raise RestUnavailable(f"IP banned by Binance for {self.banned_until - now:.0f} s more")
        if self.used is not None and self.used >= WEIGHT_CAREFUL * WEIGHT_LIMIT:
            wait = 60.0 - now % 60.0  # the weight counts per minute
            if wait > max_wait_s:
                raise RestUnavailable(f"request weight {self.used}/{WEIGHT_LIMIT} used")
            log.warning(
                "Binance REST: weight %s/%s used, waiting %.0f s", self.used, WEIGHT_LIMIT, wait
            )
            self._sleep(wait)
            self.used = None

    def after(self, headers: Any) -> None:
        value = (headers or {}).get(USED_WEIGHT)
        if value is not None and str(value).isdigit():
            self.used = int(value)


def _retry_after(headers: Any) -> float | None:
    value = (headers or {}).get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def exchange_symbols(
    client: Any,
    symbols: Sequence[str],
    weight: RestWeight | None = None,
    *,
    max_wait_s: float = 30.0,
    attempts: int = 3,
) -> dict[str, dict[str, Any]]:
    """symbol -> its exchangeInfo entry, for `symbols` (and any others the answer holds)."""
    import requests
    from binance.exceptions import BinanceAPIException, BinanceRequestException

    weight = weight or RestWeight()
    params: dict[str, str] | None = {"symbols": json.dumps(list(symbols), separators=(",", ":"))}
    for _ in range(attempts):
        weight.before(max_wait_s)
        try:
            if params is None:
                data = client.get_exchange_info()
            else:
                data = client._get("exchangeInfo", params=params)
        except BinanceAPIException as exc:
            headers = getattr(exc.response, "headers", {})
            weight.after(headers)
            retry = _retry_after(headers)
            if exc.status_code == 418:
                weight.banned_until = weight._clock() + (retry or 120.0)
                raise RestUnavailable(
                    f"IP banned by Binance (HTTP 418), retry after {retry} s"
                ) from None
            if exc.status_code == 429:
                if retry is None or retry > max_wait_s:
                    raise RestUnavailable(
                        f"rate limited (HTTP 429), retry after {retry} s"
                    ) from None
                log.warning("Binance REST: rate limited (HTTP 429), retrying in %.0f s", retry)
                weight._sleep(retry)
                continue
            if exc.status_code == 400 and exc.code == -1121 and params is not None:
                params = None  # a symbol Binance does not know: read them all to say which
                continue
            raise RestUnavailable(f"HTTP {exc.status_code}: {exc.message}") from None
        except (requests.RequestException, BinanceRequestException, ValueError, OSError) as exc:
            raise RestUnavailable(f"{type(exc).__name__}: {exc}") from None
        weight.after(getattr(client.response, "headers", {}))
        if not isinstance(data, dict) or not isinstance(data.get("symbols"), list):
            raise RestUnavailable("exchangeInfo answer without a symbols list")
        return {s["symbol"]: s for s in data["symbols"] if isinstance(s, dict) and "symbol" in s}
    raise RestUnavailable(f"still rate limited after {attempts} attempts")


def instrument_from(entry: dict[str, Any]) -> Instrument:
    """One exchangeInfo symbol as an Instrument (spot crypto: a lot is one unit of the base)."""
    filters = {f.get("filterType"): f for f in entry.get("filters", []) if isinstance(f, dict)}
    tick = float(filters.get("PRICE_FILTER", {}).get("tickSize", 0) or 0) or 1e-8
    lot = filters.get("LOT_SIZE", {})
    step = float(lot.get("stepSize", 0) or 0) or 1e-8
    min_qty = float(lot.get("minQty", 0) or 0)
    max_qty = float(lot.get("maxQty", 0) or 0)
    notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
    return Instrument(
        symbol=entry["symbol"],
        asset_class=AssetClass.CRYPTO,
        base=entry["baseAsset"],
        quote=entry["quoteAsset"],
        pip_size=tick,
        tick_size=tick,
        contract_size=1.0,
        lot_step=step,
        min_lot=max(min_qty, step),
        commission_bps=COMMISSION_BPS,
        min_notional=float(notional.get("minNotional", 0) or 0),
        max_lot=max_qty if max_qty > 0 else CRYPTO_MAX_LOT,
    )


def fetch_instruments(
    rest_url: str,
    symbols: Sequence[str],
    *,
    client: Any = None,
    weight: RestWeight | None = None,
    max_wait_s: float = 30.0,
    timeout_s: float = 5.0,
) -> tuple[dict[str, Instrument], list[str]]:
    """The instruments of `symbols` and the warnings to show; ConfigError for symbols that
    cannot be described (not listed on Binance, or unknown while REST is unreachable)."""
    client = client or make_client(rest_url, timeout_s)
    try:
        entries = exchange_symbols(client, symbols, weight, max_wait_s=max_wait_s)
    except RestUnavailable as exc:
        catalogue = default_instruments()
        unknown = [s for s in symbols if s not in catalogue]
        if unknown:
            known = sorted(s for s, i in catalogue.items() if i.asset_class is AssetClass.CRYPTO)
            raise ConfigError(
                f"binance.symbols: {', '.join(unknown)} cannot be described: "
                f"binance.rest_url {rest_url} gave no exchangeInfo ({exc}) and the built-in "
                f"catalogue knows only {', '.join(known)}; fix the connection or the symbols"
            ) from None
        message = (
            f"Binance REST {rest_url} gave no exchangeInfo ({exc}): tick sizes and lot steps of "
            f"{', '.join(symbols)} come from the built-in catalogue"
        )
        log.warning(message)
        return {s: catalogue[s] for s in symbols}, [message]
    missing = [s for s in symbols if s not in entries]
    if missing:
        raise ConfigError(
            f"binance.symbols: {', '.join(missing)} not listed on Binance "
            f"({rest_url}/api/v3/exchangeInfo); check the spelling (e.g. BTCUSDT)"
        )
    out, notes = {}, []
    for s in symbols:
        try:
            out[s] = instrument_from(entries[s])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"binance.symbols: {s}: exchangeInfo entry unreadable ({exc})"
            ) from None
        status = entries[s].get("status")
        if status not in (None, "TRADING"):
            notes.append(f"Binance lists {s} as {status}: it may not quote")
    for note in notes:
        log.warning(note)
    return out, notes
