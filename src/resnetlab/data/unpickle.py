"""Reading the CIFAR pickles without trusting them.

A pickle can name any importable callable and call it, so a crafted batch file could run code the
moment it is loaded. ``safe_load`` admits only what the official files contain besides dicts,
lists, strings and numbers: numpy's array reconstruction and dtypes. Anything else is refused
before it is imported.
"""

from __future__ import annotations

import pickle
import pickletools
from pathlib import Path

import numpy as np

from resnetlab.data.files import open_regular
from resnetlab.errors import DataError

try:  # numpy >= 2 keeps it in numpy._core; older versions in numpy.core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

# (module, name) -> object. Python 2 era files name numpy.core; numpy 2 writes numpy._core.
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in ``ALLOWED``."""

    def __init__(self, file, path: Path):
        # latin1: the files were written by Python 2, whose str holds bytes (numpy's advice).
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> object:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"{self.path}: refused to unpickle {module}.{name} (only numpy arrays are "
                "allowed; the file is not an official CIFAR batch)"
            ) from None

    def persistent_load(self, pid: object) -> object:
        raise DataError(f"{self.path}: refused a persistent reference in the pickle")


def safe_load(path: str | Path) -> object:
    """Unpickle ``path`` with ``RestrictedUnpickler``.

    Raises:
        DataError: naming the file, when it is missing, not a regular file, truncated, corrupt
            or refers to anything but numpy arrays.
    """
    path = Path(path)
    try:
        with open_regular(path) as f:
            _check_memo_indices(f, path)
            f.seek(0)
            return RestrictedUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as err:  # the unpickler raises whatever the bytes make it trip on
        raise DataError(
            f"{path}: truncated or corrupt pickle ({type(err).__name__}: {err})"
        ) from err


def _check_memo_indices(f, path: Path) -> None:
    """Refuse memo indices beyond the opcodes read so far, before unpickling.

    CPython's unpickler grows its memo table to the largest index a PUT names, so a 12 kB file
    naming index 175,726,962 allocates gigabytes. A pickler numbers its memo entries from 0, one
    per PUT, so an honest index never exceeds the number of opcodes before it. Malformed opcodes
    end the scan; the unpickler then reports them as usual.
    """
    try:
        for count, (op, arg, _) in enumerate(pickletools.genops(f)):
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and int(arg) > count:
                raise DataError(f"{path}: corrupt pickle (memo index {arg} after {count} opcodes)")
    except DataError:
        raise
    except Exception:  # malformed opcodes: the real load says what is wrong
        return
