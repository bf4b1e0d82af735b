"""``resnetlab train``: train a model on a dataset; ``--resume RUN_DIR`` continues a stopped run.

Under ``torchrun --nproc-per-node N -m resnetlab train ...`` every process runs this command and
``resnetlab.train`` makes them one data-parallel run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from resnetlab.cli.options import FLAGS, add_recipe_arguments, config_flags
from resnetlab.errors import CheckpointError, ConfigError, UserError
from resnetlab.train.config import config_from_dict, load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (or continue a run with --resume RUN_DIR)",
        description="Train a model. Settings, lowest precedence first: the preset, --config "
        "YAML, --set KEY=VALUE, the flags below. The run folder gets config.yaml, "
        "metrics.jsonl/.csv, checkpoints/ and summary.json.",
    )
    add_recipe_arguments(p)
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/MODEL-DATA-TIME)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from resnetlab.train import distributed

    world = distributed.world_from_env()
    if args.resume is not None:
        out = Path(args.resume)
        summary = _fit(_resume_config(args, out), out, resume=True)
    else:
        cfg = load_config(args.config, args.preset, args.sets, config_flags(args))
        if args.out is None and world.distributed:
            raise ConfigError("a distributed run needs --out DIR (the same for every process)")
        out = Path(
            args.out or f"runs/{cfg.model.name}-{cfg.data.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        summary = _fit(cfg, out, inputs=[args.config])
    if world.main:
        final, best = summary["final"], summary["best"]
        train = f", train error {100 * final['train_error']:.2f}%" if "train_error" in final else ""
        print(
            f"done: {summary['iterations']} iterations in {summary['wall_s']:.0f} s; "
            f"test error {100 * final['test_error']:.2f}%{train}; best {best['metric']} "
            f"{100 * best['value']:.2f}% at iteration {best['iteration']}; {out / 'summary.json'}"
        )
    return 0


def _fit(cfg, out: Path, resume: bool = False, inputs: tuple | list = ()) -> dict:
    """``fit``, with a failing write (disk full, permission denied) turned into one error line."""
    from resnetlab.train.loop import fit

    try:
        return fit(cfg, out, resume=resume, inputs=inputs)
    except OSError as err:
        kept = ""
        if (out / "checkpoints" / "last.pt").exists():  # written atomically: complete or absent
            kept = f"; its last checkpoint is intact: continue with --resume {out}"
        where = err.filename or out
        raise UserError(f"{where}: {err.strerror or err}; the run stopped{kept}") from err


def _resume_config(args: argparse.Namespace, out: Path):
    """The config of the run in ``out``: its last checkpoint's, else its config.yaml."""
    given = [
        f"--{k.replace('_', '-')}"
        for k, v in vars(args).items()
        if (k in FLAGS or k in ("config", "preset", "out")) and v is not None
    ]
    given += ["--set"] if args.sets else []
    if given:
        raise ConfigError(f"--resume continues a run with its own config; drop {', '.join(given)}")
    if not out.is_dir():
        raise CheckpointError(f"{out}: no such run folder")
    from resnetlab.train.checkpoint import load_newest_intact

    last = out / "checkpoints" / "last.pt"
    if last.exists():  # the run itself names a damaged last.pt when it resumes
        ckpt, path = load_newest_intact(last.parent, report=False)
        return config_from_dict(ckpt["config"], str(path))
    if (out / "config.yaml").exists():  # stopped before its first checkpoint: start over
        return load_config(out / "config.yaml")
    raise CheckpointError(f"{out}: not a run folder (no checkpoints/last.pt, no config.yaml)")
