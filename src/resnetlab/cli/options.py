"""The options several commands share: the data options, and the recipe options that fill a
``RunConfig`` (``train``, ``experiment`` and ``bench train`` resolve their config the same way).
"""

from __future__ import annotations

import argparse
from typing import Any

from resnetlab.data import list_datasets
from resnetlab.data.registry import get_entry
from resnetlab.train.config import FLAGS, PRECISIONS
from resnetlab.train.presets import PRESETS


def add_data_arguments(
    parser: argparse.ArgumentParser, default: str | None = "digits", checked: bool = True
) -> None:
    """Add ``--data``, ``--data-dir``, ``--download``, ``--no-verify`` and ``--strict``.

    Args:
        parser: the command's parser.
        default: the dataset used when ``--data`` is not given.
        checked: argparse refuses an unknown ``--data`` (else loading it does).
    """
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        default=default,
        choices=list_datasets() if checked else None,
        metavar="NAME",
        help=f"dataset: {', '.join(list_datasets())} (default: {default})",
    )
    group.add_argument(
        "--data-dir",
        metavar="PATH",
        help="the dataset's folder (default: $RESNETLAB_DATA/<name>, else ./data/<name>)",
    )
    group.add_argument(
        "--download", action="store_true", help="fetch the official archive if missing (CIFAR)"
    )
    group.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip the md5 checks of the official files",
    )
    group.add_argument(
        "--strict",
        action="store_true",
        help="fail on an undecodable image file instead of skipping it with a warning",
    )


def add_weight_file_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data`` and ``--data-dir`` for a command that takes a checkpoint or a weight file: a
    weight file holds no classes, image size or normalisation, so the dataset gives them."""
    group = parser.add_argument_group("with a weight file instead of a checkpoint")
    group.add_argument(
        "--data",
        choices=list_datasets(),
        metavar="NAME",
        help="the dataset the weights were trained for: its classes and image size",
    )
    group.add_argument("--data-dir", metavar="PATH", help="its folder (as for train)")


def weight_file_kwargs(args: argparse.Namespace) -> dict:
    """``load_trained`` keyword arguments from ``add_weight_file_arguments`` options."""
    return {"data": args.data, "data_root": args.data_dir, "data_for_weights_only": True}


def data_kwargs(args: argparse.Namespace) -> dict:
    """``load_dataset`` keyword arguments from parsed data options."""
    return {
        "root": args.data_dir,
        "download": args.download,
        "verify": args.verify,
        "strict": args.strict,
    }


def data_folder(name: str, root: str | None) -> str | None:
    """``root`` if dataset ``name`` reads files from it (``digits`` and ``synthetic`` do not)."""
    return root if root is not None and get_entry(name).folder != "" else None


def add_recipe_arguments(
    parser: argparse.ArgumentParser,
    *,
    data: str | None = None,
    flags: tuple[str, ...] = tuple(FLAGS),
    config_file: bool = True,
    checked: bool = True,
) -> argparse._ArgumentGroup:
    """Add the data options, ``--preset``, ``--set`` (and ``--config``) and the ``flags`` named.

    Every option defaults to None (not given) so that the preset, the file and ``--set`` decide;
    ``data`` is the dataset taken when ``--data`` is not given (None: the config's);
    ``checked`` as in ``add_data_arguments``.

    Returns:
        The argument group, for a command's own recipe options.
    """
    add_data_arguments(parser, default=data, checked=checked)
    parser.set_defaults(download=None, verify=None, strict=None)
    group = parser.add_argument_group(
        "recipe (lowest precedence first: preset, file, --set, flags)"
    )
    if "model" in flags:
        group.add_argument("--model", metavar="NAME", help="a registered model (default: resnet20)")
    group.add_argument("--preset", choices=sorted(PRESETS), help="start from a named recipe")
    if config_file:
        group.add_argument("--config", metavar="YAML", help="a config file (see README 'Training')")
    group.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any config key, e.g. --set optim.nesterov=true (repeatable)",
    )
    if "image_size" in flags:
        group.add_argument(
            "--image-size", type=int, metavar="N", help="image side (digits, folder)"
        )
    if "weights" in flags:
        group.add_argument(
            "--weights",
            metavar="PATH",
            help="start from these weights (.pt/.pth/.safetensors, a checkpoint, akamaster's "
            ".th, the course's Keras .h5); a classifier of another size is re-initialised",
        )
    if "freeze" in flags:
        group.add_argument(
            "--freeze",
            type=part_list,
            metavar="PARTS",
            help="keep these parts fixed, BN statistics included: comma-separated stem, "
            "layer1..layer4 (stage2..stage5 for resnet50_signs), or backbone (all but fc)",
        )
    length = group.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, metavar="N", help="train for N epochs")
    length.add_argument("--iterations", type=int, metavar="N", help="train for N steps")
    group.add_argument("--batch-size", type=int, metavar="N", help="global batch size")
    group.add_argument("--lr", type=float, metavar="LR", help="peak learning rate")
    group.add_argument("--device", metavar="DEV", help="auto, cpu, cuda, cuda:N or mps")
    if "precision" in flags:
        group.add_argument("--precision", choices=PRECISIONS, help="numeric precision")
    if "seed" in flags:
        group.add_argument("--seed", type=int, metavar="S", help="random seed")
    return group


def part_list(text: str) -> list[str]:
    """An argparse type: ``"stem,layer1"`` -> ``["stem", "layer1"]`` (checked by the config)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected part names such as stem,layer1; got {text!r}")
    return parts


def config_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The dotted config keys and values of the flags given (those not left at None)."""
    given = {dest: getattr(args, dest, None) for dest in FLAGS}
    return {FLAGS[dest]: value for dest, value in given.items() if value is not None}
