"""The lesion experiment through the CLI: trained twins, per-block deletions with the downsampling
blocks apart, the path view, findings, skip and resume, and nets given with --runs."""

from __future__ import annotations

import pytest

from experiment_support import findings_agree_with_files, kill_when, lines_ending, run_cli
from resnetlab.analysis.lesion import lesioned
from resnetlab.analysis.netinfo import residual_blocks
from resnetlab.analysis.records import read_json
from resnetlab.cli import main
from resnetlab.cli.analyses import DEPTHS, LESION
from resnetlab.experiments import lesion
from resnetlab.experiments.batches import checkpoint_batches
from resnetlab.experiments.findings import spread
from resnetlab.experiments.lesion_summary import (
    LesionModel,
    k_trend,
    path_decay,
    same_shape_pair,
    short_paths,
    worst_deletion,
)
from resnetlab.train.weights import model_from_checkpoint

MEASURE = ["--test-images", "100", "--draws", "2", "--path-samples", "2", "--path-images", "16"]
TOY = ["--depths", "8", "14", "--iterations", "6", "--batch-size", "32", "--set", "eval_every=3"]
NETS = ["plain8-seed0", "plain14-seed0", "resnet8-seed0", "resnet14-seed0"]
DEPTH14 = ("layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    out = tmp_path_factory.mktemp("lesion")
    argv = ["experiment", "lesion", *TOY, *MEASURE, "--out", str(out)]
    return out, argv, run_cli(argv)


def test_trains_the_twins_and_measures_every_net_once(toy):
    out, _, text = toy
    for net in NETS:
        assert (out / net / "summary.json").is_file() and (out / "lesion" / f"{net}.json").is_file()
    assert lines_ending(text, "lesions: computing") == [f"{n}: lesions: computing" for n in NETS]
    stems = ["lesion_single_8", "lesion_single_14", "lesion_random_8", "lesion_random_14"]
    for stem in [*stems, "lesion_paths"]:
        for suffix in (".png", ".svg"):
            assert (out / f"{stem}{suffix}").stat().st_size > 1000, stem + suffix
    results = read_json(out / "results.json")
    assert [t["model"] for t in results["training"]] == ["plain8", "plain14", "resnet8", "resnet14"]


def _errors_by_hand(model, batches, names):
    with lesioned(model, names):
        wrong = sum(int((model(x).argmax(1) != y).sum()) for x, y in batches)
    return wrong / sum(len(y) for _, y in batches)


def test_single_deletions_equal_an_independent_count_and_mark_the_downsampling_blocks(toy):
    out, _, _ = toy
    models = {m["model"]: m for m in read_json(out / "results.json")["models"]}
    model, ckpt = model_from_checkpoint(out / "resnet14-seed0")
    test = checkpoint_batches(ckpt, "test", 100, 250)
    assert sum(len(y) for _, y in test) == 100
    single = models["resnet14"]["single_deletion_error"]
    assert tuple(single) == DEPTH14
    assert [single[b]["downsampling"] for b in DEPTH14] == [False, False, True, False, True, False]
    for name, _ in residual_blocks(model):
        assert single[name]["mean"] == _errors_by_hand(model.eval(), test, [name])
    baseline = _errors_by_hand(model, test, [])
    assert models["resnet14"]["baseline_error"]["mean"] == baseline
    same = [single[b]["mean"] for b in DEPTH14 if not single[b]["downsampling"]]
    rise = models["resnet14"]["same_shape_mean_rise"]["mean"]
    assert rise == pytest.approx(sum(same) / len(same) - baseline, abs=1e-12)
    assert models["resnet14"]["downsampling_worst_error"]["mean"] == max(
        single["layer2.0"]["mean"], single["layer3.0"]["mean"]
    )
    assert set(models["resnet14"]["error_against_k_deleted"]) == {"1", "2", "3", "4"}
    assert models["plain14"]["gradient_weighted_path_length"] is None  # one path: no path view
    assert models["plain14"]["mean_path_length"] == 6.0


def test_the_block_table_lists_the_downsampling_blocks_apart(toy):
    out, _, _ = toy
    markdown = (out / "results.md").read_text()
    rows = [
        line.split(" | ")[0].lstrip("| ") for line in markdown.splitlines() if "| layer" in line
    ]
    depth14 = rows[-6:]
    assert depth14 == ["layer1.0", "layer1.1", "layer2.1", "layer3.1", "layer2.0", "layer3.0"]
    assert "| layer3.0 | yes |" in markdown and "| layer3.1 | no |" in markdown


def test_every_finding_is_in_the_report_and_says_what_its_numbers_say(toy):
    out, _, _ = toy
    found = findings_agree_with_files(out)
    models = {m["model"]: m for m in read_json(out / "results.json")["models"]}
    kinds = {f["kind"] for f in found}
    assert {"same_shape_pair:8", "same_shape_pair:14", "worst_deletion:resnet14"} <= kinds
    assert {"short_paths:resnet14", "path_decay:resnet14", "k_trend:resnet14"} <= kinds
    for f in found:
        kind, _, label = f["kind"].partition(":")
        if kind == "worst_deletion":
            m = models[label]
            down, same = m["downsampling_worst_error"]["mean"], m["same_shape_worst_error"]["mean"]
            word = "more than" if down > same else "less than" if down < same else "about as much"
            assert f"Deleting a downsampling block hurts {label} {word}" in f["text"]
            assert f"at worst {100 * down:.1f}% test error" in f["text"]


def test_a_rerun_trains_and_measures_nothing(toy):
    out, argv, _ = toy
    before = read_json(out / "results.json")
    text = run_cli(argv)
    assert lines_ending(text, ": training") == [] and lines_ending(text, ": computing") == []
    assert len(lines_ending(text, "finished earlier, skipped")) == 4
    assert len(lines_ending(text, "lesions: computed earlier, read back")) == 4
    assert read_json(out / "results.json")["models"] == before["models"]


def test_nets_given_with_runs_measure_the_same(toy, tmp_path):
    out, _, _ = toy
    runs = [str(out / "plain14-seed0"), str(out / "resnet14-seed0" / "checkpoints" / "last.pt")]
    argv = ["experiment", "lesion", "--runs", *runs, *MEASURE, "--out", str(tmp_path)]
    text = run_cli(argv)
    assert "measuring the nets of --runs" in text and lines_ending(text, ": training") == []
    given = read_json(tmp_path / "results.json")
    trained = {m["model"]: m for m in read_json(out / "results.json")["models"]}
    assert [m["model"] for m in given["models"]] == ["plain14", "resnet14"]
    for m in given["models"]:
        assert m == trained[m["model"]]
    assert given["training"] == [] and "--runs" in given["command"]


def test_bad_runs_and_settings_are_one_clear_error(toy, capsys, tmp_path):
    out, _, _ = toy
    twice = [str(out / "plain8-seed0")] * 2
    assert main(["experiment", "lesion", "--runs", *twice, "--out", str(tmp_path)]) == 2
    assert "--runs: two nets are named 'plain8-seed0'" in capsys.readouterr().err
    assert (
        main(["experiment", "lesion", "--runs", str(tmp_path / "none"), "--out", str(tmp_path)])
        == 2
    )
    assert "checkpoint not found" in capsys.readouterr().err
    given = ["experiment", "lesion", "--runs", str(out / "plain8-seed0"), "--out", str(tmp_path)]
    for extra, flag in ((["--iterations", "5"], "--iterations"), (["--set", "seed=1"], "--set")):
        assert main([*given, *extra]) == 2
        err = capsys.readouterr().err
        assert f"{flag}: --runs gives trained nets, each measured on its own data" in err
    assert main([*given, "--depths", "9"]) == 2  # checked even where --runs makes it unused
    assert "6n+2" in capsys.readouterr().err
    assert main(["experiment", "lesion", "--draws", "0", "--out", str(tmp_path)]) == 2
    assert "--draws must be at least 1; got 0" in capsys.readouterr().err
    assert tuple(DEPTHS["lesion"]) == lesion.DEFAULT_DEPTHS
    assert vars(lesion.LesionSettings()) == LESION


def _m(label="resnet56", base=0.1, same_rise=0.02, same_worst=0.15, down_worst=0.5, **kw):
    blocks = ("layer1.0", "layer2.0", "layer2.1")
    changes = (False, True, False)
    single = kw.pop("single", (same_worst, down_worst, same_worst - 0.01))
    return LesionModel(
        label=label,
        depth=56,
        residual=label.startswith("resnet"),
        seeds=(0,),
        blocks=blocks,
        changes_shape=changes,
        baseline=spread([base]),
        single=tuple(spread([e]) for e in single),
        same_shape_rise=spread([same_rise]),
        same_shape_worst=spread([same_worst]),
        downsampling_worst=spread([down_worst]),
        deletions=kw.pop("deletions", {}),
        swaps={},
        gradient_length=spread(kw.pop("glen", [5.0])),
        paths_mean_length=13.5,
        path_norm_short=spread(kw.pop("short", [1.0])),
        path_norm_long=spread(kw.pop("long", [0.01])),
    )


def test_sentences_flip_with_the_numbers():
    plain, res = _m("plain56", same_rise=0.6), _m("resnet56", same_rise=0.01)
    assert "hurts plain56 more than resnet56" in same_shape_pair(plain, res).text
    assert (
        "hurts plain56 less than resnet56"
        in same_shape_pair(_m("plain56", same_rise=0.0), res).text
    )
    hurts = worst_deletion(_m(down_worst=0.5, same_worst=0.15))
    assert "hurts resnet56 more than deleting any same-shape block: at worst 50.0%" in hurts.text
    assert "(layer2.0)" in hurts.text and "(layer1.0)" in hurts.text
    mild = worst_deletion(_m(down_worst=0.12, same_worst=0.15, single=(0.15, 0.12, 0.14)))
    assert "hurts resnet56 less than deleting any same-shape block" in mild.text
    rising = {1: spread([0.1]), 2: spread([0.2]), 3: spread([0.4])}
    up = k_trend(_m(), rising, "deleting", "random same-shape blocks", "k_trend")
    assert "raises the test error of resnet56: 10.0% with k = 1, 40.0% with k = 3" in up.text
    assert "rises at 2 of 2 steps of k" in up.text
    falling = {1: spread([0.4]), 2: spread([0.45]), 3: spread([0.1])}
    down = k_trend(_m(), falling, "deleting", "random same-shape blocks", "k_trend")
    assert "lowers the test error" in down.text and "rises at 1 of 2 steps" in down.text
    assert "from paths shorter than the typical path" in short_paths(_m(glen=[5.0])).text
    assert "from paths longer than the typical path" in short_paths(_m(glen=[20.0])).text
    level = short_paths(_m(glen=[10.0, 17.0]))  # mean 13.5 +- 4.9 against 13.5
    assert "about as long (within the seeds' spread)" in level.text
    decay = path_decay(_m(short=[1.0], long=[0.00712]))
    assert "one path shrinks with its length: 1 for the shortest path, 0.00712 for" in decay.text
    assert "one path grows with its length" in path_decay(_m(short=[0.01], long=[1.0])).text


@pytest.mark.slow
def test_a_killed_experiment_resumes_without_measuring_a_finished_net_again(toy, tmp_path):
    out, _, _ = toy
    runs = [str(out / net) for net in NETS]
    argv = ["experiment", "lesion", "--runs", *runs, *MEASURE, "--out", str(tmp_path)]
    kept = tmp_path / "lesion"
    kill_when(argv, lambda: kept.is_dir() and any(kept.glob("*.json")))
    finished = sorted(p.stem for p in kept.glob("*.json"))
    assert 1 <= len(finished) < 4, finished  # killed between its nets
    text = run_cli(argv)
    read_back = sorted(line.split(":")[0] for line in lines_ending(text, "read back"))
    assert read_back == finished
    assert len(lines_ending(text, "lesions: computing")) == 4 - len(finished)
    trained = {m["model"]: m for m in read_json(out / "results.json")["models"]}
    for m in read_json(tmp_path / "results.json")["models"]:
        assert m == trained[m["model"]]
