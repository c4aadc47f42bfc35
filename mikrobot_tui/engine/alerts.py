"""Alerts: what an operator must know, derived from the events as they are emitted.

A ledger watcher: each event that matters (a breaker opening or closing, a margin call, a
stop-out, an account going REDUCING or HALTED, a limit breached, the engine halted, resumed
or flattened) becomes an `alert` event with a severity (info, warning, critical), a source, a
title, a text and the seq of the event behind it. Everything comes from the events (market
time, never a wall clock), so a replay repeats the alerts byte for byte.

No storms: at most one alert per (source, kind) per minute of market time; the next one that
goes out says how many were held back. A restart learns where each key stands from the log
(`learn`, the same derivation without emitting), so a resumed replay alerts as an unbroken one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mikrobot_tui.domain.events import Event, EventKind
from mikrobot_tui.domain.market import NS_PER_SECOND
from mikrobot_tui.paper.ledger import Ledger

SEVERITIES = ("info", "warning", "critical")
WINDOW_NS = 60 * NS_PER_SECOND  # one alert per (source, kind) per minute of market time
# halts that an operator did not ask for: the limits, or a database that cannot take rows
UNASKED_HALTS = ("limits", "database full", "database failing")


def rank(severity: str) -> int:
    """info 0, warning 1, critical 2 (an unknown severity counts as critical)."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES) - 1


@dataclass(frozen=True, slots=True)
class Alert:
    severity: str  # info | warning | critical
    source: str  # what it is about: "breaker:feed:sim", "account:A", "engine"
    kind: str  # what happened: breaker_opened, margin_call, engine_halted, ...
    title: str
    text: str


def derive(event: Event) -> Alert | None:
    """The alert an event calls for, None when it calls for none."""
    p, kind, account = event.payload, event.kind, event.account
    who = f"account:{account}" if account else "engine"
    if kind is EventKind.BREAKER_CHANGED:
        name, new, old = str(p.get("name", "")), p.get("new_state"), p.get("old_state")
        why = f": {p['reason']}" if p.get("reason") else ""
        if new == "OPEN":
            severity = "critical" if name.startswith("feed:") else "warning"
            failures = int(p.get("failures", 0))
            text = f"{name} opened after {failures} failure(s){why}; its orders are refused"
            return Alert(
                severity, f"breaker:{name}", "breaker_opened", f"Breaker open: {name}", text
            )
        if new == "CLOSED" and old != "CLOSED":
            text = f"{name} closed again: trading through it resumes"
            return Alert(
                "info", f"breaker:{name}", "breaker_closed", f"Breaker closed: {name}", text
            )
        return None
    if kind is EventKind.MARGIN_CALL:
        level = p.get("margin_level")
        at = f" at a margin level of {float(level):.1f}%" if level is not None else ""
        text = f"{account}: margin call{at}; equity {_money(p.get('equity'))}"
        return Alert("warning", who, "margin_call", f"Margin call: {account}", text)
    if kind is EventKind.STOP_OUT:
        text = f"{account}: stop-out closed position {p.get('position_id', '?')}"
        return Alert("critical", who, "stop_out", f"Stop-out: {account}", text)
    if kind is EventKind.ACCOUNT_STATE:
        to, why = p.get("to"), p.get("reason", "")
        because = f": {why}" if why else ""
        if to == "REDUCING":
            text = f"{account} is REDUCING (only orders that reduce exposure){because}"
            return Alert("warning", who, "account_reducing", f"{account} reducing", text)
        if to == "HALTED":
            text = f"{account} is HALTED (no new orders){because}"
            return Alert("critical", who, "account_halted", f"{account} halted", text)
        return None
    if kind is EventKind.LIMIT_VIOLATION and p.get("severity") == "breach":
        text = f"{account}: {p.get('message') or p.get('kind', 'a limit')}"
        return Alert("critical", who, "limit_breach", f"Limit breached: {account}", text)
    if kind is EventKind.HALTED:
        source = str(p.get("source", "operator"))
        severity = "critical" if source in UNASKED_HALTS else "info"
        why = f": {p['reason']}" if p.get("reason") else ""
        text = f"trading halted by {source}{why}; working orders cancelled, positions stay"
        return Alert(severity, "engine", "engine_halted", "Engine halted", text)
    if kind is EventKind.RESUMED:
        text = f"trading resumed by {p.get('source', 'operator')}"
        return Alert("info", "engine", "engine_resumed", "Engine resumed", text)
    if kind is EventKind.MODEL_DRIFT:
        model = f"{p.get('model', '?')} v{p.get('version', '?')}"
        if p.get("state") == "recovered":
            text = f"{account}: the entries' features are back near {model}'s training data"
            return Alert(
                "info", f"model:{account}", "model_drift", f"Model recovered: {model}", text
            )
        over = ", ".join(f"{f['name']} {f['psi']:.2f}" for f in p.get("features", []))
        text = (
            f"{account}: the last {p.get('window')} entries drifted from {model}'s training "
            f"data (PSI over {p.get('psi_alert')}: {over}); its probabilities may not hold: "
            "retrain it on recent data"
        )
        return Alert("warning", f"model:{account}", "model_drift", f"Model drift: {model}", text)
    if kind is EventKind.FLATTEN:
        n = int(p.get("positions", 0))
        scope = account or "every account"
        text = f"{scope}: {n} position(s) closed at market, by {p.get('source', 'operator')}"
        return Alert("info", who, "flatten", f"Flatten: {scope}", text)
    return None


def _money(value: Any) -> str:
    return "?" if value is None else f"{float(value):,.2f}"


class Alerts:
    """The room: watches the ledger, emits the alerts, holds back storms."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, str], int] = {}  # (source, kind) -> ts of its last alert
        self.held: dict[tuple[str, str], int] = {}  # alerts held back since then
        self._ledger: Ledger | None = None

    def attach(self, ledger: Ledger) -> None:
        """Watch this ledger from now on (after the log was learnt)."""
        self._ledger = ledger
        ledger.watchers.append(self.watch)

    def learn(self, event: Event) -> None:
        """An event of the stored log: where each key's window stands, nothing emitted."""
        alert = derive(event)
        if alert is not None:
            self._admit(alert, event.ts)

    def watch(self, event: Event) -> None:
        if event.kind is EventKind.ALERT or self._ledger is None:
            return
        alert = derive(event)
        if alert is None:
            return
        held = self._admit(alert, event.ts)
        if held is None:
            return
        text = alert.text
        if held:
            text += f" ({held} more like it held back since the last alert)"
        payload = {
            "severity": alert.severity,
            "source": alert.source,
            "kind": alert.kind,
            "title": alert.title,
            "text": text,
            "seq": event.seq,
        }
        self._ledger.emit(event.ts, EventKind.ALERT, event.account, payload)

    def _admit(self, alert: Alert, ts: int) -> int | None:
        """None when the alert is held back; else how many were held back before it."""
        key = (alert.source, alert.kind)
        last = self.last.get(key)
        # market time can restart lower (a replay of earlier data): a minute either way
        if last is not None and abs(ts - last) < WINDOW_NS:
            self.held[key] = self.held.get(key, 0) + 1
            return None
        self.last[key] = ts
        return self.held.pop(key, 0)
