"""What flip test-time augmentation gains: top-1 error with and without `--tta flip`.

Each model (a run folder, a checkpoint, or a weight file with --model) is evaluated twice on the
same split, once on the images alone and once on the softmax averaged over each image and its
mirror image (`resnetlab eval --tta flip`); the table gives both errors and their difference.
Evaluation is deterministic: one run per model, no spread. Prints a Markdown block with the
command, machine and versions.

    python benchmarks/tta_flip.py runs/r20-jpeg --data cifar10-jpeg
    python benchmarks/tta_flip.py resnet20-12fca82f.th --model resnet20 --data cifar10-jpeg
"""

from __future__ import annotations

import argparse
import shlex
import sys

import torch

import resnetlab
from resnetlab.bench.timing import describe_machine, machine_info
from resnetlab.evaluation.data import eval_loader, load_eval_split
from resnetlab.evaluation.evaluate import evaluate_classifier
from resnetlab.evaluation.loading import load_trained


def measure(source: str, args: argparse.Namespace) -> dict:
    """Top-1 error and loss of one model, plain and with flip TTA."""
    model, ckpt, path = load_trained(
        source, expect_model=args.model, data=args.data, data_root=args.data_dir
    )
    ds = load_eval_split(
        ckpt["data"], ckpt["config"], args.split, name=args.data, root=args.data_dir
    )
    loader = eval_loader(ds, batch_size=args.batch_size, device=torch.device("cpu"), workers=0)
    plain, flip = (evaluate_classifier(model, loader, tta=t) for t in (None, "flip"))
    return {
        "source": str(path),
        "model": ckpt["model"]["name"],
        "data": f"{args.data or ckpt['data']['name']} {args.split}",
        "images": plain.samples,
        "error": plain.top1_error,
        "error_flip": flip.top1_error,
        "loss": plain.loss,
        "loss_flip": flip.loss,
    }


def markdown(rows: list[dict], argv: list[str]) -> str:
    lines = [
        "| model | data | images | top-1 error | with flip TTA | change (points) | loss "
        "| with flip |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        change = 100 * (r["error_flip"] - r["error"])
        lines.append(
            f"| {r['model']} ({r['source']}) | {r['data']} | {r['images']} | "
            f"{100 * r['error']:.2f}% | {100 * r['error_flip']:.2f}% | {change:+.2f} | "
            f"{r['loss']:.4f} | {r['loss_flip']:.4f} |"
        )
    info = machine_info()
    lines += [
        "",
        f"Command: `python benchmarks/tta_flip.py {shlex.join(argv)}`",
        f"Machine: {describe_machine(info)}; resnetlab {resnetlab.__version__}; one "
        "deterministic run per model (no spread).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sources", nargs="+", help="run folders, checkpoints or weight files")
    p.add_argument("--model", help="the model of a weight file")
    p.add_argument("--data", help="the dataset (default: each checkpoint's own)")
    p.add_argument("--data-dir", help="its folder")
    p.add_argument("--split", default="test", choices=["test", "train", "val"])
    p.add_argument("--batch-size", type=int, default=256)
    args = p.parse_args(argv)
    rows = [measure(source, args) for source in args.sources]
    print(markdown(rows, argv), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
