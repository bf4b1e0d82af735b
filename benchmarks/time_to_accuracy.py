"""Time to accuracy: a training recipe on the JPEG copy of CIFAR-10, for several seeds.

Trains with ``resnetlab.train.fit`` for each seed, evaluates on the test split when the recipe's
config says (every epoch, or every ``eval_every`` iterations, which ``--set`` can change), and
prints, as Markdown: the curve of median test accuracy against median wall minutes over the seeds
(with the min..max of the accuracy), and each seed's first wall minute at or above ``--target``.
Wall minutes are the run's own clock (``wall_s`` of metrics.jsonl: training and the evaluations, not
the one-off JPEG decoding before it). ``--ablation`` runs the recipe once more per ingredient with
that ingredient turned off, and adds a table of final accuracy and time to target per variant;
``--eval-ablation`` evaluates each seed's final model with and without its weight EMA and flip TTA,
which change only what is evaluated, so one run measures both. Skips, with the reason and exit code
0, when the data is absent.

Recipes (``RECIPES``) are presets plus ``--set`` strings; ``fast`` is the `fast` preset itself;
the others are candidates (BENCHMARKS.md says which were measured at full scale, on which CPU).

    python benchmarks/time_to_accuracy.py                                  # `fast`, seed 0
    python benchmarks/time_to_accuracy.py --recipe r20-9min --seeds 0 1 2 --target 0.85
    python benchmarks/time_to_accuracy.py --recipe r20-9min --ablation --seeds 0 \\
        --set data.train_fraction=0.1 --set epochs=2 --threads 1          # a small-scale trial
    python benchmarks/time_to_accuracy.py --recipe r20-9min --eval-ablation  # + EMA/TTA off
    python benchmarks/time_to_accuracy.py --quick                          # digits, one epoch
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from resnetlab.atomic import write_text
from resnetlab.bench.timing import describe_machine, machine_info
from resnetlab.evaluation.data import eval_loader, load_eval_split
from resnetlab.models import build_model
from resnetlab.train import fit, load_config
from resnetlab.train.checkpoint import load_checkpoint
from resnetlab.train.config import RunConfig
from resnetlab.train.loop import evaluate
from resnetlab.train.precision import resolve_precision
from resnetlab.train.presets import FAST_ON_CIFAR
from resnetlab.train.weights import load_state

REPO = Path(__file__).resolve().parents[1]
# What won at 9 minutes on top of `fast` (and what `fast` itself adds on the CIFAR sets since):
# flip TTA, progressive resizing, an evaluation every third epoch of the 50,000 images at batch 64.
WINNER_9MIN = ["eval_tta=flip", "data.train_sizes=[24, 28, 32]", "eval_every=2343"]
# The batch-128 recipes: twice `fast`'s batch of 64 at twice its lr.
BATCH_128 = ["batch_size=128", "optim.lr=0.4"]


def fast_before_cifar_additions() -> list[str]:
    """--set strings that put what `fast` adds on the CIFAR sets (FAST_ON_CIFAR) back to the
    config defaults: the `fast` that the recipes measured before 2026-12-02 started from."""
    defaults = RunConfig()
    sets = []
    for key, value in FAST_ON_CIFAR.items():
        for sub in value if isinstance(value, dict) else [None]:
            path = f"{key}.{sub}" if sub else key
            default = getattr(getattr(defaults, key), sub) if sub else getattr(defaults, key)
            sets.append(f"{path}={json.dumps(default)}")
    return sets


OLD_FAST = fast_before_cifar_additions()


def wide_recipe(depth: int, epochs: int) -> tuple[str, list[str]]:
    """A CIFAR ResNet of ``depth`` at twice the paper's widths (32/64/128) for ``epochs``, with the
    recipe that won at 9 minutes (no EMA, flip TTA, progressive resizing, sparser evaluations)."""
    return "fast", [
        "model.name=cifar_resnet",
        f"model.overrides.depth={depth}",
        "model.overrides.widths=[32, 64, 128]",
        f"epochs={epochs}",
        *WINNER_9MIN,
    ]


# name: (preset, --set strings). Candidates for the targets; see BENCHMARKS.md. Those
# measured before `fast` took on its CIFAR additions start from OLD_FAST, so that each resolves to
# the run BENCHMARKS.md records.
RECIPES = {
    # the preset itself: since 2026-12-02 the same as `r20-9min-e3` on the CIFAR sets
    "fast": ("fast", ["model.name=resnet20"]),
    # Epochs fit the budget at the 802 images/s that `fast` trained ResNet-20 at on the 2-core
    # AVX-512/bf16 EPYC (BENCHMARKS.md), evaluations included.
    # 85% within 9 minutes: ResNet-20, 8 epochs of one-cycle, weight EMA and flip TTA.
    "r20-9min": (
        "fast",
        [*OLD_FAST, "model.name=resnet20", "epochs=8", "ema_decay=0.999", "eval_tta=flip"],
    ),
    # the same with progressive resizing (24, 28, 32 px: 0.78 of the cost per epoch), 10 epochs.
    "r20-9min-prog": (
        "fast",
        [
            *OLD_FAST,
            "model.name=resnet20",
            "epochs=10",
            "ema_decay=0.999",
            "eval_tta=flip",
            "data.train_sizes=[24, 28, 32]",
        ],
    ),
    # Fitted on the AMX Xeon (BENCHMARKS.md): `r20-9min` at 10 epochs there took 8.6 minutes and
    # ended at 84.01%; its final model without the EMA (flip TTA kept) scored 84.85%, so the EMA
    # goes, and progressive resizing buys 12 epochs in about the time of 10.
    "r20-9min-amx": (
        "fast",
        [
            *OLD_FAST,
            "model.name=resnet20",
            "epochs=12",
            "eval_tta=flip",
            "data.train_sizes=[24, 28, 32]",
        ],
    ),
    # `r20-9min-amx` evaluating every third epoch (2,343 iterations: 781 batches of 64 make an
    # epoch of the 50,000 images, the last part-batch dropped) instead of every epoch; each of its
    # evaluations with flip TTA took about 4.5 s there, 11 of them 50 s of the 9.1 minutes.
    "r20-9min-e3": (
        "fast",
        [
            "model.name=resnet20",
            "epochs=12",
            *WINNER_9MIN,
        ],
    ),
    # 90% within 30 minutes: a deeper net (1.7x ResNet-20's multiply-adds), with stochastic depth
    # and cutmix; or ResNet-20 at twice the width (32/64/128: 4x the multiply-adds), with the
    # recipe that won at 9 minutes (no EMA, flip TTA, progressive resizing, an evaluation every
    # third epoch) and the 18 epochs that fit 30 minutes. On the AMX Xeon it trained at 578
    # images/s against ResNet-20's 1,268 in `r20-9min-e3` (2.2x the time per image for 4x the
    # multiply-adds: wider convolutions fill the tiles better) and reached 88.72% in 28.1 minutes
    # (BENCHMARKS.md).
    "r32-30min": (
        "fast",
        [
            *OLD_FAST,
            "model.name=resnet32",
            "epochs=16",
            "ema_decay=0.999",
            "eval_tta=flip",
            "model.overrides.drop_path_rate=0.1",
            "data.cutmix_alpha=1.0",
        ],
    ),
    "wide20-30min": wide_recipe(depth=20, epochs=18),
    # The same width at depth 14 (two blocks per stage instead of three), trading depth for
    # epochs after the depth-20 net ended at 88.72% in 18: on the AMX Xeon its 27 epochs took
    # 24.7 minutes and ended at 89.09% (BENCHMARKS.md).
    "wide14-30min": wide_recipe(depth=14, epochs=27),
    # The same net for the 31 epochs that its 27 (24.7 minutes, the evaluations included) say
    # fit 30 minutes: an epoch at 24, 28 and 32 pixels took about 44, 54 and 64 seconds there.
    # On the AMX Xeon: 89.65% in 28.7 minutes (seed 0); seed 1 on a Zen 4 EPYC without AMX: 89.43%
    # in 51.9 minutes (BENCHMARKS.md).
    "wide14-31ep": wide_recipe(depth=14, epochs=31),
    # For the Zen 4 EPYC without AMX, where `fast` took 11.2-11.8 minutes (BENCHMARKS.md): the
    # same 12 epochs in batches of 128 at twice the lr (0.4), which ran 1.04-1.28x the images/s
    # of batch 64 there, and the first third at 16 pixels (a quarter of the pixels of 32) instead
    # of 24 and 28; an evaluation every fourth epoch (390 batches of 128 make an epoch). Seed 0
    # there: 85.46% in 9.55 minutes.
    "r20-b128-16px": (
        "fast",
        [
            "model.name=resnet20",
            *BATCH_128,
            "data.train_sizes=[16, 24, 32]",
            "eval_every=1560",
        ],
    ),
    # The same with the epochs in four parts at 16, 20, 24 and 32 pixels (3 epochs each, against
    # 4, 4, 4 at 16, 24, 32) and an evaluation every sixth epoch, to come in under 9 minutes there:
    # 85.00, 84.57, 85.33% at 8.94, 9.23, 8.60 minutes; on a second Zen 4 machine with freed host
    # memory kept, the same accuracies at 8.28, 6.83, 7.43 (BENCHMARKS.md).
    "r20-b128-4sizes": (
        "fast",
        [
            "model.name=resnet20",
            *BATCH_128,
            "data.train_sizes=[16, 20, 24, 32]",
            "eval_every=2340",
        ],
    ),
    # For the Zen 4 EPYC again, after seed 1 of `r20-b128-4sizes` ended at 84.57% twice (and at
    # 84.30-84.64% with label smoothing 0.2, a 13th epoch at 16 pixels, or its 16/24/32 sizes):
    # `fast` itself (batch 64, whose seed 1 there scored 85.88% in 11.8 minutes) with its first
    # quarter at 16 pixels, 0.83 of its pixels per run, and one evaluation between (781 batches
    # of 64 make an epoch; every sixth epoch) instead of three. There: 85.11, 85.51, 85.14% at
    # 8.33-8.67 minutes in two runs of the three seeds (BENCHMARKS.md).
    "fast-16px": (
        "fast",
        [
            "model.name=resnet20",
            "data.train_sizes=[16, 24, 28, 32]",
            "eval_every=4686",
        ],
    ),
    # For the AVX2-only Zen 3 EPYC (fp32), where an epoch of ResNet-20 in batches of 128 took
    # 44, 70, 91 and 159 s at 16, 20, 24 and 32 pixels in `resnetlab bench train` (BENCHMARKS.md):
    # the batch-128 recipe cut to what fits 9 minutes there, one epoch per size, most at 16
    # pixels, and one evaluation, at the end. At equal minutes: ResNet-20 for 7 epochs, or the
    # depth-14 net (two blocks per stage, about 0.7 of the time per epoch) for 9.
    "r20-avx2-9min": (
        "fast",
        [
            "model.name=resnet20",
            *BATCH_128,
            "epochs=7",
            "data.train_sizes=[16, 16, 16, 16, 20, 24, 32]",
            "eval_every=100000",
        ],
    ),
    "r14-avx2-9min": (
        "fast",
        [
            "model.name=cifar_resnet",
            "model.overrides.depth=14",
            *BATCH_128,
            "epochs=9",
            "data.train_sizes=[16, 16, 16, 16, 16, 20, 24, 32, 32]",
            "eval_every=100000",
        ],
    ),
}
# ingredient: the --set that turns it off (applied when the recipe has it on)
INGREDIENTS = {
    "ema_decay": "ema_decay=0",
    "eval_tta": "eval_tta=null",
    "data.train_sizes": "data.train_sizes=[]",
    "model.overrides.drop_path_rate": "model.overrides.drop_path_rate=0.0",
    "data.cutmix_alpha": "data.cutmix_alpha=0",
    "data.mixup_alpha": "data.mixup_alpha=0",
    "optim.label_smoothing": "optim.label_smoothing=0",
}


def default_root() -> Path:
    """``$RESNETLAB_DATA/cifar10-jpeg``, else ``cifar10-jpeg`` in ../shared/data of the checkout."""
    base = os.environ.get("RESNETLAB_DATA", REPO.parent / "shared" / "data")
    return Path(base) / "cifar10-jpeg"


def eval_curve(run_dir: Path) -> list[dict]:
    """(epoch, wall minutes, test accuracy) of every evaluation record of the run."""
    curve = []
    with open(run_dir / "metrics.jsonl") as f:
        for line in f:
            record = json.loads(line)
            if record.get("kind") == "eval":
                curve.append(
                    {
                        "epoch": record["epoch"],
                        "wall_min": record["wall_s"] / 60,
                        "test_acc": 1 - record["test_error"],
                    }
                )
    return curve


def cpu_minutes() -> float:
    """CPU time of this process and its finished children (decoding workers), in minutes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime) / 60


def time_to(curve: list[dict], target: float) -> float | None:
    """The first wall minute at which the test accuracy reached ``target`` (None: never)."""
    return next((c["wall_min"] for c in curve if c["test_acc"] >= target), None)


def median_curve(curves: list[list[dict]]) -> list[dict]:
    """Point by point over the seeds: median wall minutes and accuracy, and the accuracy range."""
    points = []
    for at in zip(*curves, strict=False):  # every seed evaluates at the same epochs
        accs = [c["test_acc"] for c in at]
        points.append(
            {
                "epoch": at[0]["epoch"],
                "wall_min": statistics.median(c["wall_min"] for c in at),
                "test_acc": statistics.median(accs),
                "acc_min": min(accs),
                "acc_max": max(accs),
            }
        )
    return points


def run_variant(sets: list[str], seeds: list[int], out: Path) -> dict:
    """Train the recipe ``sets`` once per seed; the curves, summaries and CPU minutes."""
    curves, summaries, cpu = [], [], []
    for seed in seeds:
        cfg = load_config(preset=sets[0], sets=[*sets[1:], f"seed={seed}"])
        before = cpu_minutes()
        with contextlib.redirect_stdout(sys.stderr):  # the run's log lines; stdout gets tables
            summaries.append(fit(cfg, out / f"seed{seed}"))
        cpu.append(cpu_minutes() - before)
        curves.append(eval_curve(out / f"seed{seed}"))
    return {"curves": curves, "summaries": summaries, "cpu_min": cpu}


# The evaluation-side ingredients, each on or off in the final model's evaluation: neither changes
# what is trained (the EMA is a shadow copy of the weights), so one run measures them all.
EVAL_VARIANTS = {  # name: (weights, tta)
    "trained weights, no TTA": ("model", None),
    "trained weights, flip TTA": ("model", "flip"),
    "trained weights, flip-shift TTA": ("model", "flip-shift"),
    "EMA weights, no TTA": ("ema", None),
    "EMA weights, flip TTA": ("ema", "flip"),
    "EMA weights, flip-shift TTA": ("ema", "flip-shift"),
}


def evaluation_ablation(run_dir: Path) -> dict[str, float]:
    """Test accuracy of a finished run's last checkpoint with and without its weight EMA, and
    with no, flip and flip-shift TTA (the variants the run has: no EMA, no EMA rows)."""
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    cfg = ckpt["config"]
    cpu = torch.device("cpu")
    ds = load_eval_split(ckpt["data"], cfg, "test")
    # as the run evaluated: its batch size, precision and memory format (bf16 sums differ by both)
    loader = eval_loader(ds, batch_size=cfg["batch_size"], device=cpu)
    precision = resolve_precision(cfg["precision"], cpu)
    m = ckpt["model"]
    ema = ckpt["state"].get("ema")
    accuracy = {}
    for name, (weights, tta) in EVAL_VARIANTS.items():
        if weights == "ema" and not ema:
            continue
        model = build_model(m["name"], m["num_classes"], m["in_channels"], m["overrides"])
        state = ema["module"] if weights == "ema" else ckpt["state"]["model"]
        load_state(model, state, str(run_dir))
        if cfg["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        accuracy[name] = 1 - evaluate(model, loader, precision=precision, tta=tta)["error"]
    return accuracy


def variants(args: argparse.Namespace, base: list[str]) -> dict[str, list[str]]:
    """The recipe, and with ``--ablation`` the recipe without each ingredient it uses."""
    out = {"recipe": base}
    if args.ablation:
        cfg = load_config(preset=base[0], sets=base[1:])
        for key, off in INGREDIENTS.items():
            if _is_on(cfg, key):
                out[f"without {key}"] = [*base, off]
    return out


def _is_on(cfg, key: str) -> bool:
    node = cfg
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
    return node not in (None, 0, 0.0, [], False)


def markdown(args: argparse.Namespace, results: dict[str, dict]) -> str:
    """The recipe's median curve and, per variant, final accuracy and time to target."""
    main_result = results["recipe"]
    summary = main_result["summaries"][0]
    cfg = summary["config"]
    target = 100 * args.target
    hits = [time_to(c, args.target) for c in main_result["curves"]]
    walls = [s["wall_s"] / 60 for s in main_result["summaries"]]
    reached = [h for h in hits if h is not None]
    if len(reached) == len(hits):
        verdict = (
            f"**{target:.0f}% test accuracy reached by every seed; median "
            f"{statistics.median(reached):.1f} wall minutes.**"
        )
    else:
        best = max(max(c["test_acc"] for c in curve) for curve in main_result["curves"])
        verdict = (
            f"**{target:.0f}% not reached** by {len(hits) - len(reached)} of {len(hits)} "
            f"seed(s); best test accuracy {100 * best:.2f}%."
        )
    lines = [
        f"### Time to accuracy: {summary['model']} on {summary['data']}, recipe `{args.recipe}` "
        f"(preset `{cfg['preset']}`), {summary['precision']}",
        "",
        f"Command: `{' '.join(shlex.quote(a) for a in ['python', *sys.argv])}`  ",
        f"Machine: {describe_machine(machine_info())}  ",
        f"{verdict} Seeds {' '.join(map(str, args.seeds))}; batch {cfg['batch_size']}, "
        f"{summary['epochs']:g} epochs; per seed: wall minutes "
        f"{', '.join(f'{w:.1f}' for w in walls)}, CPU minutes "
        f"{', '.join(f'{m:.1f}' for m in main_result['cpu_min'])} (the one-off JPEG decoding "
        f"included), time to {target:.0f}%: "
        f"{', '.join('-' if h is None else f'{h:.1f}' for h in hits)} wall minutes.",
        "",
        "| epoch | wall minutes (median) | test accuracy (median) | min..max over seeds |",
        "|---:|---:|---:|---:|",
    ]
    for p in median_curve(main_result["curves"]):
        lines.append(
            f"| {p['epoch']:g} | {p['wall_min']:.2f} | {100 * p['test_acc']:.2f}% | "
            f"{100 * p['acc_min']:.2f}..{100 * p['acc_max']:.2f}% |"
        )
    if len(results) > 1:
        lines += [
            "",
            f"| variant | final test accuracy (median) | wall minutes (median) | minutes to "
            f"{target:.0f}% (median, seeds reaching it) |",
            "|---|---:|---:|---:|",
        ]
        for name, r in results.items():
            final = statistics.median(c[-1]["test_acc"] for c in r["curves"])
            wall = statistics.median(s["wall_s"] / 60 for s in r["summaries"])
            hit = [h for h in (time_to(c, args.target) for c in r["curves"]) if h is not None]
            to = f"{statistics.median(hit):.1f} ({len(hit)}/{len(r['curves'])})" if hit else "-"
            lines.append(f"| {name} | {100 * final:.2f}% | {wall:.1f} | {to} |")
    if "eval_ablation" in main_result:
        lines += ["", *eval_ablation_table(main_result["eval_ablation"])]
    return "\n".join(lines)


def eval_ablation_table(per_seed: list[dict[str, float]]) -> list[str]:
    """Markdown: each evaluation variant's final test accuracy over the seeds."""
    lines = [
        "The final model of each seed evaluated with and without its evaluation-side "
        "ingredients (one run measures them all: neither changes what is trained):",
        "",
        "| evaluation | final test accuracy (median) | min..max | per seed |",
        "|---|---:|---:|---|",
    ]
    for name in per_seed[0]:
        accs = [seed[name] for seed in per_seed]
        lines.append(
            f"| {name} | {100 * statistics.median(accs):.2f}% | {100 * min(accs):.2f}.."
            f"{100 * max(accs):.2f}% | {', '.join(f'{100 * a:.2f}%' for a in accs)} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=None, help="the cifar10-jpeg folder")
    p.add_argument("--recipe", default="fast", choices=list(RECIPES))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--target", type=float, default=0.90, help="test accuracy to reach")
    p.add_argument("--ablation", action="store_true", help="also each ingredient turned off")
    p.add_argument(
        "--eval-ablation", action="store_true", help="the final models without EMA and/or TTA"
    )
    p.add_argument(
        "--eval-ablation-of",
        type=Path,
        nargs="+",
        metavar="SEED_DIR",
        help="only the --eval-ablation table of finished runs (RUN/recipe/seedN); trains nothing",
    )
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "time_to_accuracy")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", type=Path, help="also write the curves to this file")
    p.add_argument("--quick", action="store_true", help="smoke run: digits, one epoch")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.eval_ablation_of:
        print(
            "\n".join(eval_ablation_table([evaluation_ablation(d) for d in args.eval_ablation_of]))
        )
        return 0
    if args.quick:
        data = ["data.name=digits", "epochs=1", "batch_size=64"]
    else:
        root = args.data_dir or default_root()
        if not (root / "train").is_dir():
            print(f"skipped: the CIFAR-10 JPEG copy is not at {root} (set RESNETLAB_DATA)")
            return 0
        data = ["data.name=cifar10-jpeg", f"data.root={root}"]
    preset, sets = RECIPES[args.recipe]
    base = [preset, *sets, *data, "eval_train_at_end=false", *args.set]
    start = time.perf_counter()
    results = {
        name: run_variant(v, args.seeds, args.out / name.replace(" ", "_"))
        for name, v in variants(args, base).items()
    }
    if args.eval_ablation:  # after every timed run, so that it costs none of their wall time
        out = args.out / "recipe"
        results["recipe"]["eval_ablation"] = [
            evaluation_ablation(out / f"seed{seed}") for seed in args.seeds
        ]
    print(markdown(args, results))
    if args.json:
        payload = {
            name: {k: r[k] for k in ("curves", "cpu_min", "eval_ablation") if k in r}
            for name, r in results.items()
        }
        payload["script_wall_min"] = (time.perf_counter() - start) / 60
        write_text(args.json, json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
