"""Compiled kernels (numba) against their numpy/Python fallbacks: the same decisions, the same bytes."""
from __future__ import annotations

import hashlib
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.model.validate import load_scenario
from twin.sim.engine import simulate
from twin.sim.router import HAVE_NUMBA, ReplicaLoad, least_work_admit, least_work_admit_fast
from twin.telemetry.write import write_run

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed: only the fallback exists")


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_rep=st.integers(1, 12), n_req=st.integers(0, 80), n_retry=st.integers(0, 5))
def test_the_compiled_router_admits_exactly_what_the_heap_router_does(seed, n_rep, n_req, n_retry):
    rng = np.random.default_rng(seed)
    n = n_req + n_retry
    # coarse values so that ties in outstanding work happen
    load = ReplicaLoad(work_s=rng.integers(0, 4, n_rep) * 0.5, inflight=rng.integers(0, 6, n_rep),
                       kv_reserved_b=rng.integers(0, 4, n_rep) * 1e6, max_batch=rng.integers(1, 8, n_rep),
                       kv_cap_b=rng.integers(2, 10, n_rep) * 1e6, prefill_s_per_tok=np.full(n_rep, 1e-3),
                       interval_s=rng.integers(1, 3, n_rep) * 0.05)
    res, prompt, out = rng.integers(1, 4, n) * 1e6, rng.integers(1, 2000, n), rng.integers(1, 300, n)
    cand = np.sort(rng.choice(n_rep, size=rng.integers(0, n_rep + 1), replace=False))
    lines = [(deque(range(n_req, n)), deque(range(n_req))) for _ in range(2)]
    a = least_work_admit(*lines[0], cand, load, res, prompt, out)
    b = least_work_admit_fast(*lines[1], cand, load, res, prompt, out)
    assert list(a[0]) == list(b[0]) and list(a[1]) == list(b[1])
    assert list(lines[0][0]) == list(lines[1][0]) and list(lines[0][1]) == list(lines[1][1])


def digests(kernels: str, tmp: Path) -> dict[str, str]:
    res = simulate(load_scenario(ROOT / "scenarios" / "tiny.yaml"), kernels=kernels)
    write_run(res, tmp / kernels)
    return {p.stem: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((tmp / kernels / "telemetry").glob("*"))}


def test_numba_and_numpy_kernels_write_byte_identical_telemetry(tmp_path):
    assert digests("numba", tmp_path) == digests("numpy", tmp_path)
