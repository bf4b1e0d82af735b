"""``resnetlab experiment signal``: do activations and gradients vanish or explode at init?

The seed of the argument says that gradients in deep plain nets shrink (or grow) exponentially on
their way back. He et al. 2015 ("Deep Residual Learning for Image Recognition", arXiv:1512.03385,
§4.1) answer that with BN the plain nets' forward signals keep non-zero variances and their
backward gradients healthy norms, so that their trouble is optimisation, not vanishing gradients.
We measure both at initialisation (``resnetlab.analysis.signal``): the std of the stem's and every
block's output and the norm of every weight's gradient, on one batch of real images, for plain
nets and ResNets of ``--depths``, with BN and without (``--norms``), for every seed. Without BN the
plain nets are also compared with the prediction of He et al. 2015b ("Delving Deep into
Rectifiers", arXiv:1502.01852, §2.2) for their activations.

Each series has a log-linear fit; its slope is the change of ln(value) per layer. The sentences of
the report follow the rules of ``signal_summary``: a signal grows or shrinks across a net when its
fitted line changes by more than a factor of 10 from one end to the other, beyond the seeds'
spread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from resnetlab.analysis import report
from resnetlab.analysis.figures import FigureFiles
from resnetlab.analysis.plots_signal import plot_signal_profiles, plot_signal_slopes
from resnetlab.analysis.signal import SignalProfile, signal_study
from resnetlab.experiments.at_init import (
    NORM_WORDS,
    THREADS,
    check_norms,
    describe_batch,
    init_data,
    init_parts,
)
from resnetlab.experiments.degradation import DIGITS_SIZE
from resnetlab.experiments.findings import Finding
from resnetlab.experiments.outputs import (
    figure_part,
    findings_part,
    markdown_table,
    write_outputs,
)
from resnetlab.experiments.parts import run_parts
from resnetlab.experiments.runner import Recipe, cifar_depths
from resnetlab.experiments.signal_summary import (
    CITATION,
    FACTOR,
    SignalModel,
    findings,
    model_name,
    summarise,
)

TITLE = "Signals at initialisation: plain nets vs ResNets, with and without BN"
DEFAULT_DEPTHS = (8, 20, 56, 110)
DEFAULT_NORMS = ("bn", "none")
BATCH = 64  # images in the batch (the library finds 32 CIFAR images enough; cost grows with it)


def defaults(data: str) -> tuple[str | None, dict]:
    """The experiment's (preset, recipe defaults): the batch, and digits at their own 8x8."""
    values: dict = {"batch_size": BATCH}
    if data == "digits":
        values["data.image_size"] = DIGITS_SIZE
    return None, values


@dataclass(frozen=True)
class SignalOutcome:
    """What ``run`` measured and wrote (``sections`` turns it into the report's HTML)."""

    models: list[SignalModel]
    findings: list[Finding]
    figures: dict[str, FigureFiles]
    settings: dict
    files: dict[str, Path]


def measure(images, labels, depth: int, norm: str, classes: int, seed: int) -> list[dict]:
    """One part: the plain net and the ResNet of ``depth`` and ``norm`` from ``seed``."""
    return [p.to_dict() for p in signal_study(images, labels, [depth], [norm], classes, seed)]


def draw_figures(profiles: Sequence[SignalProfile], out: Path) -> dict[str, FigureFiles]:
    """The profiles and the fitted slopes (PNG + SVG) of one seed's profiles."""
    return {
        "profiles": plot_signal_profiles(profiles, out / "signal_profiles"),
        "slopes": plot_signal_slopes(profiles, out / "signal_slopes"),
    }


HEADER = (
    "model",
    "seeds",
    "activation slope / block",
    "stem → last",
    "gradient slope / conv",
    "last → first conv",
    "measured/predicted 2nd moment",
)


def table_rows(models: Sequence[SignalModel]) -> list[tuple[str, ...]]:
    """One row per model: fitted slopes, the changes across the net, the theory ratio."""
    return [
        (
            model_name(m),
            str(len(m.seeds)),
            m.activation_slope.text(4),
            f"x{m.activation_change:.3g}",
            m.gradient_slope.text(4),
            f"x{m.gradient_change:.3g}",
            "" if m.he_ratio is None else m.he_ratio.text(3),
        )
        for m in models
    ]


def sections(outcome: SignalOutcome) -> list[str]:
    """The report's section of the signal experiment: findings, figures and the table."""
    s = outcome.settings
    return [
        report.section(
            "Signals at initialisation (He et al. 2015 §4.1; He et al. 2015b)",
            report.paragraph(f"After {CITATION}."),
            report.paragraph(
                f"Plain nets and ResNets of depth {', '.join(map(str, s['depths']))}, "
                f"{' and '.join(NORM_WORDS[n] for n in s['norms'])}, at initialisation (seeds "
                f"{', '.join(map(str, s['seeds']))}), measured on {s['batch']}. A signal grows "
                f"or shrinks when its fitted line changes by more than a factor of {FACTOR:g} "
                "across the net, beyond the seeds' spread."
            ),
            findings_part(outcome.findings),
            figure_part(
                outcome.figures["profiles"],
                f"Activation std and weight-gradient norm against layer (seed {s['seeds'][0]}).",
            ),
            figure_part(outcome.figures["slopes"], "The fitted slopes against depth."),
            report.table(HEADER, table_rows(outcome.models)),
        )
    ]


def run(
    depths: Sequence[int],
    norms: Sequence[str],
    seeds: Sequence[int],
    recipe: Recipe,
    out: str | Path,
    *,
    jobs: int = 1,
    command: str = "",
    log: Callable[[str], None] = print,
) -> SignalOutcome:
    """Measure (or read back) every pair of nets, then write the figures, results and report.

    Args:
        depths: depths 6n+2.
        norms: ``"bn"`` and/or ``"none"``.
        seeds: the seeds of the nets' initialisation.
        recipe: its data settings and ``batch_size`` choose the batch; nothing trains.
        out: the experiment's folder.
        jobs: parts computed side by side (one thread each).
        command: the command line that reproduces the experiment.
        log: where progress and the findings go.
    """
    out, depths, norms = Path(out), cifar_depths(depths), check_norms(norms)
    data = init_data(recipe, seeds[0])
    parts = init_parts(out, data, depths, norms, seeds, measure, (data.images, data.labels))
    records = run_parts(parts, jobs=jobs, threads=THREADS, log=log)
    profiles = [
        (part.settings["seed"], SignalProfile.from_dict(r))
        for part, pair in zip(parts, records, strict=True)
        for r in pair
    ]
    models = summarise(profiles)
    found = findings(models)
    figures = draw_figures([p for s, p in profiles if s == seeds[0]], out)
    settings = {
        "depths": depths,
        "norms": norms,
        "seeds": list(seeds),
        "batch": describe_batch(data),
    }
    settings |= {"factor": FACTOR, **data.settings}
    outcome = SignalOutcome(models, found, figures, settings, {})
    files = write_outputs(
        out,
        TITLE,
        command,
        settings=settings,
        models=[m.to_dict() for m in models],
        findings=found,
        sections=sections(outcome),
        tables_md=[markdown_table(HEADER, table_rows(models))],
        records={"profiles": [{"seed": s, **p.to_dict()} for s, p in profiles]},
    )
    for f in found:
        log(f.text)
    log(f"report: {files['report.html']}")
    return SignalOutcome(models, found, figures, settings, files)
