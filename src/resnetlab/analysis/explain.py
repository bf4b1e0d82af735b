"""Grad-CAM for image files: per image, the heatmap over the image the network saw (a PNG) and
its top classes (a JSON record).

The image shown is the model's own view (resized, center-cropped, as ``predict`` feeds it),
scaled up to at least ``DISPLAY_MIN`` pixels a side so that a 32x32 view is visible; the heatmap
is the Grad-CAM map of ``resnetlab.analysis.gradcam`` upsampled to the same size, in the jet
colour map, blended at ``ALPHA``.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from resnetlab.analysis.gradcam import gradcam
from resnetlab.atomic import write_bytes, write_text
from resnetlab.errors import ConfigError
from resnetlab.evaluation.preprocess import Preprocess

DISPLAY_MIN = 256  # pixels: the shorter side of the PNG at least
ALPHA = 0.45  # weight of the heatmap in the blend


def explain_files(
    model: nn.Module,
    prep: Preprocess,
    paths: Sequence[str | Path],
    classes: Sequence[str],
    out: str | Path,
    *,
    layer: str | None = None,
    class_index: int | None = None,
    top_k: int = 5,
    meta: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Write ``<stem>.gradcam.png`` and ``<stem>.gradcam.json`` into ``out`` for every image.

    Args:
        model: the trained network, in eval mode; inputs go to its device.
        prep: the preprocessing of its training data.
        paths: JPEG or PNG files.
        classes: class names; index = model output.
        out: the folder (created if missing).
        layer: the module to explain; default the last stage.
        class_index: the class to explain in every image; default each one's top class.
        top_k: classes listed in each JSON record.
        meta: what was explained (checkpoint, model), copied into every record.

    Returns:
        The JSON records, in order.

    Raises:
        DataError: a file that is missing or not a readable image.
        ConfigError: a bad layer, class or ``top_k``, or an output that would replace an input.
    """
    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1; got {top_k}")
    out = Path(out)
    names = _output_stems([Path(p) for p in paths])
    inputs = {Path(p).resolve() for p in paths}
    for stem in names:
        for target in (out / f"{stem}.gradcam.png", out / f"{stem}.gradcam.json"):
            if target.resolve() in inputs:
                raise ConfigError(f"--out {out}: would write over the input {target}")
    device = next(model.parameters()).device
    records = []
    for path, stem in zip(paths, names, strict=True):
        x = prep.load(path)[None].to(device)  # (1, C, crop, crop)
        g = gradcam(model, x, layer=layer, class_index=class_index)
        write_bytes(out / f"{stem}.gradcam.png", overlay_png(_view(x[0], prep), g.cam[0]))
        record = _record(str(path), g, classes, top_k, stem) | (meta or {})
        write_text(out / f"{stem}.gradcam.json", json.dumps(record, indent=1) + "\n")
        records.append(record)
    return records


def overlay_png(view: np.ndarray, cam: torch.Tensor) -> bytes:
    """PNG bytes of ``view`` (H, W, 3) in [0, 1] with the map ``cam`` (h, w) blended over it."""
    from matplotlib import colormaps

    h, w = view.shape[:2]
    scale = max(1, math.ceil(DISPLAY_MIN / min(h, w)))
    size = (h * scale, w * scale)
    heat = F.interpolate(cam[None, None].float(), size=size, mode="bilinear", align_corners=False)
    heat = heat[0, 0].clamp(min=0)
    heat = (heat / heat.max().clamp(min=torch.finfo(heat.dtype).tiny)).numpy()  # (H', W')
    colour = colormaps["jet"](heat)[..., :3]  # (H', W', 3) in [0, 1]
    image = Image.fromarray(np.uint8(np.round(view * 255))).resize(
        (size[1], size[0]), Image.Resampling.BICUBIC
    )
    blend = (1 - ALPHA) * np.asarray(image, dtype=np.float64) / 255 + ALPHA * colour
    buffer = io.BytesIO()
    Image.fromarray(np.uint8(np.round(blend.clip(0, 1) * 255))).save(buffer, format="PNG")
    return buffer.getvalue()


def _view(x: torch.Tensor, prep: Preprocess) -> np.ndarray:
    """The normalised (C, H, W) input back in [0, 1] as (H, W, 3) RGB."""
    mean = torch.tensor(prep.mean).view(-1, 1, 1)
    std = torch.tensor(prep.std).view(-1, 1, 1)
    pixels = (x.detach().cpu().float() * std + mean).clamp(0, 1)  # (C, H, W)
    if pixels.shape[0] == 1:
        pixels = pixels.expand(3, -1, -1)
    return pixels.permute(1, 2, 0).numpy()


def _record(path: str, g, classes: Sequence[str], top_k: int, stem: str) -> dict[str, Any]:
    probs = g.probs[0]
    k = min(top_k, len(classes))
    values, indices = probs.topk(k)
    c = int(g.classes[0])
    row, col = divmod(int(g.heatmap[0].argmax()), g.heatmap.shape[-1])
    return {
        "image": path,
        "layer": g.layer,
        "explained": {"class": classes[c], "index": c, "probability": float(probs[c])},
        "top": [
            {"class": classes[i], "index": i, "probability": v}
            for v, i in zip(values.tolist(), indices.tolist(), strict=True)
        ],
        "peak": {"row": row, "col": col, "of": list(g.heatmap.shape[-2:])},
        "heatmap_png": f"{stem}.gradcam.png",
    }


def _output_stems(paths: list[Path]) -> list[str]:
    """Each file's stem, with ``-2``, ``-3``... where two inputs share one."""
    stems: list[str] = []
    for p in paths:
        stem, n = p.stem, 1
        while stem in stems:
            n += 1
            stem = f"{p.stem}-{n}"
        stems.append(stem)
    return stems
