"""glibc's malloc set up for a training loop: freed memory stays with the process for reuse.

A training step allocates and frees the same few-megabyte tensors every time ([N, 64] MLP
activations and their gradients). By default glibc gives blocks that large fresh pages
(mmap) and hands them back to the kernel when they are freed, so every step first-touches
tens of megabytes of new pages: at 12,000 Gaussians on 2 cores, about 6,500 page faults and
14 ms of kernel time a step (docs/benchmarks.md). With the mmap threshold at its maximum and
the heap never trimmed, the blocks freed by one step serve the next: no faults after the
first steps. The cost is that the process keeps its peak heap until it exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: mallopt's parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's largest mmap threshold on 64-bit (4 * 1024 * 1024 * sizeof(long)): blocks below it come from the heap.
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024
#: Free memory at the top of the heap kept rather than returned to the kernel.
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to serve blocks up to 32 MB from the heap and keep what is freed;
    False where the C library is not glibc (macOS, Windows, musl): nothing changes there."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # no mallopt: not glibc
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
