"""A delimited text file as columns of strings, each row knowing its line in the file.

Every importer starts here. The file is read whole, decoded (UTF-8 with or without a BOM,
UTF-16LE with or without one), its line endings made `\\n` (CRLF, LF and lone CR, mixed), and
the lines classified with numpy over the bytes: blank, header, a wrong number of fields (a
reject), or data. Only the data lines go to polars' CSV reader, every field as a string, so a
row's index maps to its line number (1-based, counting every line of the file) and a bad cell
in one row never fails the read of the others. Cells become numbers through `Checks`, which
keeps the first reason each row is rejected.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # polars is imported where a file is read: start-up stays fast
    import polars as pl

Reject = tuple[int, str]


class UnreadableFile(ValueError):
    """The file cannot be imported at all: missing, unreadable, or no format fits it."""


def read_text(path: Path) -> bytes:
    """The file's bytes as UTF-8 with `\\n` line endings, no BOM."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise UnreadableFile(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UnreadableFile(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise UnreadableFile(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return normalize(raw, path)


def normalize(raw: bytes, path: Path | str = "file") -> bytes:
    if raw.startswith(b"\xff\xfe") or _looks_utf16le(raw):
        body = raw[2:] if raw.startswith(b"\xff\xfe") else raw
        try:
            raw = body.decode("utf-16-le").encode("utf-8")
        except UnicodeDecodeError:
            raise UnreadableFile(f"{path}: looks like UTF-16 but does not decode as it") from None
    elif raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if b"\x00" in raw:
        raise UnreadableFile(f"{path}: holds NUL bytes: a binary file, not text")
    return raw


def _looks_utf16le(raw: bytes) -> bool:
    """UTF-16LE without a BOM: ASCII text with a NUL after every character."""
    head = raw[:64]
    return len(head) >= 4 and head[1::2].count(0) == len(head[1::2]) and 0 not in head[0::2]


def first_line(text: bytes) -> str:
    """The first non-blank line (for detection and headers)."""
    for line in text[:65536].split(b"\n"):
        if line.strip():
            return line.decode("utf-8", "replace").strip()
    return ""


@dataclass
class Table:
    columns: list[pl.Series]  # one String series per field; null where a cell is empty
    lines: np.ndarray  # int64: the 1-based line number of each row
    header: str | None  # the header line, when there was one
    rejects: list[Reject]  # lines with a wrong number of fields

    def __len__(self) -> int:
        return len(self.lines)


def read_table(
    text: bytes,
    sep: str,
    *,
    is_header: Callable[[str], bool],
    min_fields: int,
    max_fields: int,
    width: Callable[[str], tuple[int, int]] | None = None,
) -> Table:
    """Split `text` into rows of `min_fields` to `max_fields` fields (fewer are null).

    `is_header` decides whether the first non-blank line is a header; `width` may then set
    (min_fields, max_fields) from it.
    """
    import polars as pl

    if text and not text.endswith(b"\n"):
        text += b"\n"
    buf = np.frombuffer(text, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)  # every line ends with its \n
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    blank = ends == starts
    # a line that starts with white space may be nothing else (rare: checked one by one)
    spaced = np.flatnonzero(~blank & (buf[np.minimum(starts, len(buf) - 1)] <= 32))
    for i in spaced.tolist():
        blank[i] = not text[starts[i] : ends[i]].strip()
    at = np.flatnonzero(buf == ord(sep))
    fields = np.searchsorted(at, ends) - np.searchsorted(at, starts) + 1

    data = ~blank
    header = None
    filled = np.flatnonzero(data)
    if len(filled):
        h = int(filled[0])
        line = text[starts[h] : ends[h]].decode("utf-8", "replace").strip()
        if is_header(line):
            header = line
            data[h] = False
            if width is not None:
                min_fields, max_fields = width(line)
    wrong = data & ((fields < min_fields) | (fields > max_fields))
    rejects: list[Reject] = []
    for i in np.flatnonzero(wrong).tolist():
        n = int(fields[i])
        expected = str(min_fields) if min_fields == max_fields else f"{min_fields} to {max_fields}"
        hint = " (a decimal comma?)" if n > max_fields and sep == "," else ""
        rejects.append((i + 1, f"{n} columns where {expected} are expected{hint}"))
    keep = data & ~wrong
    lines = np.flatnonzero(keep) + 1
    body = _kept_bytes(text, buf, starts, ends, keep)
    names = [f"c{i}" for i in range(max_fields)]
    widest = int(fields[keep].max()) if len(lines) else 0  # the reader wants no more names
    if len(lines):
        frame = pl.read_csv(
            io.BytesIO(body),
            has_header=False,
            separator=sep,
            quote_char=None,
            schema=dict.fromkeys(names[:widest], pl.String),
            encoding="utf8-lossy",
        )
        if frame.height != len(lines):  # a line the reader split otherwise than we counted
            raise UnreadableFile(
                f"the CSV reader found {frame.height} rows where {len(lines)} lines are"
            )
    columns = [
        frame[n] if i < widest else pl.Series(n, [None] * len(lines), dtype=pl.String)
        for i, n in enumerate(names)
    ]
    return Table(columns=columns, lines=lines.astype(np.int64), header=header, rejects=rejects)


def _kept_bytes(
    text: bytes, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, keep: np.ndarray
) -> bytes:
    """The kept lines, each with its \\n, without copying line by line."""
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        return b""
    first, last = int(idx[0]), int(idx[-1])
    if len(idx) == last - first + 1:  # one run (a header before, blanks after): a slice
        return text[starts[first] : ends[last] + 1]
    drop = np.flatnonzero(~keep)
    delta = np.zeros(len(buf) + 1, dtype=np.int8)
    np.add.at(delta, starts[drop], 1)
    np.add.at(delta, ends[drop] + 1, -1)
    dropped = np.cumsum(delta[:-1], dtype=np.int8).astype(bool)
    return buf[~dropped].tobytes()


class Checks:
    """Per-row rejects: each row keeps the first reason found for it."""

    def __init__(self, lines: np.ndarray, rejects: list[Reject] | None = None) -> None:
        self.lines = lines
        self.bad = np.zeros(len(lines), dtype=bool)
        self._found: list[Reject] = list(rejects or [])

    def add(
        self,
        mask: np.ndarray,
        reason: str | Callable[[str], str],
        cells: pl.Series | None = None,
    ) -> None:
        """Reject the rows of `mask` not rejected yet; `reason` may take the row's cell."""
        new = np.flatnonzero(mask & ~self.bad)
        if len(new) == 0:
            return
        self.bad[new] = True
        lines = self.lines[new].tolist()
        if callable(reason):
            assert cells is not None
            values = cells.gather(new).to_list()
            self._found.extend((ln, reason(v)) for ln, v in zip(lines, values, strict=True))
        else:
            self._found.extend((ln, reason) for ln in lines)

    def floats(self, cells: pl.Series, name: str, *, empty_ok: bool = False) -> np.ndarray:
        """The cells as float64 (NaN where empty and `empty_ok`); rejects non-numbers
        (a decimal comma included), NaN and infinities, and empty cells unless `empty_ok`."""
        import polars as pl

        parsed = cells.cast(pl.Float64, strict=False)
        values = parsed.to_numpy()
        empty = cells.is_null().to_numpy()
        if not empty_ok:
            self.add(empty, f"{name} is missing")
        failed = parsed.is_null().to_numpy() & ~empty
        self.add(failed, lambda v: _not_a_number(name, v), cells)
        self.add(
            ~np.isfinite(values) & ~empty, lambda v: f"{name} {v!r} is not a finite number", cells
        )
        return values

    def ints(self, cells: pl.Series, name: str, *, empty: int | None = None) -> np.ndarray:
        """The cells as int64; `empty` fills empty cells (else they are rejected)."""
        import polars as pl

        parsed = cells.cast(pl.Int64, strict=False)
        missing = cells.is_null().to_numpy()
        failed = parsed.is_null().to_numpy() & ~missing
        self.add(failed, lambda v: f"{name} {v!r} is not a whole number", cells)
        if empty is None:
            self.add(missing, f"{name} is missing")
        return parsed.fill_null(empty if empty is not None else 0).to_numpy()

    def positive(self, values: np.ndarray, name: str) -> None:
        self.add(values <= 0, f"{name} must be above zero")

    def in_order(
        self,
        ts: np.ndarray,
        sym: np.ndarray | None,
        same: list[np.ndarray],
        reason: str = "an exact duplicate of the row before",
    ) -> None:
        """Per symbol, among rows still good: a time before an earlier row's is rejected, and
        so is a row equal in time and in every array of `same` to the row before it."""
        good = np.flatnonzero(~self.bad)
        if len(good) < 2:
            return
        if sym is None:
            order, s = good, np.zeros(len(good), dtype=np.int8)
        else:
            order = good[np.argsort(sym[good], kind="stable")]
            s = sym[order]
        t = ts[order]
        cut = np.flatnonzero(s[1:] != s[:-1]) + 1
        firsts = np.r_[0, cut]
        peak = np.empty_like(t)
        for a, b in zip(firsts.tolist(), np.r_[cut, len(t)].tolist(), strict=True):
            np.maximum.accumulate(t[a:b], out=peak[a:b])
        back = np.zeros(len(t), dtype=bool)
        back[1:] = t[1:] < peak[:-1]
        back[firsts] = False
        mask = np.zeros(len(self.bad), dtype=bool)
        mask[order[back]] = True
        self.add(mask, "time goes backwards")
        order, s, t = order[~back], s[~back], t[~back]
        pair = np.flatnonzero((t[1:] == t[:-1]) & (s[1:] == s[:-1]))  # few: compare values
        eq = np.ones(len(pair), dtype=bool)
        for a in same:
            x, y = a[order[pair + 1]], a[order[pair]]
            eq &= (x == y) | (_isnan(x) & _isnan(y))
        mask[:] = False
        mask[order[pair[eq] + 1]] = True
        self.add(mask, reason)

    def rejects(self) -> list[Reject]:
        return sorted(self._found)


def _isnan(a: np.ndarray) -> np.ndarray:
    return np.isnan(a) if a.dtype.kind == "f" else np.zeros(len(a), dtype=bool)


def _not_a_number(name: str, value: str) -> str:
    hint = " (a decimal comma?)" if "," in value else ""
    return f"{name} {value!r} is not a number{hint}"
