"""``resnetlab data``: list the datasets, describe one, download CIFAR."""

from __future__ import annotations

import argparse
import json
import math

import torch

from resnetlab.cli.options import add_data_arguments, data_kwargs
from resnetlab.data import list_datasets, load_dataset
from resnetlab.data.cifar import SPECS, locate
from resnetlab.data.registry import SPLITS, TEST_FRACTION, get_entry, resolve_root
from resnetlab.errors import ConfigError, MissingSplitError
from resnetlab.outputs import check_output_dir
from resnetlab.train.cleanup import FolderSnapshot

# How each split of a folder without test/ or val/ is described (the format gets the fraction).
HELD_OUT = {"train": ", the rest of the folder", "test": ", {:.0%} of each class held out"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="datasets: list, describe, download")
    commands = p.add_subparsers(dest="data_command", metavar="ACTION")
    commands.required = True

    q = commands.add_parser("list", help="registered dataset names")
    q.set_defaults(func=run_list)

    q = commands.add_parser("info", help="classes, image size, sample counts, channel mean/std")
    add_data_arguments(q)
    q.add_argument("--image-size", type=int, metavar="N", help="digits side / folder crop")
    q.add_argument(
        "--test-fraction",
        type=float,
        default=TEST_FRACTION,
        metavar="F",
        help="folder data without test/ or val/: the share of each class held out as the test "
        f"split, in [0, 1) (default {TEST_FRACTION}, as training's data.test_fraction)",
    )
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=run_info)

    q = commands.add_parser("download", help="fetch, verify and extract the official archive")
    add_data_arguments(q, default="cifar10")
    q.add_argument("--url", help="a mirror of the official archive (the official md5 applies)")
    q.set_defaults(func=run_download)


def run_list(args: argparse.Namespace) -> int:
    for name in list_datasets():
        print(f"{name:14s} {get_entry(name).description}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    if not (math.isfinite(args.test_fraction) and 0 <= args.test_fraction < 1):
        raise ConfigError(f"--test-fraction must be in [0, 1); got {args.test_fraction}")
    splits, absent = _load_splits(args)
    info = next(iter(splits.values())).info
    holdout = next((ds.holdout for ds in splits.values() if getattr(ds, "holdout", None)), None)
    record = {
        "name": info.name,
        "root": str(resolve_root(args.data, args.data_dir) or "bundled with scikit-learn"),
        "classes": list(info.classes),
        "image_size": list(info.image_size),
        "channels": info.channels,
        "counts": {s: len(ds) for s, ds in splits.items()},
        "per_class": {s: _per_class(ds) for s, ds in splits.items()},
        "absent": absent,
        "test_held_out": holdout,
        "mean": None if info.mean is None else list(info.mean),
        "std": None if info.std is None else list(info.std),
    }
    if args.json:
        print(json.dumps(record))
        return 0
    shown = ", ".join(info.classes[:12]) + (", ..." if len(info.classes) > 12 else "")
    print(f"dataset    {record['name']}: {record['root']}")
    print(f"classes    {len(info.classes)}: {shown}")
    print(f"images     {info.channels} x {info.image_size[0]} x {info.image_size[1]}")
    for split in SPLITS:
        if split in absent:
            print(f"{split:10s} absent ({absent[split]})")
            continue
        per = record["per_class"][split]
        held = HELD_OUT[split].format(holdout) if holdout else ""
        print(
            f"{split:10s} {record['counts'][split]} images, {min(per)}..{max(per)} per class{held}"
        )
    if info.mean is None:
        print("mean, std  unknown: the train split is absent (a checkpoint carries its own)")
        return 0
    print(f"mean       {_floats(info.mean)}  (train split, [0, 1] units)")
    print(f"std        {_floats(info.std)}")
    return 0


def _load_splits(args: argparse.Namespace) -> tuple[dict, dict[str, str]]:
    """({split: dataset} of the splits present, {split: why it is absent}); neither: an error."""
    kwargs = data_kwargs(args)
    splits, absent, first = {}, {}, None
    for split in SPLITS:
        try:
            splits[split] = load_dataset(
                args.data,
                split,
                image_size=args.image_size,
                test_fraction=args.test_fraction,
                **kwargs,
            )
        except MissingSplitError as err:
            absent[split], first = str(err), first or err
    if not splits:
        raise first
    return splits, absent


def run_download(args: argparse.Namespace) -> int:
    if args.data not in SPECS:
        raise ConfigError(f"--data {args.data}: only {', '.join(SPECS)} can be downloaded")
    root = check_output_dir(resolve_root(args.data, args.data_dir), option="--data-dir")
    before = FolderSnapshot.take(root)
    try:
        folder = locate(SPECS[args.data], root, download=True, verify=args.verify, url=args.url)
    except BaseException:
        if root.is_dir() and not any(root.iterdir()):  # made for nothing: no trace of it
            before.undo()
        raise
    print(f"{args.data}: ready in {folder}")
    return 0


def _per_class(ds) -> list[int]:
    if hasattr(ds, "labels"):
        labels = ds.labels
    else:  # a FolderDataset: labels from its file list, nothing decoded
        labels = torch.tensor([label for _, label in ds.samples])
    return labels.bincount(minlength=len(ds.info.classes)).tolist()


def _floats(values) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"
