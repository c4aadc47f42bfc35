"""Events: the append-only record of every change to trading state.

Payloads are plain JSON-able dicts written with sorted keys and no whitespace, so the same run
produces a byte-identical log (invariant 1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    ACCOUNT_OPENED = "account_opened"
    ORDER_SUBMITTED = "order_submitted"
    ORDER_FILLED = "order_filled"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_REFUSED = "order_refused"  # the orchestrator said no: no order exists
    ORDER_ACCEPTED = "order_accepted"  # a limit or stop reached the venue and rests there
    ORDER_REJECTED = "order_rejected"  # the venue said no to a submitted order, with the reason
    ORDER_MODIFIED = "order_modified"  # price, trigger, size or expiry changed (trailing too)
    ORDER_TRIGGERED = "order_triggered"  # a stop-limit's trigger reached: now a limit
    POSITION_OPENED = "position_opened"
    POSITION_CLOSED = "position_closed"
    POSITION_CHANGED = "position_changed"  # netting add or a partial close
    MARGIN_CALL = "margin_call"  # margin level fell below the margin call level
    MARGIN_RECOVERED = "margin_recovered"
    STOP_OUT = "stop_out"  # a position closed because margin level reached the stop-out
    SWAP = "swap"  # financing charged or paid at a rollover
    HALTED = "halted"
    RESUMED = "resumed"
    REDUCING = "reducing"  # engine-wide: only orders that reduce exposure, until resumed
    LIMIT_VIOLATION = "limit_violation"  # an account limit bit: the violation and the account
    ACCOUNT_STATE = "account_state"  # an account's trading state changed (from, to, reason)
    FLATTEN = "flatten"
    BREAKER_CHANGED = "breaker_changed"
    ALERT = "alert"  # what an operator must know, with a severity (engine/alerts.py)
    # an experiment's bandit shared its risk budget anew (engine/allocation.py): experiment,
    # variants, shares (summing to 1) and the trades per variant they were drawn from
    ALLOCATION_CHANGED = "allocation_changed"
    # a served model's recent entries drifted from its training data, or came back
    # (engine/models.py): model, version, state, the features over the PSI level
    MODEL_DRIFT = "model_drift"


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    ts: int
    kind: EventKind
    account: str | None
    payload: dict[str, Any] = field(default_factory=dict)

    def payload_json(self) -> str:
        return dumps(self.payload)


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
