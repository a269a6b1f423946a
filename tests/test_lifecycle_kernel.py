"""follow_traffic's compiled test (twin.sim.lifecycle_kernel) against the numpy masks it replaces."""
from __future__ import annotations

import numpy as np
import pytest

from twin.model.states import DRAINING, NODE_STATES, SERVING, WARM
from twin.sim import lifecycle_kernel as lk

pytestmark = pytest.mark.skipif(not lk.HAVE_NUMBA, reason="numba not installed")


@pytest.mark.parametrize("seed", range(20))
def test_the_kernel_finds_the_nodes_the_numpy_masks_find(seed):
    rng = np.random.default_rng(seed)
    U, R, N = int(rng.integers(0, 6)), int(rng.integers(0, 12)), int(rng.integers(1, 20))
    rep_unit = rng.integers(0, max(U, 1), R) if U else np.zeros(0, np.int64)
    rep_inflight = rng.integers(0, 3, R) * (rng.uniform(0, 1, R) < 0.5) if U else np.zeros(0, np.int64)
    node_unit = np.where(rng.uniform(0, 1, N) < 0.8, rng.integers(0, max(U, 1), N), -1) if U else np.full(N, -1)
    pinned = rng.uniform(0, 1, U) < 0.2
    state = rng.integers(0, len(NODE_STATES), N).astype(np.int8)
    # the numpy code of Lifecycle.follow_traffic
    u_busy = pinned.copy()
    u_busy[rep_unit[(rep_inflight > 0).nonzero()[0]]] = True
    node_busy = np.zeros(N, bool)
    node_busy[node_unit >= 0] = u_busy[node_unit[node_unit >= 0]]
    want = np.zeros(N, np.int8)
    want[(state == WARM) & node_busy] = lk.TO_SERVING
    want[(state == SERVING) & ~node_busy] = lk.TO_WARM
    want[(state == DRAINING) & ~node_busy] = lk.DRAINED
    got_busy, kinds = np.ones(U, bool), np.full(N, 9, np.int8)  # stale scratch must be overwritten
    changes = lk.follow(pinned, rep_unit, rep_inflight, node_unit, state, WARM, SERVING, DRAINING, got_busy, kinds)
    assert kinds.tolist() == want.tolist() and got_busy.tolist() == u_busy.tolist()
    assert changes == int((want != lk.STAY).sum())


def test_a_busy_warm_node_serves_and_an_idle_serving_one_goes_back():
    """By hand: unit 0 has a request in flight (node 0 WARM -> SERVING), unit 1 is idle (node 1
    SERVING -> WARM, node 2 DRAINING -> drained), node 3 belongs to no unit."""
    kinds, busy = np.zeros(4, np.int8), np.zeros(2, bool)
    n = lk.follow(np.zeros(2, bool), np.array([0, 1]), np.array([2, 0]), np.array([0, 1, 1, -1]),
                  np.array([WARM, SERVING, DRAINING, WARM], np.int8), WARM, SERVING, DRAINING, busy, kinds)
    assert kinds.tolist() == [lk.TO_SERVING, lk.TO_WARM, lk.DRAINED, lk.STAY] and busy.tolist() == [True, False]
    assert n == 3


@pytest.mark.parametrize("seed", range(20))
def test_ready_finds_the_replicas_the_numpy_masks_find(seed):
    """Lifecycle.ready_replicas' compiled loop against its five masks: the same ids, in order."""
    rng = np.random.default_rng(seed)
    U, R = int(rng.integers(1, 6)), int(rng.integers(0, 12))
    rep_unit = rng.integers(0, U, R)
    flags = [rng.uniform(0, 1, U) < p for p in (0.7, 0.2, 0.2, 0.2)]   # ready, draining, failed, cut
    lost = rng.uniform(0, 1, R) < 0.2
    reps = np.sort(rng.choice(R, int(rng.integers(0, R + 1)), replace=False)).astype(np.int64)
    ru = rep_unit[reps]
    want = reps[flags[0][ru] & ~flags[1][ru] & ~flags[2][ru] & ~flags[3][ru] & ~lost[reps]]
    out = np.full(len(reps), -7, np.int64)
    n = lk.ready(reps, rep_unit, *flags, lost, out)
    assert out[:n].tolist() == want.tolist()


def test_ready_by_hand():
    """Unit 0 ready, unit 1 ready but cut off, unit 2 not ready; replica 1 (unit 0) lost."""
    out = np.empty(4, np.int64)
    n = lk.ready(np.arange(4), np.array([0, 0, 1, 2]), np.array([True, True, False]), np.zeros(3, bool),
                 np.zeros(3, bool), np.array([False, True, False]), np.array([False, True, False, False]), out)
    assert out[:n].tolist() == [0]


@pytest.mark.parametrize("seed", range(30))
def test_settle_decides_the_units_the_numpy_code_decides(seed):
    from twin.model.states import FAILED, OFF
    rng = np.random.default_rng(seed)
    U, R = int(rng.integers(1, 6)), int(rng.integers(0, 12))
    sizes = rng.integers(0, 4, U)                       # a unit may have no nodes: "all" then holds
    flat_unit = np.repeat(np.arange(U), sizes).astype(np.int64)
    flat_node = rng.permutation(len(flat_unit)).astype(np.int64)
    # few states, so that "all nodes OFF / WARM" happens
    state = rng.choice([OFF, FAILED, WARM, SERVING, DRAINING], size=len(flat_unit), p=[.4, .1, .3, .1, .1]).astype(np.int8)
    rep_unit = rng.integers(0, U, R).astype(np.int64)
    rep_lost = rng.uniform(0, 1, R) < 0.2
    draining, failed, ready = (rng.uniform(0, 1, U) < 0.5 for _ in range(3))
    u_busy = rng.uniform(0, 1, U) < 0.3
    # the numpy code of Lifecycle.follow_traffic's end
    want_d, want_f, want_r = draining.copy(), failed.copy(), ready.copy()
    cand = want_d | want_f
    s_flat = state[flat_node]
    size = np.bincount(flat_unit, minlength=U)

    def every(ok):
        return np.bincount(flat_unit, weights=ok, minlength=U) == size

    lost_any = np.bincount(rep_unit, weights=rep_lost, minlength=U) > 0
    back = cand & want_f & every(s_flat == OFF) & ~lost_any
    want_f[back] = False
    done = cand & every((s_flat == OFF) | (s_flat == FAILED) | (s_flat == WARM)) & ~u_busy & want_d
    want_d[done] = False
    want_r[done] = every(s_flat == WARM)[done]
    scratch = tuple(rng.uniform(0, 1, U) < 0.5 for _ in range(4))   # stale scratch must not matter
    lk.settle(draining, failed, ready, u_busy, rep_unit, rep_lost, flat_unit, flat_node, state, OFF, FAILED, WARM,
              *scratch)
    assert (draining.tolist(), failed.tolist(), ready.tolist()) == (want_d.tolist(), want_f.tolist(), want_r.tolist())


@pytest.mark.parametrize("seed", range(10))
def test_progress_copies_what_the_numpy_code_copies(seed):
    from twin.model.states import LOADING
    rng = np.random.default_rng(seed)
    N, dt = int(rng.integers(1, 40)), float(rng.choice([0.5, 1.0, 0.1]))
    state = rng.integers(0, len(NODE_STATES), N).astype(np.int8)
    state[rng.uniform(0, 1, N) < 0.5] = LOADING
    left = rng.choice([0.0, -0.0, 1e9, 3e9, np.nan], N) * rng.uniform(0.5, 1.5, N)
    rate = rng.choice([0.0, 1e9, 2.5e9, 4e9], N)
    rate[0] = left[0] / dt if np.isfinite(left[0]) else 0.0   # lands exactly on zero
    loading = state == LOADING
    want = np.where(loading, np.maximum(left - rate * dt, 0.0), left)   # Lifecycle.progress_loading, numpy
    got = left.copy()
    lk.progress(state, LOADING, got, rate, dt)
    assert got.tobytes() == want.tobytes()
