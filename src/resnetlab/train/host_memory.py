"""Freed host memory kept for reuse, so that a CPU training step does not fault its pages in anew.

glibc's malloc serves a request of its mmap threshold or more (128 KiB at first, then the largest
block freed so far, up to 32 MiB) with fresh pages from the kernel and hands them back on free,
and gives the top of its heap back once more than twice the threshold lies free there. A training
step allocates and frees the same few-megabyte buffers every time (activations, gradients,
oneDNN's scratchpads), so each step faults all of those pages in again, zero-filled by the
kernel, inside the kernels that first write them: a median of 2,683 and 2,819 minor faults per
ResNet-20 step of batch 128 in two runs on a 2-core Zen 4 EPYC, where the weight-gradient
convolutions took 49.8 ms per step by oneDNN's own clock with them and 35.3 ms without
(BENCHMARKS.md, "The convolutions kernel by kernel, and the page faults in them").
``keep_freed_memory`` sets the mmap threshold to glibc's largest (32 MiB) and the trim threshold
to 1 GiB: freed blocks stay in malloc's free lists and the next step reuses them. The price is
that the process holds on to its peak of host memory until it exits (the peak itself did not
change there).

It is a setting of the whole process, made once and not undone; where the C library is not glibc
(macOS, Windows, musl) there is nothing to set and it says so.
"""

from __future__ import annotations

import ctypes
import os

HOST_MEMORY = ("auto", "keep", "system")  # the config's choices (RunConfig.host_memory)

# mallopt(3) parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's limit on 64-bit machines (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1 << 30

_kept = False


def glibc_version() -> str | None:
    """glibc's version where the process runs on glibc, else None."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"
    except (AttributeError, ValueError, OSError):
        return None


def keep_freed_memory() -> bool:
    """Make malloc keep freed blocks for reuse (see the module's docstring).

    Returns:
        True where glibc's settings are now made (by this call or an earlier one); False where
        the C library is not glibc or refused them.
    """
    global _kept
    if _kept:
        return True
    if glibc_version() is None:
        return False
    libc = ctypes.CDLL(None)
    _kept = bool(
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
        and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _kept


def apply_host_memory(choice: str, device_type: str) -> bool:
    """The config's ``host_memory`` for a run on ``device_type``: ``keep`` keeps freed memory,
    ``auto`` does so for CPU runs (where the step's buffers live in host memory), ``system``
    leaves malloc as it is. Returns whether freed memory is kept."""
    if choice == "keep" or (choice == "auto" and device_type == "cpu"):
        return keep_freed_memory()
    return _kept
