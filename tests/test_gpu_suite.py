"""benchmarks/gpu_suite.py: its dry run on the CPU writes the record and report a GPU run writes,
within its budget; and the zip that carries the CIFAR-10 JPEG copy to the GPU machine."""

from __future__ import annotations

import json
import platform
import re
import stat
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from bench_support import REPO, load_benchmark, table_rows
from resnetlab.errors import DataError

suite = load_benchmark("gpu_suite")  # puts benchmarks/ on sys.path for its siblings
pack = load_benchmark("pack_cifar_jpeg")
gpu_cifar = load_benchmark("gpu_cifar")
CLASSES, TRAIN, TEST = 10, 6, 2  # images per class
OUT_NAME = re.compile(r"^[A-Za-z0-9._-]+$")  # what comes back from the GPU machine's $OUT


@pytest.fixture(scope="module")
def jpeg_copy(tmp_path_factory):
    """A CIFAR-10-like JPEG folder (10 classes, 32x32) and its zip; (folder, zip)."""
    base = tmp_path_factory.mktemp("copy")
    rng = np.random.default_rng(0)
    for split, n in (("train", TRAIN), ("test", TEST)):
        for c in range(CLASSES):
            folder = base / "cifar10-jpeg" / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.jpg", quality=90)
    archive = base / "cifar10-jpeg.zip"
    pack.pack(base / "cifar10-jpeg", archive)
    return base / "cifar10-jpeg", archive


def _check_rates(rows: list[dict], rounds: int) -> None:
    """Each row's median and spread come from its rounds; the ratios from the medians."""
    base = rows[0]["img_per_s"]["median"]
    assert rows[0]["ratio"] == 1.0
    for r in rows:
        s = r["img_per_s"]
        assert s["n"] == len(r["round_img_per_s"]) == rounds
        assert s["min"] == min(r["round_img_per_s"]) <= s["median"] <= s["max"]
        assert r["ratio"] == pytest.approx(s["median"] / base)
        assert r["first_step_s"] > 0


@pytest.mark.slow
def test_dry_run_writes_a_consistent_record_and_report(jpeg_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))  # restored after the test
    out = tmp_path / "out"
    argv = ["--dry-run", "--out", str(out), "--cifar-zip", str(jpeg_copy[1]), "--budget-s", "900"]
    assert suite.main(argv) == 0
    record = json.loads((out / "gpu_suite.json").read_text())
    md = (out / "gpu_suite.md").read_text()
    env, parts = record["environment"], record["parts"]
    assert record["dry_run"] and env["device"] == "cpu" and env["torch"] == torch.__version__
    assert env["python"] == platform.python_version() and "--dry-run" in env["command"]
    assert record["budget"]["total_s"] == 900 and record["budget"]["used_s"] <= 900
    assert list(parts) == ["pytest", "resnet50", "cifar"]
    for part in parts.values():
        assert part["status"] == "ok" and part["seconds"] <= part["limit_s"]

    tests = (REPO / "tests" / "test_gpu.py").read_text().count("\ndef test_")
    py = parts["pytest"]
    assert py["tests"] == tests and py["failed"] == py["errors"] == 0
    if not torch.cuda.is_available():
        assert py["skipped"] == tests and py["passed"] == 0  # every CUDA test skips cleanly

    r50 = parts["resnet50"]
    rows = r50["train"]
    assert [r["setting"] for r in rows] == ["eager fp32", "bf16 + channels-last"]
    assert [r["precision"] for r in rows] == ["fp32", "bf16"]
    assert r50["skipped"][0].startswith("bf16 + channels-last + torch.compile: dry run")
    _check_rates(rows, rounds=suite.DRY.rounds)
    for r in rows:
        flops = r50["train_flop_per_image"] * r["img_per_s"]["median"]
        assert r["achieved_flop_per_s"] == pytest.approx(flops)
    assert [r["batch_size"] for r in r50["inference"]] == list(suite.DRY.infer_batches)
    for r in r50["inference"]:
        assert list(r["variants"]) == ["eager", "folded", "bf16"]
        assert all(v["status"] == "ok" for v in r["variants"].values())
        assert r["variants"]["eager"]["speedup"] == 1.0

    cifar = parts["cifar"]
    assert cifar["data"]["unpack"]["files"] == CLASSES * (TRAIN + TEST)
    assert (cifar["data"]["train"], cifar["data"]["test"]) == (CLASSES * TRAIN, CLASSES * TEST)
    _check_rates(cifar["rates"], rounds=suite.DRY.rounds)
    plan, run = cifar["plan"], cifar["paper_run"]
    chosen = next(r for r in cifar["rates"] if r["setting"] == plan["setting"])
    assert chosen["img_per_s"]["median"] == max(r["img_per_s"]["median"] for r in cifar["rates"])
    iterations, batch = suite.DRY.paper_iterations, suite.DRY.cifar_batch
    assert plan["train_s"] == pytest.approx(iterations * batch / chosen["img_per_s"]["median"])
    assert plan["fits"] and run["status"] == "ok" and run["iterations"] == iterations
    summary = json.loads((out / "paper_run_summary.json").read_text())
    assert run["test_accuracy"] == 1 - summary["final"]["test_error"]

    assert md.startswith("# GPU suite") and "**DRY RUN**" in md and env["command"] in md
    sections = {s.split("\n", 1)[0][:2]: s for s in md.split("\n## ")}
    for section, table in (("2.", rows), ("3.", cifar["rates"])):
        cells = {row[0]: row for row in table_rows(sections[section])}
        for r in table:
            assert cells[r["setting"]][1] == f"{r['img_per_s']['median']:,.0f}"
            assert cells[r["setting"]][3] == f"**{r['ratio']:.2f}x**"
    assert f"test accuracy {100 * run['test_accuracy']:.2f}%" in md
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and all(OUT_NAME.match(f) for f in files)  # what $OUT brings back
    assert {"gpu_suite.json", "gpu_suite.md", "pytest.log", "pytest.xml"} <= set(files)


def test_a_budget_too_small_skips_every_part_and_says_why(tmp_path):
    out = tmp_path / "out"
    argv = ["--dry-run", "--out", str(out), "--budget-s", "1", "--cifar-zip", str(tmp_path / "no")]
    assert suite.main(argv) == 0  # skipping is not failing
    record = json.loads((out / "gpu_suite.json").read_text())
    assert record["budget"]["used_s"] <= 1
    for name, part in record["parts"].items():
        assert part["status"] == "skipped", name
        assert part["reason"].startswith(f"needs at least {suite.DRY.min_s[name]:.0f} s;")
    md = (out / "gpu_suite.md").read_text()
    assert md.count("**skipped**: needs at least") == 3


def test_each_part_leaves_the_later_parts_their_minimum():
    need = {"a": 10.0, "b": 20.0, "c": 30.0}
    assert suite.allowance("a", ["a", "b", "c"], 70.0, need) == (20.0, None)
    allowed, why = suite.allowance("a", ["a", "b", "c"], 55.0, need)
    assert allowed == 5.0 and why.startswith("needs at least 10 s; 5 s of the budget left")
    assert "keeping 50 s for the parts after it" in why
    assert suite.allowance("a", ["a", "c"], 55.0, need) == (25.0, None)  # b is not to run
    assert suite.allowance("c", ["a", "b", "c"], 31.0, need) == (31.0, None)  # the last: all


def test_a_failed_part_makes_the_exit_code_1_and_a_skipped_one_does_not():
    ok = {"parts": {"a": {"status": "ok"}, "b": {"status": "skipped"}}}
    assert suite.exit_code(ok) == 0
    for bad in ("failed", "error"):
        assert suite.exit_code({"parts": {"a": {"status": "ok"}, "b": {"status": bad}}}) == 1


def test_plan_paper_run_adds_the_start_the_steps_and_the_evaluations():
    common = {"iterations": 64000, "batch_size": 128, "evals": 64, "eval_s": 0.5, "final_s": 2.0}
    plan = gpu_cifar.plan_paper_run(10000.0, startup_s=20.0, left_s=1e9, **common)
    assert plan["train_s"] == pytest.approx(64000 * 128 / 10000)
    assert plan["estimate_s"] == pytest.approx(20 + 1.15 * (819.2 + 64 * 0.5 + 2.0))
    edge = plan["estimate_s"]
    assert gpu_cifar.plan_paper_run(10000.0, startup_s=20.0, left_s=edge, **common)["fits"]
    assert not gpu_cifar.plan_paper_run(10000.0, startup_s=20.0, left_s=edge - 1, **common)["fits"]


def test_pack_then_unpack_restores_the_folder_byte_for_byte(jpeg_copy, tmp_path):
    src, archive = jpeg_copy
    again = pack.pack(src, tmp_path / "again.zip")
    assert again["sha256"] == pack.sha256(archive)  # the same folder packs to the same bytes
    info = pack.unpack(archive, tmp_path / "out")
    assert info["files"] == again["files"] == CLASSES * (TRAIN + TEST)
    for path in src.rglob("*.jpg"):
        assert (tmp_path / "out" / path.relative_to(src)).read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    "name",
    ["../evil.jpg", "train/a/../../evil.jpg", "/abs/a/x.jpg", "train/a/x.txt", "val/a/x.jpg",
     "train/x.jpg", "train\\a\\x.jpg"],
)  # fmt: skip
def test_unpack_refuses_members_outside_the_layout(tmp_path, name):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("train/a/ok.jpg", b"\xff\xd8")
        z.writestr(name, b"\xff\xd8")
    with pytest.raises(DataError, match=re.escape(repr(name))):
        pack.unpack(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()  # checked before anything is written
    assert not (tmp_path / "evil.jpg").exists()


def test_unpack_refuses_links_and_damage(tmp_path):
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as z:
        info = zipfile.ZipInfo("train/a/x.jpg")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, "/etc/passwd")
    with pytest.raises(DataError, match="not a plain"):
        pack.unpack(link, tmp_path / "dest")
    torn = tmp_path / "torn.zip"
    torn.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError, match="corrupt zip"):
        pack.unpack(torn, tmp_path / "dest")


def test_pack_writes_nothing_over_the_limit(jpeg_copy, tmp_path):
    out = tmp_path / "big.zip"
    with pytest.raises(DataError, match="would exceed the 0 MiB"):
        pack.pack(jpeg_copy[0], out, limit=1000)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one
    assert pack.main(["--src", str(tmp_path / "missing"), "--out", str(out)]) == 2
