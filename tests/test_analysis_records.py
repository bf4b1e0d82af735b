"""Reading run records (metrics.jsonl, grad_norms.jsonl) and writing result files atomically."""

from __future__ import annotations

import json

import numpy as np
import pytest

from resnetlab import DataError
from resnetlab.analysis.curves import load_curves, mean_curves
from resnetlab.analysis.gradients import first_to_last_ratio, load_grad_norms, pick_iterations
from resnetlab.analysis.records import (
    from_json_numbers,
    json_numbers,
    read_json,
    read_jsonl,
    write_json,
)
from resnetlab.atomic import write_bytes


def _write_lines(path, records, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)


def _metrics(run, errors, tests):
    records = []
    for i, e in enumerate(errors, start=1):
        records.append({"kind": "train", "iteration": 10 * i, "epoch": 0, "train_error": e})
    for i, e in enumerate(tests, start=1):
        records.append({"kind": "eval", "iteration": 20 * i, "epoch": 0, "test_error": e})
    run.mkdir(parents=True, exist_ok=True)
    _write_lines(run / "metrics.jsonl", records)


def test_read_jsonl_skips_a_cut_last_line_but_not_a_bad_middle_one(tmp_path):
    path = tmp_path / "m.jsonl"
    _write_lines(path, [{"a": 1}, {"a": 2}], tail='{"a": 3, "b"')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        read_jsonl(path)
    with pytest.raises(DataError, match="file not found"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_write_atomic_leaves_no_temporary_file(tmp_path):
    path = write_json(tmp_path / "sub" / "r.json", {"x": [1, 2]})
    assert read_json(path) == {"x": [1, 2]}
    write_bytes(path, b"{}")
    assert read_json(path) == {}
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]


def test_curves_split_train_and_eval_records(tmp_path):
    _metrics(tmp_path / "a", [0.9, 0.5, 0.2], [0.6, 0.3])
    c = load_curves(tmp_path / "a")
    assert c.train_iterations.tolist() == [10, 20, 30]
    assert c.train_error.tolist() == [0.9, 0.5, 0.2]
    assert c.eval_iterations.tolist() == [20, 40]
    assert c.test_error.tolist() == [0.6, 0.3]


def test_mean_curves_average_seeds_on_the_common_prefix(tmp_path):
    _metrics(tmp_path / "a", [0.9, 0.5, 0.2], [0.6, 0.3])
    _metrics(tmp_path / "b", [0.7, 0.3], [0.4, 0.1])
    m = mean_curves([load_curves(tmp_path / "a"), load_curves(tmp_path / "b")])
    assert m.runs == 2
    assert m.train_error == pytest.approx([0.8, 0.4])
    assert m.test_error == pytest.approx([0.5, 0.2])


def test_a_run_without_records_is_an_error(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(DataError, match="no training or evaluation records"):
        load_curves(tmp_path)


def _grads(run, layers, rows):
    run.mkdir(parents=True, exist_ok=True)
    records = [
        {"iteration": it, "norms": dict(zip(layers, vals, strict=True))} for it, vals in rows
    ]
    _write_lines(run / "grad_norms.jsonl", records)


def test_grad_norms_matrix_is_layers_by_iterations(tmp_path):
    layers = ["conv1.weight", "layer1.0.conv1.weight", "fc.weight"]
    _grads(tmp_path, layers, [(1, [0.1, 0.2, 5.0]), (11, [0.3, 0.6, 7.0])])
    g = load_grad_norms(tmp_path)
    assert g.layers == tuple(layers)
    assert g.iterations.tolist() == [1, 11]
    assert g.norms.tolist() == [[0.1, 0.3], [0.2, 0.6], [5.0, 7.0]]
    assert g.at(9).tolist() == [0.3, 0.6, 7.0]  # the nearest record
    # first conv / last conv (fc left out): 0.5 at both records
    assert first_to_last_ratio(g) == pytest.approx(0.5)
    # per weight: 0.1 / sqrt(4) against 0.2 / sqrt(64) -> 0.05 / 0.025
    counts = {"conv1.weight": 4, "layer1.0.conv1.weight": 64, "fc.weight": 10}
    assert first_to_last_ratio(g, counts) == pytest.approx(2.0)


def test_grad_norm_records_must_name_the_same_layers(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    _write_lines(
        run / "grad_norms.jsonl",
        [{"iteration": 1, "norms": {"a": 1.0}}, {"iteration": 2, "norms": {"b": 1.0}}],
    )
    with pytest.raises(DataError, match="iteration 2 names other layers"):
        load_grad_norms(run)
    (run / "grad_norms.jsonl").write_text("")
    with pytest.raises(DataError, match="no gradient-norm records"):
        load_grad_norms(run)


def test_pick_iterations_spreads_over_the_run():
    its = np.arange(0, 1001, 10)
    picked = pick_iterations(its, 4)
    assert picked[0] == 0 and picked[-1] == 1000
    assert all(p in its for p in picked) and picked == sorted(set(picked))
    assert 3 <= len(picked) <= 5
    assert pick_iterations(np.array([5, 6]), 4) == [5, 6]


def test_json_numbers_turns_nan_and_infinities_into_null():
    values = np.array([[1.5, np.nan], [np.inf, -2.0]])
    assert json_numbers(values) == [[1.5, None], [None, -2.0]]
    assert json_numbers(np.float32(0.25)) == 0.25 and json_numbers(-np.inf) is None
    text = json.dumps(json_numbers(values), allow_nan=False)
    assert json.loads(text) == [[1.5, None], [None, -2.0]]


def test_from_json_numbers_reads_null_back_as_nan():
    back = from_json_numbers([[1.5, None], [None, -2.0]])
    assert back.dtype == np.float64 and back.shape == (2, 2)
    assert np.array_equal(np.isnan(back), [[False, True], [True, False]])
    assert back[0, 0] == 1.5 and back[1, 1] == -2.0
    assert np.isnan(from_json_numbers(None)) and from_json_numbers(3) == 3.0
    values = np.array([0.1, np.nan, 1e-300])
    again = from_json_numbers(json.loads(json.dumps(json_numbers(values))))
    assert np.array_equal(again, values, equal_nan=True)  # floats survive JSON exactly
