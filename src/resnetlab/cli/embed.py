"""``resnetlab embed CHECKPOINT --split S --out FILE``: pooled features and labels of a split."""

from __future__ import annotations

import argparse
import json

from resnetlab.cli.options import add_data_arguments, data_folder
from resnetlab.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed",
        help="write the pooled features (the input of fc) and labels of a split",
        description="Run a trained model over a split and write each image's pooled features "
        "(global average pool of the last stage: the input of the classifier) and its label, "
        "as FILE.npy (+ FILE.labels.npy) or FILE.safetensors, plus FILE.json saying what is "
        "inside. Images are normalised as for eval.",
    )
    p.add_argument(
        "checkpoint",
        help="a checkpoint file, a run folder (its checkpoints/last.pt), or a weight file "
        "(.pt/.pth/.safetensors/.th/.h5) with --model and --data",
    )
    add_data_arguments(p)
    p.set_defaults(data=None)
    p.add_argument("--split", choices=["test", "train", "val"], default="test", help="(test)")
    p.add_argument("--out", required=True, metavar="FILE", help=".npy or .safetensors")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="default 256")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="decoding processes")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument(
        "--model",
        metavar="NAME",
        help="fail unless the checkpoint holds this model; with a weight file, the model it holds",
    )
    p.add_argument("--json", action="store_true", help="print the JSON record")
    p.set_defaults(func=run_embed)


def run_embed(args: argparse.Namespace) -> int:
    from pathlib import Path

    from resnetlab.evaluation.data import eval_loader, load_eval_split
    from resnetlab.evaluation.embed import (
        check_output,
        embed,
        labels_path,
        sidecar_path,
        write_embeddings,
    )
    from resnetlab.evaluation.loading import load_trained, resolve_device
    from resnetlab.outputs import check_output as check_written

    if args.batch_size < 1 or args.workers < 0:
        raise ConfigError("--batch-size must be at least 1 and --workers at least 0")
    out = Path(args.out)
    check_output(out)
    options = {"download": args.download, "verify": args.verify, "strict": args.strict}
    device = resolve_device(args.device)
    model, ckpt, path = load_trained(
        args.checkpoint,
        expect_model=args.model,
        device=device,
        data=args.data,
        data_root=args.data_dir,
        **options,
    )
    data_name = args.data or ckpt["data"]["name"]
    written = [out, sidecar_path(out)] + ([labels_path(out)] if out.suffix == ".npy" else [])
    for target in written:  # never over the checkpoint, by any name, nor into the data
        check_written(
            target, [path], folders=[data_folder(data_name, args.data_dir)], option="--out"
        )
    ds = load_eval_split(
        ckpt["data"], ckpt["config"], args.split, name=args.data, root=args.data_dir, **options
    )
    loader = eval_loader(ds, batch_size=args.batch_size, device=device, workers=args.workers)
    features, labels = embed(model, loader)
    meta = {
        "checkpoint": str(path),
        "model": ckpt["model"]["name"],
        "data": data_name,
        "split": args.split,
        "classes": list(ckpt["data"]["classes"]),
    }
    record = write_embeddings(out, features, labels, meta)
    if args.json:
        print(json.dumps(record))
    else:
        print(
            f"wrote {record['samples']} features of {record['dim']} numbers to {out} "
            f"({sidecar_path(out)})"
        )
    return 0
