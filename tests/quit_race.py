"""Open and quit the cockpit many times while its polls read SQLite; run as a child process.

`python quit_race.py DB TIMES` opens the cockpit on DB at a high refresh rate, waits a varied
moment and then for a poll to be reading, quits, and does it TIMES times, with a busy thread
beside it as on a loaded machine (where quitting crashed CI one run in two). A cockpit that
closes a connection while a query on it runs in another thread kills this process with a
segmentation fault; the parent test sees the exit status instead of dying with it. The last
line is "quits N in_flight M", M counting the quits made while a poll worker was running.
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
from pathlib import Path

from textual.worker import WorkerState
from tui_fixtures import NOW_NS

from mikrobot_tui.clock import FrozenClock
from mikrobot_tui.tui.app import CockpitApp


def busy() -> None:
    while True:
        sum(range(1_000))


def polling(app: CockpitApp) -> bool:
    return any(w.group == "poll" and w.state == WorkerState.RUNNING for w in app.workers)


async def quit_many_times(path: Path, times: int) -> tuple[int, int]:
    threading.Thread(target=busy, daemon=True).start()
    rng = random.Random(11)
    quits = in_flight = 0
    for _ in range(times):
        app = CockpitApp(path, FrozenClock(NOW_NS), refresh_hz=500.0)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(rng.uniform(0.0, 0.05))
            for _ in range(200):  # then catch a poll in its thread (0.1 s at most)
                if polling(app):
                    break
                await asyncio.sleep(0.0005)
            in_flight += polling(app)
            await app.action_quit()  # what q runs, without the pilot waiting for idle
        quits += 1
    return quits, in_flight


if __name__ == "__main__":
    quits, in_flight = asyncio.run(quit_many_times(Path(sys.argv[1]), int(sys.argv[2])))
    print(f"quits {quits} in_flight {in_flight}")
