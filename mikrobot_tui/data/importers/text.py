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
import os
from collections.abc import Callable
from dataclasses import dataclass, field
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


RAW_CHARS = 500  # a rejected line is kept up to this long


def line_texts(text: bytes, numbers: list[int]) -> dict[int, str]:
    """The text of each 1-based line number in `numbers` (cut at RAW_CHARS), found from the
    positions of the newlines: a file of millions of lines with a few bad ones is not split."""
    if not numbers:
        return {}
    buf = np.frombuffer(text, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    out = {}
    for n in numbers:
        start = int(ends[n - 2]) + 1 if n >= 2 else 0
        end = int(ends[n - 1]) if n - 1 < len(ends) else len(text)
        out[n] = text[start:end][: RAW_CHARS * 4].decode("utf-8", "replace")[:RAW_CHARS]
    return out


def first_line(text: bytes) -> str:
    """The first non-blank line (for detection and headers)."""
    for line in text[:65536].split(b"\n"):
        if line.strip():
            return line.decode("utf-8", "replace").strip()
    return ""


@dataclass
class Table:
    columns: list[pl.Series]  # one series per field, typed as asked; null where empty or bad
    lines: np.ndarray  # int64: the 1-based line number of each row
    # starts to first_sep: int32 for a file under 2 GiB, else int64
    header: str | None  # the header line, when there was one
    rejects: list[Reject]  # lines with a wrong number of fields
    text: bytes = b""
    sep: str = ","
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ends: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    fields: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    at: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # separators
    first_sep: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.lines)

    def empty(self, k: int) -> np.ndarray:
        """Rows whose cell k is empty or absent, from the separators' positions."""
        has = self.fields > k
        if len(self.at) == 0:
            return ~has | (self.ends <= self.starts)
        last = len(self.at) - 1
        start = self.starts if k == 0 else self.at[np.clip(self.first_sep + k - 1, 0, last)] + 1
        end = np.where(
            self.fields > k + 1, self.at[np.clip(self.first_sep + k, 0, last)], self.ends
        )
        return ~has | (end <= start)

    def cells(self, k: int, rows: np.ndarray) -> list[str]:
        """The text of cell k in `rows` (few: the ones being rejected)."""
        out = []
        for r in rows.tolist():
            line = self.text[self.starts[r] : self.ends[r]].decode("utf-8", "replace")
            parts = line.split(self.sep)
            out.append(parts[k].strip() if k < len(parts) else "")
        return out


def read_table(
    text: bytes,
    sep: str,
    *,
    is_header: Callable[[str], bool],
    min_fields: int,
    max_fields: int,
    width: Callable[[str], tuple[int, int]] | None = None,
    types: Callable[[list[str]], dict[int, str]] | None = None,
) -> Table:
    """Split `text` into rows of `min_fields` to `max_fields` fields (fewer are null).

    `is_header` decides whether the first non-blank line is a header; `width` may then set
    (min_fields, max_fields) from it. `types(first data row's cells)` names the fields read
    as "float" or "int" (the rest are strings): typed cells are parsed by the reader itself,
    many times faster than strings cast afterwards, and a bad one is null; `Checks` tells it
    from an empty one by the separators' positions.
    """
    _return_freed_memory()
    import polars as pl

    if text and not text.endswith(b"\n"):
        text += b"\n"
    buf = np.frombuffer(text, dtype=np.uint8)
    # positions in a file under 2 GiB fit 32 bits: the line and separator index of a
    # million-line file in half the memory, the same numbers
    index = np.int32 if len(buf) < 2**31 else np.int64
    ends = np.flatnonzero(buf == 10).astype(index)  # every line ends with its \n
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    blank = ends == starts
    # a line that starts with white space may be nothing else (rare: checked one by one)
    spaced = np.flatnonzero(~blank & (buf[np.minimum(starts, len(buf) - 1)] <= 32))
    for i in spaced.tolist():
        blank[i] = not text[starts[i] : ends[i]].strip()
    at = np.flatnonzero(buf == ord(sep)).astype(index)
    before_end = np.searchsorted(at, ends).astype(index)  # separators before each line's end
    before_start = np.zeros_like(before_end)  # ... and before its start: the line before's
    before_start[1:] = before_end[:-1]
    fields = before_end - before_start + 1

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
    # the kept lines to the file's end in one run (a header or blanks before them): the
    # reader skips the lines before them in the text itself, no copy of the rest is made
    skip = int(lines[0]) - 1 if len(lines) else 0
    whole = len(lines) > 0 and int(lines[-1]) == len(ends) and len(lines) == len(ends) - skip
    body = text if whole else _kept_bytes(text, buf, starts, ends, keep)
    names = [f"c{i}" for i in range(max_fields)]
    widest = int(fields[keep].max()) if len(lines) else 0  # the reader wants no more names
    dtypes = {"float": pl.Float64, "int": pl.Int64}
    kinds: dict[int, str] = {}
    if len(lines) and types is not None:
        r = int(lines[0]) - 1
        kinds = types(text[starts[r] : ends[r]].decode("utf-8", "replace").split(sep))
    schema = {n: dtypes.get(kinds.get(i, "str"), pl.String) for i, n in enumerate(names)}
    if len(lines):
        frame = pl.read_csv(
            io.BytesIO(body),
            has_header=False,
            skip_lines=skip if whole else 0,
            separator=sep,
            quote_char=None,
            schema={n: schema[n] for n in names[:widest]},
            encoding="utf8-lossy",
            ignore_errors=True,
        )
        if frame.height != len(lines):  # a line the reader split otherwise than we counted
            raise UnreadableFile(
                f"the CSV reader found {frame.height} rows where {len(lines)} lines are"
            )
    columns = [
        frame[n] if i < widest else pl.Series(n, [None] * len(lines), dtype=schema[n])
        for i, n in enumerate(names)
    ]
    del body
    # the kept lines' own index: a slice of the file's when they are one run
    kept: slice | np.ndarray = slice(skip, len(ends)) if whole else lines - 1
    return Table(
        columns=columns,
        lines=lines.astype(np.int64),
        header=header,
        rejects=rejects,
        text=text,
        sep=sep,
        starts=starts[kept],
        ends=ends[kept],
        fields=fields[kept],
        at=at,
        first_sep=before_start[kept],
    )


def _return_freed_memory() -> None:
    """Polars' allocator (jemalloc) keeps freed pages for ten seconds by default: a million-row
    file's columns, freed once its ticks are built, would then stay in the process's memory
    under the backtest that follows. Asked before polars first loads; a setting of the
    user's own is kept."""
    os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")


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
    """Per-row rejects of a table: each row keeps the first reason found for it."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.lines = table.lines
        self.bad = np.zeros(len(table.lines), dtype=bool)
        self._found: list[Reject] = list(table.rejects)

    def add(
        self,
        mask: np.ndarray,
        reason: str | Callable[[str], str],
        cells: pl.Series | int | None = None,
    ) -> None:
        """Reject the rows of `mask` not rejected yet; a callable `reason` takes the row's
        cell: from the series `cells`, or the text of field number `cells`."""
        new = np.flatnonzero(mask & ~self.bad)
        if len(new) == 0:
            return
        self.bad[new] = True
        lines = self.lines[new].tolist()
        if callable(reason):
            assert cells is not None
            if isinstance(cells, int):
                values = self.table.cells(cells, new)
            else:
                values = cells.gather(new).to_list()
            self._found.extend((ln, reason(v)) for ln, v in zip(lines, values, strict=True))
        else:
            self._found.extend((ln, reason) for ln in lines)

    def floats(self, k: int, name: str, *, empty_ok: bool = False) -> np.ndarray:
        """Field k (read as "float") as float64, NaN where empty and `empty_ok`; rejects
        non-numbers (a decimal comma included), NaN and infinities, and empty cells unless
        `empty_ok`."""
        column = self.table.columns[k]
        values = column.to_numpy()
        null = column.is_null().to_numpy()
        empty = self.table.empty(k) if null.any() else null
        if not empty_ok:
            self.add(empty, f"{name} is missing")
        self.add(null & ~empty, lambda v: _not_a_number(name, v), k)
        self.add(~np.isfinite(values) & ~null, lambda v: f"{name} {v!r} is not a finite number", k)
        return values

    def ints(self, k: int, name: str, *, empty: int | None = None) -> np.ndarray:
        """Field k (read as "int") as int64; `empty` fills empty cells (else rejected)."""
        column = self.table.columns[k]
        null = column.is_null().to_numpy()
        missing = self.table.empty(k) if null.any() else null
        self.add(null & ~missing, lambda v: f"{name} {v!r} is not a whole number", k)
        if empty is None:
            self.add(missing, f"{name} is missing")
        return column.fill_null(empty if empty is not None else 0).to_numpy()

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
        # every row still good (the usual file): the rows themselves, no index of them
        good = None if not self.bad.any() else np.flatnonzero(~self.bad)
        n = len(self.bad) if good is None else len(good)
        if n < 2:
            return
        if sym is None:
            order, s = np.arange(n) if good is None else good, np.zeros(n, dtype=np.int8)
        else:
            if good is None:
                order = np.argsort(sym, kind="stable")
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
        del peak
        back[firsts] = False
        mask = np.zeros(len(self.bad), dtype=bool)
        if back.any():
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
