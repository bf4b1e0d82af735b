"""Figures and the HTML report: files exist, colours follow the model, pages are self-contained."""

from __future__ import annotations

import base64
import re

import numpy as np

from resnetlab.analysis import plots
from resnetlab.analysis.curves import Curves
from resnetlab.analysis.gradients import GradNorms
from resnetlab.analysis.report import figure, section, table, write_report
from resnetlab.analysis.responses import LayerResponses

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _curves(offset: float) -> Curves:
    its = np.arange(10, 110, 10)
    return Curves(its, np.linspace(0.9, 0.1, 10) + offset, its[1::2], np.linspace(0.8, 0.2, 5))


def _grads(scale: float) -> GradNorms:
    norms = scale * np.outer(np.linspace(0.1, 1.0, 5), np.ones(4))
    return GradNorms(tuple(f"l{i}.weight" for i in range(5)), np.array([1, 10, 20, 30]), norms)


def _strokes(svg_path) -> set[str]:
    return set(re.findall(r"stroke: ?(#[0-9a-f]{6})", svg_path.read_text()))


def test_model_colours_are_fixed_and_distinct():
    assert plots.model_colour("plain56") == plots.model_colour("plain56") == "#7f2704"
    names = ["plain20", "plain56", "resnet20", "resnet56"]
    assert len({plots.model_colour(n) for n in names}) == 4
    assert plots.model_colour("resnet32-B") == plots.model_colour("resnet32-B")


def test_error_curves_use_each_models_colour(tmp_path):
    groups = {
        "plain": {"plain20": _curves(0.0), "plain56": _curves(0.05)},
        "ResNet": {"resnet20": _curves(0.0)},
    }
    png, svg = plots.plot_error_curves(groups, tmp_path / "curves", title="t")
    assert png.read_bytes().startswith(PNG_MAGIC)
    text = svg.read_text()
    assert "error (%)" in text and "iterations (optimizer steps)" in text
    assert {"#f16913", "#7f2704", "#4292c6"} <= _strokes(svg)


def test_gradient_figures_and_responses(tmp_path):
    grads = {"plain56": _grads(1.0), "resnet56": _grads(3.0)}
    heat = plots.plot_grad_heatmaps(grads, tmp_path / "heat")
    lines = plots.plot_grad_profiles(grads, tmp_path / "lines", [1, 30])
    resp = {
        "plain20": LayerResponses(("a", "b", "c"), np.array([1.0, 3.0, 2.0])),
        "resnet20": LayerResponses(("a", "b", "c"), np.array([0.5, 0.2, 0.4])),
    }
    fig7 = plots.plot_responses(resp, tmp_path / "resp")
    for path in [*heat, *lines, *fig7]:
        assert path.stat().st_size > 1000
    assert "weight-gradient L2 norm (log scale)" in heat[1].read_text()
    assert {"#7f2704", "#08306b"} <= _strokes(lines[1])
    assert "layer index (sorted by magnitude)" in fig7[1].read_text()


def test_figures_are_reproducible(tmp_path):
    groups = {"plain": {"plain20": _curves(0.0)}}
    _, a = plots.plot_error_curves(groups, tmp_path / "a")
    _, b = plots.plot_error_curves(groups, tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()


def test_report_embeds_figures_and_escapes_text(tmp_path):
    png, _ = plots.plot_error_curves({"plain": {"plain20": _curves(0.0)}}, tmp_path / "c")
    path = write_report(
        tmp_path / "report.html",
        "Degradation <digits>",
        [
            section("Numbers", table(("model", "error"), [("plain20", "1.00%")])),
            figure(png, "curves & more"),
        ],
    )
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "Degradation &lt;digits&gt;" in page and "curves &amp; more" in page
    data = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(data) == png.read_bytes()
    assert not re.search(r'(src|href)="(https?:|//)', page)  # nothing loaded from elsewhere
