"""Sentences that state a direction, generated from the numbers they rest on.

A report may say "the plain net's gradients are less correlated than the ResNet's" only where its
numbers say so. Each such sentence is a ``Finding``: its text, with the numbers in it, and the
numbers themselves by name, as ``results.json`` holds them. The experiments build their findings
with the comparisons below, so that a finding flips, or is not made, when the numbers turn.

A difference counts only where it exceeds the spread over seeds: ``a`` is above ``b`` when
``mean(a) - mean(b) > max(std(a), std(b))`` (sample std; with one seed any gap counts), the rule
of the degradation experiment's verdict.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Spread:
    """One quantity over seeds.

    Attributes:
        values: its value for each seed, in seed order.
    """

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1); 0 for a single value."""
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def to_dict(self) -> dict:
        """``{"mean", "std", "values"}`` (NaN as ``None``)."""
        return {
            "mean": _num(self.mean),
            "std": _num(self.std),
            "values": [_num(v) for v in self.values],
        }

    def text(self, digits: int = 2, scale: float = 1.0, unit: str = "", style: str = "f") -> str:
        """``"0.85 ± 0.02"``, the spread left out for one seed; ``scale=100, unit="%"`` for
        percentages; ``style="g"`` for ``digits`` significant digits (``"0.00712"``)."""
        mean = f"{scale * self.mean:.{digits}{style}}{unit}"
        if len(self.values) < 2:
            return mean
        return f"{mean} ± {scale * self.std:.{digits}{style}}{unit}"


def spread(values: Iterable[float]) -> Spread:
    """The values as a ``Spread``."""
    return Spread(tuple(float(v) for v in values))


def compare(a: Spread, b: Spread) -> int:
    """1 if ``a`` is clearly above ``b``, -1 if clearly below, 0 if within the seeds' spread."""
    gap, margin = a.mean - b.mean, max(a.std, b.std)
    if gap > margin:
        return 1
    if -gap > margin:
        return -1
    return 0


def choose(direction: int, above: str, below: str, level: str) -> str:
    """The word for a ``compare`` result."""
    return {1: above, -1: below, 0: level}[direction]


def than(direction: int) -> str:
    """What follows a comparative of ``choose``: "more ... than", but "about as ... as"."""
    return "as" if direction == 0 else "than"


@dataclass(frozen=True)
class Finding:
    """A sentence of a report and the numbers it rests on.

    Attributes:
        text: the sentence, numbers included.
        numbers: the values it rests on, by name (means over seeds, as in ``results.json``).
        kind: which rule made it (``"gradient_trend"``, ``"worst_deletion"``): a test or a reader
            finds the findings of one kind.
    """

    text: str
    numbers: Mapping[str, float] = field(default_factory=dict)
    kind: str = ""

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "text": self.text,
            "numbers": {k: _num(v) for k, v in self.numbers.items()},
        }


def capital(text: str) -> str:
    """``text`` with its first letter in upper case (``str.capitalize`` lowers the rest)."""
    return text[:1].upper() + text[1:]


def texts(findings: Sequence[Finding]) -> list[str]:
    """The sentences alone."""
    return [f.text for f in findings]


def _num(value: float | int | bool | None) -> float | int | bool | None:
    if value is None or isinstance(value, (bool, int)):
        return value
    value = float(value)
    return value if math.isfinite(value) else None
