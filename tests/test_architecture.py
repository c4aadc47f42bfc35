"""The engine is a library the cockpit uses, never the other way round."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_engine_imports_and_runs_with_textual_blocked(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'textual' or name.startswith('textual.'):\n"
        "            raise ImportError('textual is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import mikrobot_tui.engine, mikrobot_tui.store.queries, mikrobot_tui.data.sim\n"
        "from mikrobot_tui.config import load_settings\n"
        "from mikrobot_tui.engine import build_engine\n"
        f"s = load_settings(None, overrides={{'engine': {{'db': r'{tmp_path / 'x.db'}'}}}})\n"
        "e = build_engine(s); e.start(); e.close()\n"
        "assert not any(m.startswith('textual') for m in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr


def test_import_linter_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe is not None, "import-linter is in the test extra"
    run = subprocess.run([exe], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_engine_runs_without_scipy(tmp_path: Path) -> None:
    """scipy costs about a second and 80 MB at start-up: the tests use it as a reference, and
    only the strategy ema_tick_cross imports it, when it is built."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'scipy' or name.startswith('scipy.'):\n"
        "            raise ImportError('scipy is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import mikrobot_tui.cli, mikrobot_tui.engine.runner\n"
        "from mikrobot_tui.config import load_settings\n"
        "from mikrobot_tui.engine import build_engine\n"
        "from mikrobot_tui.engine.runner import Runner\n"
        "from mikrobot_tui.paper.ab import compare\n"
        f"s = load_settings(None, overrides={{'engine': {{'db': r'{tmp_path / 'x.db'}'}}}})\n"
        "e = build_engine(s); e.start()\n"
        "m = e.feed.market\n"
        "Runner(e).replay(iter([m.advance(m.now_ns + 600 * 10**9)]))\n"
        "e.close()\n"
        "assert compare([0.1, 0.2, 0.4], [0.0, 0.1]).p_value is not None\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
