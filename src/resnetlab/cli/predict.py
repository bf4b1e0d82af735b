"""``resnetlab predict CHECKPOINT IMAGE...``: the most probable classes of image files."""

from __future__ import annotations

import argparse
import json

from resnetlab.cli.options import add_weight_file_arguments, weight_file_kwargs
from resnetlab.evaluation.loading import load_trained, resolve_device
from resnetlab.evaluation.predict import predict_files
from resnetlab.evaluation.preprocess import Preprocess


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="top-k classes of image files, with names and probabilities",
        description="Classify image files (JPEG, PNG, GIF, WebP, TIFF, BMP, ...: every format "
        "Pillow decodes; the first frame of an animation) with a trained model, turned upright "
        "by their EXIF orientation. Each image gets the "
        "preprocessing of the model's training data: resize, center crop, grayscale for "
        "one-channel models, normalisation with the checkpoint's mean and std.",
    )
    p.add_argument(
        "checkpoint",
        help="a checkpoint file, a run folder (its checkpoints/last.pt), or a weight file "
        "(.pt/.pth/.safetensors/.th/.h5) with --model and --data",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument(
        "--top-k",
        type=int,
        default=5,
        metavar="K",
        help="classes per image (default 5; at most the number of classes)",
    )
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument(
        "--model",
        metavar="NAME",
        help="fail unless the checkpoint holds this model; with a weight file, the model it holds",
    )
    add_weight_file_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    model, ckpt, path = load_trained(
        args.checkpoint, expect_model=args.model, device=device, **weight_file_kwargs(args)
    )
    prep = Preprocess.for_data(ckpt["data"])
    predictions = predict_files(model, prep, args.images, ckpt["data"]["classes"], args.top_k)
    if args.json:
        record = {
            "checkpoint": str(path),
            "model": ckpt["model"]["name"],
            "predictions": [p.to_dict() for p in predictions],
        }
        print(json.dumps(record))
        return 0
    for prediction in predictions:
        print(prediction.image)
        width = max(len(name) for name, _, _ in prediction.top)
        for rank, (name, _, prob) in enumerate(prediction.top, start=1):
            print(f"  {rank}. {name.ljust(width)}  {prob:.4f}")
    return 0
