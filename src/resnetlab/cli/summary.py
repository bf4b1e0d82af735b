"""``resnetlab summary MODEL`` and ``resnetlab list``: what a network is made of."""

from __future__ import annotations

import argparse
import json

from resnetlab.analysis import summarize
from resnetlab.models import create_model, get_spec, list_models


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="every layer of a model: shapes, parameters, multiply-adds")
    p.add_argument("model", help="a registered model name (see `resnetlab list`)")
    p.add_argument(
        "--input-size",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        help="input height and width (default: the model's own, e.g. 224 224)",
    )
    p.add_argument("--num-classes", type=int, metavar="K", help="classifier outputs")
    p.add_argument(
        "--stride-at",
        choices=["paper", "v1.5"],
        help="bottleneck stride on the first 1x1 (paper) or on the 3x3 (v1.5)",
    )
    p.add_argument("--shortcut", choices=["A", "B", "C"], help="shortcut option (§3.3)")
    p.add_argument("--totals-only", action="store_true", help="print only the totals")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_summary)

    p = sub.add_parser("list", help="registered model names")
    p.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'resnet*'")
    p.set_defaults(func=run_list)


def run_summary(args: argparse.Namespace) -> int:
    spec = get_spec(args.model)
    overrides = {k: v for k, v in (("stride_at", args.stride_at), ("shortcut", args.shortcut)) if v}
    model = create_model(args.model, num_classes=args.num_classes, **overrides)
    size = tuple(args.input_size) if args.input_size else spec.input_size
    summary = summarize(model, size, name=args.model)
    if args.json:
        print(json.dumps(summary.to_dict()))
    else:
        print(summary.format_table(totals_only=args.totals_only))
    return 0


def run_list(args: argparse.Namespace) -> int:
    for name in list_models(args.pattern):
        spec = get_spec(name)
        print(f"{name:16s} {spec.family:9s} {spec.description}")
    return 0
