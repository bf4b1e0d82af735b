"""``resnetlab export CHECKPOINT --format onnx|torchscript``: a checked model file for serving."""

from __future__ import annotations

import argparse
import json
import sys

from resnetlab.cli.options import add_weight_file_arguments, weight_file_kwargs
from resnetlab.export.bundle import SUFFIXES, export_checkpoint, sidecar_path
from resnetlab.export.check import DEFAULT_TOLERANCE, ExportMismatch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a checkpoint's model as ONNX or TorchScript, checked against PyTorch",
        description="Export the trained model, check it against eager PyTorch on random inputs "
        "of two batch sizes (exit code 1 when the max abs difference reaches the tolerance), "
        "and write the preprocessing constants to <FILE>.json beside it.",
    )
    p.add_argument(
        "checkpoint",
        help="a checkpoint file, a run folder (its checkpoints/last.pt), or a weight file "
        "(.pt/.pth/.safetensors/.th/.h5) with --model and --data",
    )
    p.add_argument("--format", required=True, choices=list(SUFFIXES), help="the file format")
    p.add_argument(
        "--out",
        metavar="FILE",
        help="the file to write, never the checkpoint nor into a run's checkpoints/ (default: "
        "RUN/export/NAME.onnx or NAME.torchscript.pt for RUN/checkpoints/NAME.pt, else beside "
        "the checkpoint)",
    )
    p.add_argument(
        "--tolerance",
        type=positive_float,
        default=DEFAULT_TOLERANCE,
        metavar="T",
        help=f"largest max abs difference of the logits accepted (default {DEFAULT_TOLERANCE:g})",
    )
    p.add_argument(
        "--model",
        metavar="NAME",
        help="fail unless the checkpoint holds this model; with a weight file, the model it holds",
    )
    add_weight_file_arguments(p)
    p.add_argument("--json", action="store_true", help="print the record written beside the file")
    p.set_defaults(func=run_export)


def positive_float(text: str) -> float:
    """An argparse type: a finite number above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text}")
    return value


def run_export(args: argparse.Namespace) -> int:
    try:
        out, record = export_checkpoint(
            args.checkpoint,
            args.format,
            args.out,
            tolerance=args.tolerance,
            expect_model=args.model,
            **weight_file_kwargs(args),
        )
    except ExportMismatch as err:  # not the user's doing: exit code 1, still one line
        print(f"resnetlab: error: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(record))
        return 0
    check = record["check"]
    sizes = " and ".join(str(b) for b in check["batch_sizes"])
    print(f"wrote {out} ({record['format']}, model {record['model']['name']})")
    print(
        f"max abs difference from PyTorch: {check['max_abs_diff']:.3g} on batches of {sizes} "
        f"(tolerance {check['tolerance']:g})"
    )
    print(f"preprocessing constants: {sidecar_path(out)}")
    return 0
