"""Compiled (numba) kernels of the fabric's per-tick work (twin.model.fabric_flows.FabricModel):
this tick's demands and link loads over a cached flow set, what each flow sees, the per-node
rates and the link accumulators; and closing a `links` interval.

Why compiled: with the flow set cached (it changes only when replicas start or stop serving),
a tick is ~20 numpy calls on a few hundred (flow, link) entries; dispatch dominates. The
max-min filling (only when a link is over-asked, but then up to one round per bottleneck level)
is compiled too, and touches per round only the links whose level may decide it.

Each loop repeats the numpy code's arithmetic in its order: bincount and np.add.at sums run in
entry (flow) order from 0.0, np.minimum.reduceat runs over each flow's entries, minima and maxima
propagate NaN like np.minimum / np.maximum, fancy-index stores keep the last write. So the
bytes are the same (tests/test_fabric_kernel.py); `kernels="numpy"` selects the numpy code.
"""
from __future__ import annotations

import numpy as np


GB = 1e9  # twin.model.fabric.GB


def _nan_min(a: float, b: float) -> float:
    """np.minimum: NaN if either is NaN."""
    if a != a:
        return a
    if b != b:
        return b
    return a if a <= b else b


def _nan_max(a: float, b: float) -> float:
    """np.maximum: NaN if either is NaN."""
    if a != a:
        return a
    if b != b:
        return b
    return a if a >= b else b


def _link_load(entry_col, entry_flow, rate, load) -> None:
    """load (L',) = per used link, the rates of its flows added in entry order (np.bincount)."""
    for c in range(load.shape[0]):
        load[c] = 0.0
    for e in range(entry_col.shape[0]):
        load[entry_col[e]] += rate[entry_flow[e]]


def _demand_load(is_pp, rep, rep_tok_s, hidden_b, h2d_gb_s, entry_col, entry_flow, cap, demand, load) -> bool:
    """Demands (GB/s: activations of pipeline flows, the H2D rate of loads) and their link loads;
    True when no link is over-asked (every flow then gets its demand)."""
    for f in range(demand.shape[0]):
        if is_pp[f]:
            r = rep[f]
            demand[f] = rep_tok_s[r] * hidden_b[r] / GB
        else:
            demand[f] = h2d_gb_s
    _link_load(entry_col, entry_flow, demand, load)
    for c in range(load.shape[0]):
        if not load[c] <= cap[c]:
            return False
    return True


def _apply(cap, load, alloc, entry_col, flow_ptr, elastic, is_pp, rep, node, src_node, dst_node, used, inc_count,
           dt_s, rep_nic_gb_s, loading_rate_gb_s, node_load_gb_s, node_nic_gb_s, acc_bytes, acc_flows) -> None:
    """What the allocation means for the arrays callers read and for the link accumulators."""
    F, E = alloc.shape[0], entry_col.shape[0]
    for f in range(F):
        hi = flow_ptr[f + 1] if f + 1 < F else E
        c = entry_col[flow_ptr[f]]
        m = (cap[c] - load[c]) + alloc[f]
        for e in range(flow_ptr[f] + 1, hi):
            c = entry_col[e]
            m = _nan_min(m, (cap[c] - load[c]) + alloc[f])
        if is_pp[f]:
            r = rep[f]
            rep_nic_gb_s[r] = _nan_min(rep_nic_gb_s[r], _nan_max(m, elastic[f]))
    for f in range(F):
        if not is_pp[f]:
            loading_rate_gb_s[node[f]] = alloc[f]
            node_load_gb_s[node[f]] = alloc[f]
    for f in range(F):
        if src_node[f] >= 0:
            node_nic_gb_s[src_node[f]] += alloc[f]
    for f in range(F):
        if dst_node[f] >= 0:
            node_nic_gb_s[dst_node[f]] += alloc[f]
    for i in range(used.shape[0]):
        acc_bytes[used[i]] += load[i] * GB * dt_s
    for i in range(used.shape[0]):
        acc_flows[used[i] // 2] += inc_count[i]


def _close_links(acc_bytes, acc_flows, cable_cap_b, span_s, n_ticks, total_b, util, flows) -> None:
    """Per cable: bytes both ways, the busier direction's share of what the cable could carry and
    the mean flow count rounded half to even (np.rint(acc_flows / n_ticks)); the accumulators are
    then zeroed for the next interval."""
    for i in range(total_b.shape[0]):
        a, b = acc_bytes[2 * i], acc_bytes[2 * i + 1]
        total_b[i] = a + b
        util[i] = _nan_max(a, b) / (cable_cap_b[i] * span_s)
        flows[i] = np.rint(acc_flows[i] / n_ticks)
        acc_bytes[2 * i] = 0.0
        acc_bytes[2 * i + 1] = 0.0
        acc_flows[i] = 0.0


def _heap_push(key, link, ver, size, k, c, v) -> int:
    """Push (k, c, v) on the binary min-heap (key, link, ver)[:size]; the new size."""
    i = size
    while i > 0:
        up = (i - 1) >> 1
        if key[up] <= k:
            break
        key[i], link[i], ver[i] = key[up], link[up], ver[up]
        i = up
    key[i], link[i], ver[i] = k, c, v
    return size + 1


def _heap_pop(key, link, ver, size) -> int:
    """Drop the heap's top (read it first); the new size."""
    size -= 1
    k, c, v = key[size], link[size], ver[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and key[child + 1] < key[child]:
            child += 1
        if key[child] >= k:
            break
        key[i], link[i], ver[i] = key[child], link[child], ver[child]
        i = child
    if size > 0:
        key[i], link[i], ver[i] = k, c, v
    return size


def _take_below(thr, key, link, ver_h, size, ver, n_on, in_cand, cand, n_cand):
    """Pop every heap entry with a level <= thr; the current ones (the link's version, a flow
    left) not yet among the round's candidates join them. (new heap size, candidate count)."""
    while size > 0 and key[0] <= thr:
        c = link[0]
        current = ver_h[0] == ver[c] and n_on[c] > 0
        size = _heap_pop(key, link, ver_h, size)
        if current and not in_cand[c]:
            cand[n_cand] = c
            in_cand[c] = True
            n_cand += 1
    return size, n_cand


def _catch_up(c, now, left, done, n_on, incs) -> None:
    """Apply rounds done[c]..now-1 to link c's remaining capacity: numpy's ``left -= inc * n_on``
    of each of those rounds, in order, with the flow count the link had in them."""
    n = float(n_on[c])
    x = left[c]
    for r in range(done[c], now):
        x -= incs[r] * n
    left[c] = x
    done[c] = now


def _max_min_fair(entry_flow, entry_link, n_flows, cap, demand):
    """twin.model.maxmin.max_min_fair_sparse_gb_s, compiled: the same progressive filling, round
    by round, with the same float operations on every value that decides anything, so the same
    rates to the last bit (tests/test_fabric_kernel.py).

    The numpy rounds touch every entry and link: O(rounds x entries). A congested 16,000-node
    hall has ~75,000 entries and ~4,000 rounds (one per demand or bottleneck level): 2 s a tick.
    Here a round costs about O(log links) plus what freezes in it, by three exact shortcuts:
    - every unfrozen flow has been unfrozen since the first round and got the same increments in
      the same order, so its rate is one running sum s; and fl(d - s) and fl(d - 1e-12) rise
      with d, so the smallest remaining demand is that of the unfrozen flow with the smallest
      demand, and flows meet their demand in demand order (a sorted list and a pointer);
    - a link's remaining capacity is only needed where it decides something: when the link may be
      the round's bottleneck, may saturate, or its flow count changes. Until then its rounds are
      owed (`_catch_up` pays them in order, with the same float operations numpy does), and a link
      whose last flow freezes never pays them;
    - whether a link may matter is read off its level: s + left / n_on barely moves while its
      flow count holds (left falls by n_on x inc as s rises by inc), so a heap by level gives the
      candidates, with a margin `tol` far above the rounding a level can gather in all the rounds.
      A link is evaluated exactly when its level is within tol of deciding the round.
    """
    n_l = cap.shape[0]
    E = entry_flow.shape[0]
    rate = np.zeros(n_flows)
    # each flow's links and each link's flows (counting sorts; entry order kept within each)
    f_ptr = np.zeros(n_flows + 1, np.int64)
    l_ptr = np.zeros(n_l + 1, np.int64)
    for e in range(E):
        f_ptr[entry_flow[e] + 1] += 1
        l_ptr[entry_link[e] + 1] += 1
    for f in range(n_flows):
        f_ptr[f + 1] += f_ptr[f]
    for c in range(n_l):
        l_ptr[c + 1] += l_ptr[c]
    f_links = np.empty(E, np.int64)
    l_flows = np.empty(E, np.int64)
    f_at = f_ptr[:-1].copy()
    l_at = l_ptr[:-1].copy()
    for e in range(E):
        f, c = entry_flow[e], entry_link[e]
        f_links[f_at[f]] = c
        f_at[f] += 1
        l_flows[l_at[c]] = f
        l_at[c] += 1
    active = np.zeros(n_flows, np.bool_)
    n_on = np.zeros(n_l, np.int64)             # unfrozen flows per link
    n_act = 0
    scale = 1.0                                # the largest finite capacity or demand
    for c in range(n_l):
        if np.isfinite(cap[c]) and cap[c] > scale:
            scale = cap[c]
    for f in range(n_flows):
        d = demand[f]
        if np.isfinite(d) and d > scale:
            scale = d
        if d > 0:
            if f_ptr[f + 1] == f_ptr[f]:       # crosses no link: limited only by its demand
                rate[f] = d if np.isfinite(d) else 0.0
            else:
                active[f] = True
                n_act += 1
                for k in range(f_ptr[f], f_ptr[f + 1]):
                    n_on[f_links[k]] += 1
    # a level's error after R rounds is below ~(4R + 8) ulps of `scale`; rounds are fewer than
    # flows + links (a round freezes a flow, or closes the last ulp of a demand); four times that
    tol = (16.0 * (n_flows + n_l + 2) + 32.0) * 2.0 ** -52 * scale
    floor = np.empty(n_l)
    max_floor = 0.0
    for c in range(n_l):
        floor[c] = 1e-12 * _nan_max(cap[c], 1.0)
        if n_on[c] > 0 and floor[c] > max_floor:
            max_floor = floor[c]
    # the unfrozen flows by demand (stable: ties keep flow order); `lo` skips the frozen head
    order = np.argsort(demand, kind="mergesort")
    by_demand = np.empty(n_act, np.int64)
    m = 0
    for i in range(n_flows):
        if active[order[i]]:
            by_demand[m] = order[i]
            m += 1
    lo = 0
    left = cap.copy()                          # exact after the first done[c] rounds
    done = np.zeros(n_l, np.int64)
    incs = np.empty(n_flows + 1)               # each round's increment (grown if need be)
    ver = np.zeros(n_l, np.int64)              # a heap entry is current when its version is the link's
    cap_h = E + 2 * n_l + 1
    h_key, h_link, h_ver = np.empty(cap_h), np.empty(cap_h, np.int64), np.empty(cap_h, np.int64)
    h_n = 0
    for c in range(n_l):
        if n_on[c] > 0:
            h_n = _heap_push(h_key, h_link, h_ver, h_n, left[c] / n_on[c], c, 0)
    cand = np.empty(n_l, np.int64)             # links evaluated this round
    in_cand = np.zeros(n_l, np.bool_)
    saturated = np.empty(n_l, np.int64)
    s = 0.0                                    # every unfrozen flow's rate
    rnd = 0
    while n_act > 0:
        while not active[by_demand[lo]]:
            lo += 1
        dem_inc = demand[by_demand[lo]] - s   # np.min(demand[active] - rate[active])
        while h_n > 0 and (h_ver[0] != ver[h_link[0]] or n_on[h_link[0]] == 0):
            h_n = _heap_pop(h_key, h_link, h_ver, h_n)          # stale entries
        n_cand = 0
        link_inc = np.inf                      # np.min(left[used] / n_on[used])
        if h_n > 0 and h_key[0] - s - tol <= dem_inc:
            # the bottleneck may decide the round: every link within 2 tol of the lowest level,
            # exactly (a link further up is above the lowest one's exact share, see the docstring)
            h_n, n_cand = _take_below(h_key[0] + 2.0 * tol, h_key, h_link, h_ver, h_n, ver, n_on, in_cand, cand, 0)
            for i in range(n_cand):
                c = cand[i]
                _catch_up(c, rnd, left, done, n_on, incs)
                link_inc = _nan_min(link_inc, left[c] / n_on[c])
        inc = dem_inc if dem_inc < link_inc else link_inc   # Python's min(link_inc, dem_inc)
        if 0.0 > inc:                                       # Python's max(inc, 0.0)
            inc = 0.0
        if rnd == incs.shape[0]:
            grown = np.empty(2 * rnd)
            grown[:rnd] = incs
            incs = grown
        incs[rnd] = inc
        rnd += 1
        s += inc                               # rate[active] += inc
        # links that may have saturated this round: their level within reach of s
        h_n, n_cand = _take_below(s + 2.0 * tol + max_floor, h_key, h_link, h_ver, h_n, ver, n_on, in_cand, cand,
                                  n_cand)
        n_sat = 0
        for i in range(n_cand):
            c = cand[i]
            in_cand[c] = False
            _catch_up(c, rnd, left, done, n_on, incs)
            if left[c] <= floor[c]:
                saturated[n_sat] = c
                n_sat += 1
            else:
                ver[c] += 1
                h_n = _heap_push(h_key, h_link, h_ver, h_n, s + left[c] / n_on[c], c, ver[c])
        # freeze the flows that met their demand (in demand order) and every unfrozen flow on a
        # link that saturated this round (a link in use at the round's start, as numpy's `used & ...`)
        j = lo
        while j < by_demand.shape[0] and s >= demand[by_demand[j]] - 1e-12:
            f = by_demand[j]
            if active[f]:
                h_n = _freeze(f, s, rate, active, f_ptr, f_links, n_on, left, done, incs, rnd, ver,
                              h_key, h_link, h_ver, h_n)
                n_act -= 1
            j += 1
        if j < by_demand.shape[0]:
            lo = j
        for i in range(n_sat):
            c = saturated[i]
            for k in range(l_ptr[c], l_ptr[c + 1]):
                f = l_flows[k]
                if active[f]:
                    h_n = _freeze(f, s, rate, active, f_ptr, f_links, n_on, left, done, incs, rnd, ver,
                                  h_key, h_link, h_ver, h_n)
                    n_act -= 1
    return rate


def _freeze(f, s, rate, active, f_ptr, f_links, n_on, left, done, incs, rnd, ver, h_key, h_link, h_ver, h_n) -> int:
    """Flow f stops at rate s: each of its links pays its owed rounds with its old flow count,
    loses the flow, and goes back on the heap at its new level (or leaves it, with no flow left)."""
    active[f] = False
    rate[f] = s
    for k in range(f_ptr[f], f_ptr[f + 1]):
        c = f_links[k]
        if n_on[c] > 1:
            _catch_up(c, rnd, left, done, n_on, incs)
            n_on[c] -= 1
            ver[c] += 1
            h_n = _heap_push(h_key, h_link, h_ver, h_n, s + left[c] / n_on[c], c, ver[c])
        else:
            n_on[c] = 0                        # its owed rounds are never needed
            ver[c] += 1
    return h_n


try:  # numba compiles the loops; without it the numpy code in fabric_flows is the (identical) fallback
    from numba import njit
    _jit = njit(cache=True, nogil=True)
    _nan_min, _nan_max, _link_load = _jit(_nan_min), _jit(_nan_max), _jit(_link_load)
    demand_load, apply, link_load, close_links = _jit(_demand_load), _jit(_apply), _link_load, _jit(_close_links)
    _heap_push, _heap_pop, _catch_up, _freeze = _jit(_heap_push), _jit(_heap_pop), _jit(_catch_up), _jit(_freeze)
    _take_below = _jit(_take_below)
    max_min_fair_gb_s = _jit(_max_min_fair)
except ImportError:  # pragma: no cover - numba is a dependency; this keeps a platform without it working
    demand_load = apply = link_load = close_links = max_min_fair_gb_s = None

HAVE_NUMBA = demand_load is not None
