"""The cockpit's own cost: CPU while 50 symbols update, and the time to its first frame.

    python -m benchmarks.cockpit [--rate Q] [--seconds S] [--repeat R]

The real `mikrobot` cockpit runs in a pseudo-terminal of 200 x 50 (a tmux session on its own
server socket) on the Binance feed, pointed at loopback: a REST server answering exchangeInfo
for 50 symbols (tests/fake_binance.py) and the paced stream server of benchmarks/feeds.py
sending their quotes at Q a second in total (default 1,000). Figures:
1. first frame: from launching the process to the header's clock (its "UTC") being on the
   screen, polling `tmux capture-pane` every 20 ms; target under 1 s;
2. CPU: the process's user and system time (/proc/PID/stat) over S seconds (default 20) after
   a warm-up of 5 s, as a share of one core; target under 15%. The engine runs inside the
   app (as workers), so this is the whole program's CPU, feed and engine included.
Medians of R runs, each a new process.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import MIKROBOT, in_fresh_process
from benchmarks.feeds import SYMBOLS, server_process

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

WARMUP_S = 5.0
HEADER_TEXT = "UTC"  # the header's clock, painted with the first frame


def _tmux(socket: str, *args: str) -> str:
    cmd = ["tmux", "-L", socket, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout


def _cpu_s(pid: int) -> float:
    """utime + stime of a process, seconds (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mib(pid: int) -> float | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def figures(rate: float = 1_000, seconds: float = 20.0) -> dict[str, Any]:
    """One run: launch the cockpit, time its first frame, then its CPU over `seconds`."""
    from fake_binance import FakeRest, spot_symbols

    if shutil.which("tmux") is None:
        return {"first_frame_s": "n/a (tmux missing)", "cpu_pct": "n/a (tmux missing)"}
    socket = f"mikrobot-bench-{os.getpid()}"
    total_s = 30 + WARMUP_S + seconds  # the server paces for this long after a connection
    proc, port = server_process("paced", int(rate * total_s) + 1000, rate, total_s)
    try:
        with FakeRest(spot_symbols(SYMBOLS)) as rest, tempfile.TemporaryDirectory() as tmp:
            env = {
                "MIKROBOT_ENGINE__FEED": "binance",
                "MIKROBOT_BINANCE__STREAM_URL": f"ws://127.0.0.1:{port}",
                "MIKROBOT_BINANCE__REST_URL": rest.url,
                "MIKROBOT_BINANCE__FALLBACK_URLS": "[]",
                "MIKROBOT_BINANCE__SYMBOLS": "[" + ",".join(f'"{s}"' for s in SYMBOLS) + "]",
                "MIKROBOT_BINANCE__STREAMS": '["bookTicker"]',
                "TERM": "xterm-256color",
                "TMPDIR": tmp,  # whatever the app leaves in its temp folder goes with tmp
            }
            argv = [*MIKROBOT, "--db", str(Path(tmp) / "cockpit.db")]
            sets = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
            command = f"cd {shlex.quote(tmp)} && exec env {sets} {shlex.join(argv)}"
            t0 = time.perf_counter()
            _tmux(socket, "new-session", "-d", "-s", "bench", "-x", "200", "-y", "50", command)
            try:
                return _measure(socket, t0, seconds)
            finally:
                _tmux(socket, "kill-server")
    finally:
        proc.kill()


def _measure(socket: str, t0: float, seconds: float) -> dict[str, Any]:
    pid = int(_tmux(socket, "display-message", "-p", "-t", "bench", "#{pane_pid}").strip())
    first_frame = None
    while time.perf_counter() - t0 < 30:
        if HEADER_TEXT in _tmux(socket, "capture-pane", "-p", "-t", "bench"):
            first_frame = time.perf_counter() - t0
            break
        time.sleep(0.02)
    if first_frame is None:
        screen = _tmux(socket, "capture-pane", "-p", "-t", "bench").strip()
        raise RuntimeError(f"no first frame in 30 s; the screen: {screen[-300:]!r}")
    time.sleep(WARMUP_S)
    screen = _tmux(socket, "capture-pane", "-p", "-t", "bench")
    cpu0, w0 = _cpu_s(pid), time.perf_counter()
    time.sleep(seconds)
    cpu1, w1 = _cpu_s(pid), time.perf_counter()
    shown = sum(1 for s in SYMBOLS if s in screen)
    return {
        "first_frame_s": first_frame,
        "cpu_pct": 100 * (cpu1 - cpu0) / (w1 - w0),
        "cockpit_rss_mib": _peak_rss_mib(pid),
        "symbols_on_screen": shown,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1_000, help="quotes a second, in total")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = [
        in_fresh_process("cockpit", "figures", rate=args.rate, seconds=args.seconds)
        for _ in range(args.repeat)
    ]
    first = [r["first_frame_s"] for r in runs]
    cpu = [r["cpu_pct"] for r in runs]
    print(f"cockpit, 50 symbols at {args.rate:,.0f} quotes/s, median of {args.repeat}:")
    print(f"  first frame  {statistics.median(first):6.2f} s   (target < 1)   runs {first}")
    print(f"  CPU          {statistics.median(cpu):6.1f} %   (target < 15 of one core)")
    print(f"  peak memory  {runs[-1]['cockpit_rss_mib']:6.1f} MiB (last run)")
    print(f"  symbols on the screen: {runs[-1]['symbols_on_screen']} of 50 (last run)")


if __name__ == "__main__":
    main()
