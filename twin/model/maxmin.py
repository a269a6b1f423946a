"""Max-min fair bandwidth sharing by progressive filling, over a sparse flow-link incidence.

Why max-min: it is the textbook idealisation of per-flow fair congestion control (each flow
gets as much as it can without taking from a flow that has less; Bertsekas & Gallager, *Data
Networks*, 2nd ed., sec. 6.5.2), it needs no tuning constant, and a flow limited elsewhere
frees its share for the others on a link, which a closed-form per-tier split (capacity / flows
on the tier) would not. Proportional fairness would favour short paths; RDMA congestion control
(DCQCN) aims at equal rates at a bottleneck, which is max-min.

The incidence is given as entries (flow, link), one per link on a flow's path (a path never
repeats a link), so the work per filling round is O(entries + links), never O(flows x links):
16,000 NICs give ~50,000 entries, where a dense matrix would be ~10^9 cells. Counts are
integers (np.bincount) and every float operation is the same as on a dense matrix, so the
result is bit-identical to the dense algorithm it replaced.
"""
from __future__ import annotations

import numpy as np


def max_min_fair_sparse_gb_s(entry_flow: np.ndarray, entry_link: np.ndarray, n_flows: int,
                             capacity_gb_s: np.ndarray, demand_gb_s: np.ndarray) -> np.ndarray:
    """Max-min fair rates (GB/s) of `n_flows` flows over L links by progressive filling.

    `entry_flow[e]` crosses link `entry_link[e]` (links 0..L-1, L = capacity_gb_s.size). Flows
    with demand d_f stop growing at d_f (np.inf = elastic). All unfrozen flows grow together
    until a link saturates or a flow meets its demand; those freeze; repeat.
    """
    entry_flow = np.asarray(entry_flow, dtype=np.int64)
    entry_link = np.asarray(entry_link, dtype=np.int64)
    cap = np.asarray(capacity_gb_s, dtype=float)
    n_l = cap.size
    rate = np.zeros(n_flows)
    left = cap.copy()
    demand = np.asarray(demand_gb_s, dtype=float)
    active = demand > 0
    # a flow that crosses no link is limited only by its demand
    free = active & (np.bincount(entry_flow, minlength=n_flows) == 0)
    rate[free] = np.where(np.isfinite(demand[free]), demand[free], 0.0)
    active &= ~free
    sat_floor = 1e-12 * np.maximum(cap, 1.0)
    while active.any():
        on = active[entry_flow]
        n_on = np.bincount(entry_link[on], minlength=n_l)
        used = n_on > 0
        link_inc = np.min(left[used] / n_on[used]) if used.any() else np.inf
        inc_step = min(link_inc, float(np.min(demand[active] - rate[active])))
        inc_step = max(inc_step, 0.0)
        rate[active] += inc_step
        left -= inc_step * n_on
        saturated = used & (left <= sat_floor)
        hit = np.bincount(entry_flow[saturated[entry_link]], minlength=n_flows) > 0
        active &= ~((rate >= demand - 1e-12) | hit)
    return rate


def max_min_fair_gb_s(incidence: np.ndarray, capacity_gb_s: np.ndarray, demand_gb_s: np.ndarray) -> np.ndarray:
    """Max-min fair rates of F flows over L links; `incidence` (F, L) bool: flow f crosses link l.

    A convenience for small, hand-written examples; the fabric uses the sparse form.
    """
    inc = np.asarray(incidence, dtype=bool)
    flow, link = np.nonzero(inc)
    return max_min_fair_sparse_gb_s(flow, link, inc.shape[0], capacity_gb_s, demand_gb_s)
