"""Sections 3 and 4 of the lesson: the residual block, drawn from the model, and the identity.

The diagrams are traced from the blocks of this run's own trained nets (and, for the shortcut
options it did not train, from nets built with the same code), so a change to a block's code
changes its picture (``analysis.blockgraph``).
"""

from __future__ import annotations

import torch
from torch import nn

from resnetlab.analysis import report
from resnetlab.analysis.blockgraph import BlockGraph, block_graph
from resnetlab.analysis.plots_blocks import plot_blocks
from resnetlab.experiments import claims
from resnetlab.experiments.claims import Claim
from resnetlab.experiments.lesson_facts import Facts, shown
from resnetlab.experiments.results import TABLE_HEADER, seeds_phrase, table_rows
from resnetlab.experiments.shortcuts import PAPER_TABLE3
from resnetlab.models import build_model
from resnetlab.nn.shortcuts import SHORTCUT_OPTIONS
from resnetlab.train.weights import model_from_checkpoint

OPTIONS = {
    "A": ("zero-padding: subsample, append zero channels (no parameters)", "identity"),
    "B": ("projection: a strided 1x1 conv and a BN", "identity"),
    "C": ("projection: a strided 1x1 conv and a BN", "projection (1x1 conv and BN)"),
}


def block_section(facts: Facts, made: list[Claim], heading: str) -> str:
    """3: H(x) = F(x) + x, the blocks as the code builds them, and the shortcut options."""
    folder, seed = facts.out / "degradation", facts.degradation["runs"][0].seed
    s, d = facts.shallow, facts.deep
    plain, _ = model_from_checkpoint(folder / f"plain{s}-seed{seed}")
    resnet, ckpt = model_from_checkpoint(folder / f"resnet{s}-seed{seed}")
    image = torch.zeros(1, ckpt["model"]["in_channels"], *ckpt["data"]["image_size"])
    variants = {o: _variant(ckpt, o) for o in SHORTCUT_OPTIONS}
    same = [
        _graph(plain, "layer1.0", image, f"plain{s} layer1.0: a plain block"),
        _graph(resnet, "layer1.0", image, f"resnet{s} layer1.0: the identity block"),
    ]
    changing = [
        _graph(variants["A"], "layer2.0", image, "option A, layer2.0 (this run's nets)"),
        _graph(variants["B"], "layer2.0", image, "option B, layer2.0: a projection block"),
        _graph(variants["C"], "layer1.0", image, "option C, layer1.0: projection everywhere"),
    ]
    figures = [
        plot_blocks(same, facts.out / "blocks_identity"),
        plot_blocks(changing, facts.out / "blocks_shortcuts"),
    ]
    by = {r.label: r for r in facts.degradation["results"]}
    fix = claims.fix(
        residual=f"resnet{d}",
        residual_errors=list(by[f"resnet{d}"].train_errors),
        plain=f"plain{d}",
        plain_errors=list(by[f"plain{d}"].train_errors),
    )
    rows = [
        (o, OPTIONS[o][0], OPTIONS[o][1], f"{_params(variants[o]):,}", f"{PAPER_TABLE3[o]:.2f}")
        for o in SHORTCUT_OPTIONS
    ]
    return report.section(
        heading,
        report.formula("H(x) = F(x) + x"),
        report.paragraph(
            "He et al. (§3.1) let a few stacked layers fit the residual F(x) = H(x) − x of the "
            "mapping H(x) they should compute, and add x back through a shortcut; the block "
            "outputs relu(F(x) + x). If passing the input on is the best a block can do, F only "
            "has to be pushed to zero; a plain block has to build that identity out of "
            "convolutions, BNs and ReLUs. Where the shape changes (twice the channels, half the "
            "size), x must change shape too: option A subsamples it and pads zero channels, "
            "option B projects it with a strided 1x1 conv and a BN, option C projects every "
            "shortcut, also where the shape stays (§3.3)."
        ),
        report.figure(
            figures[0],
            f"A plain block and the identity block, traced from this run's trained "
            f"plain{s} and resnet{s}: the same layers, and the shortcut.",
        ),
        report.figure(
            figures[1],
            "The shortcut options where the shape changes (A, B) and everywhere (C), traced "
            f"from resnet{s} built with each option.",
        ),
        report.table(
            (
                "option",
                "shortcut where the shape changes",
                "shortcut elsewhere",
                f"parameters of resnet{s}",
                "paper, Table 3: ResNet-34 top-1 error on ImageNet (%)",
            ),
            rows,
        ),
        report.paragraph(
            "The parameter counts are of the nets this code builds; the paper's errors are for "
            "ImageNet (10-crop), not for this run. These nets use option A, as the paper's CIFAR "
            "nets do (§4.2)."
        ),
        shown(made, fix),
    )


def identity_section(facts: Facts, made: list[Claim], heading: str) -> str:
    """4: a zero-initialised residual block is the identity; a deepened net never ends worse."""
    ident, deepened = facts.identity, facts.deepened
    names = ident["labels"]
    by = {r.label: r for r in ident["results"]}
    own = claims.identity_start(
        deep=f"the deepened {deepened['deep']}",
        shallow=deepened["shallow"],
        identical=deepened["identical"],
        images=deepened["images"],
    )
    small = claims.identity_start(
        deep=names.deep,
        shallow=names.shallow,
        identical=ident["identical_at_start"],
        images=min(256, deepened["images"]),
    )
    never = claims.never_worse(
        deep=names.deep,
        deep_errors=list(by[names.deep].train_errors),
        shallow=names.shallow,
        shallow_errors=list(by[names.shallow].train_errors),
    )
    folder = ident["files"]["results.json"].parent.name
    return report.section(
        heading,
        report.paragraph(
            "Set the last BN scale of a residual block to zero: F(x) = 0, and the block outputs "
            "relu(0 + x) = x, because x, the output of the block before, is already "
            "non-negative. Nothing has to be learned for the identity. So a deeper ResNet made "
            "of a trained shallow one plus such blocks starts exactly where the shallow one "
            "ended (the paper's construction, §1), and training moves it on from there."
        ),
        shown(made, own),
        report.paragraph(
            f"The identity part trains {names.shallow}, deepens it that way and trains it as "
            f"long again ({names.deep}); the control trains {names.shallow} that much longer "
            f"from the same weights ({names.continued}). Its own report and numbers: "
            f"{folder}/report.html and {folder}/results.json."
        ),
        shown(made, small, never),
        report.figure(
            ident["figure"],
            "The identity part: phase 2 (the deepened net and the control) starts where phase 1 "
            "ends; mean over the seeds.",
        ),
        report.table(TABLE_HEADER, table_rows(ident["results"])),
        report.paragraph(f"Final errors; {seeds_phrase(ident['results'])}."),
    )


def _variant(ckpt: dict, option: str) -> nn.Module:
    """The trained net's architecture with shortcut ``option`` (untrained: only its structure
    is drawn)."""
    m = ckpt["model"]
    overrides = {**m["overrides"], "shortcut": option}
    return build_model(m["name"], m["num_classes"], m["in_channels"], overrides).eval()


def _graph(model: nn.Module, name: str, image: torch.Tensor, title: str) -> BlockGraph:
    """The traced graph of block ``name`` of ``model``, with the input it gets from ``image``."""
    block = model.get_submodule(name)
    seen: list[torch.Tensor] = []
    handle = block.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            model.eval()(image)
    finally:
        handle.remove()
    return block_graph(block, seen[0], title)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
