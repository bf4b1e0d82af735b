"""The lesson's page: its six sections, in the order of the argument, from what the run measured.

Sections 1, 2 and 6 are here; 3 and 4 (the block and the identity) in ``lesson_blocks``; 5 in
``beyond``. Text that states a direction is never written here: it comes from ``claims``, made
from the numbers, and is shown with ``report.claim``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

import resnetlab
from resnetlab.analysis import report
from resnetlab.analysis.gradients import first_to_last_ratio
from resnetlab.analysis.signal import SignalProfile
from resnetlab.experiments import beyond, claims, lesson_blocks
from resnetlab.experiments.claims import Claim
from resnetlab.experiments.common import recipe_section
from resnetlab.experiments.lesson_facts import Facts, shown
from resnetlab.experiments.results import TABLE_HEADER, machine_words, seeds_phrase, table_rows

HEADINGS = [
    "1. The problem: deeper should do no worse",
    "2. Vanishing gradients, measured",
    "3. The residual block: H(x) = F(x) + x",
    "4. Why an identity is easy",
    "5. Beyond the paper",
    "6. What this run does not show",
]
PAPER_ITERATIONS = 64_000  # §4.2: the CIFAR-10 runs stop at 64k iterations of batch 128
PAPER_EPOCHS = 64_000 * 128 / 45_000  # on the 45k training images
QUOTE_41 = (
    "We argue that this optimization difficulty is unlikely to be caused by vanishing "
    "gradients. These plain networks are trained with BN, which ensures forward propagated "
    "signals to have non-zero variances. We also verify that the backward propagated gradients "
    "exhibit healthy norms with BN. So neither forward nor backward signals vanish."
)
QUOTE_1 = (
    "There exists a solution by construction to the deeper model: the added layers are "
    "identity mapping, and the other layers are copied from the learned shallower model."
)


def build(facts: Facts) -> tuple[list[str], list[Claim]]:
    """The page's sections in order, and every claim they show."""
    made: list[Claim] = []
    parts = [
        problem(facts, made),
        gradients(facts, made),
        lesson_blocks.block_section(facts, made, HEADINGS[2]),
        lesson_blocks.identity_section(facts, made, HEADINGS[3]),
        beyond_section(facts, made),
        limits(facts),
        report.environment_section(facts.environment, facts.command),
        recipe_section(facts.degradation["recipe"], facts.degradation["runs"][0]),
    ]
    return parts, made


def problem(facts: Facts, made: list[Claim]) -> str:
    """1: a deeper net should do no worse, and the plain one trains worse (or not)."""
    by = {r.label: r for r in facts.degradation["results"]}
    plain_s, plain_d = by[f"plain{facts.shallow}"], by[f"plain{facts.deep}"]
    added = facts.deep - facts.shallow
    claim = claims.degradation(
        deep=plain_d.label,
        deep_errors=list(plain_d.train_errors),
        shallow=plain_s.label,
        shallow_errors=list(plain_s.train_errors),
    )
    results = facts.degradation["results"]
    return report.section(
        HEADINGS[0],
        report.paragraph(
            f"A deeper net should do no worse than a shallower one: take a trained "
            f"plain{facts.shallow}, add {added} layers that each pass their input on unchanged, "
            f"and the result is a plain{facts.deep} with plain{facts.shallow}'s training error. "
            f"In the paper's words (§1): “{QUOTE_1}” So an optimiser that finds good solutions "
            f"should bring plain{facts.deep}'s training error at least as low as "
            f"plain{facts.shallow}'s."
        ),
        shown(made, claim),
        report.figure(
            facts.degradation["evidence"].figures["curves"],
            "Figure 6 of this run: training error (dashed) and test error (solid) against "
            "iterations, mean over the seeds; plain nets left, ResNets right.",
        ),
        report.table(TABLE_HEADER, table_rows(results)),
        report.paragraph(
            "Final errors measured in eval mode on the whole un-augmented train and test sets at "
            f"the end of each run; {seeds_phrase(results)}. The paper's Figure 6 shows the "
            "same comparison on CIFAR-10."
        ),
    )


def gradients(facts: Facts, made: list[Claim]) -> str:
    """2: the signal at initialisation and the gradient flow in training, against §4.1."""
    ev = facts.degradation["evidence"]
    plain_d, res_d, plain_s = f"plain{facts.deep}", f"resnet{facts.deep}", f"plain{facts.shallow}"
    profile = {(p.label, p.norm): p for p in facts.profiles}
    at_init = {
        norm: _init_claims(profile[(plain_d + _suffix(norm), norm)], facts)
        for norm in ("bn", "none")
    }
    train = {m: _train_ratio(facts, m) for m in (plain_s, plain_d, res_d)}
    in_training = [
        claims.gradient(model=m, when="during training (median over the run)", per_weight=pw, l2=l2)
        for m, (pw, l2) in train.items()
    ]
    twins = claims.twins_gradient(
        plain=plain_d,
        plain_ratio=ev.ratios[plain_d],
        residual=res_d,
        residual_ratio=ev.ratios[res_d],
    )
    paper = claims.paper_gradients(
        model=plain_d, at_init=at_init["bn"][1].numbers["per_weight"], in_training=train[plain_d][0]
    )
    every = facts.cfg.grad_norms_every
    first, last = _first_last_counts(facts.weights[plain_d])
    return report.section(
        HEADINGS[1],
        report.paragraph(
            "The usual story: in a deep net the gradient shrinks layer by layer on its way back, "
            "so the first layers stop learning. The paper argues that this is not what stops "
            "its plain nets (§4.1):"
        ),
        f"<blockquote>“{report.esc(QUOTE_41)}”</blockquote>",
        report.paragraph(
            "This run measures both. At initialisation, on one batch of "
            f"{facts.signal_images} training images: the std of "
            "the stem's and every block's output, and the gradient of every conv's weights, for "
            "plain nets and ResNets, with BN and without it (the same nets, every BatchNorm "
            f"left out). During training: every conv's weight-gradient norm every {every} "
            f"iterations. A conv's gradient norm grows with its number of weights (the first "
            f"conv of plain{facts.deep} has {first:,}, the last {last:,}), so the readings "
            "compare gradients per weight, the norm divided by the square root of the layer's "
            "number of weights; the gradient vanishes, in these readings, where the first conv "
            "gets less than a tenth of the last conv's gradient per weight."
        ),
        "<h3>At initialisation</h3>",
        report.figure(
            facts.signal_figure,
            "The signal at initialisation: activation std and weight-gradient norm against "
            "layer, plain nets and ResNets, with and without BN.",
        ),
        shown(made, *at_init["bn"], *at_init["none"]),
        "<h3>During training</h3>",
        report.figure(
            ev.figures[f"grad_heatmap_{facts.deep}"],
            f"Gradient flow during training, depth {facts.deep}: weight-gradient norm per layer "
            "and iteration (mean over seeds).",
        ),
        report.figure(ev.figures["grad_profiles"], "Weight-gradient norm against layer."),
        shown(made, *in_training, twins),
        "<h3>This run against §4.1</h3>",
        _paper_table(facts, at_init, train[plain_d]),
        shown(made, paper),
    )


def _init_claims(p: SignalProfile, facts: Facts) -> tuple[Claim, Claim]:
    """The forward and backward readings of one plain net at initialisation."""
    grads = p.main_path_grads()
    counts = facts.weights[f"plain{p.depth}"]
    sizes = np.array([counts[p.grad_layers[i]] for i in p.main_path], dtype=np.float64)
    per_weight = grads / np.sqrt(sizes)
    when = "at initialisation " + ("with BN" if p.norm == "bn" else "without BN")
    return (
        claims.activations(model=p.label, first=p.activation_std[0], last=p.activation_std[-1]),
        claims.gradient(
            model=p.label,
            when=when,
            per_weight=per_weight[0] / per_weight[-1],
            l2=grads[0] / grads[-1],
        ),
    )


def _train_ratio(facts: Facts, label: str) -> tuple[float, float]:
    """(per-weight, L2) first/last conv gradient ratios of one model during training."""
    grads = facts.degradation["evidence"].grads[label]
    return first_to_last_ratio(grads, facts.weights[label]), first_to_last_ratio(grads)


def _paper_table(facts: Facts, at_init: dict, train: tuple[float, float]) -> str:
    """§4.1 and this run side by side, for the deepest plain net."""
    plain = f"plain{facts.deep}"
    act_bn, grad_bn = at_init["bn"]
    act_none, grad_none = at_init["none"]
    nobn = next(p for p in facts.profiles if p.label == f"{plain}-nobn")
    agree = {"keeps": "yes", "vanishes": "no: it vanishes", "grows": "no: it grows"}

    def numbers(c: Claim) -> str:
        return f"{c.numbers['per_weight']:.3g} per weight ({c.numbers['l2']:.3g} in L2 norms)"

    rows = [
        (
            "forward signal, BN, at initialisation",
            "non-zero variances",
            f"std {act_bn.numbers['first']:.3g} after the stem, {act_bn.numbers['last']:.3g} after "
            "the last block",
            agree.get(act_bn.direction, "?"),
        ),
        (
            "gradient first/last conv, BN, at initialisation",
            "healthy norms",
            numbers(grad_bn),
            agree.get(grad_bn.direction, "?"),
        ),
        (
            "gradient first/last conv, BN, during training",
            "healthy norms",
            f"{train[0]:.3g} per weight ({train[1]:.3g} in L2 norms, median over the run)",
            agree.get(claims.gradient_reading(train[0]), "?"),
        ),
        (
            "forward signal, no BN, at initialisation",
            "(no plain net without BN is trained)",
            f"std {act_none.numbers['first']:.3g} after the stem, {act_none.numbers['last']:.3g} "
            f"after the last block; He et al. 2015b predict an RMS of "
            f"{_last(nobn.predicted_rms)}, measured {nobn.activation_rms[-1]:.3g}",
            "-",
        ),
        ("gradient first/last conv, no BN, at initialisation", "-", numbers(grad_none), "-"),
    ]
    return report.table(
        ("reading", "the paper, §4.1", f"this run, {plain}", "does this run agree?"), rows
    )


def beyond_section(facts: Facts, made: list[Claim]) -> str:
    """5: the analyses after the paper, where they ran."""
    found, missing = facts.beyond
    html, found_claims = beyond.section(found, missing, facts.out)
    made.extend(found_claims)
    return report.section(
        HEADINGS[4],
        report.paragraph(
            "The paper shows that shortcuts fix the degradation problem. Later work asked why, "
            "with measurements a laptop can make: whether the input gradients of deep nets "
            "look like noise (Balduzzi et al. 2017), whether a ResNet behaves like an ensemble "
            "of shallow paths (Veit et al. 2016), and what the loss looks like around the "
            "trained weights (Li et al. 2018). They need trained nets and many evaluations, "
            "more than this demo spends, so this section shows those that have run."
        ),
        html,
    )


def limits(facts: Facts) -> str:
    """6: what the run does not show: its data, length, seeds and machine."""
    cfg, results = facts.cfg, facts.degradation["results"]
    size = f"{cfg.data.image_size}x{cfg.data.image_size}" if cfg.data.image_size else "own size"
    iterations = cfg.iterations or 0
    epochs = iterations * cfg.batch_size / max(1, facts.train_images)
    seeds = sorted({s for r in results for s in r.seeds})
    one = len(seeds) == 1
    items = [
        f"Its data: {cfg.data.name} at {size}, {facts.train_images:,} training and "
        f"{facts.deepened['images']:,} test images, not CIFAR-10's 50,000 32x32 colour images; "
        "small, easy images that a 20-layer net fits completely.",
        f"Its length: {iterations:,} iterations of batch {cfg.batch_size} ({epochs:.1f} epochs), "
        f"where the paper trains {PAPER_ITERATIONS:,} iterations of batch 128 (about "
        f"{PAPER_EPOCHS:.0f} epochs): what a net does after a longer run is not measured here.",
        f"Its seeds: {len(seeds)} ({', '.join(map(str, seeds))}); "
        + (
            "with one seed there is no spread to show, and a finding cannot be told from the "
            "luck of the seed."
            if one
            else "the tables give the mean ± sample std over them; a few seeds give a rough "
            "spread, not a tight one."
        ),
        f"Its machine: {machine_words(facts.environment)}. The same command on another CPU gives "
        "other digits (its kernels add in another order, and a deep plain net amplifies the "
        "difference); the verdicts and the spread over seeds are what carry over, not the "
        "digits.",
    ]
    bullets = "".join(f"<li>{report.esc(i)}</li>" for i in items)
    return report.section(
        HEADINGS[5],
        f"<ul>{bullets}</ul>",
        report.paragraph_html(
            report.esc("Runs at CIFAR scale (Figure 6 on the CIFAR-10 JPEG copy): "),
            _results_link(facts.out),
            report.esc("."),
        ),
    )


def _results_link(out: Path) -> str:
    """A link to RESULTS.md's CIFAR-scale part where the project's file is at hand."""
    name = "RESULTS.md, section “Figure 6 at CIFAR scale”"
    results = Path(resnetlab.__file__).resolve().parents[2] / "RESULTS.md"
    if not results.is_file():
        return report.esc(f"{name}, in the project's repository")
    href = Path(os.path.relpath(results, out.resolve())).as_posix() + "#figure-6-at-cifar-scale"
    return report.link(name, href)


def _suffix(norm: str) -> str:
    return "" if norm == "bn" else "-nobn"


def _first_last_counts(counts: dict[str, int]) -> tuple[int, int]:
    convs = [n for n in counts if n.endswith(".weight") and not n.startswith("fc.")]
    convs = [n for n in convs if counts[n] > 0 and ".bn" not in n and "downsample" not in n]
    convs = [n for n in convs if "conv" in n]
    return counts[convs[0]], counts[convs[-1]]


def _last(values: Any) -> str:
    return "-" if values is None else f"{values[-1]:.3g}"
