"""The models accounts trade by: loaded when the engine is built, watched while it runs.

An account whose strategy names a model (bos_retest's `model` param) gets the newest version
of it from the models folder ([models] dir, beside the database) and its compiled predictor
(trading/models/serve.py): each entry's features get a probability, and the strategy keeps the
entries at or above its threshold. Beside that, per served model:

- Drift. The last [models] psi_window entries' features against the training data's deciles:
  when a feature's population stability index rises above [models] psi_alert, a
  `model_drift` event names the features and their PSI (the alerts room makes it a warning);
  when every feature is back under, another says it has recovered. Only changes are told. The
  window is part of a replay's checkpoint, so a resumed replay tells the same.
- Learning online. An `OnlineModel` is taught each entry's outcome when its position closes at
  the take-profit (1) or the stop (0), with the probability it gave the entry before it knew;
  its rolling out-of-sample score (`scores()`) stands next to the batch model's metrics. It
  starts untaught at every start (it is not part of a checkpoint and writes no event).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mikrobot_tui.config import ConfigError, Settings
from mikrobot_tui.domain.events import Event, EventKind
from mikrobot_tui.paper.ledger import Ledger
from mikrobot_tui.trading.features import FEATURE_NAMES, SetupPoint
from mikrobot_tui.trading.models.serve import DriftWatch


@dataclass
class Drift:
    """A served model's drift window and the features last told as drifted (checkpointed)."""

    watch: DriftWatch
    told: tuple[str, ...] = ()


@dataclass
class Served:
    account: str
    name: str
    version: int
    meta: dict[str, Any]
    predictor: Any  # trading.models.serve.Predictor
    drift: Drift
    online: Any  # trading.models.serve.OnlineModel
    # the latest rated entry per symbol, then per entry order: (features, online probability)
    rated: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)
    entries: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)


def model_problem(settings: Settings, account: int, name: str) -> str | None:
    """Why account `account`'s model `name` cannot be served (None when it can): no such
    model in the folder, or one trained on other features. Reads the .json only."""
    from mikrobot_tui.trading.models import registry

    folder = settings.models.folder(Path(settings.engine.db))
    key = f"accounts[{account}] ({settings.accounts[account].name}).params.model"
    try:
        meta = registry.read_meta(folder, name)
    except (registry.UnknownModel, ValueError) as exc:
        return (
            f"{key}: {exc}; train it first (mikrobot model train --strategy bos_retest "
            f"--data FILE --name {name}) or remove the param"
        )
    if tuple(meta.get("features", ())) != FEATURE_NAMES:
        return (
            f"{key}: {name} v{meta.get('version')} was trained on other features than this "
            f"version computes; train it again (mikrobot model train --name {name})"
        )
    return None


class ModelWatch:
    """Every served model of the engine; a ledger watcher for the entries' outcomes."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.served: dict[str, Served] = {}  # account -> its model
        self._strategies: dict[str, Any] = {}  # account -> its strategy (the skipped count)
        ledger.watchers.append(self.watch)

    def serve(self, settings: Settings, strategies: dict[str, Any]) -> None:
        """Load the model of every account whose strategy names one and bind its predictor.
        ConfigError (the key and the fix) when one cannot be served."""
        from mikrobot_tui.trading.models import registry
        from mikrobot_tui.trading.models.serve import OnlineModel, Predictor

        folder = settings.models.folder(Path(settings.engine.db))
        self._strategies = strategies
        for i, acct in enumerate(settings.accounts):
            strategy = strategies[acct.name]
            name = str(getattr(strategy, "model", "") or "")
            if not name:
                continue
            problem = model_problem(settings, i, name)
            if problem is not None:
                raise ConfigError(problem)
            loaded = registry.load(name, directory=folder)
            m = settings.models
            served = Served(
                acct.name,
                name,
                loaded.version,
                loaded.meta,
                Predictor(loaded),
                Drift(DriftWatch.for_model(loaded, m.psi_window, m.psi_alert)),
                OnlineModel.for_model(loaded),
            )
            self.served[acct.name] = served
            strategy.bind_model(lambda point, x, served=served: self._rate(served, point, x))

    def _rate(self, served: Served, point: SetupPoint, x: np.ndarray) -> float:
        p = served.predictor.probability(x)
        served.rated[point.symbol] = (x, served.online.probability(x))
        served.drift.watch.add(x)
        self._tell_drift(served, point.ts)
        return p

    def _tell_drift(self, served: Served, ts: int) -> None:
        drift = served.drift
        over = drift.watch.alerts()
        names = tuple(name for name, _ in over)
        if names == drift.told or (not names and not drift.told):
            return
        payload: dict[str, Any] = {
            "model": served.name,
            "version": served.version,
            "state": "drifted" if names else "recovered",
            "features": [{"name": n, "psi": round(v, 4)} for n, v in over],
            "psi_alert": drift.watch.alert,
            "window": len(drift.watch),
        }
        drift.told = names
        self._ledger.emit(ts, EventKind.MODEL_DRIFT, served.account, payload)

    def watch(self, event: Event) -> None:
        served = self.served.get(event.account or "")
        if served is None:
            return
        p = event.payload
        if event.kind is EventKind.ORDER_SUBMITTED and p.get("intent") == "open":
            if "parent_id" not in p:
                rated = served.rated.pop(p.get("symbol", ""), None)
                if rated is not None:
                    served.entries[p["order_id"]] = rated
        elif event.kind is EventKind.POSITION_CLOSED:
            rated = served.entries.pop(p.get("position_id", ""), None)
            reason = p.get("reason")
            if rated is not None and reason in ("take_profit", "stop_loss"):
                x, predicted = rated
                served.online.update(x, 1.0 if reason == "take_profit" else 0.0, predicted)

    def scores(self) -> dict[str, dict[str, Any]]:
        """Per account: the model (its kind and label), its batch out-of-sample metrics, the
        online model's rolling score so far (NaN while it cannot be told: AUC needs both
        outcomes), the entries the strategy skipped on the model's word, the drifted features."""
        out = {}
        for account, s in self.served.items():
            online = s.online.score
            out[account] = {
                "model": s.name,
                "version": s.version,
                "kind": s.meta.get("kind"),
                "label": s.meta.get("label"),
                "skipped": int(getattr(self._strategies.get(account), "filtered", 0)),
                "batch": {k: s.meta.get("metrics", {}).get(k) for k in ("auc", "log_loss")},
                "online": {
                    "updates": s.online.updates,
                    "auc": online.auc(),
                    "log_loss": online.log_loss(),
                },
                "drifted": list(s.drift.told),
            }
        return out

    def drift_state(self) -> dict[str, Drift]:
        return {account: s.drift for account, s in self.served.items()}

    def restore_drift(self, saved: dict[str, Drift] | None) -> None:
        for account, drift in (saved or {}).items():
            served = self.served.get(account)
            if served is not None and drift.watch.names == served.drift.watch.names:
                served.drift = drift
