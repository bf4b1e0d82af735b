"""``resnetlab data`` and the data options: output, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest

from resnetlab.cli import main
from resnetlab.data import list_datasets, load_dataset
from resnetlab.errors import DataError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / ".cache"))


def test_list_names_every_dataset(capsys):
    assert main(["data", "list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == list_datasets()


def test_info_on_digits(capsys):
    assert main(["data", "info", "--image-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "classes    10: 0, 1, 2" in out and "images     1 x 16 x 16" in out
    assert "train      1437 images" in out and "test       360 images" in out
    assert main(["data", "info", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    info = load_dataset("digits").info
    assert record["counts"] == {"train": 1437, "test": 360}
    assert record["mean"] == list(info.mean) and record["std"] == list(info.std)
    assert sum(record["per_class"]["test"]) == 360


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "cifar10", "--data-dir", "{tmp}/none"], "none: found neither"),
        (["--data", "signs", "--data-dir", "{tmp}"], "train_signs.h5: file not found"),
        (["--data", "folder"], "--data folder needs --data-dir"),
        (["--data", "folder", "--data-dir", "{tmp}/none"], "none: folder not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["data", "info", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("resnetlab: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(DataError, match="found neither"):
        main(["--debug", "data", "info", "--data", "cifar10", "--data-dir", str(tmp_path)])


def test_strict_folder_with_a_non_image_file(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "a").mkdir()
    Image.linear_gradient("L").resize((40, 40)).convert("RGB").save(tmp_path / "a" / "x.png")
    (tmp_path / "a" / "readme.md").write_text("hi")
    argv = ["data", "info", "--data", "folder", "--data-dir", str(tmp_path), "--image-size", "32"]
    assert main([*argv, "--strict"]) == 2
    assert "readme.md: not an image file" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="readme.md"):
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert "train      1 images" in out
    assert "test       absent (" in out and "holds out no image" in out  # one image: all train


def test_download_refuses_datasets_without_an_archive(capsys):
    assert main(["data", "download", "--data", "digits"]) == 2
    assert "only cifar10, cifar100 can be downloaded" in capsys.readouterr().err
