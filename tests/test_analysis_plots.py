"""Figures and the HTML report: files exist, colours follow the model, pages are self-contained."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from resnetlab.analysis import plots
from resnetlab.analysis.curves import Curves
from resnetlab.analysis.figures import FigureFiles
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
            figure(png, "curves & more", alt="Error <against> iterations for plain20"),
        ],
    )
    page = path.read_text()
    assert 'alt="Error &lt;against&gt; iterations for plain20"' in page
    assert page.startswith("<!DOCTYPE html>")
    assert "Degradation &lt;digits&gt;" in page and "curves &amp; more" in page
    data = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(data) == png.read_bytes()
    assert not re.search(r'(src|href)="(https?:|//)', page)  # nothing loaded from elsewhere


def test_a_figure_needs_an_alt_text_other_than_its_caption(tmp_path):
    png, _ = plots.plot_error_curves({"plain": {"plain20": _curves(0.0)}}, tmp_path / "c")
    with pytest.raises(ValueError, match=r"c\.png needs an alt text"):
        figure(png, "Error curves.")
    with pytest.raises(ValueError, match="needs an alt text"):
        figure(png, "Error curves.", alt="Error curves.")
    files = FigureFiles([png, png.with_suffix(".svg")], "Training error of plain20 falls to 10%.")
    assert 'alt="Training error of plain20 falls to 10%."' in figure(files, "Error curves.")


def test_alt_texts_state_what_the_figures_show():
    groups = {"plain": {"plain20": _curves(0.0), "plain56": _curves(0.05)}}
    alt = plots.curves_alt(groups)
    assert "plain56 15.0% training and 20.0% test error" in alt  # the lines' last points
    grads = {"plain56": _grads(1.0), "resnet56": _grads(3.0)}
    assert "plain56: 5 layers over iterations 1-30, norms 0.1 to 1" in plots.heatmaps_alt(grads)
    assert "resnet56: first layer 0.3, last layer 3" in plots.profiles_alt(grads, [1, 30])
    resp = {"plain20": LayerResponses(("a", "b"), np.array([1.0, 3.0]))}
    assert "plain20: 2 layers, mean std 2.00, largest 3.00" in plots.responses_alt(resp)


def test_plain_and_residual_lines_differ_in_style_not_only_colour():
    plain, residual = plots.line_style("plain20", 24), plots.line_style("resnet20", 24)
    assert (plain["ls"], plain["marker"]) == ("-", "o")
    assert (residual["ls"], residual["marker"]) == ("--", "s")
    assert plain["markevery"] == 2
    assert plots.line_style("resnet20-B")["ls"] == ":"


def test_figure7_draws_overlapping_twins_with_different_markers(tmp_path):
    same = np.array([1.0, 1.1, 0.9, 1.0])
    resp = {
        "plain20": LayerResponses(tuple("abcd"), same),
        "resnet20": LayerResponses(tuple("abcd"), same.copy()),
    }
    _, svg = plots.plot_responses(resp, tmp_path / "resp")
    text = svg.read_text()
    # circles for the plain net and squares for the ResNet, each in its own colour
    assert re.search(r'<path id="[^"]+" d="M 0 2 *\nC', text)  # a circle marker
    assert re.search(r'<path id="[^"]+" d="M -2 2 *\nL 2 2', text)  # a square marker
    assert {"#f16913", "#4292c6"} <= _strokes(svg)


# Machado, Oliveira, Fernandes 2009 ("A Physiologically-based Model for Simulation of Color
# Vision Deficiency"), severity 1.0, on linear RGB.
VISION = {
    "normal": np.eye(3),
    "protanopia": np.array(
        [
            [0.152286, 1.052583, -0.204868],
            [0.114503, 0.786281, 0.099216],
            [-0.003882, -0.048116, 1.051998],
        ]
    ),
    "deuteranopia": np.array(
        [
            [0.367322, 0.860646, -0.227968],
            [0.280085, 0.672501, 0.047413],
            [-0.011820, 0.042940, 0.968881],
        ]
    ),
    "tritanopia": np.array(
        [
            [1.255528, -0.076749, -0.178779],
            [-0.078411, 0.930809, 0.147602],
            [0.004733, 0.691367, 0.303900],
        ]
    ),
}


def _lab(colour: str, vision: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of an sRGB hex colour as seen with ``vision``."""
    srgb = np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
    ) @ np.clip(vision @ linear, 0, 1)
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _distance(a: str, b: str, vision: np.ndarray) -> float:
    return float(np.linalg.norm(_lab(a, vision) - _lab(b, vision)))  # CIE76 delta E


@pytest.mark.parametrize("vision", VISION, ids=str)
def test_colours_stay_apart_for_colour_blind_readers(vision):
    matrix = VISION[vision]
    for depth, plain in plots.PLAIN_COLOURS.items():  # a plain net and its ResNet twin
        assert _distance(plain, plots.RESNET_COLOURS[depth], matrix) > 40, depth
    others = plots.OTHER_COLOURS
    for i, a in enumerate(others):
        for b in others[i + 1 :]:
            assert _distance(a, b, matrix) > 12, (a, b)


def test_the_colour_check_catches_a_red_green_pair():
    red, green = "#d62728", "#2ca02c"  # tab10's red and green
    assert _distance(red, green, VISION["normal"]) > 40
    assert _distance(red, green, VISION["deuteranopia"]) < 12
