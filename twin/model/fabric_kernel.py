"""Compiled (numba) kernels of the fabric's per-tick work (twin.model.fabric_flows.FabricModel):
this tick's demands and link loads over a cached flow set, what each flow sees, the per-node
rates and the link accumulators; and closing a `links` interval.

Why compiled: with the flow set cached (it changes only when replicas start or stop serving),
a tick is ~20 numpy calls on a few hundred (flow, link) entries; dispatch dominates. The
max-min filling itself (rare: only when a link is over-asked) stays numpy.

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


try:  # numba compiles the loops; without it the numpy code in fabric_flows is the (identical) fallback
    from numba import njit
    _jit = njit(cache=True, nogil=True)
    _nan_min, _nan_max, _link_load = _jit(_nan_min), _jit(_nan_max), _jit(_link_load)
    demand_load, apply, link_load, close_links = _jit(_demand_load), _jit(_apply), _link_load, _jit(_close_links)
except ImportError:  # pragma: no cover - numba is a dependency; this keeps a platform without it working
    demand_load = apply = link_load = close_links = None

HAVE_NUMBA = demand_load is not None
