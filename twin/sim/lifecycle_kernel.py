"""Compiled (numba) kernels of Lifecycle's per-tick tests: which units are busy and which nodes
change state this tick (WARM -> SERVING, SERVING -> WARM, DRAINING -> OFF | WARM); which of a
pool's replicas may take requests (Lifecycle.ready_replicas, once per pool and tick).

Why compiled: on most ticks no node changes state, and finding that out was ~12 numpy calls on
160 nodes; one loop answers it. Only integer and boolean work: the fallback (twin.sim.lifecycle's
numpy code) gives the same decisions (tests/test_lifecycle_kernel.py).
"""
from __future__ import annotations

# what follow_traffic does with a node (the `kinds` codes)
STAY, TO_SERVING, TO_WARM, DRAINED = 0, 1, 2, 3


def _follow(unit_pinned, rep_unit, rep_inflight, node_unit, state, warm, serving, draining, u_busy, kinds) -> int:
    """Fill u_busy (U,) and kinds (N,); return how many nodes change state."""
    for u in range(u_busy.shape[0]):
        u_busy[u] = unit_pinned[u]
    for r in range(rep_inflight.shape[0]):
        if rep_inflight[r] > 0:
            u_busy[rep_unit[r]] = True
    changes = 0
    for n in range(state.shape[0]):
        busy = node_unit[n] >= 0 and u_busy[node_unit[n]]
        s = state[n]
        k = STAY
        if s == warm and busy:
            k = TO_SERVING
        elif s == serving and not busy:
            k = TO_WARM
        elif s == draining and not busy:
            k = DRAINED
        kinds[n] = k
        changes += k != STAY
    return changes


def _ready(reps, rep_unit, unit_ready, unit_draining, unit_failed, unit_cut, rep_lost, out) -> int:
    """The replicas among `reps` whose unit is ready, not draining, failed or cut off and which are
    not lost, in `reps` order, into out[:n]; returns n (five numpy masks and gathers before)."""
    n = 0
    for k in range(reps.shape[0]):
        r = reps[k]
        u = rep_unit[r]
        if unit_ready[u] and not unit_draining[u] and not unit_failed[u] and not unit_cut[u] and not rep_lost[r]:
            out[n] = r
            n += 1
    return n


try:  # numba compiles the loops; without it the numpy code in twin.sim.lifecycle is the fallback
    from numba import njit
    follow = njit(cache=True, nogil=True)(_follow)
    ready = njit(cache=True, nogil=True)(_ready)
except ImportError:  # pragma: no cover - numba is a dependency; this keeps a platform without it working
    follow = ready = None

HAVE_NUMBA = follow is not None
