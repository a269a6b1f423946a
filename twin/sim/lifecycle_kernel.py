"""Compiled (numba) kernel of Lifecycle.follow_traffic's per-tick test: which units are busy and
which nodes change state this tick (WARM -> SERVING, SERVING -> WARM, DRAINING -> OFF | WARM).

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


try:  # numba compiles the loop; without it the numpy code in twin.sim.lifecycle is the fallback
    from numba import njit
    follow = njit(cache=True, nogil=True)(_follow)
except ImportError:  # pragma: no cover - numba is a dependency; this keeps a platform without it working
    follow = None

HAVE_NUMBA = follow is not None
