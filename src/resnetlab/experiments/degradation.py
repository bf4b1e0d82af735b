"""``resnetlab experiment degradation``: deeper plain nets train worse; shortcuts fix it (§4.1-4.2).

For each depth, the plain net and the ResNet of that depth (the CIFAR family of §4.2, same layers,
the plain one without shortcuts) train with one recipe and several seeds. The outputs:

- the final training and test error of each model (mean and spread over seeds);
- Figure-6-style curves (training error dashed, test error solid, against iterations);
- gradient flow: each layer's weight-gradient norm over training (heatmaps and line plots);
- layer responses (Figure 7): the std of every 3x3 layer's output after BN;
- the verdict: *degradation* when the deepest plain net ends with a higher training error than the
  shallowest one, *fixed* when the deepest ResNet ends lower than the deepest plain net; each by
  more than the seeds' spread (sample std; with one seed, any gap counts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from resnetlab.analysis import report
from resnetlab.analysis.figures import FigureFiles
from resnetlab.analysis.gradients import GradNorms, first_to_last_ratio, pick_iterations
from resnetlab.analysis.plots import (
    heatmaps_alt,
    plot_grad_heatmaps,
    plot_grad_profiles,
    plot_responses,
    profiles_alt,
    responses_alt,
)
from resnetlab.analysis.records import write_json
from resnetlab.analysis.responses import LayerResponses
from resnetlab.errors import ConfigError
from resnetlab.experiments import claims
from resnetlab.experiments.common import (
    RESPONSE_BATCH,
    curves_figure,
    data_defaults,
    describe_recipe,
    finish,
    grads_by_label,
    mean_responses,
    recipe_section,
    responses_per_seed,
    train_and_collect,
)
from resnetlab.experiments.results import ModelResult
from resnetlab.experiments.runner import Recipe, RunSpec, cifar_depths, cifar_runs, config_for

TITLE = "Degradation: plain nets vs ResNets of equal depth"
GRAD_RECORDS = 100  # gradient-norm records per run when the recipe does not say
# The default recipe: the paper's optimiser (SGD, momentum 0.9, weight decay 1e-4, lr 0.1, He
# init, BN) for a run short enough for a CPU, with the lr annealed to zero (cosine) so that the
# final errors are read off a settled model. A linear warm-up over the first 5% (Goyal et al.
# 2017) keeps ResNet-56 from blowing up in its first steps at lr 0.1, which it did for one seed
# in five without it (the paper warms up only its 110-layer net, §4.2); the plain nets train no
# better with it. Evaluations once per epoch.
RECIPE = {
    "iterations": 300,
    "batch_size": 64,
    "optim.lr": 0.1,
    "optim.momentum": 0.9,
    "optim.weight_decay": 1e-4,
    "optim.nesterov": False,
    "optim.label_smoothing": 0.0,
    "schedule.kind": "cosine",
    "schedule.warmup_fraction": 0.05,
    "schedule.warmup_lr": 0.0,
    "precision": "fp32",
    "eval_every": 0,
    "log_every": 10,
}
DIGITS_SIZE = 8  # the digits' own resolution: upsampling them adds pixels, not information


def defaults(data: str) -> tuple[str | None, dict]:
    """The experiment's (preset, recipe defaults) for ``data``."""
    values = {**RECIPE, **data_defaults(data)}
    if data == "digits":
        values["data.image_size"] = DIGITS_SIZE
    return None, values


def plan(depths: Sequence[int], seeds: Sequence[int]) -> list[RunSpec]:
    """The runs: plain nets first, then ResNets; shallow to deep; every seed of each."""
    return cifar_runs(("plain", "resnet"), depths, seeds)


@dataclass(frozen=True)
class Verdict:
    """The experiment's conclusion.

    Attributes:
        degradation: the deepest plain net trains worse than the shallowest (``None`` with one
            depth).
        fixed: the deepest ResNet trains better than the deepest plain net.
        lines: the two findings with their numbers, for the terminal and the report.
    """

    degradation: bool | None
    fixed: bool
    lines: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"degradation": self.degradation, "fixed": self.fixed, "lines": list(self.lines)}


def judge(results: Sequence[ModelResult], depths: Sequence[int]) -> Verdict:
    """Compare final training errors: shallow vs deep plain, deep plain vs deep ResNet."""
    by = {r.label: r for r in results}
    shallow, deep = min(depths), max(depths)
    plain_s, plain_d, res_d = by[f"plain{shallow}"], by[f"plain{deep}"], by[f"resnet{deep}"]
    lines = []
    degradation = None
    if shallow != deep:
        degradation = _clearly_above(plain_d, plain_s)
        lines.append(
            f"degradation shown: {_yes(degradation)} (final training error plain{deep} "
            f"{_pct(plain_d)} vs plain{shallow} {_pct(plain_s)})"
        )
    fixed = _clearly_above(plain_d, res_d)
    lines.append(
        f"fix shown: {_yes(fixed)} (final training error resnet{deep} {_pct(res_d)} vs "
        f"plain{deep} {_pct(plain_d)})"
    )
    return Verdict(degradation, fixed, tuple(lines))


@dataclass(frozen=True)
class Evidence:
    """What the experiment measured beyond the final errors, for its report and the lesson's.

    Attributes:
        figures: ``curves``, ``grad_heatmap_<depth>``, ``grad_profiles``, ``responses``.
        grads: each model's weight-gradient norms over training (mean over seeds).
        ratios: each model's first/last conv gradient-norm ratio (median over the run).
        responses: each model's layer responses (Figure 7), one per seed.
    """

    figures: dict[str, FigureFiles]
    grads: dict[str, GradNorms]
    ratios: dict[str, float]
    responses: dict[str, list[LayerResponses]]


def run(
    depths: Sequence[int],
    seeds: Sequence[int],
    recipe: Recipe,
    out: str | Path,
    *,
    jobs: int = 1,
    command: str = "",
    log: Callable[[str], None] = print,
) -> dict:
    """Train (or reuse) every run, then write the table, figures and report into ``out``.

    Args:
        depths: depths 6n+2 (``[20, 56]``).
        seeds: the seeds of every model.
        recipe: the training recipe all runs share.
        out: the experiment's folder.
        jobs: runs trained side by side.
        command: the command line that reproduces the experiment (for the records).
        log: where progress and the results go.

    Returns:
        ``{"results": [ModelResult], "verdict": Verdict, "evidence": Evidence, "runs":
        [RunSpec], "recipe": Recipe, "files": {name: path}}``.
    """
    out, depths = Path(out), cifar_depths(depths)
    runs = plan(depths, seeds)
    recipe = with_grad_norms(recipe, runs[0])
    results = train_and_collect(runs, recipe, out, jobs, log)
    verdict = judge(results, depths)

    evidence = measure(out, runs, depths, recipe)
    what = f"Plain nets and ResNets (§4.2) of depth {', '.join(map(str, depths))}."
    lead = [
        report.paragraph(f"{what} {describe_recipe(recipe, runs)}"),
        report.section("Verdict", *(report.paragraph(line) for line in verdict.lines)),
    ]
    parts = _sections(evidence, depths, recipe, runs[0])
    responses = {k: v.to_dict() for k, v in mean_responses(evidence.responses).items()}
    extra = {
        "verdict": verdict.to_dict(),
        "gradient_first_to_last_ratio": evidence.ratios,
        "claims": [c.to_dict() for c in evidence_claims(evidence, depths)],
        "responses": responses,
    }
    files = finish(out, TITLE, results, command, parts, lead=lead, extra=extra)
    for line in verdict.lines:
        log(line)
    log(f"report: {files['report.html']}")
    return {
        "results": results,
        "verdict": verdict,
        "evidence": evidence,
        "runs": runs,
        "recipe": recipe,
        "files": files,
    }


def with_grad_norms(recipe: Recipe, probe: RunSpec) -> Recipe:
    """The recipe with gradient-norm records on (about ``GRAD_RECORDS`` per run) unless it
    already asks for them; the heatmaps need them."""
    cfg = config_for(recipe, probe)
    if cfg.grad_norms_every > 0:
        return recipe
    every = max(1, (cfg.iterations or 10 * GRAD_RECORDS) // GRAD_RECORDS)
    recipe = recipe.with_defaults(grad_norms_every=every)
    if config_for(recipe, probe).grad_norms_every == 0:  # the user's --set turned them off
        raise ConfigError("grad_norms_every must be positive: the gradient-flow figures need it")
    return recipe


def measure(out: Path, runs: Sequence[RunSpec], depths: Sequence[int], recipe: Recipe) -> Evidence:
    """Draw the curves, the gradient flow and the layer responses of the finished runs."""
    data = config_for(recipe, runs[0]).data.name
    figures = {
        "curves": curves_figure(
            out,
            runs,
            {
                "plain nets": [f"plain{d}" for d in depths],
                "ResNets": [f"resnet{d}" for d in depths],
            },
            title=f"{data}: training (dashed) and test (solid) error",
        )
    }
    grads = grads_by_label(out, runs)
    for d in depths:
        pair = {f"plain{d}": grads[f"plain{d}"], f"resnet{d}": grads[f"resnet{d}"]}
        paths = plot_grad_heatmaps(pair, out / f"grad_heatmap_{d}")
        figures[f"grad_heatmap_{d}"] = FigureFiles(paths, heatmaps_alt(pair))
    moments = pick_iterations(grads[runs[0].label].iterations)
    paths = plot_grad_profiles(grads, out / "grad_profiles", moments)
    figures["grad_profiles"] = FigureFiles(paths, profiles_alt(grads, moments))
    per_seed = responses_per_seed(out, runs, recipe)
    mean = mean_responses(per_seed)
    write_json(out / "responses.json", {k: v.to_dict() for k, v in mean.items()})
    figures["responses"] = FigureFiles(plot_responses(mean, out / "responses"), responses_alt(mean))
    ratios = {label: first_to_last_ratio(g) for label, g in grads.items()}
    return Evidence(figures, grads, ratios, per_seed)


def evidence_claims(evidence: Evidence, depths: Sequence[int]) -> list[claims.Claim]:
    """The directional sentences of the gradient and response sections, from their numbers."""
    found = []
    for d in depths:
        found.append(
            claims.twins_gradient(
                plain=f"plain{d}",
                plain_ratio=evidence.ratios[f"plain{d}"],
                residual=f"resnet{d}",
                residual_ratio=evidence.ratios[f"resnet{d}"],
            )
        )
        found.append(response_claim(evidence.responses, d))
    return found


def response_claim(per_seed: dict[str, list[LayerResponses]], depth: int) -> claims.Claim:
    """Figure 7 at one depth: the ResNet's mean response against its plain twin's, per seed."""
    return claims.responses(
        plain=f"plain{depth}",
        plain_means=[float(r.std.mean()) for r in per_seed[f"plain{depth}"]],
        residual=f"resnet{depth}",
        residual_means=[float(r.std.mean()) for r in per_seed[f"resnet{depth}"]],
    )


def _sections(evidence: Evidence, depths: Sequence[int], recipe: Recipe, probe: RunSpec) -> list:
    figures = evidence.figures
    found = evidence_claims(evidence, depths)
    twins = [c for c in found if c.kind == "twins_gradient"]
    fig7 = [c for c in found if c.kind == "responses"]
    return [
        report.section(
            "Training curves (Figure 6)",
            report.figure(figures["curves"], "Error against iterations, mean over seeds."),
        ),
        report.section(
            "Gradient flow",
            *(
                report.figure(figures[f"grad_heatmap_{d}"], f"Weight-gradient norms, depth {d}.")
                for d in depths
            ),
            report.figure(figures["grad_profiles"], "Weight-gradient norm against layer."),
            report.table(
                ("model", "first conv / last conv gradient norm (median)"),
                [(label, f"{ratio:.3g}") for label, ratio in evidence.ratios.items()],
            ),
            *(report.claim(c.text, c.kind) for c in twins),
            report.paragraph(
                "The ratios are of L2 norms, which grow with a layer's number of weights, so "
                "they compare between twins of one depth (the same layers), not between layers. "
                "The paper (§4.1) argues that with BN the plain nets' gradients keep healthy "
                "norms and that their difficulty is one of optimisation; the lesson (resnetlab "
                "experiment lesson) reads this run's numbers against it. Norms are means over "
                "seeds."
            ),
        ),
        report.section(
            "Layer responses (Figure 7)",
            report.figure(figures["responses"], "Std of each 3x3 layer's output after BN."),
            *(report.claim(c.text, c.kind) for c in fig7),
            report.paragraph(
                "Each value is the standard deviation over all elements of the output of a BN "
                "that follows a 3x3 convolution (before the ReLU and, in a ResNet, before the "
                f"addition), in eval mode, on the first {RESPONSE_BATCH} test images, mean over "
                "seeds."
            ),
        ),
        recipe_section(recipe, probe),
    ]


def _clearly_above(a: ModelResult, b: ModelResult) -> bool:
    """``a`` ends with a higher training error than ``b``, by more than either's spread."""
    return a.train_mean - b.train_mean > max(a.train_std, b.train_std)


def _pct(r: ModelResult) -> str:
    spread = f" ± {100 * r.train_std:.2f}" if len(r.seeds) > 1 else ""
    return f"{100 * r.train_mean:.2f}%{spread}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
