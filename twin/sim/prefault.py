"""Fault a large, freshly allocated buffer's pages in on another core while the simulation runs.

A page of anonymous memory costs its first write a page fault. The sample spools hold the whole
gpus and nodes tables of a run like the surge (~250 MB): written one sample row at a time, each
row touches a page of every column, and faulting them one by one as rows arrive costs the
single-threaded simulation ~20 us a row; writing every page up front (np.full) costs it
0.06-0.16 s before the first tick on this 2-core VM (benchmarks/profile_tick.py), where a first
touch of guest memory is several times dearer than on bare metal.

`populate_in_background` hands that work to a daemon thread instead: it asks the kernel to fault
the buffer's pages in, writable, with ``madvise(MADV_POPULATE_WRITE)`` (Linux >= 5.14,
madvise(2)) through ctypes, which releases the GIL for the call. Populating never changes a
byte (a present page is left alone, an absent one is mapped zero-filled, as the first write
would map it), so the simulation may write rows concurrently: whichever touches a page first
faults it, and the values are the same. Where the call does not exist (another OS, an older
kernel: EINVAL), nothing happens and the pages fault on first write as before.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import mmap
import sys
import threading

import numpy as np

MADV_POPULATE_WRITE = 23          # <linux/mman.h>, Linux 5.14
MIN_BYTES = 8 << 20               # smaller buffers fault in faster than a thread starts


@functools.cache
def _madvise():
    """libc's madvise(void *addr, size_t length, int advice), or None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    fn = libc.madvise
    fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    fn.restype = ctypes.c_int
    return fn


def page_span(address: int, n_bytes: int, page: int = mmap.PAGESIZE) -> tuple[int, int]:
    """(first whole page's address, bytes of whole pages) inside [address, address + n_bytes):
    madvise takes page-aligned ranges; the partial pages at either end fault on first write."""
    lo = -(-address // page) * page
    hi = (address + n_bytes) // page * page
    return lo, max(0, hi - lo)


def populate_in_background(buffer: np.ndarray) -> threading.Thread | None:
    """Start a daemon thread that faults `buffer`'s pages in (see the module docstring); the
    thread, or None when there is nothing to do (small buffer, no madvise). The thread holds a
    reference to `buffer`, so its memory outlives the call."""
    fn = _madvise()
    if fn is None or buffer.nbytes < MIN_BYTES or not buffer.flags.c_contiguous:
        return None
    address, length = page_span(buffer.ctypes.data, buffer.nbytes)
    if not length:
        return None
    t = threading.Thread(target=_populate, args=(fn, buffer, address, length), name="twin-prefault", daemon=True)
    t.start()
    return t


def _populate(fn, buffer: np.ndarray, address: int, length: int) -> None:
    fn(address, length, MADV_POPULATE_WRITE)   # -1 (EINVAL before 5.14): the pages fault on first write
    del buffer
