"""Keep the C allocator from returning activation memory to the kernel between calls.

glibc's ``malloc`` hands large freed blocks back to the kernel (``munmap``, or a trim
of the heap top) and maps fresh pages on the next call, so every forward pass can
pay a page fault per 4 KiB of activations. On the 2-vCPU KVM guest of this project
that made the same trimmed network 2-6x slower in one ``netcut measure`` run than in
the next (mnasnet1_0 cut at ``layers.0``: 2.1-3.3 ms, against 0.5-0.6 ms with the
thresholds below), depending on what the process had allocated before. Pinning the
thresholds gives the steady state a long-running inference process reaches.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

#: mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: blocks up to this size come from the heap, never from a fresh mapping (glibc's own
#: ceiling for the threshold on 64-bit systems: larger values are refused)
MMAP_THRESHOLD = 32 * 2**20
#: the heap is given back only when this much is free at its top
TRIM_THRESHOLD = 256 * 2**20


def keep_freed_memory() -> dict:
    """Pin glibc's mmap and trim thresholds for this process; what was done, for the file.

    Process-wide and not undone: the measurement runs in its own process (the CLI).
    """
    if platform.system() != "Linux":
        return {"allocator": "system default", "pinned": False}
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return {"allocator": "not glibc", "pinned": False}
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return {"allocator": "glibc", "pinned": bool(ok), "mmap_threshold": MMAP_THRESHOLD,
            "trim_threshold": TRIM_THRESHOLD}
