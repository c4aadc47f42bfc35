"""The EA's signal file, read as an expert advisor writes it: encodings, NULs, garbage,
half-written files, rewrites; and the signal format both sources share."""

from __future__ import annotations

import codecs
import json
import math
from pathlib import Path

import pytest

from mikrobot_tui.clock import FrozenClock
from mikrobot_tui.data.signals import (
    MAX_SIGNALS,
    ExternalSignal,
    Inbox,
    Level,
    Rejection,
    SignalError,
    parse_signals,
)
from mikrobot_tui.data.signals.ea_file import EAFileWatcher, decode, first_json
from mikrobot_tui.domain.orders import Side

NOW = 1_767_225_600_000_000_000
SIGNAL = {"id": "ea-1", "symbol": "EURUSD", "side": "buy", "sl_pips": 20, "tp": 1.2}
TEXT = json.dumps(SIGNAL)


def encodings() -> dict[str, bytes]:
    return {
        "utf-16le with bom": codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"),
        "utf-16be with bom": codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"),
        "utf-16le without bom": TEXT.encode("utf-16-le"),
        "utf-8": TEXT.encode(),
        "utf-8 with bom": codecs.BOM_UTF8 + TEXT.encode(),
        "nul padded": TEXT.encode() + b"\x00" * 300,
        "utf-16le nul padded": codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le") + b"\x00" * 64,
        "nuls inside": TEXT.replace(", ", ",\x00 ").encode(),
        "trailing garbage": TEXT.encode() + b"\r\n}}garbage\xff\xfe{",
        "utf-16le trailing garbage": codecs.BOM_UTF16_LE
        + (TEXT + "\r\n\u0000xx{").encode("utf-16-le"),
        "leading whitespace": b"\r\n  " + TEXT.encode(),
    }


@pytest.mark.parametrize("name", list(encodings()))
def test_every_way_an_ea_writes_decodes_to_the_same_signal(name: str) -> None:
    assert first_json(decode(encodings()[name])) == SIGNAL


@pytest.fixture
def ea(tmp_path: Path):
    path = tmp_path / "signals.json"
    inbox = Inbox()
    return path, inbox, EAFileWatcher(path, inbox, FrozenClock(NOW))


@pytest.mark.parametrize("name", list(encodings()))
def test_the_watcher_takes_a_file_in_any_of_those_forms(ea, name: str) -> None:
    path, inbox, watcher = ea
    path.write_bytes(encodings()[name])
    assert watcher.poll() == 1
    (signal,) = inbox.take()
    assert isinstance(signal, ExternalSignal)
    assert (signal.source, signal.symbol, signal.side) == ("ea:signals.json", "EURUSD", Side.BUY)
    assert signal.stop == Level(20.0, "pips") and signal.take_profit == Level(1.2, "price")
    assert (signal.signal_id, signal.key, signal.received_ns) == ("ea-1", "id:ea-1", NOW)


def test_no_file_yet_is_nothing_and_a_file_that_comes_later_is_read(ea) -> None:
    path, inbox, watcher = ea
    assert watcher.poll() == 0 and len(inbox) == 0
    path.write_text(TEXT)
    assert watcher.poll() == 1


def test_a_half_written_file_waits_for_the_next_poll_and_is_taken_once_complete(ea) -> None:
    path, inbox, watcher = ea
    whole = codecs.BOM_UTF16_LE + json.dumps([SIGNAL, {**SIGNAL, "id": "ea-2"}]).encode("utf-16-le")
    path.write_bytes(whole[: len(whole) // 2 + 1])  # cut mid-character, mid-list
    assert watcher.poll() == 0
    assert len(inbox) == 0  # not rejected: perhaps the EA is still writing
    path.write_bytes(whole)
    assert watcher.poll() == 2
    assert [s.signal_id for s in inbox.take()] == ["ea-1", "ea-2"]


def test_the_same_unparseable_bytes_at_two_polls_are_rejected_once(ea) -> None:
    path, inbox, watcher = ea
    path.write_text('{"symbol": "EURUSD", "side": ')
    assert watcher.poll() == 0
    assert watcher.poll() == 1  # the same bytes one poll later: not half-written after all
    (rejection,) = inbox.take()
    assert isinstance(rejection, Rejection)
    assert "not JSON" in rejection.reason and rejection.source == "ea:signals.json"
    assert rejection.raw.startswith('{"symbol"')
    assert watcher.poll() == 0 and watcher.poll() == 0  # once, not at every poll
    assert len(inbox) == 0


def test_a_file_rewritten_with_the_same_bytes_is_not_read_twice(ea) -> None:
    path, inbox, watcher = ea
    path.write_text(TEXT)
    assert watcher.poll() == 1
    path.write_text(TEXT)  # a new modification time, the same content
    assert watcher.poll() == 0
    assert len(inbox.take()) == 1


def test_a_growing_list_delivers_its_signals_again_with_keys_that_match(ea) -> None:
    path, inbox, watcher = ea
    first = {"symbol": "EURUSD", "side": "sell", "sl": 1.2}  # no id: keyed by its fields
    path.write_text(json.dumps([first]))
    watcher.poll()
    path.write_text(json.dumps([first, SIGNAL]))
    watcher.poll()
    a, b, c = inbox.take()
    assert a.key == b.key and a.key.startswith("sha256:")  # the engine acts on it once
    assert c.key == "id:ea-1"


def test_an_emptied_file_is_nothing_and_no_json_at_all_is_rejected(ea) -> None:
    path, inbox, watcher = ea
    path.write_bytes(b"")
    assert watcher.poll() == 0
    path.write_bytes(b"\x00\x00\r\n")
    assert watcher.poll() == 0
    path.write_text("hello")
    watcher.poll()
    watcher.poll()
    (rejection,) = inbox.take()
    assert "no JSON object or list" in rejection.reason


def test_a_list_with_bad_signals_rejects_each_with_its_reason_and_keeps_the_good(ea) -> None:
    path, inbox, watcher = ea
    path.write_text(
        json.dumps(
            [
                SIGNAL,
                {"symbol": "EURUSD", "side": "up", "sl": 1.0},
                {"symbol": "EURUSD", "side": "buy"},
                {"symbol": "EURUSD", "side": "buy", "sl": 1.0, "sl_pips": 10},
                {"symbol": "EURUSD", "side": "buy", "sl": "abc"},
                {"symbol": "EURUSD", "side": "buy", "sl": -1},
                {"symbol": "EURUSD", "side": "buy", "sl": math.inf},
                {"symbol": "EUR USD", "side": "buy", "sl": 1.0},
                {"symbol": "EURUSD", "side": "buy", "sl": 1.0, "type": "limit"},
                {"symbol": "EURUSD", "side": "buy", "stoploss": 1.0},
                {"symbol": "EURUSD", "side": "buy", "sl": 1.0, "account": "no such!"},
                {"symbol": "EURUSD", "side": "buy", "sl": 1.0, "id": True},
                "buy EURUSD",
            ]
        )
    )
    assert watcher.poll() == 13
    good, *bad = inbox.take()
    assert isinstance(good, ExternalSignal)
    assert all(isinstance(r, Rejection) for r in bad)
    reasons = [r.reason for r in bad]
    for i, part in enumerate(
        [
            "side must be",
            "no stop",
            "give one of sl, sl_pips, sl_distance, not sl and sl_pips",
            "sl must be a number",
            "sl must be a positive number",
            "sl must be a positive number",
            "letters and digits only",
            "only market entries",
            "fields not known here: stoploss",
            "is not an account name",
            "id must be a string or an integer",
            "a signal is a JSON object, got a string",
        ]
    ):
        assert f"signal {i + 2} of 13: " in reasons[i]
        assert part in reasons[i], reasons[i]
    assert bad[0].symbol == "EURUSD" and '"side": "up"' in bad[0].raw


def test_too_large_a_file_is_rejected_without_reading_it(ea) -> None:
    path, inbox, watcher = ea
    path.write_bytes(b" " * (1024 * 1024 + 1))
    assert watcher.poll() == 1
    assert watcher.poll() == 0
    assert "at most" in inbox.take()[0].reason


def test_signal_fields_numbers_as_strings_aliases_and_limits() -> None:
    (s,) = parse_signals(
        {
            "id": 42,
            "symbol": " eur/usd ",
            "side": "Short",
            "sl": "1.0950",
            "tp_distance": "0.0040",
            "account": "B",
            "comment": "tv\nalert",
        },
        source="webhook:127.0.0.1",
        received_ns=NOW,
    )
    assert isinstance(s, ExternalSignal)
    assert (s.symbol, s.side, s.account, s.signal_id, s.channel) == (
        "EURUSD",
        Side.SELL,
        "B",
        "42",
        "webhook",
    )
    assert s.stop == Level(1.095, "price") and s.take_profit == Level(0.004, "distance")
    assert s.comment == "tvalert"
    (no_key,) = parse_signals({**SIGNAL, "id": None}, source="webhook:x", received_ns=NOW)
    assert no_key.key is None  # the webhook keys only by id
    many = parse_signals([SIGNAL] * (MAX_SIGNALS + 1), source="ea:f", received_ns=NOW)
    assert len(many) == 1 and "at most 100" in many[0].reason
    assert parse_signals([], source="ea:f", received_ns=NOW) == []


def test_a_stop_or_target_price_on_the_wrong_side_of_the_entry_is_an_error() -> None:
    assert Level(1.09, "price").distance(Side.BUY, 1.1, 0.0001, "stop") == pytest.approx(0.01)
    assert Level(20, "pips").distance(Side.SELL, 1.1, 0.0001, "stop") == pytest.approx(0.002)
    assert Level(1.2, "price").distance(Side.BUY, 1.1, 0.0001, "take-profit") == pytest.approx(0.1)
    with pytest.raises(SignalError, match=r"stop 1.2 is not below the entry 1.1 \(the ask\)"):
        Level(1.2, "price").distance(Side.BUY, 1.1, 0.0001, "stop")
    with pytest.raises(SignalError, match=r"take-profit 1.2 is not below .* of a sell"):
        Level(1.2, "price").distance(Side.SELL, 1.1, 0.0001, "take-profit")


def test_the_inbox_is_bounded_and_counts_what_it_dropped() -> None:
    inbox = Inbox(capacity=3)
    for i in range(5):
        inbox.put(Rejection("ea:f", str(i), "", NOW))
    assert [r.reason for r in inbox.take()] == ["2", "3", "4"]
    assert inbox.dropped == 2 and len(inbox) == 0


def test_json_nested_beyond_reason_is_rejected_not_raised(ea) -> None:
    path, inbox, watcher = ea
    path.write_text("[" * 100_000 + "]" * 100_000)
    watcher.poll()
    watcher.poll()
    (rejection,) = inbox.take()
    assert "nested too deeply" in rejection.reason
