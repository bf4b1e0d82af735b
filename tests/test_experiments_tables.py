"""cifar-table (Table 6) and shortcuts (Table 3) at toy scale; the paper preset cut to length."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch

from resnetlab.analysis.records import read_json
from resnetlab.cli import main
from resnetlab.experiments.cifar_table import update_block
from resnetlab.experiments.results import percent
from resnetlab.experiments.runner import Recipe, RunSpec, config_for, fit_preset_to_length

RUN = RunSpec("resnet8", 0, {"model.name": "cifar_resnet", "model.overrides": {"depth": 8}})


def _main(argv) -> str:
    buffer = io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(buffer):
            assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    return buffer.getvalue()


def test_paper_preset_scaled_to_a_short_run():
    recipe = fit_preset_to_length(Recipe("cifar-paper", values={"iterations": 640}), RUN)
    cfg = config_for(recipe, RUN)
    assert cfg.schedule.milestones == [320, 480]  # 32k and 48k of 64k
    # 1000 * 640 / 64000 = 10 iterations, but at most 16 evaluations: every 40
    assert (cfg.eval_every, cfg.log_every, cfg.checkpoint_every) == (40, 1, 20)
    # what the user set stays as it is
    mine = Recipe("cifar-paper", sets=("schedule.milestones=[100]",), values={"iterations": 640})
    assert config_for(fit_preset_to_length(mine, RUN), RUN).schedule.milestones == [100]
    # the paper's own length, or no preset: nothing to scale
    full = Recipe("cifar-paper")
    assert fit_preset_to_length(full, RUN) == full
    assert config_for(fit_preset_to_length(Recipe(), RUN), RUN).schedule.milestones == []


def test_update_block_replaces_in_place_and_keeps_the_rest(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\n## Other section\n\nkept\n")
    update_block(path, "cifar-table: digits, 4 iterations", "first")
    update_block(path, "cifar-table: digits, 8 iterations", "second")
    update_block(path, "cifar-table: digits, 4 iterations", "third")
    text = path.read_text()
    assert text.startswith("# Results\n\n## Other section\n\nkept\n")
    assert "first" not in text and text.count("third") == 1 and text.count("second") == 1
    assert text.index("third") < text.index("second")  # replaced where it was
    update_block(tmp_path / "new.md", "x", "body")
    assert (tmp_path / "new.md").read_text() == (
        "<!-- resnetlab x -->\nbody\n<!-- end resnetlab x -->\n"
    )


@pytest.mark.slow
def test_cifar_table_writes_rows_into_results_md(tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n")
    argv = [
        "experiment",
        "cifar-table",
        "--depths",
        "8",
        "14",
        "--data",
        "digits",
        "--image-size",
        "8",
        "--iterations",
        "4",
        "--batch-size",
        "32",
        "--out",
        str(tmp_path / "out"),
        "--results-md",
        str(md),
    ]
    text = _main(argv)
    assert f"{md}: table for digits, 4 iterations written" in text
    results = read_json(tmp_path / "out" / "results.json")
    block = md.read_text()
    assert block.count("<!-- resnetlab cifar-table: digits, 4 iterations -->") == 1
    # 1-channel input, 10 classes: stem 144 + 32, fc 650; per block of width w and input c:
    # 9cw + 9w^2 convs + 4w BN. ResNet-8: 74,352 + 650 = 75,002; ResNet-14 adds 97,216.
    for model, params, paper in zip(
        results["models"], ("75,002", "172,218"), ("-", "-"), strict=True
    ):
        summary = read_json(tmp_path / "out" / model["folders"][0] / "summary.json")
        assert model["test_error"] == [summary["final"]["test_error"]]
        test = percent(model["test_error_mean"], 0.0, 1)
        train = percent(model["train_error_mean"], 0.0, 1)
        assert f"| {model['model']} | {params} | 1 | {train} | {test} | {paper} |" in block
    assert "Command: `resnetlab experiment cifar-table --depths 8 14" in block
    assert "Machine: " in block and "torch" in block
    config = read_json(tmp_path / "out" / "resnet8-seed0" / "summary.json")["config"]
    assert config["schedule"]["milestones"] == [2, 3] and config["preset"] == "cifar-paper"
    # a rerun skips both runs and replaces the block instead of adding one
    _main(argv)
    assert md.read_text().count("cifar-table: digits, 4 iterations -->") == 2  # begin + end


@pytest.mark.slow
def test_shortcut_options_at_toy_scale(tmp_path):
    argv = [
        "experiment",
        "shortcuts",
        "--depth",
        "8",
        "--data",
        "digits",
        "--image-size",
        "8",
        "--iterations",
        "3",
        "--batch-size",
        "32",
        "--out",
        str(tmp_path),
    ]
    _main(argv)
    results = read_json(tmp_path / "results.json")
    assert [m["model"] for m in results["models"]] == ["resnet8-A", "resnet8-B", "resnet8-C"]
    params = results["parameters"]
    assert params["resnet8-A"] < params["resnet8-B"] < params["resnet8-C"]
    # independent count: option B adds two 1x1 projections + BN (16->32, 32->64)
    b_extra = 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64
    assert params["resnet8-B"] - params["resnet8-A"] == b_extra
    for model in results["models"]:
        summary = read_json(tmp_path / model["folders"][0] / "summary.json")
        assert summary["config"]["model"]["overrides"]["shortcut"] == model["model"][-1]
        assert model["train_error"] == [summary["final"]["train_error"]]
    assert (tmp_path / "curves.svg").is_file() and (tmp_path / "report.html").is_file()
