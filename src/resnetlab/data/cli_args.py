"""The data options every ``resnetlab`` command shares."""

from __future__ import annotations

import argparse

from resnetlab.data.registry import list_datasets


def add_data_arguments(parser: argparse.ArgumentParser, default: str = "digits") -> None:
    """Add ``--data``, ``--data-dir``, ``--download``, ``--no-verify`` and ``--strict``.

    Args:
        parser: the command's parser.
        default: the dataset used when ``--data`` is not given.
    """
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        default=default,
        choices=list_datasets(),
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


def data_kwargs(args: argparse.Namespace) -> dict:
    """``load_dataset`` keyword arguments from parsed data options."""
    return {
        "root": args.data_dir,
        "download": args.download,
        "verify": args.verify,
        "strict": args.strict,
    }
