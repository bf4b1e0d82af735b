"""The signal experiment through the CLI: files, numbers, findings, skip and resume."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiment_support import findings_agree_with_files, kill_when, lines_ending, run_cli
from resnetlab.analysis.records import read_json
from resnetlab.cli import main
from resnetlab.cli.analyses import DEPTHS, NORMS
from resnetlab.experiments import signal
from resnetlab.experiments.findings import spread
from resnetlab.experiments.signal_summary import (
    FACTOR,
    SignalModel,
    activation_trend,
    findings,
    flatter,
    gradient_trend,
    paper_reading,
    theory,
)

TOY = ["--depths", "8", "14", "--norms", "bn", "none", "--batch-size", "16"]
PARTS = ["bn-depth8-seed0", "bn-depth14-seed0", "none-depth8-seed0", "none-depth14-seed0"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    out = tmp_path_factory.mktemp("signal")
    argv = ["experiment", "signal", *TOY, "--out", str(out)]
    return out, argv, run_cli(argv)


def test_writes_every_output_and_computes_every_part_once(toy):
    out, _, text = toy
    for name in ("results.json", "results.md", "report.html"):
        assert (out / name).is_file(), name
    for stem in ("signal_profiles", "signal_slopes"):
        for suffix in (".png", ".svg"):
            assert (out / f"{stem}{suffix}").stat().st_size > 1000, stem + suffix
    assert lines_ending(text, ": computing") == [f"{p}: computing" for p in PARTS]
    assert sorted(p.stem for p in (out / "parts").glob("*.json")) == sorted(PARTS)
    assert f"report: {out / 'report.html'}" in text


def test_the_slopes_are_fits_of_the_kept_measurements(toy):
    out, _, _ = toy
    results = read_json(out / "results.json")
    assert [m["model"] for m in results["models"]] == [
        "plain8",
        "resnet8",
        "plain14",
        "resnet14",
        "plain8-nobn",
        "resnet8-nobn",
        "plain14-nobn",
        "resnet14-nobn",
    ]
    profiles = {p["label"]: p for p in results["records"]["profiles"]}
    for model in results["models"]:
        p = profiles[model["model"]]
        grads = np.array(p["grad_norm"])[p["main_path"]]
        slope = np.polyfit(np.arange(len(grads)), np.log(grads), 1)[0]  # independent fit
        assert model["gradient_slope_per_conv"]["mean"] == pytest.approx(slope, rel=1e-9)
        assert model["convs"] == len(grads) == model["depth"] - 1  # every conv but the fc
        change = math.exp(-slope * (len(grads) - 1))
        assert model["gradient_change_last_to_first"] == pytest.approx(change, rel=1e-9)
        ratio = model["he_moment_ratio_last_block"]
        if model["model"].startswith("plain") and model["norm"] == "none":
            measured, predicted = p["activation_rms"][-1], p["predicted_rms"][-1]
            assert ratio["mean"] == pytest.approx((measured / predicted) ** 2, rel=1e-12)
        else:
            assert ratio is None


def test_every_finding_is_in_the_report_and_says_what_its_numbers_say(toy):
    out, _, text = toy
    found = findings_agree_with_files(out)
    models = {m["model"]: m for m in read_json(out / "results.json")["models"]}
    kinds = [f["kind"].split(":")[0] for f in found]
    assert kinds.count("gradient_trend") == kinds.count("activation_trend") == 4  # deepest pairs
    assert kinds.count("theory") == 1 and kinds.count("paper_reading") == 1
    for f in found:
        assert f["text"] in text  # printed on the terminal too
        kind, _, label = f["kind"].partition(":")
        if kind == "gradient_trend":
            m = models[label]
            change = m["gradient_change_last_to_first"]
            assert f["numbers"]["gradient_change"] == change
            word = "grows" if change > FACTOR else "shrinks" if change < 1 / FACTOR else "stays"
            assert f"fitted weight-gradient norm {word}" in f["text"]
            assert f"x{change:.3g}" in f["text"]


def test_a_rerun_recomputes_nothing_and_a_lost_part_alone_is_computed_again(toy):
    out, argv, _ = toy
    before = read_json(out / "results.json")
    text = run_cli(argv)
    assert lines_ending(text, ": computing") == []
    assert len(lines_ending(text, ": computed earlier, read back")) == 4
    (out / "parts" / "none-depth14-seed0.json").unlink()  # as if killed while computing it
    text = run_cli(argv)
    assert lines_ending(text, ": computing") == ["none-depth14-seed0: computing"]
    after = read_json(out / "results.json")
    assert after["models"] == before["models"] and after["findings"] == before["findings"]


def test_a_rerun_with_another_batch_is_refused(toy, capsys):
    _, argv, _ = toy
    assert main([*argv, "--batch-size", "12"]) == 2
    err = capsys.readouterr().err
    assert "bn-depth8-seed0.json holds a part computed with images=16, not 12" in err


@pytest.mark.parametrize("flag", [["--iterations", "5"], ["--lr", "0.1"], ["--preset", "fast"]])
def test_options_of_training_are_refused(flag, capsys, tmp_path):
    assert main(["experiment", "signal", *flag, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{flag[0]}: signal trains nothing (it measures nets at initialisation)" in err
    assert main(["experiment", "signal", "--norms", "ln", "--out", str(tmp_path)]) == 2
    assert "--norms: 'ln' is not one of bn, none" in capsys.readouterr().err


def test_the_cli_defaults_are_the_experiments():
    assert tuple(DEPTHS["signal"]) == signal.DEFAULT_DEPTHS
    assert tuple(NORMS["signal"]) == signal.DEFAULT_NORMS


def _model(grad_slopes, act_slopes=(0.0,), residual=False, norm="bn", he=None, convs=55):
    return SignalModel(
        label=f"{'resnet' if residual else 'plain'}56{'' if norm == 'bn' else '-nobn'}",
        depth=56,
        residual=residual,
        norm=norm,
        seeds=tuple(range(len(grad_slopes))),
        activation_slope=spread(act_slopes),
        gradient_slope=spread(grad_slopes),
        points=28,
        convs=convs,
        he_ratio=None if he is None else spread(he),
    )


def test_gradient_and_activation_sentences_follow_the_numbers():
    # ln(10) / 54 convs = 0.0426 per conv: the line between "stays" and a trend.
    vanish, explode, level = _model([0.05]), _model([-0.05]), _model([0.03])
    assert "shrinks by more than a factor of 10 (it vanishes" in gradient_trend(vanish).text
    assert "grows by more than a factor of 10 (it explodes" in gradient_trend(explode).text
    assert "stays within a factor of 10" in gradient_trend(level).text
    assert gradient_trend(vanish).numbers["direction"] == -1
    # Two seeds whose spread reaches back below the factor: no trend is claimed.
    assert "stays within" in gradient_trend(_model([0.02, 0.08])).text
    assert "activation std grows by more" in activation_trend(_model([0.0], [0.1])).text
    assert "activation std shrinks by more" in activation_trend(_model([0.0], [-0.1])).text
    assert "activation std stays within" in activation_trend(_model([0.0], [0.05])).text


def test_comparisons_with_the_twin_the_paper_and_the_theory_flip_with_the_numbers():
    steep, gentle = _model([-0.1]), _model([0.01], residual=True)
    assert "resnet56 changes less per layer than that of plain56" in flatter(steep, gentle).text
    steep_res = _model([-0.1], residual=True)
    assert "changes more per layer" in flatter(_model([0.01]), steep_res).text
    level = flatter(_model([0.01]), _model([-0.01], residual=True)).text
    assert "about as much (within the seeds' spread) per layer as that of" in level
    assert "this run agrees for plain56" in paper_reading(_model([0.01])).text
    exploding = paper_reading(_model([-0.1])).text
    assert "differs for plain56: its gradient explodes" in exploding and "Yang" in exploding
    vanishing = paper_reading(_model([0.1])).text
    assert "its gradient vanishes" in vanishing and "Yang" not in vanishing
    nobn = dict(norm="none")
    assert "matches, to within 20%," in theory(_model([0.0], he=[1.1], **nobn)).text
    assert "is below the prediction" in theory(_model([0.0], he=[0.5], **nobn)).text
    assert "is above the prediction" in theory(_model([0.0], he=[1.5], **nobn)).text


def test_findings_cover_the_deepest_pair_of_each_norm():
    models = [
        _model([0.0]),
        _model([0.0], residual=True),
        _model([0.0], norm="none", he=[1.0]),
        _model([0.0], residual=True, norm="none"),
    ]
    kinds = [f.kind for f in findings(models)]
    assert kinds == [
        "gradient_trend:plain56",
        "activation_trend:plain56",
        "gradient_trend:resnet56",
        "activation_trend:resnet56",
        "flatter:56:bn",
        "paper_reading:plain56",
        "gradient_trend:plain56-nobn",
        "activation_trend:plain56-nobn",
        "gradient_trend:resnet56-nobn",
        "activation_trend:resnet56-nobn",
        "flatter:56:none",
        "theory:plain56-nobn",
    ]


@pytest.mark.slow
def test_a_killed_experiment_resumes_without_recomputing_finished_parts(tmp_path):
    argv = ["experiment", "signal", "--depths", "8", "14", "20", "26", "32", "38"]
    argv += ["--batch-size", "16", "--out", str(tmp_path)]
    parts = tmp_path / "parts"
    kill_when(argv, lambda: parts.is_dir() and any(parts.glob("*.json")))
    finished = sorted(p.stem for p in parts.glob("*.json"))
    assert 1 <= len(finished) < 12, finished  # killed between its parts
    for part in parts.glob("*.json"):  # written atomically: every kept file is whole
        assert read_json(part)["record"]
    text = run_cli(argv)
    read_back = sorted(line.split(":")[0] for line in lines_ending(text, "read back"))
    assert read_back == finished
    assert len(lines_ending(text, ": computing")) == 12 - len(finished)
