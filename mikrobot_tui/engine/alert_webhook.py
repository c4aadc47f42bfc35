"""Alerts POSTed to a webhook (Telegram, Discord, Slack or any), never in the engine's way.

The live runner feeds each new alert event of at least `alerts.min_severity` into a bounded
queue (`offer`, on the loop, never blocking: when the queue is full the oldest undelivered
alert is dropped and counted); an asyncio task (`run`) sends them one by one through stdlib
urllib in a worker thread (asyncio.to_thread) with a short timeout, retrying a failure
`alerts.retries` times with exponential backoff, then giving the alert up and saying so in the
run's log. A dead endpoint costs the loop nothing. A replay never has a webhook.

With `alerts.webhook_secret` set, every POST carries `X-Mikrobot-Timestamp` (Unix seconds) and
`X-Mikrobot-Signature: sha256=<hex HMAC-SHA256 of the exact body>`. The URL is a secret (a
Telegram or Slack URL holds the token): it is never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from typing import Any

from mikrobot_tui.config import AlertsSettings
from mikrobot_tui.domain.events import Event, EventKind
from mikrobot_tui.engine.alerts import rank

BACKOFF_S = 1.0  # the first retry's wait; doubled each time
BACKOFF_MAX_S = 60.0
USER_AGENT = "mikrobot-alerts/1"


def alert_doc(event: Event) -> dict[str, Any]:
    """An alert event as the JSON format sends it (and `mikrobot alerts --json` lists it)."""
    p = event.payload
    return {
        "seq": event.seq,
        "ts": event.ts,
        "severity": p.get("severity", ""),
        "source": p.get("source", ""),
        "title": p.get("title", ""),
        "text": p.get("text", ""),
    }


def one_line(doc: dict[str, Any]) -> str:
    return f"[{str(doc['severity']).upper()}] {doc['title']}: {doc['text']}"


def body(doc: dict[str, Any], fmt: str, chat_id: str = "") -> bytes:
    """The exact bytes POSTed for one alert in a webhook format."""
    if fmt == "slack":
        payload: dict[str, Any] = {"text": one_line(doc)}
    elif fmt == "discord":
        payload = {"content": one_line(doc)}
    elif fmt == "telegram":
        payload = {"chat_id": chat_id, "text": one_line(doc)}
    else:
        payload = dict(doc)
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode()


def signature(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


class AlertWebhook:
    def __init__(
        self,
        settings: AlertsSettings,
        say: Callable[[str, dict[str, Any]], None] | None = None,
        backoff_s: float = BACKOFF_S,
    ) -> None:
        assert settings.webhook_url is not None
        self._url = settings.webhook_url.get_secret_value()
        self._secret = (
            settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        )
        self.format = settings.webhook_format
        self.chat_id = settings.telegram_chat_id
        self.min_rank = rank(settings.min_severity)
        self.retries = settings.retries
        self.timeout_s = settings.timeout_s
        self.backoff_s = backoff_s
        self.queue: deque[dict[str, Any]] = deque(maxlen=settings.queue)
        self._wake = asyncio.Event()
        self._say = say or (lambda msg, fields: None)  # the run's log: a warning
        self.delivered = 0
        self.dropped = 0  # pushed out of a full queue
        self.given_up = 0  # failed after every retry

    # ---------------------------------------------------------------- on the loop

    def offer(self, event: Event) -> None:
        """A ledger watcher: queue a new alert of at least min_severity. Never blocks."""
        if event.kind is not EventKind.ALERT:
            return
        if rank(str(event.payload.get("severity"))) < self.min_rank:
            return
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1  # the oldest goes: deque(maxlen) pushes it out
            self._say(
                "alert dropped: the webhook queue is full",
                {"seq": self.queue[0]["seq"], "dropped": self.dropped},
            )
        self.queue.append(alert_doc(event))
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver what is queued until `stop`; what is left then is said in the log."""
        try:
            while not stop.is_set():
                if not self.queue:
                    self._wake.clear()
                    waiter = asyncio.ensure_future(self._wake.wait())
                    stopper = asyncio.ensure_future(stop.wait())
                    try:
                        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        waiter.cancel()
                        stopper.cancel()
                    continue
                doc = self.queue.popleft()
                try:
                    await self._deliver(doc, stop)
                except Exception as exc:  # nothing here may stop the engine
                    self.given_up += 1
                    self._say("alert not delivered", {"seq": doc["seq"], "problem": repr(exc)})
        finally:
            if self.queue:
                self._say(
                    "alerts not delivered: the engine stopped",
                    {"undelivered": len(self.queue), "seqs": [d["seq"] for d in self.queue]},
                )

    async def _deliver(self, doc: dict[str, Any], stop: asyncio.Event) -> None:
        raw = body(doc, self.format, self.chat_id)
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                wait = min(self.backoff_s * 2 ** (attempt - 1), BACKOFF_MAX_S)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=wait)
                    break  # stopping: no more tries
                except TimeoutError:
                    pass
            problem = await asyncio.to_thread(self._post, raw)
            if not problem:
                self.delivered += 1
                return
            self._say(
                "alert webhook failed",
                {"seq": doc["seq"], "attempt": attempt + 1, "problem": problem},
            )
        self.given_up += 1
        self._say(
            "alert given up after its retries",
            {"seq": doc["seq"], "retries": self.retries, "problem": problem},
        )

    # ---------------------------------------------------------------- in a worker thread

    def _post(self, raw: bytes) -> str:
        """POST once: "" when the endpoint took it (2xx), else what went wrong."""
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self._secret:
            headers["X-Mikrobot-Timestamp"] = str(int(time.time()))
            headers["X-Mikrobot-Signature"] = signature(self._secret, raw)
        request = urllib.request.Request(self._url, data=raw, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except urllib.error.URLError as exc:
            return f"cannot reach the webhook: {exc.reason}"
        except (OSError, ValueError) as exc:  # a timeout, a reset, a malformed URL
            return f"{type(exc).__name__}: {exc}"
        return "" if 200 <= status < 300 else f"HTTP {status}"
