"""A strategy's declared parameters: name, type, default and allowed range.

Config checking, the command line (`mikrobot strategies`) and parameter sweeps read the same
declaration, so a value out of range is refused with the range before anything runs.
Parameters arrive as floats from config.toml; a whole-number parameter accepts 5.0 and
refuses 5.5. A text parameter (`kind` str: a trained model's name) takes a string and has no
range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: type  # int, float or str
    default: float | str
    low: float  # inclusive, unless `low_open` (unused for text)
    high: float  # inclusive
    doc: str
    low_open: bool = False  # the range excludes `low` (a distance or a multiple must be > 0)

    def describe(self) -> str:
        if self.kind is str:
            return f"text, default {self.default!r}"
        bracket = "(" if self.low_open else "["
        what = "whole number" if self.kind is int else "number"
        return f"{what} in {bracket}{self.low:g}, {self.high:g}], default {self.default:g}"

    def check(self, value: object) -> float | str:
        """The value as this parameter's type, or ValueError saying what is allowed."""
        bad = ValueError(f"{self.name} must be a {self.describe()}; got {value!r}")
        if self.kind is str:
            if not isinstance(value, str):
                raise bad
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        if not math.isfinite(value):
            raise bad
        if self.kind is int and value != int(value):
            raise bad
        below = value <= self.low if self.low_open else value < self.low
        if below or value > self.high:
            raise bad
        return int(value) if self.kind is int else float(value)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.kind.__name__,
            "default": self.default,
            "low": self.low,
            "high": self.high,
            "low_open": self.low_open,
            "doc": self.doc,
        }


def resolve(declared: Sequence[Param], given: Mapping[str, float | str]) -> dict[str, float | str]:
    """Every declared parameter's value: given ones checked, the rest their defaults.
    An unknown name is refused with the list of allowed ones."""
    names = {p.name: p for p in declared}
    unknown = sorted(set(given) - set(names))
    if unknown:
        allowed = ", ".join(f"{p.name} ({p.describe()})" for p in declared)
        raise ValueError(f"unknown param {', '.join(repr(u) for u in unknown)}; allowed: {allowed}")
    return {p.name: p.check(given[p.name]) if p.name in given else p.default for p in declared}


def param_text(value: float | str) -> str:
    """A parameter's value as a trader writes it: 8, 0.5, or a model's name."""
    return value if isinstance(value, str) else f"{value:g}"


def parse_param(value: str) -> float | str:
    """A `--param k=v` value: a number when it reads as one, else the text (a model's name);
    the strategy's declaration then says whether that type is allowed."""
    try:
        return float(value)
    except ValueError:
        return value.strip()
