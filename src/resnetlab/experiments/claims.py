"""Sentences that state a direction, generated from the numbers they rest on.

A report that says "plain-56 trains worse" or "the gradient vanishes" must say it only when this
run's numbers do. Every such sentence of the lesson is a ``Claim`` made here by a function of
plain numbers (fractions, ratios, lists over seeds): the direction is decided by an explicit rule
and the sentence is written from that direction, so reversed numbers flip the sentence (or turn
it into "no difference shown"). ``results.json`` keeps each claim with its numbers, and
``remake`` writes it again from them: a test checks every sentence of a report that way.

The rules:

- **errors over seeds**: ``a`` is above ``b`` when its mean exceeds ``b``'s by more than either's
  sample std over seeds (the verdict rule of the degradation experiment; with one seed, any gap
  counts, and the sentence says there is no spread).
- **gradients**: a layer's gradient per weight is its weight-gradient L2 norm divided by the
  square root of its number of weights (a conv with 256 times the weights has a 16 times larger
  norm for the same gradient per weight). The first conv's per-weight gradient divided by the
  last conv's: below ``VANISH`` (a tenth) the gradient *vanishes* on its way back, above
  ``1 / VANISH`` it *grows* towards the input, between them it keeps its scale.
- **several numbers of one kind** (layer responses, lag-1 autocorrelations): a difference counts
  when it exceeds ``RELATIVE`` (5%) of the larger value and the spread over seeds.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

VANISH = 0.1  # per-weight gradient ratio below which "the gradient vanishes" (one decade)
RELATIVE = 0.05  # smallest relative difference between two values that counts as a direction
TWIN_FACTOR = 3.0  # how many times more gradient one twin must carry to say it carries more


@dataclass(frozen=True)
class Claim:
    """A sentence and the numbers it rests on.

    Attributes:
        kind: the function that made it (a key of ``KINDS``).
        direction: what the numbers say (``"higher"``, ``"lower"``, ``"level"``, ``"vanishes"``,
            ...): tests compare it with the numbers.
        text: the sentence.
        numbers: the keyword arguments of ``KINDS[kind]`` (JSON-ready).
    """

    kind: str
    direction: str
    text: str
    numbers: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready record."""
        return {
            "kind": self.kind,
            "direction": self.direction,
            "text": self.text,
            "numbers": dict(self.numbers),
        }


KINDS: dict[str, Callable[..., Claim]] = {}


def register(function: Callable[..., tuple[str, str]]) -> Callable[..., Claim]:
    """Register a claim function: it takes its numbers as keywords and returns
    ``(direction, text)``; the registered one returns the ``Claim`` with those numbers."""

    @functools.wraps(function)
    def make(**numbers: Any) -> Claim:
        direction, text = function(**numbers)
        kept = {k: _plain(v) for k, v in numbers.items()}
        return Claim(function.__name__, direction, text, kept)

    KINDS[function.__name__] = make
    return make


def remake(record: Mapping[str, Any]) -> Claim:
    """The claim a ``Claim.to_dict()`` record's numbers give today."""
    return KINDS[record["kind"]](**record["numbers"])


def compare_errors(a: Sequence[float], b: Sequence[float]) -> str:
    """``"higher"``, ``"lower"`` or ``"level"``: ``a``'s mean against ``b``'s, a gap counting
    when it exceeds both sample stds over seeds (any gap with one seed each)."""
    gap = statistics.fmean(a) - statistics.fmean(b)
    spread = max(_std(a), _std(b))
    if gap > spread:
        return "higher"
    if -gap > spread:
        return "lower"
    return "level"


def compare_values(a: Sequence[float], b: Sequence[float]) -> str:
    """As ``compare_errors``, and the gap must also exceed ``RELATIVE`` of the larger mean."""
    direction = compare_errors(a, b)
    larger = max(abs(statistics.fmean(a)), abs(statistics.fmean(b)))
    if abs(statistics.fmean(a) - statistics.fmean(b)) <= RELATIVE * larger:
        return "level"
    return direction


def gradient_reading(ratio: float) -> str:
    """``"vanishes"``, ``"grows"`` or ``"keeps"`` for a first/last per-weight gradient ratio."""
    if not math.isfinite(ratio):
        return "undefined"
    if ratio < VANISH:
        return "vanishes"
    if ratio > 1 / VANISH:
        return "grows"
    return "keeps"


@register
def degradation(
    *, deep: str, deep_errors: list, shallow: str, shallow_errors: list
) -> tuple[str, str]:
    """The degradation problem: the deeper plain net's final training error against the
    shallower one's."""
    direction = compare_errors(deep_errors, shallow_errors)
    both = f"{_pct(deep_errors)} against {_pct(shallow_errors)}{_over(deep_errors)}"
    count = sum(d > s for d, s in zip(deep_errors, shallow_errors, strict=True))
    if direction == "higher":
        seeds = "" if len(deep_errors) == 1 else f", higher in {count} of {len(deep_errors)} seeds"
        text = (
            f"In this run {deep} ends with a higher training error than {shallow}: {both}"
            f"{seeds}. It is the training error that is higher, so this is not overfitting: "
            f"the deeper net fits its own training images worse, the degradation problem."
        )
    elif direction == "lower":
        text = (
            f"In this run {deep} ends with a lower training error than {shallow} ({both}): "
            "the degradation problem did not show."
        )
    else:
        text = (
            f"In this run {deep} and {shallow} end with training errors within the spread over "
            f"seeds ({both}): no degradation shown."
        )
    return direction, text


@register
def fix(*, residual: str, residual_errors: list, plain: str, plain_errors: list) -> tuple[str, str]:
    """The fix: the ResNet's final training error against its plain twin's."""
    direction = compare_errors(residual_errors, plain_errors)
    both = f"{_pct(residual_errors)} against {_pct(plain_errors)}{_over(residual_errors)}"
    words = {
        "lower": f"{residual} ends with a lower training error than its plain twin {plain}",
        "higher": f"{residual} ends with a higher training error than its plain twin {plain}",
        "level": f"{residual} and its plain twin {plain} end level within the spread",
    }
    text = f"With shortcuts, {words[direction]} ({both})."
    if direction == "lower":
        text += " The same layers train once each block adds its input back."
    return direction, text


@register
def gradient(*, model: str, when: str, per_weight: float, l2: float) -> tuple[str, str]:
    """How the gradient changes from the last conv back to the first, per weight."""
    direction = gradient_reading(per_weight)
    ratio = f"{_ratio(per_weight)} times the last conv's (L2 norms: {_ratio(l2)} times)"
    when = when[:1].upper() + when[1:]  # not str.capitalize: it would write "with bn"
    text = {
        "vanishes": f"{when}, {model}'s gradient per weight at its first conv is "
        f"{ratio}: it vanishes on its way back, to less than a tenth.",
        "grows": f"{when}, {model}'s gradient per weight at its first conv is "
        f"{ratio}: it grows on its way back to the input, more than tenfold; it does not "
        "vanish.",
        "keeps": f"{when}, {model}'s gradient per weight at its first conv is "
        f"{ratio}: it keeps its scale within a factor of 10; it does not vanish.",
        "undefined": f"{when}, {model}'s gradient ratio is not defined (a zero "
        "or non-finite norm).",
    }[direction]
    return direction, text


@register
def activations(*, model: str, first: float, last: float) -> tuple[str, str]:
    """How the forward signal (the std of a block's output at initialisation) changes from the
    stem to the last block; the same decade rule as for gradients."""
    ratio = last / first if first > 0 else math.inf
    direction = gradient_reading(ratio)
    stds = f"std {first:.3g} after the stem, {last:.3g} after the last block"
    text = {
        "vanishes": f"At initialisation, {model}'s forward signal vanishes ({stds}: "
        f"{_ratio(ratio)} times).",
        "grows": f"At initialisation, {model}'s forward signal grows more than tenfold ({stds}).",
        "keeps": f"At initialisation, {model}'s forward signal keeps its scale ({stds}).",
        "undefined": f"At initialisation, {model}'s forward signal is zero after the stem.",
    }[direction]
    return direction, text


@register
def paper_gradients(*, model: str, at_init: float, in_training: float) -> tuple[str, str]:
    """§4.1's reading (with BN the plain nets' gradients keep healthy norms) against this run's
    per-weight ratios of the plain net at initialisation and during training."""
    readings = {"at initialisation": at_init, "during training": in_training}
    agree = [w for w, r in readings.items() if gradient_reading(r) == "keeps"]
    differ = [w for w in readings if w not in agree]
    if not differ:
        direction = "agrees"
        text = (
            f"This run agrees with §4.1 for {model}: its gradient keeps its scale at "
            "initialisation and during training."
        )
    else:
        direction = "disagrees" if not agree else "partly"
        how = "; ".join(
            f"{w} it {_verb(gradient_reading(readings[w]))} ({_ratio(readings[w])} per weight)"
            for w in differ
        )
        also = f" It agrees {' and '.join(agree)}." if agree else ""
        text = (
            f"Here this run disagrees with §4.1 for {model}: {how}.{also} The paper does not say "
            "how it measured the norms, nor when in training."
        )
    return direction, text


@register
def twins_gradient(
    *, plain: str, plain_ratio: float, residual: str, residual_ratio: float
) -> tuple[str, str]:
    """Which twin carries more gradient back to its first conv (relative to its last conv):
    the two have the same layers, so their ratios compare without any size correction."""
    factor = residual_ratio / plain_ratio if plain_ratio > 0 else math.inf
    if factor >= TWIN_FACTOR:
        direction = "residual"
        text = (
            f"During training {residual}'s first conv gets {_ratio(factor)} times as much "
            f"gradient, relative to its last conv, as {plain}'s: the shortcuts carry the "
            "gradient back past the layers."
        )
    elif factor <= 1 / TWIN_FACTOR:
        direction = "plain"
        text = (
            f"During training {plain}'s first conv gets {_ratio(1 / factor)} times as much "
            f"gradient, relative to its last conv, as {residual}'s."
        )
    else:
        direction = "level"
        text = (
            f"During training {plain} and {residual} carry gradient back to their first conv "
            f"alike (ratios {_ratio(plain_ratio)} and {_ratio(residual_ratio)}, within a factor "
            f"of {TWIN_FACTOR:g})."
        )
    return direction, text


@register
def responses(
    *, plain: str, plain_means: list, residual: str, residual_means: list
) -> tuple[str, str]:
    """Figure 7: the ResNet's mean layer response (std after BN) against its plain twin's."""
    direction = compare_values(residual_means, plain_means)
    both = f"mean std {_num(residual_means)} against {_num(plain_means)}{_over(plain_means)}"
    if direction == "lower":
        text = f"{residual}'s layers respond less than {plain}'s ({both}), as Figure 7 shows."
    elif direction == "higher":
        text = f"{residual}'s layers respond more than {plain}'s ({both}), unlike Figure 7."
    else:
        text = (
            f"{residual}'s and {plain}'s layers respond alike ({both}, within {RELATIVE:.0%} or "
            "the spread): no difference shown at this depth; where their lines lie on each "
            "other, the markers tell them apart."
        )
    return direction, text


@register
def deeper_responses(
    *, shallow: str, shallow_means: list, deep: str, deep_means: list
) -> tuple[str, str]:
    """Figure 7's second finding: a deeper ResNet responds less still."""
    direction = compare_values(deep_means, shallow_means)
    both = f"mean std {_num(deep_means)} against {_num(shallow_means)}"
    text = {
        "lower": f"The deeper {deep} responds less than {shallow} ({both}), as in Figure 7.",
        "higher": f"The deeper {deep} responds more than {shallow} ({both}), unlike Figure 7.",
        "level": f"{deep} and {shallow} respond alike ({both}): no depth effect shown.",
    }[direction]
    return direction, text


@register
def identity_start(*, deep: str, shallow: str, identical: bool, images: int) -> tuple[str, str]:
    """The deepened net against the shallow one it was made from, before any training."""
    direction = "identical" if identical else "different"
    verb = "gives exactly the outputs of" if identical else "does NOT give the outputs of"
    text = (
        f"Before training, {deep} (the trained {shallow} with zero-initialised blocks added) "
        f"{verb} {shallow} on {images} test images, bit for bit"
        + (": the added blocks compute the identity." if identical else ".")
    )
    return direction, text


@register
def never_worse(
    *, deep: str, deep_errors: list, shallow: str, shallow_errors: list
) -> tuple[str, str]:
    """The identity experiment's claim: for every seed, the deepened net ends no worse."""
    worse = [i for i, (d, s) in enumerate(zip(deep_errors, shallow_errors, strict=True)) if d > s]
    n = len(deep_errors)
    both = f"{_pct(deep_errors)} against {_pct(shallow_errors)}{_over(deep_errors)}"
    if not worse:
        direction = "never worse"
        every = "for the one seed" if n == 1 else f"for each of the {n} seeds"
        text = (
            f"After training, {deep} ends with no higher a training error than {shallow} did "
            f"{every} ({both}): adding residual blocks did not make the net worse."
        )
    else:
        direction = "worse"
        text = (
            f"After training, {deep} ends with a higher training error than {shallow} in "
            f"{len(worse)} of {n} seeds ({both}): here the claim does not hold."
        )
    return direction, text


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value]
    if isinstance(value, bool | str | int):
        return value
    return float(value)


def _std(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _pct(values: Sequence[float]) -> str:
    mean = 100 * statistics.fmean(values)
    return f"{mean:.2f} ± {100 * _std(values):.2f}%" if len(values) > 1 else f"{mean:.2f}%"


def _num(values: Sequence[float]) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.2f} ± {_std(values):.2f}" if len(values) > 1 else f"{mean:.2f}"


def _over(values: Sequence[float]) -> str:
    return f" over {len(values)} seeds" if len(values) > 1 else ", one seed, so no spread"


def _ratio(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2g}"


def _verb(reading: str) -> str:
    return {"vanishes": "vanishes", "grows": "grows towards the input", "keeps": "keeps"}.get(
        reading, "is undefined"
    )
