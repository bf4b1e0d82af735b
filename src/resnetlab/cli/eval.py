"""``resnetlab eval CHECKPOINT``: top-1/top-5 error, per-class accuracy and confusion matrix."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from resnetlab.cli.options import add_data_arguments, data_folder
from resnetlab.data import list_datasets
from resnetlab.errors import ConfigError
from resnetlab.evaluation.data import eval_loader, load_eval_split
from resnetlab.evaluation.evaluate import TTA, evaluate_classifier
from resnetlab.evaluation.loading import load_trained, resolve_device
from resnetlab.evaluation.report import (
    format_confusion,
    format_summary,
    output_paths,
    write_outputs,
)
from resnetlab.nn.views import TTA_VIEWS

SHOW_CONFUSION_MAX = 20  # print the confusion matrix on the terminal up to this many classes
# how each way of viewing the images is named: on the terminal, and at the end of the --out folder
VIEWS = {
    None: ("", ""),
    "flip": (", each image and its mirror", "-flip"),
    "flip-shift": (", each image and its mirror, as they are and moved 2 pixels", "-flipshift"),
    "10crop": (", 10 crops per image", "-10crop"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="top-1/top-5 error, per-class accuracy and confusion matrix of a checkpoint",
        description="Evaluate a trained model on a split of a dataset (by default the "
        "checkpoint's own dataset) and write eval.json, confusion.txt and confusion.png to "
        "--out (default: RUN/eval/NAME-DATA-SPLIT, RUN being the run folder that holds "
        "checkpoints/NAME.pt, else the checkpoint's folder).",
    )
    p.add_argument(
        "checkpoint",
        help="a checkpoint file, a run folder (its checkpoints/last.pt), or a weight file "
        "(.pt/.pth/.safetensors/.th/.h5) with --model and --data",
    )
    add_data_arguments(p)
    p.set_defaults(data=None)
    _describe_default(p, "--data", f"{', '.join(list_datasets())} (default: the checkpoint's)")
    p.add_argument(
        "--split",
        choices=["test", "train", "val"],
        default="test",
        help="test (default), train, or the validation part held out of train by the run",
    )
    p.add_argument("--ten-crop", action="store_true", help="average 10 crops (folder data only)")
    p.add_argument(
        "--tta",
        choices=TTA,
        help="test-time augmentation: flip averages the softmax of each image and its mirror; "
        "flip-shift those two and both moved 2 pixels down-right and up-left",
    )
    p.add_argument("--batch-size", type=positive_int, default=256, metavar="N", help="default 256")
    p.add_argument(
        "--workers", type=int, default=2, metavar="N", help="decoding processes (folder)"
    )
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--out", metavar="DIR", help="folder for eval.json and the confusion matrix")
    p.add_argument(
        "--model",
        metavar="NAME",
        help="fail unless the checkpoint holds this model; with a weight file, the model it holds",
    )
    p.add_argument("--json", action="store_true", help="print eval.json's record")
    p.set_defaults(func=run_eval)


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def run_eval(args: argparse.Namespace) -> int:
    if args.workers < 0:
        raise ConfigError(f"--workers must be at least 0; got {args.workers}")
    if args.tta and args.ten_crop:
        raise ConfigError(f"--tta {args.tta} and --ten-crop: the 10 crops hold their mirror images")
    device = resolve_device(args.device)
    model, ckpt, path = load_trained(
        args.checkpoint,
        expect_model=args.model,
        device=device,
        data=args.data,
        data_root=args.data_dir,
        download=args.download,
        verify=args.verify,
        strict=args.strict,
    )
    data_name = args.data or ckpt["data"]["name"]
    viewing = "10crop" if args.ten_crop else args.tta
    views = 10 if args.ten_crop else TTA_VIEWS[args.tta] if args.tta else 1
    out = Path(args.out) if args.out else default_out(path, data_name, args.split, viewing)
    output_paths(
        out, [path], folders=[data_folder(data_name, args.data_dir or _own_root(ckpt, data_name))]
    )
    ds = load_eval_split(
        ckpt["data"],
        ckpt["config"],
        args.split,
        name=args.data,
        root=args.data_dir,
        source=str(path),
        download=args.download,
        verify=args.verify,
        strict=args.strict,
    )
    loader = eval_loader(
        ds, batch_size=args.batch_size, device=device, ten_crop=args.ten_crop, workers=args.workers
    )
    result = evaluate_classifier(model, loader, tta=args.tta)
    meta = {
        "checkpoint": str(path),
        "model": ckpt["model"]["name"],
        "iteration": ckpt["progress"]["iteration"],
        "data": data_name,
        "split": args.split,
        "views": views,
        "tta": args.tta,
    }
    try:
        paths = write_outputs(result, out, meta)
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot write ({err.strerror or err})") from None
    if args.json:
        print(json.dumps({**meta, **result.to_dict()}))
        return 0
    at = "" if meta["iteration"] is None else f", iteration {meta['iteration']}"
    header = {
        "checkpoint": f"{path} ({meta['model']}{at})",
        "data": f"{data_name} {args.split}" + VIEWS[viewing][0],
    }
    print(format_summary(result, header), end="")
    if len(result.classes) <= SHOW_CONFUSION_MAX:
        print()
        print(format_confusion(result), end="")
    print()
    print(f"wrote {paths['json']}, {paths['text'].name}, {paths['png'].name}")
    return 0


def default_out(checkpoint: Path, data: str, split: str, viewing: str | None) -> Path:
    """``RUN/eval/NAME-DATA-SPLIT[-flip|-flipshift|-10crop]`` for ``RUN/checkpoints/NAME.pt``
    (``viewing``: a key of VIEWS); else beside it."""
    folder = checkpoint.parent
    run = folder.parent if folder.name == "checkpoints" else folder
    return run / "eval" / f"{checkpoint.stem}-{data}-{split}{VIEWS[viewing][1]}"


def _own_root(ckpt: dict, data_name: str) -> str | None:
    """The data folder of the checkpoint's run, where eval reads the run's own dataset."""
    data = ckpt["config"].get("data") if data_name == ckpt["data"]["name"] else None
    return data.get("root") if isinstance(data, dict) else None


def _describe_default(parser: argparse.ArgumentParser, option: str, text: str) -> None:
    """Reword an option's help where this command changes its default."""
    for action in parser._actions:
        if option in action.option_strings:
            action.help = text
