"""The degradation experiment at toy scale, through the CLI: files, numbers, skip and resume."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil

import pytest
import torch

from resnetlab.analysis.records import read_json, read_jsonl
from resnetlab.cli import build_parser, main
from resnetlab.cli.experiment import recipe_from_args
from resnetlab.experiments import degradation
from resnetlab.experiments.results import percent
from resnetlab.experiments.runner import run_all

TOY = [
    "--depths",
    "8",
    "14",
    "--iterations",
    "6",
    "--batch-size",
    "32",
    "--set",
    "eval_every=3",
    "--set",
    "log_every=2",
]
MODELS = ["plain8", "plain14", "resnet8", "resnet14"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """One toy run of the experiment, shared by the tests below: (out, argv, stdout)."""
    out = tmp_path_factory.mktemp("degradation")
    argv = ["experiment", "degradation", *TOY, "--out", str(out)]
    buffer = io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # toy-sized convs run fastest on one thread, and deterministically
    try:
        with contextlib.redirect_stdout(buffer):
            assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    return out, argv, buffer.getvalue()


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_writes_every_output(toy):
    out, _, first_output = toy
    for name in ("results.json", "results.md", "report.html", "responses.json"):
        assert (out / name).is_file(), name
    for stem in ("curves", "grad_heatmap_8", "grad_heatmap_14", "grad_profiles", "responses"):
        for suffix in (".png", ".svg"):
            assert (out / f"{stem}{suffix}").stat().st_size > 1000, stem + suffix
    for model in MODELS:
        run = out / f"{model}-seed0"
        for name in ("summary.json", "metrics.jsonl", "grad_norms.jsonl", "config.yaml"):
            assert (run / name).is_file(), f"{run.name}/{name}"
    assert re.search(
        r"^degradation shown: (yes|no) \(final training error plain14 ", first_output, re.M
    )
    assert re.search(r"^fix shown: (yes|no) \(", first_output, re.M)
    assert f"report: {out / 'report.html'}" in first_output


def test_numbers_equal_the_run_records(toy):
    out, _, _ = toy
    results = read_json(out / "results.json")
    page = (out / "report.html").read_text()
    markdown = (out / "results.md").read_text()
    assert [m["model"] for m in results["models"]] == MODELS
    for model in results["models"]:
        run = out / model["folders"][0]
        summary = read_json(run / "summary.json")
        last_eval = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "eval"][-1]
        assert model["train_error"] == [summary["final"]["train_error"]]
        assert model["test_error"] == [summary["final"]["test_error"]] == [last_eval["test_error"]]
        assert last_eval["iteration"] == summary["iterations"] == 6
        train = percent(model["train_error_mean"], 0.0, 1)
        test = percent(model["test_error_mean"], 0.0, 1)
        row = f"<tr><td>{model['model']}</td><td>1</td><td>{train}</td><td>{test}</td></tr>"
        assert row in page
        assert f"| {model['model']} | 1 | {train} | {test} |" in markdown
    assert results["command"].startswith("resnetlab experiment degradation --depths 8 14")
    assert results["command"] in page and "torch" in results["environment"]


def test_responses_and_gradients_cover_every_layer(toy):
    out, _, _ = toy
    responses = read_json(out / "responses.json")
    assert {k: len(v["std"]) for k, v in responses.items()} == {
        "plain8": 7,
        "plain14": 13,
        "resnet8": 7,
        "resnet14": 13,
    }
    records = read_jsonl(out / "plain14-seed0" / "grad_norms.jsonl")
    assert len(records[0]["norms"]) == 14  # 13 convs and the fc


def test_rerun_skips_finished_runs_and_gives_the_same_numbers(toy, capsys):
    out, argv, _ = toy
    before = read_json(out / "results.json")["models"]
    text = _run(argv, capsys)
    for model in MODELS:
        assert f"{model}-seed0: finished earlier, skipped" in text
    assert read_json(out / "results.json")["models"] == before


def test_an_unfinished_run_resumes_from_its_checkpoint(toy, tmp_path):
    out, argv, _ = toy
    args = build_parser().parse_args(argv)
    run = degradation.plan([14], [0])[-1]  # resnet14-seed0
    recipe = degradation.with_grad_norms(
        recipe_from_args(args, degradation.defaults("digits")), run
    )
    shutil.copytree(out / run.folder, tmp_path / run.folder)
    (tmp_path / run.folder / "summary.json").unlink()  # as if killed before its end
    lines = []
    summaries = run_all([run], recipe, tmp_path, log=lines.append)
    assert lines == ["resnet14-seed0: training"]
    original = read_json(out / run.folder / "summary.json")
    assert summaries[run]["final"] == original["final"]
    assert summaries[run]["iterations"] == original["iterations"]


def test_a_rerun_with_another_recipe_is_refused(toy, capsys):
    _, argv, _ = toy
    argv = [a if a != "6" else "7" for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "holds a finished run with iterations=6, not 7" in err


def test_plot_command_draws_the_runs(toy, tmp_path, capsys):
    out, _, _ = toy
    stem = tmp_path / "both"
    _run(
        ["plot", str(out / "plain14-seed0"), str(out / "resnet14-seed0"), "--out", str(stem)],
        capsys,
    )
    svg = (tmp_path / "both.svg").read_text()
    assert "plain14" in svg and "resnet14" in svg and "#6baed6" in svg  # resnet14's colour
    _run(
        [
            "plot",
            str(out / "plain8-seed0"),
            str(out / "plain14-seed0"),
            "--overlay",
            "--out",
            str(tmp_path / "one"),
        ],
        capsys,
    )
    assert (tmp_path / "one.png").stat().st_size > 1000
    assert {"#fdae6b", "#fd8d3c"} <= set(
        re.findall(r"#[0-9a-f]{6}", (tmp_path / "one.svg").read_text())
    )  # plain8's, plain14's colour
    assert main(["plot", str(tmp_path)]) == 2
    assert "not a run folder (no metrics.jsonl)" in capsys.readouterr().err


def test_results_json_is_plain_json(toy):
    out, _, _ = toy
    record = json.loads((out / "results.json").read_text())
    assert record["verdict"]["lines"] and set(record["gradient_first_to_last_ratio"]) == set(MODELS)


@pytest.mark.slow
def test_runs_side_by_side_give_the_same_numbers(toy, tmp_path, capsys):
    out, argv, _ = toy
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the toy run: each of the 2 jobs then gets 1 thread too
    try:
        text = _run([*argv[:-1], str(tmp_path), "--jobs", "2"], capsys)
    finally:
        torch.set_num_threads(threads)
    assert "training 4 runs, 2 at a time with 1 thread(s) each" in text
    for model in MODELS:
        assert re.search(rf"^{model}-seed0: done in \d+ s, final training error", text, re.M)
        log = (tmp_path / f"{model}-seed0" / "train.log").read_text()
        assert "[eval]" in log  # the run's progress went to its own log, not the terminal
        mine = read_json(tmp_path / f"{model}-seed0" / "summary.json")["final"]
        assert mine == read_json(out / f"{model}-seed0" / "summary.json")["final"]
