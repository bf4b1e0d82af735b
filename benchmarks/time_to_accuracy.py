"""Time to accuracy: ResNet-20 with the `fast` preset on the JPEG copy of CIFAR-10.

Trains with ``resnetlab.train.fit`` (the `fast` preset: one-cycle lr, Nesterov, label smoothing,
bf16 where native, channels-last), evaluates on the test split at the end of every epoch, and
prints the (wall minutes, test accuracy) curve and the first epoch at or above ``--target``, as
a Markdown block. Wall minutes are the run's own clock (``wall_s`` of metrics.jsonl: training and
the per-epoch evaluations, not the one-off JPEG decoding before it). Skips, with the reason and
exit code 0, when the data is absent.

    python benchmarks/time_to_accuracy.py                   # $RESNETLAB_DATA or ../shared/data
    python benchmarks/time_to_accuracy.py --set epochs=20   # any config key
    python benchmarks/time_to_accuracy.py --quick           # a smoke run on `digits`, one epoch
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import sys
import time
from pathlib import Path

from resnetlab.bench.timing import describe_machine, machine_info
from resnetlab.train import fit, load_config

REPO = Path(__file__).resolve().parents[1]


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


def markdown(args: argparse.Namespace, curve: list[dict], summary: dict, extra: dict) -> str:
    """The curve, the time to the target and the run's facts as a Markdown block."""
    hit = next((c for c in curve if c["test_acc"] >= args.target), None)
    best = max(curve, key=lambda c: c["test_acc"])
    if hit:
        verdict = (
            f"**{100 * args.target:.0f}% test accuracy reached at epoch {hit['epoch']:g}, after "
            f"{hit['wall_min']:.1f} wall minutes.**"
        )
    else:
        verdict = (
            f"**{100 * args.target:.0f}% not reached**: best {100 * best['test_acc']:.2f}% at "
            f"epoch {best['epoch']:g} ({best['wall_min']:.1f} wall minutes)."
        )
    cfg = summary["config"]
    lines = [
        f"### Time to accuracy: {summary['model']} on {summary['data']}, preset "
        f"`{cfg['preset']}`, {summary['precision']}",
        "",
        f"Command: `{' '.join(shlex.quote(a) for a in ['python', *sys.argv])}`  ",
        f"Machine: {describe_machine(machine_info())}  ",
        f"{verdict} Whole run: {summary['wall_s'] / 60:.1f} wall minutes, "
        f"{extra['cpu_min']:.1f} CPU minutes (this process and its decoding workers, the one-off "
        f"JPEG decoding included), {summary['img_per_s']:.0f} training images/s; batch "
        f"{cfg['batch_size']}, epochs {summary['epochs']:g}, final test accuracy "
        f"{100 * (1 - summary['final']['test_error']):.2f}%. One run (seed {cfg['seed']}).",
        "",
        "| epoch | wall minutes | test accuracy |",
        "|---:|---:|---:|",
    ]
    lines += [
        f"| {c['epoch']:g} | {c['wall_min']:.2f} | {100 * c['test_acc']:.2f}% |" for c in curve
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=None, help="the cifar10-jpeg folder")
    p.add_argument("--target", type=float, default=0.90, help="test accuracy to reach")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "time_to_accuracy")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", type=Path, help="also write the curve to this file")
    p.add_argument("--quick", action="store_true", help="smoke run: digits, one epoch")
    args = p.parse_args(argv)
    if args.quick:
        sets = ["data.name=digits", "epochs=1", "batch_size=64"]
    else:
        root = args.data_dir or default_root()
        if not (root / "train").is_dir():
            print(f"skipped: the CIFAR-10 JPEG copy is not at {root} (set RESNETLAB_DATA)")
            return 0
        sets = ["data.name=cifar10-jpeg", f"data.root={root}"]
    cfg = load_config(
        preset="fast",
        sets=["model.name=resnet20", *sets, "eval_train_at_end=false", *args.set],
    )
    start = time.perf_counter()
    summary = fit(cfg, args.out)
    extra = {"cpu_min": cpu_minutes(), "script_wall_min": (time.perf_counter() - start) / 60}
    curve = eval_curve(args.out)
    print(markdown(args, curve, summary, extra))
    if args.json:
        args.json.write_text(json.dumps({"curve": curve, **extra}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
