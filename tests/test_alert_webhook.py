"""Alerts POSTed to a webhook: a real HTTP server on 127.0.0.1 checks the HMAC signature and
fails twice before it takes the alert; a dead endpoint costs the engine's loop nothing; each
format's body; and the run's JSON-lines log, with a secret redacted."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mikrobot_tui.config import AlertsSettings
from mikrobot_tui.domain.events import Event, EventKind
from mikrobot_tui.engine import build_engine
from mikrobot_tui.engine.alert_webhook import AlertWebhook, body
from mikrobot_tui.engine.runner import Runner

SECRET = "hook-key-0123456789"


class Hook:
    """What the server saw, and what it answers: `fail_first` 500s, then 200."""

    def __init__(self, fail_first: int = 0, stall_s: float = 0.0) -> None:
        self.fail_first = fail_first
        self.stall_s = stall_s
        self.posts: list[tuple[dict[str, str], bytes, int]] = []


@pytest.fixture
def hook_server() -> Iterator[tuple[Hook, str]]:
    hook = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(hook.stall_s)
            status = 500 if len(hook.posts) < hook.fail_first else 200
            hook.posts.append((dict(self.headers), raw, status))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook, f"http://127.0.0.1:{server.server_address[1]}/hooks/bot-token-xyz"
    finally:
        server.shutdown()
        server.server_close()


def dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/dead"


def alert(seq: int, severity: str = "critical") -> Event:
    payload = {
        "severity": severity,
        "source": "account:A",
        "kind": "account_halted",
        "title": "A halted",
        "text": "A is HALTED (no new orders): daily loss",
        "seq": seq - 1,
    }
    return Event(seq, 1_767_225_600_000_000_000, EventKind.ALERT, "A", payload)


async def deliver(webhook: AlertWebhook, until, timeout: float = 10.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(webhook.run(stop))
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    stop.set()
    await task


async def test_a_signed_alert_is_retried_until_the_endpoint_takes_it(hook_server) -> None:
    hook, url = hook_server
    hook.fail_first = 2
    said: list[tuple[str, dict]] = []
    settings = AlertsSettings(webhook_url=url, webhook_secret=SECRET, min_severity="warning")
    webhook = AlertWebhook(settings, lambda m, f: said.append((m, f)), backoff_s=0.05)
    webhook.offer(alert(10, "info"))  # under min_severity: not sent
    webhook.offer(alert(12))
    await deliver(webhook, lambda: webhook.delivered == 1)
    assert [status for _, _, status in hook.posts] == [500, 500, 200]
    for headers, raw, _ in hook.posts:  # the same exact body, signed each time
        expected = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        assert headers["X-Mikrobot-Signature"] == f"sha256={expected}"
        assert abs(int(headers["X-Mikrobot-Timestamp"]) - time.time()) < 60
        assert headers["Content-Type"] == "application/json"
    doc = json.loads(hook.posts[-1][1])
    assert doc == {
        "seq": 12,
        "ts": 1_767_225_600_000_000_000,
        "severity": "critical",
        "source": "account:A",
        "title": "A halted",
        "text": "A is HALTED (no new orders): daily loss",
    }
    assert [m for m, _ in said] == ["alert webhook failed"] * 2
    assert all(f["problem"] == "HTTP 500" for _, f in said)
    assert not any("bot-token" in json.dumps(f) for _, f in said)  # the URL is never said


async def test_a_dead_endpoint_is_given_up_after_the_retries_and_never_stalls_the_loop() -> None:
    settings = AlertsSettings(webhook_url=dead_url(), retries=3, queue=2)
    said: list[tuple[str, dict]] = []
    webhook = AlertWebhook(settings, lambda m, f: said.append((m, f)), backoff_s=0.05)
    for seq in (1, 2, 3):  # a queue of two: the oldest is dropped and counted
        webhook.offer(alert(seq))
    assert webhook.dropped == 1 and [d["seq"] for d in webhook.queue] == [2, 3]
    lags: list[float] = []

    async def heartbeat() -> None:  # the engine's loop, as a task that wants to run often
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - t - 0.01)

    beat = asyncio.create_task(heartbeat())
    await deliver(webhook, lambda: webhook.given_up == 2)
    beat.cancel()
    assert webhook.given_up == 2 and webhook.delivered == 0
    gave_up = [f for m, f in said if m == "alert given up after its retries"]
    assert [f["seq"] for f in gave_up] == [2, 3] and gave_up[0]["retries"] == 3
    assert "cannot reach the webhook" in gave_up[0]["problem"]
    assert len(lags) > 20 and max(lags) < 0.2  # the loop kept its rhythm throughout


async def test_a_stalling_endpoint_times_out_in_its_thread_not_on_the_loop(hook_server) -> None:
    hook, url = hook_server
    hook.stall_s = 1.5
    settings = AlertsSettings(webhook_url=url, retries=0, timeout_s=0.5)
    webhook = AlertWebhook(settings, backoff_s=0.05)
    webhook.offer(alert(5))
    t0 = time.monotonic()
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beat = asyncio.create_task(heartbeat())
    await deliver(webhook, lambda: webhook.given_up == 1)
    beat.cancel()
    took = time.monotonic() - t0
    assert webhook.given_up == 1 and took < 1.4  # the timeout, not the endpoint's stall
    assert ticks > took / 0.01 * 0.3


def test_each_format_has_its_body() -> None:
    doc = {"seq": 3, "ts": 1, "severity": "warning", "source": "account:B", "title": "T"}
    doc["text"] = "x"
    line = "[WARNING] T: x"
    assert json.loads(body(doc, "slack")) == {"text": line}
    assert json.loads(body(doc, "discord")) == {"content": line}
    assert json.loads(body(doc, "telegram", "-100123")) == {"chat_id": "-100123", "text": line}
    assert json.loads(body(doc, "json")) == doc


async def test_a_live_run_logs_its_alerts_and_the_webhooks_failures_with_secrets_redacted(
    make_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live run against a dead webhook: the alerts are logged, the failures too, the run
    keeps time, and neither the URL (a secret) nor the API key appear in the log file."""
    url = dead_url() + "/bot-secret-token"
    monkeypatch.setenv("MIKROBOT_BINANCE__API_KEY", "binance-key-abcdef")
    settings = make_settings(
        alerts={"webhook_url": url, "min_severity": "info", "retries": 1, "log_max_mb": 1}
    )
    engine = build_engine(settings)
    runner = Runner(engine)
    stop = asyncio.Event()

    async def operate() -> None:
        await asyncio.sleep(0.3)
        engine.control.halt("operator")
        engine.control.resume("operator")
        assert runner.log is not None  # a line carrying the secrets: redacted on the way
        runner.log.warning("probe", note=f"{url} and binance-key-abcdef")

    t0 = time.monotonic()
    await asyncio.gather(runner.run(stop, duration_s=2.0), operate())
    took = time.monotonic() - t0
    engine.close()
    assert took < 4.0
    (log,) = (tmp_path / "logs").glob("mikrobot-*-*.jsonl")
    text = log.read_text()
    assert "bot-secret-token" not in text and "binance-key-abcdef" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    msgs = [line["msg"] for line in lines]
    assert msgs[0] == "engine started" and msgs[-1] == "engine stopped"
    assert lines[0]["feed"] == "sim" and lines[0]["db"] == str(settings.engine.db)
    # the warm-up's history may trip a breaker: logged, marked, never POSTed
    alerts = [line for line in lines if line["msg"] == "alert" and not line.get("warmup")]
    assert [a["alert"] for a in alerts] == ["engine_halted", "engine_resumed"]
    assert all(a["level"] == "info" and a["severity"] == "info" for a in alerts)
    assert "alert webhook failed" in msgs and "alert given up after its retries" in msgs
    probe = next(line for line in lines if line["msg"] == "probe")
    assert probe["note"] == "*** and ***"
    assert all("ts" in line and "level" in line for line in lines)


def test_the_log_redacts_every_secret_in_messages_arguments_and_tracebacks(
    make_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mikrobot_tui.engine.runlog import RunLog, secret_values

    monkeypatch.setenv("MIKROBOT_MT5__PASSWORD", "mt5-pass-42")
    monkeypatch.setenv("MIKROBOT_SIGNALS__WEBHOOK_SECRET", "signal-key-77")
    settings = make_settings(alerts={"webhook_url": "https://x.test/bot9:TOKEN/send"})
    assert set(secret_values(settings)) == {
        "mt5-pass-42",
        "signal-key-77",
        "https://x.test/bot9:TOKEN/send",
    }
    log = RunLog(settings, settings.engine.db, 1_767_225_600 * 10**9)
    assert log.path.name == f"mikrobot-20260101T000000Z-{os.getpid()}.jsonl"
    log.logger.warning("login %s failed", "mt5-pass-42")
    try:
        raise ValueError("cannot post to https://x.test/bot9:TOKEN/send")
    except ValueError:
        log.exception("webhook", nested={"keys": ["signal-key-77"]})
    log.close()
    text = log.path.read_text()
    assert "mt5-pass-42" not in text and "TOKEN" not in text and "signal-key-77" not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["msg"] == "login *** failed" and first["level"] == "warning"
    assert second["nested"] == {"keys": ["***"]}
    assert "ValueError: cannot post to ***" in second["exception"]


def test_the_log_rotates_by_size(make_settings, tmp_path: Path) -> None:
    from mikrobot_tui.engine.runlog import RunLog

    settings = make_settings(alerts={"log_max_mb": 0.002, "log_backups": 2})  # about 2 KB
    log = RunLog(settings, settings.engine.db, 1_767_225_600 * 10**9)
    for i in range(100):
        log.info("alert", seq=i, text="x" * 100)
    log.close()
    files = sorted(log.path.parent.glob(log.path.name + "*"))
    assert [f.name for f in files] == [log.path.name, log.path.name + ".1", log.path.name + ".2"]
    assert all(f.stat().st_size <= 2200 for f in files)
    last = json.loads(log.path.read_text().splitlines()[-1])
    assert last["seq"] == 99


async def test_a_replay_never_posts_its_alerts(make_settings, hook_server, tmp_path) -> None:
    from engine_data import replay_feed_engine

    hook, url = hook_server
    settings = make_settings(alerts={"webhook_url": url, "min_severity": "info"})
    engine = replay_feed_engine(settings, tmp_path / "r")
    runner = Runner(engine)
    stop = asyncio.Event()

    async def operate() -> None:
        while not engine.started:
            await asyncio.sleep(0.01)
        engine.control.halt("operator")  # while the replay runs through the live loop
        await asyncio.sleep(0.5)  # time enough for a POST, were there a webhook

    await asyncio.gather(runner.run(stop, duration_s=2.0), operate())
    engine.close()
    (log,) = (tmp_path / "logs").glob("*.jsonl")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[0]["mode"] == "REPLAY"
    assert "engine_halted" in [line["alert"] for line in lines if line["msg"] == "alert"]
    assert hook.posts == []


async def test_alerts_raised_while_the_engine_starts_are_logged_and_posted(
    make_settings, tmp_path: Path, hook_server
) -> None:
    """The CLI starts the engine (warm-up included) before the run opens its log and its
    webhook: an alert raised then is told once the run begins, in order, not lost."""
    hook, url = hook_server
    settings = make_settings(alerts={"webhook_url": url, "min_severity": "info"})
    engine = build_engine(settings)
    engine.start()
    engine.control.halt("operator")  # an alert before anything listens
    engine.control.resume("operator")
    runner = Runner(engine)
    await runner.run(asyncio.Event(), duration_s=1.0)
    engine.close()
    (log,) = (tmp_path / "logs").glob("mikrobot-*-*.jsonl")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    alerts = [line for line in lines if line["msg"] == "alert"]
    warmup = [a for a in alerts if a.get("warmup")]
    assert [a["alert"] for a in alerts if not a.get("warmup")] == [
        "engine_halted",
        "engine_resumed",
    ]
    assert all(a["alert"].startswith("breaker_") for a in warmup)
    sent = [json.loads(raw) for _, raw, status in hook.posts if status == 200]
    assert [d["title"] for d in sent][:1] and "halt" in sent[0]["title"].lower()
    assert len(sent) == 2  # the warm-up's breakers were not POSTed


def test_a_failing_wal_copy_is_said_in_the_run_log_once_and_when_it_recovers(
    make_settings, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    engine = build_engine(make_settings())
    engine.start()
    runner = Runner(engine)
    runner._open_log()
    stub = SimpleNamespace(problem="WAL checkpoint failed (disk I/O error)", close=lambda: None)
    engine.writer._checkpointer = stub
    runner.on_writer_problem()
    runner.on_writer_problem()  # the same trouble: not said twice
    stub.problem = None
    runner.on_writer_problem()
    runner._close_log()
    engine.writer._checkpointer = None
    engine.close()
    (log,) = (tmp_path / "logs").glob("*.jsonl")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    said = [(x["msg"], x.get("problem")) for x in lines if "WAL" in x["msg"]]
    assert said == [
        ("WAL copy failing", "WAL checkpoint failed (disk I/O error)"),
        ("WAL copy working again", None),
    ]
