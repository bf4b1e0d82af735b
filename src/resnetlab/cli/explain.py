"""``resnetlab explain CHECKPOINT IMAGE...``: Grad-CAM heatmaps of image files, with top classes."""

from __future__ import annotations

import argparse
from pathlib import Path

from resnetlab.cli.options import add_weight_file_arguments, weight_file_kwargs
from resnetlab.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="Grad-CAM: where in each image the evidence for a class lies (PNG + JSON)",
        description="Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391) of JPEG or PNG files: "
        "per image, --out gets <stem>.gradcam.png (the heatmap over the image the network saw) "
        "and <stem>.gradcam.json (the class explained, the top classes, the heatmap's peak).",
    )
    p.add_argument(
        "checkpoint",
        help="a checkpoint file, a run folder (its checkpoints/last.pt), or a weight file "
        "(.pt/.pth/.safetensors/.th/.h5) with --model and --data",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG or PNG files")
    p.add_argument("--layer", metavar="NAME", help="module to explain (default: the last stage)")
    p.add_argument(
        "--class",
        dest="class_",
        metavar="K",
        help="class to explain, by index or name (default: each image's most probable)",
    )
    p.add_argument("--top-k", type=int, default=5, metavar="K", help="classes listed (5)")
    p.add_argument(
        "--out", metavar="DIR", help="folder for the files (default: RUN/explain, beside it)"
    )
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument(
        "--model",
        metavar="NAME",
        help="fail unless the checkpoint holds this model; with a weight file, the model it holds",
    )
    add_weight_file_arguments(p)
    p.set_defaults(func=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    from resnetlab.analysis.explain import explain_files
    from resnetlab.evaluation.loading import load_trained, resolve_device
    from resnetlab.evaluation.preprocess import Preprocess

    device = resolve_device(args.device)
    model, ckpt, path = load_trained(
        args.checkpoint, expect_model=args.model, device=device, **weight_file_kwargs(args)
    )
    classes = ckpt["data"]["classes"]
    out = Path(args.out) if args.out else default_out(path)
    records = explain_files(
        model,
        Preprocess.for_data(ckpt["data"]),
        args.images,
        classes,
        out,
        layer=args.layer,
        class_index=class_index(args.class_, classes),
        top_k=args.top_k,
        meta={"checkpoint": str(path), "model": ckpt["model"]["name"]},
    )
    for r in records:
        e = r["explained"]
        print(
            f"{r['image']}: {e['class']} ({e['probability']:.4f}), {r['layer']}; "
            f"{out / r['heatmap_png']}"
        )
    return 0


def class_index(text: str | None, classes: list[str]) -> int | None:
    """``--class``: an index, or a class name; ``None`` when not given."""
    if text is None:
        return None
    if text in classes:
        return classes.index(text)
    try:
        index = int(text)
    except ValueError:
        index = -1
    if not 0 <= index < len(classes):
        shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
        raise ConfigError(
            f"--class {text!r}: not a class index in 0..{len(classes) - 1} or a name ({shown})"
        )
    return index


def default_out(checkpoint: Path) -> Path:
    """``RUN/explain`` for ``RUN/checkpoints/NAME.pt``; else ``explain/`` beside the file."""
    folder = checkpoint.parent
    run = folder.parent if folder.name == "checkpoints" else folder
    return run / "explain"
