"""Keep freed memory in the process for the next subject instead of handing it back to the system (glibc).

Why: a subject's pipeline allocates and frees many volume-sized arrays (18.5 M voxels at the reference geometry,
74 MB per float32 copy). glibc serves each allocation above 32 MB with a fresh ``mmap`` and returns it with
``munmap`` when freed, so every such array starts on pages the kernel must find and zero again; in a virtual
machine whose host reclaims freed guest memory, each first touch is a host page fault. Measured on the 2-core
development VM (docs/studies/speed.md, "Memory reuse"): the FF map step took 1.5 s instead of 0.2 s, the network
3.4 s instead of 2.3 s, for the same arithmetic. PyTorch's CPU tuning guide recommends jemalloc or tcmalloc for
the same reason; this needs no extra library: it tells glibc (``mallopt``) to serve large blocks from its heap,
never to trim the heap, and to use one arena, so freed blocks are reused by the next array of the same size.

What it costs: the resident memory stays at the run's high-water mark instead of shrinking between subjects
(measured peak RSS in speed.md). Other C libraries (macOS, Windows, musl): nothing is changed, and the log says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

__all__ = ["reuse_freed_memory"]

logger = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

#: Heap kept beyond what is in use, and grown by at least this much at a time (bytes): a few volume-sized blocks.
_TOP_PAD = 512 * 1024 * 1024


def reuse_freed_memory(enabled: bool = True) -> bool:
    """Ask glibc to keep and reuse freed memory for the rest of the process (see the module docstring).

    Args:
        enabled: False changes nothing (the system allocator's defaults).

    Returns:
        True when glibc accepted every setting; False when disabled, not glibc, or a setting was refused (logged).
    """
    if not enabled:
        return False
    libc_name, _ = platform.libc_ver()
    if platform.system() != "Linux" or libc_name != "glibc":
        logger.info("memory reuse: not glibc (%s %s); the allocator is left as it is", platform.system(), libc_name)
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError) as err:
        logger.info("memory reuse: glibc's mallopt is not reachable (%s); the allocator is left as it is", err)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # Why these four: no mmap for large blocks (they come from the heap and return to it), a trim threshold no
    # heap reaches (freed memory stays for the next subject), padding so the heap grows in large steps, and one
    # arena so that blocks freed by the reading and writing threads are reused by the main thread.
    settings = (
        (_M_MMAP_MAX, 0),
        (_M_TRIM_THRESHOLD, 2**31 - 1),
        (_M_TOP_PAD, _TOP_PAD),
        (_M_ARENA_MAX, 1),
    )
    refused = [param for param, value in settings if mallopt(param, value) != 1]
    if refused:
        logger.info("memory reuse: glibc refused mallopt parameter(s) %s", refused)
        return False
    logger.debug("memory reuse: large blocks from the heap, heap never trimmed, one arena")
    return True
