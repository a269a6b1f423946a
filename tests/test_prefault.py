"""twin.sim.prefault: page ranges by hand, and populating that faults pages in without changing a byte."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from twin.sim.prefault import MIN_BYTES, page_span, populate_in_background


def test_page_span_keeps_only_whole_pages():
    # [5000, 25000) holds the pages at 8192, 12288, 16384 and 20480: 16,384 bytes
    assert page_span(5000, 20_000, page=4096) == (8192, 16_384)
    assert page_span(4096, 4096, page=4096) == (4096, 4096)
    assert page_span(1, 100, page=4096) == (4096, 0)        # no whole page inside
    assert page_span(0, 10_000, page=4096) == (0, 8192)


def test_small_buffers_are_left_to_fault_on_first_write():
    assert populate_in_background(np.zeros(MIN_BYTES // 8 - 1)) is None


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise(MADV_POPULATE_WRITE) is Linux's")


@LINUX
def test_populate_makes_every_page_resident():
    a = np.zeros((8, 1 << 20))                 # 64 MB of calloc'd pages: none resident until written
    before = _resident_bytes()
    t = populate_in_background(a)
    assert t is not None
    t.join(timeout=30)
    grew = _resident_bytes() - before
    release = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    if release < (5, 14) and grew < a.nbytes // 2:
        pytest.skip(f"kernel {os.uname().release} has no MADV_POPULATE_WRITE (Linux 5.14)")
    assert grew >= 0.9 * a.nbytes             # nothing was written, yet the pages are there
    assert not a.any()


@LINUX
def test_writes_during_populating_are_kept():
    a = np.zeros((8, 1 << 20))
    t = populate_in_background(a)
    rows = np.arange(0, 1 << 20, 4099)
    for k in range(8):                        # the owner writes while the thread populates
        a[k, rows] = k + 1.5
    t.join(timeout=30)
    assert not t.is_alive()
    for k in range(8):
        assert np.all(a[k, rows] == k + 1.5)
    untouched = np.ones(a.shape[1], dtype=bool)
    untouched[rows] = False
    assert not a[:, untouched].any()         # populating maps zero pages: no byte changed
