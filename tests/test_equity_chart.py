"""The equity and drawdown chart: the curves it reads and the drawdown it draws."""

from __future__ import annotations

import numpy as np
import pytest
from tui_fixtures import ACCOUNTS, build_fixture_db

from mikrobot_tui.clock import FrozenClock
from mikrobot_tui.store.queries import read_only
from mikrobot_tui.tui.app import CockpitApp
from mikrobot_tui.tui.panes.equity import Curve, EquityPane, drawdown_words, read_curves


def test_drawdown_is_the_fall_from_the_running_peak_in_percent() -> None:
    c = Curve(
        "A", np.arange(6, dtype=np.int64), np.array([100.0, 110.0, 99.0, 121.0, 110.0, 121.0])
    )
    assert c.drawdown_pct.tolist() == pytest.approx([0.0, 0.0, -10.0, 0.0, -100 / 11, 0.0])
    assert drawdown_words([c]) == "A dd -10.00%"


def test_the_last_points_of_each_account_oldest_first(tmp_path) -> None:
    fx = build_fixture_db(tmp_path / "c.db")
    conn = read_only(str(fx.path))
    curves = read_curves(conn, points=30)
    conn.close()
    assert [c.account for c in curves] == sorted(a[0] for a in ACCOUNTS)
    for c, acct in zip(curves, sorted(ACCOUNTS), strict=True):
        assert len(c.ts) == 30 and (np.diff(c.ts) == 60_000_000_000).all()
        assert c.equity[-1] == pytest.approx(acct[5])  # ends at the account's equity


async def test_the_pane_draws_both_charts_and_names_each_drawdown(tmp_path) -> None:
    fx = build_fixture_db(tmp_path / "c.db")
    app = CockpitApp(fx.path, clock=FrozenClock(fx.now_ns))
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause(0.3)
        pane = app.query_one(EquityPane)
        assert [p.display for p in pane._plots] == [True, True]
        subtitle = str(pane.border_subtitle)
        assert subtitle.startswith("bos-a dd -") and "random dd" in subtitle
    # a short terminal gives its rows to the live figures: no chart
    app = CockpitApp(fx.path, clock=FrozenClock(fx.now_ns))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.1)
        assert app.screen.has_class("-short") and app.query_one(EquityPane).region.height == 0
