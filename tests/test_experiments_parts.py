"""The pieces the analysis experiments share: kept parts, spreads and comparisons, image draws."""

from __future__ import annotations

import json

import pytest
import torch

from resnetlab.data import load_dataset
from resnetlab.errors import ConfigError, DataError
from resnetlab.experiments.batches import DRAW_SEED, draw, draw_batches, tensors_digest
from resnetlab.experiments.findings import Finding, Spread, capital, choose, compare, spread
from resnetlab.experiments.parts import Part, run_parts


def square(x: int) -> dict:
    """A part's computation (module level: spawned processes find it by name)."""
    return {"x": x, "square": x * x, "threads": torch.get_num_threads()}


def _parts(tmp_path, values=(1, 2, 3), scale=1):
    return [
        Part(
            f"p{v}",
            tmp_path / "parts" / f"p{v}.json",
            {"x": v, "scale": scale},
            square,
            (v,),
            cost=v,
        )
        for v in values
    ]


def test_parts_are_kept_read_back_and_only_missing_ones_computed(tmp_path):
    lines = []
    first = run_parts(_parts(tmp_path), log=lines.append, threads=1)
    assert [r["square"] for r in first] == [1, 4, 9] and all(r["threads"] == 1 for r in first)
    assert lines == ["p1: computing", "p2: computing", "p3: computing"]
    kept = json.loads((tmp_path / "parts" / "p2.json").read_text())
    assert kept["settings"] == {"x": 2, "scale": 1} and kept["record"]["square"] == 4

    lines.clear()
    (tmp_path / "parts" / "p2.json").unlink()  # as if killed while p2 was computed
    again = run_parts(_parts(tmp_path), log=lines.append)
    assert lines == [
        "p1: computed earlier, read back",
        "p2: computing",
        "p3: computed earlier, read back",
    ]
    assert again == first

    lines.clear()
    assert run_parts(_parts(tmp_path), log=lines.append) == first
    assert all(line.endswith("read back") for line in lines)


def test_a_kept_part_of_other_settings_or_a_damaged_one_is_refused(tmp_path):
    run_parts(_parts(tmp_path), log=lambda _: None)
    with pytest.raises(ConfigError, match=r"p1\.json holds a part computed with scale=1, not 2"):
        run_parts(_parts(tmp_path, scale=2), log=lambda _: None)
    (tmp_path / "parts" / "p1.json").write_text('{"points": []}')
    with pytest.raises(DataError, match=r"p1\.json: not a part file of this experiment"):
        run_parts(_parts(tmp_path), log=lambda _: None)
    with pytest.raises(ConfigError, match="--jobs must be at least 1"):
        run_parts(_parts(tmp_path), jobs=0)


def test_the_callers_thread_count_is_restored(tmp_path):
    before = torch.get_num_threads()
    run_parts(_parts(tmp_path, (5,)), threads=1, log=lambda _: None)
    assert torch.get_num_threads() == before


@pytest.mark.slow
def test_jobs_compute_parts_in_processes_of_their_own(tmp_path):
    lines = []
    records = run_parts(_parts(tmp_path, (1, 2, 3, 4)), jobs=2, threads=1, log=lines.append)
    assert [r["square"] for r in records] == [1, 4, 9, 16]
    assert len(list((tmp_path / "parts").glob("*.json"))) == 4
    assert run_parts(_parts(tmp_path, (1, 2, 3, 4)), log=lambda _: None) == records


def test_spread_and_compare_follow_the_seeds_spread():
    one, other = spread([0.5]), spread([0.4])
    assert compare(one, other) == 1 and compare(other, one) == -1  # one seed: any gap counts
    assert compare(one, spread([0.5])) == 0
    wide = spread([0.3, 0.7])  # mean 0.5, std 0.283
    assert compare(wide, spread([0.4])) == 0 and compare(wide, spread([0.1])) == 1
    assert wide.text(2) == "0.50 ± 0.28" and one.text(1, 100, "%") == "50.0%"
    assert spread([0.00712, 0.00713]).text(3, style="g") == "0.00712 ± 7.07e-06"
    assert Spread(()).to_dict()["mean"] is None
    assert choose(-1, "up", "down", "level") == "down" and capital("with BN") == "With BN"
    record = Finding("text", {"a": float("nan"), "n": 3}, "kind").to_dict()
    assert record == {"kind": "kind", "text": "text", "numbers": {"a": None, "n": 3}}


def test_draws_are_the_same_images_for_every_call_and_normalised(tmp_path):
    ds = load_dataset("digits", "train", image_size=8)
    images, labels = draw(ds, 50)
    again, again_labels = draw(ds, 50)
    assert torch.equal(images, again) and torch.equal(labels, again_labels)
    assert images.shape == (50, 1, 8, 8) and len(set(labels.tolist())) > 3  # a seeded mix
    everything, _ = draw(ds, 10**6)
    assert len(everything) == len(ds)
    mean, std = ds.info.normalization()
    pixels = ds.images[:].float() / 255  # the whole split: what the statistics were made from
    assert abs(((pixels - mean[0]) / std[0]).mean().item()) < 1e-3
    batches = draw_batches(ds, 50, 16)
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    assert torch.equal(torch.cat([x for x, _ in batches]), images)
    assert tensors_digest(images, labels) == tensors_digest(again, again_labels)
    assert tensors_digest(images, labels) != tensors_digest(images[1:], labels[1:])
    assert DRAW_SEED == 0
