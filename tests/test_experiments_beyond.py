"""Section 5 of the lesson reads the analyses' records from any results.json that holds them."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_support import batches, toy_data, trained
from resnetlab.analysis.landscape import loss_landscape
from resnetlab.analysis.lesion import lesion_study
from resnetlab.analysis.records import read_json, write_json
from resnetlab.analysis.shattered import shattered_study
from resnetlab.errors import DataError
from resnetlab.experiments import beyond


@pytest.fixture(scope="module")
def records():
    images, _ = toy_data(2)
    shattered = shattered_study(images[0], images[1], depths=(8,), points=12, num_classes=4)
    study = lesion_study(trained(14), batches(32), draws=1, deletion_ks=[1], swap_ks=[1])
    land = loss_landscape(trained(8), batches(32)[:1], alphas=(-0.5, 0.0, 0.5), betas=(0.0, 0.5))
    return shattered, study, land


def test_records_are_found_wherever_the_file_keeps_them(records, tmp_path):
    shattered, study, land = records
    value = {
        "title": "x",
        "models": [{"label": "not a record"}],
        "nested": {"deeper": [study.to_dict(), {"landscape": land.to_dict()}]},
        "records": [r.to_dict() for r in shattered],
    }
    found = beyond.find_records(value)
    assert {k: len(v) for k, v in found.items()} == {"lesion": 1, "landscape": 1, "shattered": 2}


def test_a_record_comes_back_as_the_library_object(records, tmp_path):
    shattered, study, land = records
    write_json(tmp_path / "a" / "results.json", [r.to_dict() for r in (*shattered, study, land)])
    (found, missing) = beyond.read_folders([tmp_path / "a", tmp_path / "nothing"])
    assert missing == [tmp_path / "nothing"]
    back = {f.kind: f.records for f in found}
    assert [r.lag1 for r in back["shattered"]] == [r.lag1 for r in shattered]
    again = back["lesion"][0]
    assert again.blocks == study.blocks and again.changes_shape == study.changes_shape
    np.testing.assert_array_equal(again.single_error, study.single_error)
    assert again.deletion_errors == study.deletion_errors  # keys back to ints
    surface = back["landscape"][0]
    np.testing.assert_array_equal(surface.loss, land.loss)
    assert surface.betas.tolist() == [0.0, 0.5] and surface.to_dict() == land.to_dict()


def test_a_bad_record_names_its_file(records, tmp_path):
    _, study, _ = records
    bad = study.to_dict()
    bad["blocks"] = 3  # not a list
    path = write_json(tmp_path / "results.json", {"studies": [bad]})
    with pytest.raises(DataError, match=r"results\.json: the lesion record .* has a bad field"):
        beyond.read_folders([tmp_path])
    path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        beyond.read_folders([tmp_path])


def test_the_section_draws_what_ran_and_names_what_did_not(records, tmp_path):
    shattered, _, _ = records
    write_json(tmp_path / "s" / "results.json", {"records": [r.to_dict() for r in shattered]})
    found, missing = beyond.read_folders([tmp_path / "s", tmp_path / "lesion"])
    html, made = beyond.section(found, missing, tmp_path)
    assert "Shattered gradients (Balduzzi et al. 2017" in html
    assert (tmp_path / "beyond_lag1.png").is_file()
    assert [c.kind for c in made] == ["shattered"]
    assert (
        f"Not run for this report: lesion, landscape (no results.json with their records in "
        f"{tmp_path / 'lesion'})" in html
    )
    empty, none = beyond.section([], [tmp_path / "x"], tmp_path)
    assert none == [] and "Not run for this report: shattered, lesion, landscape" in empty
    assert read_json(tmp_path / "s" / "results.json")["records"][0]["label"] == "plain8"
