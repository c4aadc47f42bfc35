"""The expert advisor's signal file: watched by polling, decoded whatever the EA wrote.

MetaTrader's FileWrite writes UTF-16LE with a byte-order mark by default (FILE_UNICODE),
ANSI or UTF-8 otherwise; a fixed-size buffer leaves NUL bytes behind, and the file is
sometimes read while the EA is still writing it. So:

- every `signals.ea_poll_ms` the file's modification time and size are looked at; when they
  change (or content is waiting to be read again) it is read and its SHA-256 compared with
  the last content handled: the same bytes are never handled twice;
- the bytes are decoded by their byte-order mark (UTF-8, UTF-16LE, UTF-16BE), UTF-16 without
  one is recognised by its NUL bytes, NULs are dropped, and the first JSON value in the text
  is taken: what trails it (garbage, padding, a second write's leftovers) is ignored;
- content that does not parse is read again at the next poll: a half-written file is
  completed by then. The same bytes still unparseable one poll later are rejected, once;
- signals without an id get a key from a hash of their fields, so a file that is read again
  (rewritten, grown by a signal, found again after a restart) does not act on one twice.

The polling itself runs in a worker thread (`asyncio.to_thread`): a slow disk or a share
never blocks the engine's event loop.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mikrobot_tui.clock import Clock
from mikrobot_tui.data.signals import Inbox, Rejection, parse_signals

MAX_BYTES = 1024 * 1024


def decode(raw: bytes) -> str:
    """Text from the bytes an EA wrote: by byte-order mark, else by the pattern of NULs."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if raw.startswith(bom):
            return _decode(raw[len(bom) :], codec)
    codec = "utf-8"
    if b"\x00" in raw:  # UTF-16 without a mark: ASCII text has a NUL in every other byte
        even, odd = raw[0::2].count(0), raw[1::2].count(0)
        if odd >= len(raw) // 4 and odd > 2 * even:
            codec = "utf-16-le"
        elif even >= len(raw) // 4 and even > 2 * odd:
            codec = "utf-16-be"
    return _decode(raw, codec)


def _decode(body: bytes, codec: str) -> str:
    if codec != "utf-8":
        body = body[: len(body) // 2 * 2]  # a half-written last character
    return body.decode(codec, errors="replace").replace("\x00", "").lstrip("\ufeff")


def first_json(text: str) -> Any:
    """The first JSON object or list in `text`; what trails it is ignored.

    ValueError when there is none (yet): no opening bracket, or the value is cut short.
    """
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        raise ValueError("no JSON object or list in it")
    try:
        value, _ = json.JSONDecoder().raw_decode(text, min(starts))
    except RecursionError:
        raise ValueError("nested too deeply") from None
    return value


class EAFileWatcher:
    """Polls one file and puts what it finds into the inbox; see the module docstring."""

    def __init__(self, path: Path, inbox: Inbox, clock: Clock, poll_s: float = 0.25) -> None:
        self.path = Path(path)
        self.source = f"ea:{self.path.name}"
        self.name = "ea"
        self._inbox = inbox
        self._clock = clock
        self.poll_s = poll_s
        self._stat: tuple[int, int] | None = None  # (mtime_ns, size) last read
        self._done: bytes | None = None  # digest of the content last handled
        self._waiting: bytes | None = None  # digest of unparseable content, read once
        self.reads = 0
        self.signals = 0
        self.rejected = 0

    async def start(self) -> None:
        """Nothing to take: a file that is not there yet is looked for at every poll."""

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; each poll in a worker thread."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.poll)
            except Exception as exc:  # a bug here must not stop the engine: say so, go on
                self._reject(f"the file could not be handled: {exc!r}", "")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll_s)

    def poll(self) -> int:
        """Look at the file once; the number of signals and rejections put into the inbox."""
        try:
            st = os.stat(self.path)
        except OSError:  # not written yet, or deleted: a new file is read when it comes
            self._stat = None
            return 0
        stat = (st.st_mtime_ns, st.st_size)
        if stat == self._stat and self._waiting is None:
            return 0
        if st.st_size > MAX_BYTES:
            if stat == self._stat:
                return 0
            self._stat = stat
            reason = f"the file is {st.st_size:,} bytes; at most {MAX_BYTES:,} are read"
            return self._reject(reason, "")
        try:
            raw = self.path.read_bytes()
        except OSError:  # the EA holds it (Windows sharing): try again at the next poll
            return 0
        self._stat = stat
        self.reads += 1
        digest = hashlib.sha256(raw).digest()
        if digest == self._done:
            self._waiting = None
            return 0
        text = decode(raw)
        if not text.strip():  # emptied, or truncated before a write: nothing to do
            self._done, self._waiting = digest, None
            return 0
        try:
            value = first_json(text)
        except ValueError as exc:
            if digest != self._waiting:
                self._waiting = digest  # perhaps half-written: read it again next time
                return 0
            self._done, self._waiting = digest, None
            return self._reject(f"not JSON (the same bytes at two reads): {exc}", text)
        self._done, self._waiting = digest, None
        items = parse_signals(
            value,
            source=self.source,
            received_ns=self._clock.now_ns(),
            content_keys=True,
        )
        for item in items:
            if isinstance(item, Rejection):
                self.rejected += 1
            else:
                self.signals += 1
            self._inbox.put(item)
        return len(items)

    def _reject(self, reason: str, raw: str) -> int:
        self.rejected += 1
        self._inbox.put(Rejection(self.source, reason, raw[:500], self._clock.now_ns()))
        return 1
