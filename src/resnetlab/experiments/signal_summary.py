"""The numbers of the signal experiment per model, and the sentences they allow.

A signal *grows* or *shrinks* across a net when its fitted log-linear line (``analysis.signal``)
changes by more than ``FACTOR`` from one end to the other, with the slope's mean ± std over seeds
both past that factor; else it *stays within* it. Gradients are read from the output back to the
input, as they travel: one that shrinks that way vanishes, one that grows explodes. Each sentence
is a ``Finding`` made by these rules, so it flips or changes where the numbers do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from resnetlab.analysis.figures import family_name
from resnetlab.analysis.signal import SignalProfile
from resnetlab.experiments.at_init import NORM_WORDS
from resnetlab.experiments.findings import Finding, Spread, capital, choose, compare, spread, than

FACTOR = 10.0  # a signal that changes by more than this across a net grows or shrinks
THEORY_TOLERANCE = 0.2  # a measured/predicted second moment within 1 +- this "matches" 2015b
PAPER = "He et al. 2015 (arXiv:1512.03385, §4.1)"
THEORY = "He et al. 2015b (arXiv:1502.01852)"
CITATION = (
    'He, Zhang, Ren, Sun 2015, "Deep Residual Learning for Image Recognition", arXiv:1512.03385, '
    '§4.1, and He, Zhang, Ren, Sun 2015b, "Delving Deep into Rectifiers: Surpassing Human-Level '
    'Performance on ImageNet Classification", arXiv:1502.01852, §2.2'
)
EXPLOSION = 'Yang et al. 2019 ("A Mean Field Theory of Batch Normalization", arXiv:1902.08129)'


@dataclass(frozen=True)
class SignalModel:
    """One model's fitted signals over its seeds.

    Attributes:
        label: ``plain56``, ``resnet56-nobn``.
        depth: the paper's depth.
        residual: ResNet or plain twin.
        norm: ``"bn"`` or ``"none"``.
        seeds: the seeds measured.
        activation_slope: change of ln(activation std) per point (stem, then each block).
        gradient_slope: change of ln(weight-gradient norm) per main-path conv, input side first.
        points: activation points (the stem and every block).
        convs: main-path convs in the gradient fit.
        he_ratio: measured / predicted second moment of the last block's output (plain nets
            without BN), else ``None``.
    """

    label: str
    depth: int
    residual: bool
    norm: str
    seeds: tuple[int, ...]
    activation_slope: Spread
    gradient_slope: Spread
    points: int
    convs: int
    he_ratio: Spread | None = None

    @property
    def activation_change(self) -> float:
        """The fitted factor from the stem to the last block (mean slope)."""
        return math.exp(self.activation_slope.mean * (self.points - 1))

    @property
    def gradient_change(self) -> float:
        """The fitted factor from the last conv back to the first (mean slope)."""
        return math.exp(-self.gradient_slope.mean * (self.convs - 1))

    def to_dict(self) -> dict:
        return {
            "model": self.label,
            "depth": self.depth,
            "residual": self.residual,
            "norm": self.norm,
            "seeds": list(self.seeds),
            "activation_slope_per_point": self.activation_slope.to_dict(),
            "activation_change_stem_to_last": self.activation_change,
            "gradient_slope_per_conv": self.gradient_slope.to_dict(),
            "gradient_change_last_to_first": self.gradient_change,
            "points": self.points,
            "convs": self.convs,
            "he_moment_ratio_last_block": None
            if self.he_ratio is None
            else self.he_ratio.to_dict(),
        }


def summarise(profiles: Sequence[tuple[int, SignalProfile]]) -> list[SignalModel]:
    """Group (seed, profile) pairs by model, in first-seen order, and fit over seeds."""
    groups: dict[str, list[tuple[int, SignalProfile]]] = {}
    for seed, p in profiles:
        groups.setdefault(p.label, []).append((seed, p))
    models = []
    for label, group in groups.items():
        first = group[0][1]
        ratios = [
            (p.activation_rms[-1] / p.predicted_rms[-1]) ** 2
            for _, p in group
            if p.predicted_rms is not None
        ]
        models.append(
            SignalModel(
                label=label,
                depth=first.depth,
                residual=first.residual,
                norm=first.norm,
                seeds=tuple(s for s, _ in group),
                activation_slope=spread(p.activation_fit.slope for _, p in group),
                gradient_slope=spread(p.grad_fit.slope for _, p in group),
                points=len(first.points),
                convs=len(first.main_path),
                he_ratio=spread(ratios) if ratios else None,
            )
        )
    return models


def trend(slope: Spread, steps: int, towards: int = 1) -> int:
    """1 if the fitted value grows by more than ``FACTOR`` over ``steps`` layers (``towards=-1``:
    read from the output back to the input), -1 if it shrinks by more, 0 otherwise; the slope's
    mean ± std must both be past the factor."""
    ends = sorted(towards * steps * s for s in (slope.mean - slope.std, slope.mean + slope.std))
    limit = math.log(FACTOR)
    return 1 if ends[0] > limit else -1 if ends[1] < -limit else 0


def findings(models: Sequence[SignalModel]) -> list[Finding]:
    """The report's sentences, for the deepest plain net and ResNet of each norm."""
    found = []
    for norm in dict.fromkeys(m.norm for m in models):
        group = [m for m in models if m.norm == norm]
        deepest = max(m.depth for m in group)
        plain = next((m for m in group if m.depth == deepest and not m.residual), None)
        res = next((m for m in group if m.depth == deepest and m.residual), None)
        for m in (plain, res):
            if m is not None:
                found += [gradient_trend(m), activation_trend(m)]
        if plain is not None and res is not None:
            found.append(flatter(plain, res))
        if plain is not None and norm == "bn":
            found.append(paper_reading(plain))
        if plain is not None and plain.he_ratio is not None:
            found.append(theory(plain))
    return found


def model_name(m: SignalModel) -> str:
    """``plain56``, ``plain56, no BN``."""
    return family_name(m.residual, m.depth, m.norm)


def gradient_trend(m: SignalModel) -> Finding:
    """Whether a model's weight gradients vanish, explode or neither, from the output back."""
    way = trend(m.gradient_slope, m.convs - 1, towards=-1)
    verb = choose(
        way,
        f"grows by more than a factor of {FACTOR:g} (it explodes towards the input)",
        f"shrinks by more than a factor of {FACTOR:g} (it vanishes towards the input)",
        f"stays within a factor of {FACTOR:g}",
    )
    return Finding(
        f"{model_name(m)}: from the last conv back to the first, the fitted weight-gradient norm "
        f"{verb}: x{m.gradient_change:.3g} across {m.convs} convs (slope "
        f"{m.gradient_slope.text(4)} per conv, input side first).",
        {
            "gradient_slope": m.gradient_slope.mean,
            "gradient_slope_std": m.gradient_slope.std,
            "convs": m.convs,
            "gradient_change": m.gradient_change,
            "direction": way,
        },
        f"gradient_trend:{m.label}",
    )


def activation_trend(m: SignalModel) -> Finding:
    """Whether a model's activations grow, shrink or neither from the stem to the last block."""
    way = trend(m.activation_slope, m.points - 1)
    verb = choose(
        way,
        f"grows by more than a factor of {FACTOR:g}",
        f"shrinks by more than a factor of {FACTOR:g}",
        f"stays within a factor of {FACTOR:g}",
    )
    return Finding(
        f"{model_name(m)}: from the stem to the last block, the fitted activation std {verb}: "
        f"x{m.activation_change:.3g} across {m.points} points (slope "
        f"{m.activation_slope.text(4)} per block).",
        {
            "activation_slope": m.activation_slope.mean,
            "activation_slope_std": m.activation_slope.std,
            "points": m.points,
            "activation_change": m.activation_change,
            "direction": way,
        },
        f"activation_trend:{m.label}",
    )


def flatter(plain: SignalModel, res: SignalModel) -> Finding:
    """Whether the ResNet's gradient norm changes less per layer than its plain twin's."""
    a = spread(abs(v) for v in res.gradient_slope.values)
    b = spread(abs(v) for v in plain.gradient_slope.values)
    way = compare(a, b)
    word = choose(way, "more", "less", "about as much (within the seeds' spread)")
    return Finding(
        f"{capital(NORM_WORDS[res.norm])}, the weight-gradient norm of {res.label} changes "
        f"{word} per layer {than(way)} that of {plain.label}: |slope| {a.text(4)} vs "
        f"{b.text(4)} per conv.",
        {"resnet_abs_slope": a.mean, "plain_abs_slope": b.mean, "direction": way},
        f"flatter:{plain.depth}:{res.norm}",
    )


def paper_reading(plain: SignalModel) -> Finding:
    """This run's plain net with BN against the paper's reading of healthy gradients."""
    way = trend(plain.gradient_slope, plain.convs - 1, towards=-1)
    numbers = {"gradient_change": plain.gradient_change, "direction": way}
    if way == 0:
        text = (
            f"{PAPER} verify that with BN the plain nets' gradients keep healthy norms; at "
            f"initialisation this run agrees for {plain.label}: its gradient neither vanishes "
            f"nor explodes (x{plain.gradient_change:.3g} from the last conv to the first)."
        )
    else:
        what = "explodes" if way > 0 else "vanishes"
        text = (
            f"{PAPER} verify that with BN the plain nets' gradients keep healthy norms; at "
            f"initialisation this run differs for {plain.label}: its gradient {what} towards "
            f"the input (x{plain.gradient_change:.3g} from the last conv to the first)."
        )
        if way > 0:
            text += (
                f" {EXPLOSION} find that BN makes the gradients of deep nets without shortcuts "
                "explode at initialisation."
            )
    return Finding(text, numbers, f"paper_reading:{plain.label}")


def theory(plain: SignalModel) -> Finding:
    """A plain net without BN against the He et al. 2015b prediction of its activations."""
    ratio = plain.he_ratio
    off = ratio.mean - 1.0
    way = 0 if abs(off) <= THEORY_TOLERANCE else (1 if off > 0 else -1)
    word = choose(
        way,
        "is above",
        "is below",
        f"matches, to within {100 * THEORY_TOLERANCE:.0f}%,",
    )
    return Finding(
        f"{model_name(plain)}: the second moment of the last block's output {word} the prediction "
        f"of {THEORY} for He init: measured/predicted {ratio.text(3)} (mean over "
        f"{len(ratio.values)} seed(s); the prediction is an expectation over the weights' draw, "
        "around which one narrow, deep net scatters widely).",
        {"he_ratio": ratio.mean, "he_ratio_std": ratio.std, "direction": way},
        f"theory:{plain.label}",
    )
