"""External signals: an expert advisor's JSON file and a webhook, one value type for both.

Both sources turn what they receive into `ExternalSignal` values (or a `Rejection` with its
reason) and put them into an `Inbox`, which the engine empties at the start of each batch
(engine/external.py): there each signal meets the same orchestrator, risk checks and breakers
as a strategy's. Nothing here trades or touches the database.

A signal is one JSON object (a file or a request may hold a list of them):

    {"id": "ea-1042", "symbol": "EURUSD", "side": "buy", "sl": 1.0790, "tp_pips": 40,
     "account": "A", "comment": "breakout"}

- `symbol` (required): letters and digits, any case ("EUR/USD" is read as EURUSD).
- `side` (required): "buy" or "sell" ("long" and "short" are read too).
- the stop (required, exactly one): `sl` (a price), `sl_pips` or `sl_distance` (a distance in
  price units); the take-profit (optional, at most one): `tp`, `tp_pips` or `tp_distance`.
  Numbers may be given as strings ("1.0790"), as charting tools' placeholders produce them.
- `id` (optional, string or integer, up to 128 characters): a signal with an id already acted
  on is not acted on again, across rewrites of the file and restarts of the engine.
- `account` (optional): the account to trade in; `signals.account` when absent.
- `comment` (optional): kept with the order as its reason (up to 200 characters).
- `type` (optional): "market", the only kind of entry taken.
Other fields are ignored.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from mikrobot_tui.domain.orders import Side

__all__ = [
    "MAX_SIGNALS",
    "ExternalSignal",
    "Inbox",
    "Level",
    "Rejection",
    "SignalError",
    "parse_signals",
]

MAX_SIGNALS = 100  # in one file or one request
MAX_ID = 128
MAX_COMMENT = 200
RAW_MAX = 500  # characters of the offending input kept with a rejection

SIDES = {"buy": Side.BUY, "long": Side.BUY, "sell": Side.SELL, "short": Side.SELL}
STOP_KEYS = {"sl": "price", "sl_pips": "pips", "sl_distance": "distance"}
TARGET_KEYS = {"tp": "price", "tp_pips": "pips", "tp_distance": "distance"}
KNOWN_KEYS = {"id", "symbol", "side", "account", "comment", "type", *STOP_KEYS, *TARGET_KEYS}
_ACCOUNT = re.compile(r"^[A-Za-z0-9_\-]{1,24}$")
_SYMBOL = re.compile(r"^[A-Z0-9]{1,24}$")

Unit = Literal["price", "pips", "distance"]


class SignalError(ValueError):
    """Why a signal cannot be taken; the message is the rejection's reason."""


@dataclass(frozen=True, slots=True)
class Level:
    """A stop or a target: an absolute price, or a distance in pips or in price units."""

    value: float
    unit: Unit

    def distance(self, side: Side, entry: float, pip_size: float, what: str) -> float:
        """The price distance from `entry`; SignalError when a price lies on the wrong side.

        `what` is "stop" or "take-profit": a stop lies below a buy's entry and above a sell's,
        a take-profit the other way round.
        """
        if self.unit == "pips":
            return self.value * pip_size
        if self.unit == "distance":
            return self.value
        below = (side is Side.BUY) == (what == "stop")
        d = entry - self.value if below else self.value - entry
        if d <= 0:
            where = "below" if below else "above"
            price = "ask" if side is Side.BUY else "bid"
            raise SignalError(
                f"{what} {self.value:g} is not {where} the entry {entry:g} (the {price}) "
                f"of a {side.lower()}"
            )
        return d


@dataclass(frozen=True, slots=True)
class ExternalSignal:
    """A signal from outside, as received: the engine prices it at the symbol's next tick."""

    source: str  # "ea:<file name>" or "webhook:<client address>"
    symbol: str
    side: Side
    stop: Level
    take_profit: Level | None
    received_ns: int  # wall clock, when it was read or posted
    account: str | None = None  # None: signals.account
    signal_id: str | None = None  # the sender's id
    key: str | None = None  # what de-duplicates it within its channel; None: nothing
    comment: str = ""

    @property
    def channel(self) -> str:
        """ "ea" or "webhook": whose breaker covers it, whose ids it shares."""
        return self.source.split(":", 1)[0]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Input that is no signal, with the reason; stored in `rejects`."""

    source: str
    reason: str
    raw: str
    received_ns: int
    symbol: str = ""
    malformed: bool = True  # counts against the source's breaker (False: refused at the door)

    @property
    def channel(self) -> str:
        return self.source.split(":", 1)[0]


class Inbox:
    """Thread-safe and bounded: sources put, the engine takes everything at once.

    Beyond `capacity` waiting items the oldest are dropped and counted: a source that floods
    cannot grow the engine's memory.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._items: deque[ExternalSignal | Rejection] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.dropped = 0

    def put(self, item: ExternalSignal | Rejection) -> None:
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(item)

    def take(self) -> list[ExternalSignal | Rejection]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def raw_text(value: Any) -> str:
    """Input as it is kept with a rejection: JSON when it is JSON, cut to RAW_MAX."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:RAW_MAX]


def parse_signals(
    value: Any, *, source: str, received_ns: int, content_keys: bool = False
) -> list[ExternalSignal | Rejection]:
    """One object or a list of objects into signals and rejections, one per element.

    With `content_keys` a signal without an id is keyed by a hash of its fields, so a file
    read again (rewritten, grown by a signal, found again after a restart) is not acted on
    twice; without, only an id de-duplicates.
    """
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_SIGNALS:
        reason = f"{len(items)} signals at once; at most {MAX_SIGNALS}"
        return [Rejection(source, reason, raw_text(value), received_ns)]
    out: list[ExternalSignal | Rejection] = []
    for i, item in enumerate(items):
        where = f"signal {i + 1} of {len(items)}: " if isinstance(value, list) else ""
        try:
            out.append(_one(item, source, received_ns, content_keys))
        except SignalError as exc:
            symbol = item.get("symbol") if isinstance(item, dict) else None
            out.append(
                Rejection(
                    source,
                    f"{where}{exc}",
                    raw_text(item),
                    received_ns,
                    symbol=symbol[:24] if isinstance(symbol, str) else "",
                )
            )
    return out


def _one(item: Any, source: str, received_ns: int, content_key: bool) -> ExternalSignal:
    if not isinstance(item, dict):
        raise SignalError(f"a signal is a JSON object, got {_kind(item)}")
    signal_id = _signal_id(item.get("id"))
    symbol = _symbol(item.get("symbol"))
    side = _side(item.get("side"))
    kind = item.get("type")
    if kind is not None and str(kind).strip().lower() != "market":
        raise SignalError(f"type {kind!r}: only market entries are taken")
    stop = _level(item, STOP_KEYS)
    if stop is None:
        unknown = sorted(k for k in item if k not in KNOWN_KEYS)
        hint = f" (fields not known here: {', '.join(map(str, unknown))})" if unknown else ""
        raise SignalError(f"no stop: give sl (a price), sl_pips or sl_distance{hint}")
    target = _level(item, TARGET_KEYS)
    account = item.get("account")
    if account is not None and (not isinstance(account, str) or not _ACCOUNT.match(account)):
        raise SignalError(f"account {account!r} is not an account name")
    comment = item.get("comment", "")
    if not isinstance(comment, str):
        comment = json.dumps(comment)
    comment = "".join(c for c in comment if c.isprintable())[:MAX_COMMENT]
    key = None
    if signal_id is not None:
        key = f"id:{signal_id}"
    elif content_key:
        canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
        key = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]
    return ExternalSignal(
        source=source,
        symbol=symbol,
        side=side,
        stop=stop,
        take_profit=target,
        received_ns=received_ns,
        account=account,
        signal_id=signal_id,
        key=key,
        comment=comment,
    )


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _signal_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise SignalError(f"id must be a string or an integer, got {_kind(value)}")
    text = str(value).strip()
    if not text or len(text) > MAX_ID or not text.isprintable():
        raise SignalError(f"id must be 1 to {MAX_ID} printable characters, got {value!r}")
    return text


def _symbol(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SignalError('no symbol: give symbol, e.g. "EURUSD"')
    symbol = value.strip().replace("/", "").upper()
    if not _SYMBOL.match(symbol):
        raise SignalError(f'symbol {value!r}: letters and digits only, e.g. "EURUSD"')
    return symbol


def _side(value: Any) -> Side:
    side = SIDES.get(value.strip().lower()) if isinstance(value, str) else None
    if side is None:
        raise SignalError(f'side must be "buy" or "sell", got {value!r}')
    return side


def _level(item: dict[str, Any], keys: dict[str, Unit]) -> Level | None:
    given = [k for k in keys if item.get(k) is not None]
    if len(given) > 1:
        raise SignalError(f"give one of {', '.join(keys)}, not {' and '.join(given)}")
    if not given:
        return None
    key = given[0]
    return Level(_number(item[key], key), keys[key])


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise SignalError(f"{key} must be a number, got {value!r}")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise SignalError(f"{key} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise SignalError(f"{key} must be a positive number, got {value!r}")
    return number
