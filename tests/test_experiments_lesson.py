"""The lesson at toy scale: sections in order, claims from their numbers, figures with alt text."""

from __future__ import annotations

import html
import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from lesson_support import build_toy_lesson
from resnetlab.analysis.gradients import load_grad_norms
from resnetlab.analysis.records import read_json
from resnetlab.experiments import claims, claims_beyond, lesson, lesson_sections  # noqa: F401 (kinds)
from resnetlab.train.weights import model_from_checkpoint

pytestmark = pytest.mark.slow  # the toy lesson: 7 tiny runs and 4 nets for section 5, ~80 s


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    out, stdout = build_toy_lesson(tmp_path_factory)
    return out, stdout, (out / "report.html").read_text(), read_json(out / "results.json")


class Page(HTMLParser):
    """The headings, the marked claims and the figures (alt, caption) of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.headings, self.claims, self.figures = [], {}, []
        self._in, self._claim, self._text = None, None, ""
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("h2", "figcaption") or (tag == "p" and "data-claim" in attrs):
            self._in, self._text = tag, ""
            self._claim = attrs.get("data-claim")
        if tag == "img":
            self.figures.append([attrs["alt"], None])

    def handle_data(self, data):
        if self._in:
            self._text += data

    def handle_endtag(self, tag):
        if tag != self._in:
            return
        if tag == "h2":
            self.headings.append(self._text)
        elif tag == "figcaption":
            self.figures[-1][1] = self._text
        else:
            self.claims.setdefault(self._claim, []).append(self._text)
        self._in = None


def test_the_sections_come_in_the_order_of_the_argument(toy):
    _, _, page, record = toy
    headings = Page(page).headings
    assert headings[:6] == lesson_sections.HEADINGS == record["sections"]
    assert [h.split(".")[0] for h in headings[:6]] == ["1", "2", "3", "4", "5", "6"]


def test_every_claim_on_the_page_is_made_again_by_its_numbers(toy):
    _, _, page, record = toy
    on_page = Page(page).claims
    assert sum(len(v) for v in on_page.values()) == len(record["claims"]) == 18
    for c in record["claims"]:
        again = claims.remake(c)
        assert again.text == c["text"] and again.direction == c["direction"]
        assert c["text"] in on_page[c["kind"]]
    kinds = {c["kind"] for c in record["claims"]}
    expected = {"degradation", "fix", "gradient", "activations", "twins_gradient"}
    expected |= {"paper_gradients", "identity_start", "never_worse"}
    expected |= {"shattered", "lesion", "downsampling", "landscape"}
    assert expected <= kinds


def test_the_claims_rest_on_the_runs_own_records(toy):
    out, _, _, record = toy
    by_kind = {}
    for c in record["claims"]:
        by_kind.setdefault(c["kind"], []).append(c["numbers"])
    runs = out / "degradation"
    final = {
        m: read_json(runs / f"{m}-seed0" / "summary.json")["final"]["train_error"]
        for m in ("plain8", "plain14", "resnet14")
    }
    (deg,) = by_kind["degradation"]
    assert deg["deep_errors"] == [final["plain14"]] and deg["shallow_errors"] == [final["plain8"]]
    (fix,) = by_kind["fix"]
    assert fix["residual_errors"] == [final["resnet14"]]
    # the training-time gradient of plain14, per weight, from its grad_norms.jsonl
    grads = load_grad_norms(runs / "plain14-seed0")
    model, _ = model_from_checkpoint(runs / "plain14-seed0")
    sizes = {n: p.numel() for n, p in model.named_parameters()}
    first, last = grads.layers[0], grads.layers[-2]  # the stem conv; the last conv before fc
    per_weight = np.median(
        (grads.norms[0] / math.sqrt(sizes[first])) / (grads.norms[-2] / math.sqrt(sizes[last]))
    )
    training = [g for g in by_kind["gradient"] if g["when"].startswith("during training")]
    assert {g["model"] for g in training} == {"plain8", "plain14", "resnet14"}
    mine = next(g for g in training if g["model"] == "plain14")
    assert mine["per_weight"] == pytest.approx(per_weight, rel=1e-12)
    ratios = read_json(runs / "results.json")["gradient_first_to_last_ratio"]
    (twins,) = by_kind["twins_gradient"]
    assert (
        twins["plain_ratio"] == ratios["plain14"] and twins["residual_ratio"] == ratios["resnet14"]
    )
    identity = read_json(out / "identity" / "results.json")
    small = [i for i in by_kind["identity_start"] if i["deep"] == "resnet14-from-8"]
    assert small[0]["identical"] is identity["identical_at_start"] is True


def test_every_figure_has_an_alt_text_that_describes_it(toy):
    _, _, page, _ = toy
    figures = Page(page).figures
    assert len(figures) == 10
    for alt, caption in figures:
        assert caption and alt != caption and len(alt) > 80, (alt, caption)
    alts = " ".join(alt for alt, _ in figures)
    assert "The shortcut takes x through downsample.0 (1x1 conv, 16→32, stride 2)" in alts
    assert "plain14" in alts and "resnet14" in alts


def test_one_seed_says_there_is_no_spread(toy):
    _, _, page, _ = toy
    text = html.unescape(page)
    assert "seed(s)" not in text
    assert "one run per model (seed 0): there is no spread over seeds to show" in text
    assert "with one seed there is no spread to show" in text


def test_the_block_diagrams_come_from_the_trained_nets_modules(toy):
    out, _, page, _ = toy
    svg = (out / "blocks_identity.svg").read_text()
    for name in ("conv1", "bn1", "relu", "conv2", "bn2"):
        assert f">{name}<" in svg
    assert "identity: x" in svg and "F(x) + x" in svg
    options = (out / "blocks_shortcuts.svg").read_text()
    assert "zero-pad 16→32, stride 2" in options and "downsample.0" in options
    text = html.unescape(page)
    assert "H(x) = F(x) + x" in text
    assert re.search(r"<td>A</td>.*?<td>75,002</td>", page)  # resnet8's parameters, option A


def test_section_5_shows_what_ran_and_names_what_did_not(toy):
    _, _, page, record = toy
    text = html.unescape(page)
    for title in ("Shattered gradients (Balduzzi", "Lesions: residual", "Loss landscapes (Li"):
        assert title in text
    assert len(record["beyond"]) == 3  # shattered; lesion and landscape from one file
    assert "Not run" not in text  # every analysis was found in one of the folders
    assert "Runs at CIFAR scale" in text and "RESULTS.md" in text


def test_the_terminal_gets_the_argument_in_brief(toy):
    out, stdout, _, record = toy
    summary = [c["text"] for c in record["claims"] if c["kind"] in ("degradation", "fix")]
    for line in summary:
        assert line in stdout
    assert lesson.ONE_SEED.format(seed=0) in stdout  # the toy lesson runs seed 0 only
    assert f"report: {out / 'report.html'}" in stdout
