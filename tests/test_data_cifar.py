"""CIFAR-10/100 python version: real-format fixtures, md5 checks, safe unpickling, archives."""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import resource
import tarfile

import numpy as np
import pytest
import torch

from data_fixtures import (
    CIFAR10_NAMES,
    cifar_batch,
    make_tar_gz,
    py2_pickle,
    write_cifar10,
    write_cifar100,
)
from reliability_support import hang_guard
from resnetlab.cli import main
from resnetlab.data import cifar, load_dataset, make_loader
from resnetlab.data.archive import safe_extract
from resnetlab.data.files import md5_file
from resnetlab.data.unpickle import safe_load
from resnetlab.errors import DataError, MissingSplitError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))


def _fixture_md5s(monkeypatch, folder, archive=None):
    """Make the fixture's own checksums the 'official' ones."""
    spec = cifar.SPECS["cifar10"]
    table = {name: md5_file(folder / name) for name in spec.md5}
    new = dataclasses.replace(
        spec, md5=table, archive_md5=md5_file(archive) if archive else spec.archive_md5
    )
    monkeypatch.setitem(cifar.SPECS, "cifar10", new)


def test_images_follow_the_row_layout_and_labels_the_batches(tmp_path):
    folder = write_cifar10(tmp_path, n=4)
    train = load_dataset("cifar10", "train", root=tmp_path, verify=False)
    test = load_dataset("cifar10", "test", root=folder, verify=False)  # the batch folder itself
    assert (len(train), len(test)) == (20, 4) and train.info.classes == tuple(CIFAR10_NAMES)
    batch = cifar_batch(4, seed=3)  # data_batch_3 holds train samples 8..11
    row = batch[b"data"][1]
    image = train.images[9]
    np.testing.assert_array_equal(image[0].numpy(), row[:1024].reshape(32, 32))  # red
    np.testing.assert_array_equal(image[2].numpy(), row[2048:].reshape(32, 32))  # blue
    assert train.labels[8:12].tolist() == batch[b"labels"]
    assert test.labels.tolist() == cifar_batch(4, seed=0)[b"labels"]
    pixels = train.images.double().div(255).transpose(0, 1).reshape(3, -1)
    assert np.allclose(train.info.mean, pixels.mean(1).numpy(), atol=1e-12)
    assert test.info == train.info


def test_official_md5_mismatch_is_an_error_unless_no_verify(tmp_path, monkeypatch):
    folder = write_cifar10(tmp_path)
    with pytest.raises(
        DataError,
        match=r"batches\.meta: md5 \w+ does not match the official "
        r"5ff9c542aee3614f3951f8cda6e48888 .*--no-verify",
    ):
        load_dataset("cifar10", root=tmp_path)
    _fixture_md5s(monkeypatch, folder)
    assert len(load_dataset("cifar10", root=tmp_path)) == 20  # verified against matching sums
    (folder / "data_batch_2").write_bytes(py2_pickle(cifar_batch(4, seed=99)))
    with pytest.raises(DataError, match=r"data_batch_2: md5"):
        load_dataset("cifar10", root=tmp_path)


class _RunsCode:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return self.fn, (self.arg,)


@pytest.mark.parametrize("how", ["os.system", "builtins.exec"])
def test_pickle_that_would_run_code_is_refused(tmp_path, how):
    folder = write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    payload = (
        _RunsCode(os.system, f"touch {marker}")
        if how == "os.system"
        else _RunsCode(exec, f"open({str(marker)!r}, 'w').close()")
    )
    (folder / "data_batch_1").write_bytes(pickle.dumps({"data": payload}, protocol=2))
    with pytest.raises(
        DataError, match=r"data_batch_1: refused to unpickle (posix\.system|__builtin__\.exec)"
    ):
        load_dataset("cifar10", root=tmp_path, verify=False)
    assert not marker.exists()


def test_truncated_pickle_is_named(tmp_path):
    folder = write_cifar10(tmp_path)
    path = folder / "test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match=r"test_batch: truncated or corrupt pickle"):
        load_dataset("cifar10", "test", root=tmp_path, verify=False)
    with pytest.raises(DataError, match=r"nothing: file not found"):
        safe_load(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({b"data": np.zeros((4, 3072), np.float32)}, r"'data' must be a uint8 array"),
        ({b"data": np.zeros((4, 100), np.uint8)}, r"'data' must be a uint8 array \(N, 3072\)"),
        ({b"data": [1, 2, 3]}, r"'data' must be a uint8 array"),
        ({b"labels": [0, 1, 2, 10]}, r"label 10 is out of range 0\.\.9"),
        ({b"labels": [0, 1, 2, -1]}, r"label -1 is out of range"),
        ({b"labels": [0, 1, 2]}, r"'labels' must be a list of 4 labels"),
        ({b"labels": [b"cat", 1, 2, 3]}, r"'labels' holds a str, not an int"),
    ],
)
def test_unexpected_contents_are_named(tmp_path, change, message):
    folder = write_cifar10(tmp_path)
    batch = cifar_batch(4, seed=5)
    batch.update(change)
    (folder / "data_batch_5").write_bytes(py2_pickle(batch))
    with pytest.raises(DataError, match=r"data_batch_5: " + message):
        load_dataset("cifar10", root=tmp_path, verify=False)


def test_a_list_instead_of_a_dict_is_refused(tmp_path):
    folder = write_cifar10(tmp_path)
    (folder / "batches.meta").write_bytes(py2_pickle([1, 2]))
    with pytest.raises(DataError, match=r"batches\.meta: expected a dict, got list"):
        load_dataset("cifar10", root=tmp_path, verify=False)


def test_missing_files_and_folders_are_named(tmp_path):
    with pytest.raises(
        DataError,
        match=r"found neither cifar-10-batches-py/ nor "
        r"cifar-10-python\.tar\.gz \(pass --download",
    ):
        load_dataset("cifar10", root=tmp_path)
    folder = write_cifar10(tmp_path)
    (folder / "data_batch_4").unlink()
    with pytest.raises(MissingSplitError, match=r"data_batch_4: file not found"):
        load_dataset("cifar10", root=tmp_path, verify=False)


def test_the_test_split_loads_without_the_train_batches(tmp_path):
    folder = write_cifar10(tmp_path)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").unlink()
    test = load_dataset("cifar10", "test", root=tmp_path, verify=False)
    assert len(test) == 4 and test.info.classes == tuple(CIFAR10_NAMES)
    assert test.info.mean is None and test.info.std is None  # a checkpoint brings its own
    with pytest.raises(DataError, match=r"cifar10: the train split is absent, so there is no"):
        make_loader(test, 2, train=False)


def _py3_batch(batch: dict) -> bytes:
    """A batch re-pickled in Python 3 after reading it with encoding="bytes": bytes keys."""
    return pickle.dumps(batch, protocol=4)


MISSING_KEYS = [
        ("data_batch_1", _py3_batch(cifar_batch(4, 1)), r"data_batch_1: missing key 'data' "
         r"\(it has b'data': keys must be str, as in the official files\); keys found: b'batch"),
        ("batches.meta", _py3_batch({"num_vis": 3072}), r"batches\.meta: missing key "
         r"'label_names'; keys found: 'num_vis'$"),
        ("data_batch_2", py2_pickle({b"data": np.zeros((4, 3072), np.uint8)}),
         r"data_batch_2: missing key 'labels'; keys found: 'data'$"),
        ("test_batch", _py3_batch({}), r"test_batch: missing key 'data'; keys found: none$"),
]  # fmt: skip
MISSING_KEY_CASES = 2 * len(MISSING_KEYS)  # RELIABILITY.md row I17: load_dataset, data info
SPECIAL_FILE_CASES = 4  # row I15: a FIFO batch and a /dev/zero archive, with and without md5


@pytest.mark.parametrize(("file", "content", "message"), MISSING_KEYS)
def test_a_missing_key_is_named(tmp_path, capsys, file, content, message):
    folder = write_cifar10(tmp_path)
    (folder / file).write_bytes(content)
    split = "test" if file == "test_batch" else "train"
    with pytest.raises(DataError, match=message):
        load_dataset("cifar10", split, root=tmp_path, verify=False)
    argv = ["data", "info", "--data", "cifar10", "--data-dir", str(tmp_path), "--no-verify"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and re.search(message, err.strip().split("error: ")[1])


def test_archive_is_verified_and_extracted_on_first_use(tmp_path, monkeypatch):
    folder = write_cifar10(tmp_path / "src")
    root = tmp_path / "data"
    root.mkdir()
    archive = make_tar_gz(folder, root / "cifar-10-python.tar.gz")
    with pytest.raises(
        DataError,
        match=r"cifar-10-python\.tar\.gz: md5 .* official "
        r"c58f30108f718f92721af3b95e74349a",
    ):
        load_dataset("cifar10", root=root)
    assert not (root / "cifar-10-batches-py").exists()
    _fixture_md5s(monkeypatch, folder, archive)
    ds = load_dataset("cifar10", "test", root=root)
    assert (root / "cifar-10-batches-py" / "test_batch").is_file() and len(ds) == 4
    assert sorted(p.name for p in root.iterdir()) == [
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
    ]


def test_truncated_archive_is_an_error_and_extracts_nothing(tmp_path):
    folder = write_cifar10(tmp_path / "src")
    root = tmp_path / "data"
    root.mkdir()
    archive = make_tar_gz(folder, root / "cifar-10-python.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz: truncated or corrupt archive"):
        load_dataset("cifar10", root=root, verify=False)
    assert [p.name for p in root.iterdir()] == ["cifar-10-python.tar.gz"]


def _tar_with(archive, member: tarfile.TarInfo, data: bytes = b"x"):
    with tarfile.open(archive, "w:gz") as tar:
        if member.isfile():
            member.size = len(data)
            tar.addfile(member, tarfile.io.BytesIO(data))
        else:
            tar.addfile(member)


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("../escape.txt", tarfile.REGTYPE, "path goes outside the target folder"),
        ("/abs/escape.txt", tarfile.REGTYPE, "absolute path"),
        ("top/link", tarfile.SYMTYPE, "links are not allowed"),
        ("top/hard", tarfile.LNKTYPE, "links are not allowed"),
        ("top/dev", tarfile.CHRTYPE, "special files are not allowed"),
    ],
)
def test_unsafe_archive_members_are_refused(tmp_path, name, kind, reason):
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = "/etc/passwd"
    archive = tmp_path / "evil.tar.gz"
    _tar_with(archive, member)
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=rf"evil\.tar\.gz: refused member .* \({reason}\)"):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == [] and not (tmp_path / "escape.txt").exists()


def test_cifar100_fine_labels(tmp_path):
    write_cifar100(tmp_path)
    train = load_dataset("cifar100", "train", root=tmp_path, verify=False)
    assert train.info.num_classes == 100 and train.info.classes[7] == "fine7"
    expected = cifar_batch(6, 1, num_classes=100, label_key=b"fine_labels")[b"fine_labels"]
    assert train.labels.tolist() == expected and train.images.dtype == torch.uint8
    with pytest.raises(DataError, match=r"meta: md5 .* 7973b15100ade9c7d40fb424638fde48"):
        load_dataset("cifar100", root=tmp_path)


def test_a_huge_memo_index_is_refused_before_the_unpickler_allocates_it(tmp_path):
    # Protocol 2: the int 1, then LONG_BINPUT naming memo slot 175,726,962 (a 12 kB fuzzed batch
    # did this); CPython's unpickler would grow its memo table to gigabytes to hold it.
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x02K\x01r" + (175_726_962).to_bytes(4, "little") + b".")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DataError, match=r"data_batch_1: corrupt pickle \(memo index 175726962"):
        safe_load(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB


def test_an_honest_memo_is_accepted(tmp_path):
    path = tmp_path / "batches.meta"
    value = {"label_names": ["a", "b"], "shared": [1, 2]}
    path.write_bytes(pickle.dumps(value, protocol=2))
    assert safe_load(path) == value


@pytest.mark.parametrize("verify", [True, False])
def test_a_fifo_or_a_device_is_named_not_read(tmp_path, monkeypatch, verify):
    folder = write_cifar10(tmp_path / "a")
    _fixture_md5s(monkeypatch, folder)  # so that verify=True reaches the batch
    (folder / "data_batch_1").unlink()
    os.mkfifo(folder / "data_batch_1")  # reading it would block until someone wrote to it
    with (
        hang_guard(5),
        pytest.raises(DataError, match=r"data_batch_1: not a regular file \(a FIFO"),
    ):
        load_dataset("cifar10", root=tmp_path / "a", verify=verify)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "cifar-10-python.tar.gz").symlink_to("/dev/zero")  # never ends
    with (
        hang_guard(5),
        pytest.raises(
            DataError, match=r"cifar-10-python\.tar\.gz: not a regular file \(a character device"
        ),
    ):
        load_dataset("cifar10", root=tmp_path / "b", verify=verify)
