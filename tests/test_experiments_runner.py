"""The experiment machinery without training: recipes, run folders, results, verdicts, CLI."""

from __future__ import annotations

import dataclasses
import json
import shlex

import pytest

from resnetlab import ConfigError
from resnetlab.cli import build_parser, main
from resnetlab.cli.experiment import command_line
from resnetlab.experiments import degradation
from resnetlab.experiments.results import ModelResult, collect, markdown_table, percent, spread
from resnetlab.experiments.runner import Recipe, RunSpec, check_same_config, config_for, is_finished


def test_recipe_precedence_preset_defaults_sets_values_run():
    recipe = Recipe(
        preset="fast",
        defaults={"optim.lr": 0.05, "batch_size": 32, "iterations": 10},
        sets=("batch_size=16", "optim.momentum=0.5"),
        values={"optim.momentum": 0.8},
    )
    run = RunSpec("plain8", 3, {"model.name": "cifar_plain", "model.overrides": {"depth": 8}})
    cfg = config_for(recipe, run)
    assert cfg.optim.lr == 0.05  # default over the preset's 0.2
    assert cfg.batch_size == 16  # --set over the default
    assert cfg.optim.momentum == 0.8  # explicit option over --set
    assert cfg.optim.nesterov is True  # the preset where nobody says otherwise
    assert (cfg.iterations, cfg.epochs) == (10, None)  # giving iterations clears the epochs
    assert cfg.model.name == "cifar_plain" and cfg.model.overrides == {"depth": 8}
    assert cfg.seed == 3 and cfg.eval_train_at_end is True


def test_with_defaults_and_run_folder():
    recipe = Recipe().with_defaults(data__image_size=8, iterations=5)
    assert recipe.defaults == {"data.image_size": 8, "iterations": 5}
    assert RunSpec("resnet56", 2).folder == "resnet56-seed2"


def test_a_finished_run_with_another_config_is_refused(tmp_path):
    recipe = Recipe(defaults={"iterations": 5})
    run = RunSpec("resnet8", 0, {"model.name": "cifar_resnet", "model.overrides": {"depth": 8}})
    cfg = config_for(recipe, run)
    folder = tmp_path / run.folder
    folder.mkdir()
    assert not is_finished(folder)
    summary = {"config": dataclasses.asdict(cfg), "final": {}}
    (folder / "summary.json").write_text(json.dumps(summary))
    assert is_finished(folder)
    check_same_config(folder, cfg)  # the same config: fine
    other = config_for(dataclasses.replace(recipe, values={"iterations": 7}), run)
    with pytest.raises(ConfigError, match=r"iterations=5, not 7; choose another --out"):
        check_same_config(folder, other)


def test_a_run_saved_before_a_config_field_existed_had_its_default(tmp_path):
    run = RunSpec("resnet8", 0, {"model.name": "cifar_resnet", "model.overrides": {"depth": 8}})
    cfg = config_for(Recipe(defaults={"iterations": 5}), run)
    saved = dataclasses.asdict(cfg)
    del saved["optim"]["nesterov"], saved["keep_last"]  # fields this run's version lacked
    folder = tmp_path / run.folder
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"config": saved, "final": {}}))
    check_same_config(folder, cfg)  # both at their defaults: the same run
    other = config_for(Recipe(defaults={"iterations": 5, "keep_last": 9}), run)
    with pytest.raises(ConfigError, match=r"keep_last=3, not 9"):
        check_same_config(folder, other)


def _summary(train, test):
    return {"final": {"train_error": train, "test_error": test}}


def test_collect_groups_seeds_and_computes_mean_and_sample_std():
    summaries = {
        RunSpec("plain8", 0): _summary(0.10, 0.20),
        RunSpec("resnet8", 0): _summary(0.05, 0.10),
        RunSpec("plain8", 1): _summary(0.30, 0.40),
    }
    plain, resnet = collect(summaries)
    assert plain.label == "plain8" and plain.seeds == (0, 1)
    assert plain.folders == ("plain8-seed0", "plain8-seed1")
    assert plain.train_mean == pytest.approx(0.20)
    assert plain.train_std == pytest.approx(0.1414213562)  # sqrt(((0.1)^2 + (0.1)^2) / 1)
    assert resnet.train_std == 0.0 and spread([0.5]) == 0.0
    table = markdown_table([plain, resnet])
    assert "| plain8 | 2 | 20.00 ± 14.14 | 30.00 ± 14.14 |" in table
    assert "| resnet8 | 1 | 5.00 | 10.00 |" in table
    assert percent(0.123456, 0.0, 1) == "12.35"


def _result(label, trains):
    return ModelResult(label, tuple(range(len(trains))), (), tuple(trains), tuple(trains))


@pytest.mark.parametrize(
    ("plain20", "plain56", "resnet56", "degraded", "fixed"),
    [
        ([0.10, 0.12], [0.40, 0.44], [0.05, 0.06], True, True),
        ([0.10, 0.12], [0.11, 0.13], [0.05, 0.06], False, True),  # gap within the spread
        ([0.10, 0.12], [0.40, 0.44], [0.41, 0.43], True, False),
    ],
)
def test_verdict(plain20, plain56, resnet56, degraded, fixed):
    results = [
        _result("plain20", plain20),
        _result("plain56", plain56),
        _result("resnet20", [0.1, 0.1]),
        _result("resnet56", resnet56),
    ]
    v = degradation.judge(results, [20, 56])
    assert (v.degradation, v.fixed) == (degraded, fixed)
    assert v.lines[0].startswith(f"degradation shown: {'yes' if degraded else 'no'}")
    assert v.lines[1].startswith(f"fix shown: {'yes' if fixed else 'no'}")
    assert "plain56 " in v.lines[0] and "%" in v.lines[1]


def test_plan_orders_plain_then_resnet_and_checks_depths():
    runs = degradation.plan([56, 20], [0, 1])
    assert [r.folder for r in runs][:4] == [
        "plain20-seed0",
        "plain20-seed1",
        "plain56-seed0",
        "plain56-seed1",
    ]
    assert runs[-1].values == {"model.name": "cifar_resnet", "model.overrides": {"depth": 56}}
    with pytest.raises(ConfigError, match="--depths: 21 is not 6n\\+2"):
        degradation.plan([20, 21], [0])


def test_command_line_round_trips():
    argv = [
        "experiment",
        "degradation",
        "--depths",
        "8",
        "14",
        "--iterations",
        "6",
        "--set",
        "optim.lr=0.05",
        "--no-verify",
        "--seeds",
        "2",
        "--out",
        "x y",
    ]
    args = build_parser().parse_args(argv)
    command = command_line(args)
    assert command.startswith("resnetlab experiment degradation --depths 8 14 ")
    assert "--out 'x y'" in command and "--set optim.lr=0.05" in command
    again = build_parser().parse_args(shlex.split(command)[1:])
    assert {k: v for k, v in vars(again).items() if k != "experiment_parser"} == {
        k: v for k, v in vars(args).items() if k != "experiment_parser"
    }


@pytest.mark.parametrize(
    ("argv", "shown", "absent"),
    [
        (["lesion", "--draws", "2"], "--depths 20 56 --draws 2 --data digits", "--runs"),
        (["landscape", "--runs", "a b", "c"], "--runs 'a b' c", "None"),
        (["signal", "--depths", "8"], "--depths 8 --norms bn none --data digits", "--points"),
    ],
)
def test_the_command_of_an_analysis_round_trips_and_names_no_unset_option(argv, shown, absent):
    args = build_parser().parse_args(["experiment", *argv])
    command = command_line(args)
    assert shown in command and absent not in command, command
    again = build_parser().parse_args(shlex.split(command)[1:])
    assert {k: v for k, v in vars(again).items() if k != "experiment_parser"} == {
        k: v for k, v in vars(args).items() if k != "experiment_parser"
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--depths", "9"], "--depths: 9 is not 6n+2"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--set", "optim.nope=1"], "unknown key 'optim.nope'"),
    ],
)
def test_cli_errors_are_one_line_with_exit_code_2(argv, message, tmp_path, capsys):
    code = main(["experiment", "degradation", "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("resnetlab: error: ") and message in err
    assert err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_unknown_experiment_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "nope"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "item", ["seed=5", "model.name=resnet20", "model.overrides.depth=20", "eval_train_at_end=false"]
)
def test_a_set_of_a_key_every_run_sets_is_refused(item):
    """Each run sets its seed and model: a --set of them would be silently replaced."""
    run = RunSpec("resnet8", 0, {"model.name": "cifar_resnet", "model.overrides": {"depth": 8}})
    with pytest.raises(ConfigError, match=rf"--set {item.split('=')[0]}: every run of an"):
        config_for(Recipe(sets=(item,)), run)
