"""The shattered-gradients experiment through the CLI: files, numbers, findings, skip and resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from experiment_support import findings_agree_with_files, kill_when, lines_ending, run_cli
from resnetlab.analysis.records import read_json
from resnetlab.cli import main
from resnetlab.cli.analyses import DEPTHS, NORMS, POINTS
from resnetlab.errors import ConfigError
from resnetlab.experiments import shattered
from resnetlab.experiments.at_init import InitData
from resnetlab.experiments.findings import spread
from resnetlab.experiments.shattered import (
    ShatteredModel,
    depth_trend,
    findings,
    line_ends,
    pair,
    steeper,
)

TOY = ["--depths", "8", "14", "--points", "16", "--batch-size", "16"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    out = tmp_path_factory.mktemp("shattered")
    argv = ["experiment", "shattered", *TOY, "--out", str(out)]
    return out, argv, run_cli(argv)


def test_writes_every_output(toy):
    out, _, text = toy
    for stem in ("shattered_bn", "shattered_lag1"):
        for suffix in (".png", ".svg"):
            assert (out / f"{stem}{suffix}").stat().st_size > 1000, stem + suffix
    assert lines_ending(text, ": computing") == [
        "bn-depth8-seed0: computing",
        "bn-depth14-seed0: computing",
    ]
    for name in ("results.json", "results.md", "report.html"):
        assert (out / name).is_file()


def test_lag1_is_the_mean_cosine_of_neighbouring_gradients(toy):
    out, _, _ = toy
    results = read_json(out / "results.json")
    records = {r["label"]: r for r in results["records"]["gradients"]}
    assert [m["model"] for m in results["models"]] == ["plain8", "resnet8", "plain14", "resnet14"]
    for model in results["models"]:
        r = records[model["model"]]
        assert len(r["t"]) == 16 and len(r["autocorrelation"]) == 5  # lags 0..16/4
        assert r["autocorrelation"][0] == pytest.approx(1.0)
        assert model["lag1"]["mean"] == r["autocorrelation"][1] == r["lag1"]
    assert results["settings"]["line_ends"][0] == 0
    first, other = results["settings"]["line_ends"]
    assert first != other


def test_every_finding_is_in_the_report_and_says_what_its_numbers_say(toy):
    out, _, _ = toy
    found = findings_agree_with_files(out)
    lag1 = {m["model"]: m["lag1"]["mean"] for m in read_json(out / "results.json")["models"]}
    kinds = [f["kind"] for f in found]
    assert kinds == [
        "pair:8:bn",
        "pair:14:bn",
        "depth_trend:plain:bn",
        "depth_trend:resnet:bn",
        "steeper:bn",
    ]
    for f in found:
        if f["kind"].startswith("pair:"):
            depth = f["kind"].split(":")[1]
            plain, res = lag1[f"plain{depth}"], lag1[f"resnet{depth}"]
            assert (f["numbers"]["plain_lag1"], f["numbers"]["resnet_lag1"]) == (plain, res)
            word = "more" if plain > res else "less" if plain < res else "about as"
            assert f"are {word} correlated" in f["text"]
            assert f"{plain:.3f} vs {res:.3f}" in f["text"]


def test_a_rerun_recomputes_nothing_and_gives_the_same_numbers(toy):
    out, argv, _ = toy
    before = read_json(out / "results.json")
    (out / "parts" / "bn-depth8-seed0.json").unlink()  # as if killed while computing it
    text = run_cli(argv)
    assert lines_ending(text, ": computing") == ["bn-depth8-seed0: computing"]
    assert lines_ending(text, "read back") == ["bn-depth14-seed0: computed earlier, read back"]
    after = read_json(out / "results.json")
    assert after["models"] == before["models"] and after["findings"] == before["findings"]


def test_bad_options_are_one_clear_error(capsys, tmp_path):
    assert main(["experiment", "shattered", "--points", "4", "--out", str(tmp_path)]) == 2
    assert "--points must be at least 8; got 4" in capsys.readouterr().err
    assert main(["experiment", "shattered", "--epochs", "1", "--out", str(tmp_path)]) == 2
    assert "--epochs: shattered trains nothing" in capsys.readouterr().err
    assert tuple(DEPTHS["shattered"]) == shattered.DEFAULT_DEPTHS
    assert tuple(NORMS["shattered"]) == shattered.DEFAULT_NORMS and POINTS == 256


def test_the_line_runs_between_two_classes():
    images = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    data = InitData(images, torch.tensor([3, 3, 5, 3]), None, {})
    start, end, ends = line_ends(data)
    assert ends == (0, 2) and torch.equal(start, images[0]) and torch.equal(end, images[2])
    with pytest.raises(ConfigError, match="holds one class only"):
        line_ends(InitData(images, torch.tensor([1, 1, 1, 1]), None, {}))


def _m(depth, residual, lag1):
    return ShatteredModel(
        f"{'resnet' if residual else 'plain'}{depth}",
        depth,
        residual,
        "bn",
        tuple(range(len(lag1))),
        spread(lag1),
    )


def test_sentences_flip_or_level_with_the_numbers():
    assert "plain56 are less correlated" in pair(_m(56, False, [0.1]), _m(56, True, [0.9])).text
    assert "plain56 are more correlated" in pair(_m(56, False, [0.9]), _m(56, True, [0.1])).text
    assert (
        "about as (within the seeds' spread) correlated between neighbouring inputs as"
        in pair(_m(56, False, [0.4, 0.8]), _m(56, True, [0.7])).text
    )
    falls = depth_trend(_m(8, False, [0.9]), _m(110, False, [0.1]))
    assert "plain nets' lag-1 autocorrelation falls with depth: 0.900 at depth 8" in falls.text
    assert "rises with depth" in depth_trend(_m(8, True, [0.5]), _m(110, True, [0.6])).text
    more = steeper(
        (_m(8, False, [0.9]), _m(8, True, [0.95])), (_m(110, False, [0.0]), _m(110, True, [0.8]))
    )
    assert "falls more for the plain nets than for the ResNets: by 0.900 vs 0.150" in more.text
    less = steeper(
        (_m(8, False, [0.9]), _m(8, True, [0.95])), (_m(110, False, [0.8]), _m(110, True, [0.1]))
    )
    assert "falls less for the plain nets" in less.text
    assert np.isclose(less.numbers["resnet_drop"], 0.85)
    one_depth = findings([_m(8, False, [0.5]), _m(8, True, [0.6])])
    assert [f.kind for f in one_depth] == ["pair:8:bn"]  # no trend from a single depth


@pytest.mark.slow
def test_a_killed_experiment_resumes_without_recomputing_finished_parts(tmp_path):
    argv = ["experiment", "shattered", "--depths", "8", "14", "20", "26", "32", "38"]
    argv += ["--points", "16", "--batch-size", "16", "--out", str(tmp_path)]
    parts = tmp_path / "parts"
    kill_when(argv, lambda: parts.is_dir() and any(parts.glob("*.json")))
    finished = sorted(p.stem for p in parts.glob("*.json"))
    assert 1 <= len(finished) < 6, finished  # killed between its parts
    for part in parts.glob("*.json"):  # written atomically: every kept file is whole
        assert read_json(part)["record"]
    text = run_cli(argv)
    read_back = sorted(line.split(":")[0] for line in lines_ending(text, "read back"))
    assert read_back == finished
    assert len(lines_ending(text, ": computing")) == 6 - len(finished)
    resumed = read_json(tmp_path / "results.json")["models"]
    straight = tmp_path / "straight"
    run_cli([*argv[:-1], str(straight)])
    assert read_json(straight / "results.json")["models"] == resumed
