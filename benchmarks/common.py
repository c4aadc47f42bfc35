"""What the benchmarks share: the seeded tick file, runs in fresh processes, medians, peak
memory and the machine's description.

Every figure of `python -m benchmarks` is a median of runs, each in a new process (so one
run's warm caches, garbage or memory high-water mark never reach the next), interleaved
between the things compared (so the shared machine's noise hits all of them alike).

    python -m benchmarks.common MODULE FUNCTION '{"kwarg": 1}'

is how a run calls `benchmarks.MODULE.FUNCTION(**kwargs)` in a fresh process: the figures
come back as one JSON line on stdout, the process's peak memory from the kernel.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
START_NS = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC
MIKROBOT = [sys.executable, "-m", "mikrobot_tui.cli"]


# ---------------------------------------------------------------- the seeded tick file


def tick_file(n_ticks: int) -> Path:
    """Generate the seeded tick file once and keep it under benchmarks/data/ (git-ignored)."""
    from mikrobot_tui.config import load_settings
    from mikrobot_tui.data.feeds import save_ticks
    from mikrobot_tui.data.sim import generate_ticks
    from mikrobot_tui.domain.instruments import default_instruments

    path = DATA / f"sim_{n_ticks}.npz"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    settings = load_settings(None, overrides={"sim": {"seed": 42}})
    catalogue = default_instruments()
    instruments = [catalogue[s] for s in settings.sim.symbols]
    ticks = generate_ticks(instruments, settings.sim, START_NS, n_ticks)
    save_ticks(path, ticks, [i.symbol for i in instruments])
    return path


def seeded_ticks(n_ticks: int) -> tuple[Any, list[str]]:
    """The seeded ticks (a TICK_DTYPE array) and their symbols."""
    import numpy as np

    data = np.load(tick_file(n_ticks))
    return data["ticks"], [str(s) for s in data["symbols"]]


def seeded_ticks_cli(doc: str) -> tuple[argparse.Namespace, Any, list[str]]:
    """The options every tick benchmark takes (--ticks N, --repeat R) and the seeded ticks."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ticks, symbols = seeded_ticks(args.ticks)
    return args, ticks, symbols


# ---------------------------------------------------------------- fresh processes


@dataclass
class Run:
    """One finished process: exit code, output, wall time from start to exit, peak memory."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    max_rss_mib: float

    def last_json(self) -> dict[str, Any]:
        """The last line of stdout that is a JSON object, or the whole of stdout as one."""
        for line in reversed(self.stdout.strip().splitlines()):
            if line.startswith("{") and line.endswith("}"):
                return json.loads(line)
        return json.loads(self.stdout)


def run_process(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> Run:
    """Run cmd to its end; the wall time counts from the fork to the exit, and the peak memory
    is the child's own (wait4's rusage: RUSAGE_CHILDREN would hold the largest child so far)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Run(proc.returncode, out.read(), err.read(), wall, usage.ru_maxrss / 1024)


def in_fresh_process(module: str, function: str, **kwargs: Any) -> dict[str, Any]:
    """benchmarks.<module>.<function>(**kwargs) in a new interpreter: its figures, plus the
    process's peak memory (`max_rss_mib`) and its wall time from start to exit (`process_s`:
    start-up and imports included). A failing run raises with its stderr's last line."""
    cmd = [sys.executable, "-m", "benchmarks.common", module, function, json.dumps(kwargs)]
    run = run_process(cmd)
    if run.returncode != 0:
        tail = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"benchmarks.{module}.{function} failed: {tail}")
    return {**run.last_json(), "max_rss_mib": run.max_rss_mib, "process_s": run.wall_s}


def median(values: list[Any]) -> Any:
    """The median of the numbers among values; None when there are none."""
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return statistics.median(numbers) if numbers else None


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Key by key, the median of the runs' numbers (a key whose runs hold no number keeps
    its last value, e.g. a reason the figure is missing)."""
    keys = {k for r in runs for k in r}
    out = {}
    for k in keys:
        values = [r.get(k) for r in runs]
        m = median(values)
        out[k] = m if m is not None else values[-1]
    return out


def peak_rss_mib() -> float:
    """This process's own peak resident memory so far."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- the machine


def machine() -> dict[str, Any]:
    """Which machine the figures are from: hostname, CPU model, cores, RAM, Python and OS."""
    cpu = platform.processor() or platform.machine()
    ram_gib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:  # not Linux: what platform knows
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "hostname": socket.gethostname(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": ram_gib,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "load_at_start": load,
    }


def _child() -> None:
    module, function, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    figures = getattr(importlib.import_module(f"benchmarks.{module}"), function)(**kwargs)
    print(json.dumps(figures))


if __name__ == "__main__":
    _child()
