"""The landscape experiment through the CLI: trained twins, the grid on disk, the centre, the
convexity measure, findings, a rerun that computes no point, and a kill and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from experiment_support import findings_agree_with_files, kill_when, lines_ending, run_cli
from resnetlab.analysis.curvature import nonconvex_share
from resnetlab.analysis.landscape import Landscape, evaluate
from resnetlab.analysis.landscape_grid import CHUNK
from resnetlab.analysis.records import read_json
from resnetlab.cli import main
from resnetlab.cli.analyses import DEPTHS, LANDSCAPE
from resnetlab.experiments import landscape
from resnetlab.experiments.batches import checkpoint_batches
from resnetlab.experiments.findings import spread
from resnetlab.experiments.landscape import LandscapeSettings, curve_of
from resnetlab.experiments.landscape_summary import (
    LandscapeModel,
    centre_loss,
    convexity,
    minimum,
)
from resnetlab.train.weights import model_from_checkpoint

TOY = ["--depths", "8", "--iterations", "6", "--batch-size", "32", "--set", "eval_every=3"]
GRID = ["--grid", "5", "--subset", "64"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    out = tmp_path_factory.mktemp("landscape")
    argv = ["experiment", "landscape", *TOY, *GRID, "--out", str(out)]
    return out, argv, run_cli(argv)


def test_trains_the_twins_and_computes_every_point_once(toy):
    out, _, text = toy
    assert lines_ending(text, "read back") == [
        "plain8-seed0: landscape: 25 of 25 points computed, 0 read back",
        "resnet8-seed0: landscape: 25 of 25 points computed, 0 read back",
    ]
    for net in ("plain8-seed0", "resnet8-seed0"):
        chunks = sorted((out / "landscape" / net / "chunks").glob("chunk-*.json"))
        assert sum(len(json.loads(c.read_text())["points"]) for c in chunks) == 25
    for stem in ("landscape_contours", "landscape_surfaces", "landscape_curves"):
        for suffix in (".png", ".svg"):
            assert (out / f"{stem}{suffix}").stat().st_size > 1000, stem + suffix


def test_the_centre_is_the_nets_own_loss_and_the_measure_is_the_grids(toy):
    out, _, _ = toy
    results = read_json(out / "results.json")
    records = {r["net"]: r for r in results["records"]["landscapes"]}
    models = {m["model"]: m for m in results["models"]}
    for net, label in (("plain8-seed0", "plain8"), ("resnet8-seed0", "resnet8")):
        model, ckpt = model_from_checkpoint(out / net)
        own_loss, own_error = evaluate(model, checkpoint_batches(ckpt, "train", 64, 256))
        r = records[net]
        assert r["centre_loss"] == own_loss and models[label]["centre_loss"]["mean"] == own_loss
        assert r["centre_error"] == own_error and r["images"] == 64
        loss = np.array(r["loss"])
        assert loss.shape == (5, 5) and r["alphas"] == [-1.0, -0.5, 0.0, 0.5, 1.0]
        assert loss[2, 2] == pytest.approx(own_loss, rel=1e-6)  # the grid's centre point
        land = Landscape(label, np.array(r["alphas"]), np.array(r["betas"]), loss, loss, 0, 0, 0, 1)
        assert models[label]["nonconvex_share"]["mean"] == nonconvex_share(land)
        others = np.delete(loss.ravel(), 12)
        assert models[label]["lowest_loss_elsewhere"]["mean"] == others.min()
        assert models[label]["centre_is_lowest"] == [bool(own_loss <= others.min())]
    assert [t["model"] for t in results["training"]] == ["plain8", "resnet8"]


def test_every_finding_is_in_the_report_and_says_what_its_numbers_say(toy):
    out, _, _ = toy
    found = findings_agree_with_files(out)
    models = {m["model"]: m for m in read_json(out / "results.json")["models"]}
    assert [f["kind"] for f in found] == [
        "convexity:8",
        "centre_loss:8",
        "minimum:plain8",
        "minimum:resnet8",
    ]
    plain, res = (
        models["plain8"]["nonconvex_share"]["mean"],
        models["resnet8"]["nonconvex_share"]["mean"],
    )
    word = "less" if plain > res else "more" if plain < res else "about as"
    assert f"plain8 is {word} convex than that of resnet8" in found[0]["text"]
    for f in found[2:]:
        lowest = models[f["kind"].split(":")[1]]["centre_is_lowest"][0]
        assert ("are the lowest point" if lowest else "are not the lowest point") in f["text"]


def test_a_rerun_computes_no_point(toy):
    out, argv, _ = toy
    before = read_json(out / "results.json")
    text = run_cli(argv)
    assert len(lines_ending(text, "finished earlier, skipped")) == 2
    assert lines_ending(text, "read back") == [
        "plain8-seed0: landscape: 0 of 25 points computed, 25 read back",
        "resnet8-seed0: landscape: 0 of 25 points computed, 25 read back",
    ]
    after = read_json(out / "results.json")
    assert after["models"] == before["models"] and after["records"] == before["records"]


def test_a_one_dimensional_landscape_is_the_surfaces_middle_row(toy, tmp_path):
    out, _, _ = toy
    argv = ["experiment", "landscape", "--runs", str(out / "resnet8-seed0"), "--dims", "1"]
    run_cli([*argv, *GRID, "--out", str(tmp_path)])
    curve = read_json(tmp_path / "results.json")["records"]["landscapes"][0]
    surface = read_json(out / "results.json")["records"]["landscapes"][1]
    assert curve["betas"] is None and curve["loss"] == surface["loss"][2]  # the same direction
    assert (tmp_path / "landscape_curves.png").is_file()
    assert not (tmp_path / "landscape_contours.png").exists()


def test_bad_settings_are_one_clear_error(capsys, tmp_path):
    for flag, message in (
        (["--grid", "4"], "--grid must be odd and at least 3 (0 on the grid); got 4"),
        (["--span", "0"], "--span must be a positive number; got 0.0"),
        (["--subset", "0"], "--subset must be at least 1; got 0"),
    ):
        assert main(["experiment", "landscape", *flag, "--out", str(tmp_path)]) == 2
        assert message in capsys.readouterr().err
    assert tuple(DEPTHS["landscape"]) == landscape.DEFAULT_DEPTHS
    assert vars(LandscapeSettings()) == LANDSCAPE
    assert LandscapeSettings(grid=5).axis() == [-1.0, -0.5, 0.0, 0.5, 1.0]


def _m(label, nonconvex=(0.1,), loss=(0.5,), lowest=(True,), elsewhere=(0.6,)):
    return LandscapeModel(
        label=label,
        depth=56,
        residual=label.startswith("resnet"),
        seeds=tuple(range(len(nonconvex))),
        dims=2,
        centre_loss=spread(loss),
        centre_error=spread([0.1]),
        nonconvex=spread(nonconvex),
        lowest_elsewhere=spread(elsewhere),
        highest=spread([9.0]),
        centre_lowest=tuple(lowest),
    )


def test_sentences_flip_with_the_numbers():
    chaotic, smooth = _m("plain56", nonconvex=[0.4]), _m("resnet56", nonconvex=[0.02])
    text = convexity(chaotic, smooth).text
    assert "surface of plain56 is less convex than that of resnet56: 40.0%" in text
    assert "is more convex" in convexity(_m("plain56", nonconvex=[0.0]), smooth).text
    wide = _m("plain56", nonconvex=[0.0, 0.1])
    assert "about as (within the seeds' spread) convex" in convexity(wide, smooth).text
    assert (
        "plain56 is higher than that of resnet56"
        in centre_loss(_m("plain56", loss=[2.0]), smooth).text
    )
    assert "plain56 is lower than that of" in centre_loss(_m("plain56", loss=[0.1]), smooth).text
    assert "resnet56 are the lowest point of its grid: loss 0.5000" in minimum(smooth).text
    assert "are not the lowest point" in minimum(_m("resnet56", lowest=[False])).text
    some = minimum(_m("resnet56", nonconvex=[0.1, 0.1], lowest=[True, False]))
    assert "for 1 of 2 seeds" in some.text


def test_the_curve_of_a_surface_is_its_row_at_beta_zero():
    a = np.array([-1.0, 0.0, 1.0])
    loss = np.arange(9.0).reshape(3, 3)
    land = Landscape("n", a, a, loss, loss / 10, 4.0, 0.4, 0, 1)
    curve = curve_of(land)
    assert curve.betas is None and curve.loss.tolist() == [3.0, 4.0, 5.0]
    assert curve.error.tolist() == [0.3, 0.4, 0.5] and curve_of(curve) is curve


@pytest.mark.slow
def test_a_killed_experiment_resumes_without_recomputing_finished_points(toy, tmp_path):
    out, _, _ = toy
    runs = [str(out / "plain8-seed0"), str(out / "resnet8-seed0")]
    argv = ["experiment", "landscape", "--runs", *runs, "--grid", "9", "--subset", "256"]
    argv += ["--out", str(tmp_path)]
    chunks = tmp_path / "landscape" / "plain8-seed0" / "chunks"

    def points() -> int:
        return sum(len(json.loads(c.read_text())["points"]) for c in chunks.glob("chunk-*.json"))

    kill_when(argv, lambda: chunks.is_dir() and points() >= CHUNK)
    finished = points()
    assert CHUNK <= finished < 81, "killed before the first net's grid was full"
    text = run_cli(argv)
    assert (
        f"plain8-seed0: landscape: {81 - finished} of 81 points computed, {finished} read back"
        in text
    )
    assert "resnet8-seed0: landscape: 81 of 81 points computed, 0 read back" in text
    resumed = read_json(tmp_path / "results.json")["records"]["landscapes"][0]["loss"]
    straight = tmp_path / "straight"
    run_cli([*argv[:-1], str(straight)])
    assert read_json(straight / "results.json")["records"]["landscapes"][0]["loss"] == resumed
