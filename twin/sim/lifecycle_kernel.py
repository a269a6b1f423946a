"""Compiled (numba) kernels of Lifecycle's per-tick tests: which units are busy and which nodes
change state this tick (WARM -> SERVING, SERVING -> WARM, DRAINING -> OFF | WARM); which of a
pool's replicas may take requests (Lifecycle.ready_replicas, once per pool and tick); which
draining or failed units are done (the end of follow_traffic); the weights loading nodes copy.

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


def _settle(unit_draining, unit_failed, unit_ready, u_busy, rep_unit, rep_lost, flat_unit, flat_node, state, off,
            failed, warm, all_off, all_settled, all_warm, lost_any) -> None:
    """The end of follow_traffic, units draining or failed: a failed unit whose nodes are all OFF
    and whose replicas are not lost is repaired (unit_failed cleared); a draining unit that is not
    busy and whose nodes are all OFF, FAILED or WARM is drained (unit_draining cleared, ready if all
    are WARM). all_off .. lost_any: (U,) scratch."""
    n_u = unit_draining.shape[0]
    cand = False
    for u in range(n_u):
        if unit_draining[u] or unit_failed[u]:
            cand = True
            break
    if not cand:
        return
    for u in range(n_u):
        all_off[u] = all_settled[u] = all_warm[u] = True
        lost_any[u] = False
    for j in range(flat_node.shape[0]):
        u, s = flat_unit[j], state[flat_node[j]]
        if s != off:
            all_off[u] = False
        if s != off and s != failed and s != warm:
            all_settled[u] = False
        if s != warm:
            all_warm[u] = False
    for r in range(rep_unit.shape[0]):
        if rep_lost[r]:
            lost_any[rep_unit[r]] = True
    for u in range(n_u):
        draining, was_failed = unit_draining[u], unit_failed[u]
        if not (draining or was_failed):
            continue
        if was_failed and all_off[u] and not lost_any[u]:
            unit_failed[u] = False   # repaired (or only collateral): the scheduler may ignite it again
        if draining and all_settled[u] and not u_busy[u]:
            unit_draining[u] = False
            unit_ready[u] = all_warm[u]


def _progress(state, loading, load_left, rate_b_s, dt) -> None:
    """LOADING nodes copy rate x dt bytes: load_left = max(load_left - rate x dt, 0) where loading
    (Lifecycle.progress_loading's np.where / np.maximum, elementwise: the same float operations)."""
    for n in range(state.shape[0]):
        if state[n] == loading:
            x = load_left[n] - rate_b_s[n] * dt
            load_left[n] = x if (x > 0.0 or x != x) else 0.0   # np.maximum(x, 0.0): 0.0 when equal, NaN kept


try:  # numba compiles the loops; without it the numpy code in twin.sim.lifecycle is the fallback
    from numba import njit
    follow = njit(cache=True, nogil=True)(_follow)
    ready = njit(cache=True, nogil=True)(_ready)
    settle = njit(cache=True, nogil=True)(_settle)
    progress = njit(cache=True, nogil=True)(_progress)
except ImportError:  # pragma: no cover - numba is a dependency; this keeps a platform without it working
    follow = ready = settle = progress = None

HAVE_NUMBA = follow is not None
