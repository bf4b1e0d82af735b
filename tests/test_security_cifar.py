"""CIFAR pickles crafted to run code are refused, and the code never runs.

Every payload would create a marker file when unpickled; the control test unpickles each with
``pickle.loads`` and sees the marker appear. The restricted unpickler must refuse the same bytes
through every way a CIFAR file is read: ``safe_load``, ``load_cifar`` and ``resnetlab data info``.
"""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
from pathlib import Path

import pytest

from data_fixtures import cifar_batch, write_cifar10
from reliability_support import hang_guard
from resnetlab.cli import main
from resnetlab.data.cifar import load_cifar
from resnetlab.data.unpickle import safe_load
from resnetlab.errors import DataError


class _Call:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def _reduce_payload(kind: str, marker: Path, protocol: int) -> bytes:
    m = str(marker)
    call = {
        "os.system": _Call(os.system, f"touch '{m}'"),
        "builtins.exec": _Call(builtins.exec, f"open({m!r}, 'w').close()"),
        "builtins.eval": _Call(builtins.eval, f"__import__('pathlib').Path({m!r}).touch()"),
        "subprocess.call": _Call(subprocess.call, ["touch", m]),
    }[kind]
    return pickle.dumps(call, protocol=protocol)


def _payload(kind: str, marker: Path) -> bytes:
    m = str(marker).encode()
    if kind == "opcodes-GLOBAL-REDUCE":  # protocol 0, written by hand
        return b"cos\nsystem\n(S'touch " + m + b"'\ntR."
    if kind == "opcodes-INST":  # protocol 0's INST calls the class it names
        return b"(S'touch " + m + b"'\nios\nsystem\n."
    if kind == "nested-in-batch":  # a real batch dict with the payload as one more value
        batch = cifar_batch(2, seed=0)
        batch[b"extra"] = _Call(os.system, f"touch '{marker}'")
        return pickle.dumps(batch, protocol=2)
    name, protocol = kind.rsplit("-p", 1)
    return _reduce_payload(name, marker, int(protocol))


PAYLOADS = [
    *(f"{k}-p{p}" for k in ("os.system", "builtins.exec", "builtins.eval", "subprocess.call")
      for p in (0, 2, 5)),  # GLOBAL (0, 2) and STACK_GLOBAL (5)
    "opcodes-GLOBAL-REDUCE",
    "opcodes-INST",
    "nested-in-batch",
]  # fmt: skip
READERS = ["safe_load", "load_cifar", "data info"]
CASES = len(PAYLOADS) * len(READERS)


@pytest.mark.parametrize("kind", PAYLOADS)
def test_the_payloads_are_live_when_unpickled_unsafely(tmp_path, kind):
    marker = tmp_path / "ran"
    pickle.loads(_payload(kind, marker))
    assert marker.exists()


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("kind", PAYLOADS)
def test_a_crafted_cifar_pickle_is_refused_and_never_runs(
    tmp_path, monkeypatch, capsys, kind, reader
):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / "ran"
    folder = write_cifar10(tmp_path / "data")
    (folder / "test_batch").write_bytes(_payload(kind, marker))
    # The name refused is the payload's (os.system, __builtin__.exec, commands.call: protocols
    # 0 and 2 write Python 2 names) or, in the nested batch, the first global met.
    refused = r"test_batch: refused to unpickle [\w.]+ \(only numpy arrays are allowed"
    with hang_guard():
        if reader == "safe_load":
            with pytest.raises(DataError, match=refused):
                safe_load(folder / "test_batch")
        elif reader == "load_cifar":
            with pytest.raises(DataError, match=refused):
                load_cifar("cifar10", "test", folder, verify=False)
        else:
            argv = ["data", "info", "--data", "cifar10", "--data-dir", str(folder), "--no-verify"]
            assert main(argv) == 2  # info reads both splits, so it meets the crafted batch
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "refused to unpickle" in err
    assert not marker.exists()
