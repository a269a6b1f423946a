"""Compiled (numba) kernels of the sampler's per-tick work: the interval accumulators and the
rows of the gpus, nodes, racks and facility tables.

Why compiled: a tick's sampling is ~100 small numpy operations (adds, divides, gathers, a
bincount per column, a float64 -> float32 store per column), each paying ~1 us of dispatch for
a few hundred elements; one loop per table does the same arithmetic without the dispatch.

Every loop does what twin.sim.sampler's numpy code does, in the same order: sums start from 0.0
and run in index order (np.bincount's order), means divide by the tick count, stores round
float64 to float32 to nearest (as numpy's casting does), max propagates NaN like ndarray.max.
So the bytes are the same (tests/test_sampler_kernel.py); `kernels="numpy"` selects the numpy
code, the fallback when numba is missing.
"""
from __future__ import annotations

import numpy as np

from twin.sim import compiled

GB = 1e9  # twin.model.serving.GB: the sampler's GB/s and GB columns


def _nanmax(a: np.ndarray, lo: int, hi: int) -> float:
    """max of a[lo:hi] (hi > lo), NaN if any is NaN (ndarray.max)."""
    m = a[lo]
    for i in range(lo + 1, hi):
        x = a[i]
        if x > m or x != x:
            m = x
            if x != x:
                return x
    return m


def _accumulate(acc_gpu, gpu_power_w, gpu_util, acc_node, own_rack, node_wall_w, node_dc_w, node_gpu_w,
                node_cpu_w, node_cpu_util, rep_tok_s, rep_prefill_tok_s, node_load_gb_s, has_load,
                hidden_b, hops_intra, hops_cross, rep_n_nodes, pair_rep, pair_node, tmp, acc_fac, fac,
                gpu_throttled) -> int:
    """One tick into the interval sums; returns the number of throttled GPUs.

    acc_gpu (2, G): power, util; acc_node (8, N): wall, dc, gpu, p2p, nic, cpu_w, cpu_util, racks'
    own wall sum (row 7, only when `own_rack`); tmp (2, N) scratch; fac (4,) this tick's it,
    cooling, overhead, facility W."""
    for g in range(acc_gpu.shape[1]):
        acc_gpu[0, g] += gpu_power_w[g]
        acc_gpu[1, g] += gpu_util[g]
    n_nodes = acc_node.shape[1]
    for n in range(n_nodes):
        acc_node[5, n] += node_cpu_w[n]
        acc_node[6, n] += node_cpu_util[n]
        acc_node[0, n] += node_wall_w[n]
        if own_rack:
            acc_node[7, n] += node_wall_w[n]
        acc_node[1, n] += node_dc_w[n]
        acc_node[2, n] += node_gpu_w[n]
    if rep_tok_s.shape[0]:
        for n in range(n_nodes):
            tmp[0, n] = 0.0
            tmp[1, n] = 0.0
        for p in range(pair_rep.shape[0]):
            r = pair_rep[p]
            tok = rep_tok_s[r] + rep_prefill_tok_s[r]
            intra = tok * hidden_b[r] * hops_intra[r] / GB
            cross = tok * hidden_b[r] * hops_cross[r] / GB
            nd = pair_node[p]
            tmp[0, nd] += intra / rep_n_nodes[r]
            tmp[1, nd] += 2 * cross / rep_n_nodes[r]
        for n in range(n_nodes):
            nic = tmp[1, n]
            if has_load:
                nic += node_load_gb_s[n]
            acc_node[3, n] += tmp[0, n]
            acc_node[4, n] += nic
    for i in range(4):
        acc_fac[i] += fac[i]
    hot = 0
    for g in range(gpu_throttled.shape[0]):
        if gpu_throttled[g]:
            hot += 1
    return hot


def _gpu_row(f32, flags, acc_gpu, n, gpu_temp_c, gpu_clock, gpu_fan_frac, gpu_throttled, node_state, gpu_node,
             has_rep, is_loaded, with_mem, rep_weights_b, rep_kv_b, rep_n_gpus, gpair_rep, gpair_gpu, extra_b,
             mem) -> None:
    """One gpus row: f32 (6, G) power, temp, util, clock, fan, memory; flags (1, G) throttled; mem (G,) scratch."""
    G = f32.shape[1]
    for g in range(G):
        mem[g] = 0.0
    if with_mem:
        for q in range(gpair_rep.shape[0]):
            r = gpair_rep[q]
            mem[gpair_gpu[q]] += rep_weights_b[r] + rep_kv_b[r] / rep_n_gpus[r]
    for g in range(G):
        m = 0.0
        if with_mem and is_loaded[node_state[gpu_node[g]]] and has_rep[g]:
            m = mem[g] / GB
        f32[0, g] = acc_gpu[0, g] / n
        f32[1, g] = gpu_temp_c[g]
        f32[2, g] = acc_gpu[1, g] / n
        f32[3, g] = gpu_clock[g]
        f32[4, g] = gpu_fan_frac[g]
        f32[5, g] = m + extra_b[g] / GB
        flags[0, g] = gpu_throttled[g]
    for g in range(G):  # the interval's means are taken: its sums restart
        acc_gpu[0, g] = 0.0
        acc_gpu[1, g] = 0.0


def _node_row(f32, state_out, active_out, acc_node, n, inlet_c, exhaust_c, fan_rpm, airflow_m3_s, gpu_temp_c,
              gpus_per_node, cpu_temp_c, node_state, has_reps, rep_inflight, pair_rep, pair_node, tmp) -> None:
    """One nodes row: f32 (13, N) in the spool's column order; state (1, N) int8; active requests (1, N) int32."""
    N = f32.shape[1]
    for i in range(N):
        tmp[i] = 0.0
    if has_reps:
        for p in range(pair_rep.shape[0]):
            tmp[pair_node[p]] += rep_inflight[pair_rep[p]]
    for i in range(N):
        f32[0, i] = acc_node[0, i] / n
        f32[1, i] = acc_node[1, i] / n
        f32[2, i] = inlet_c[i]
        f32[3, i] = exhaust_c[i]
        f32[4, i] = fan_rpm[i]
        f32[5, i] = airflow_m3_s[i]
        f32[6, i] = _nanmax(gpu_temp_c, i * gpus_per_node, (i + 1) * gpus_per_node)
        f32[7, i] = acc_node[2, i] / n
        f32[8, i] = acc_node[3, i] / n
        f32[9, i] = acc_node[4, i] / n
        f32[10, i] = acc_node[5, i] / n
        f32[11, i] = cpu_temp_c[i]
        f32[12, i] = acc_node[6, i] / n
        state_out[0, i] = node_state[i]
        active_out[0, i] = np.int32(tmp[i])


def _base_row(rk32, rk_i32, counts, fac, s, acc_rack, own_rack, acc_fac, n, node_state, node_rack, nodes_per_rack,
              node_inlet_c, rack_exhaust_c, rack_demand, rack_supply, rack_recirc, is_powered, serving, tmp,
              gpu_temp_c, supply_c, queued, in_flight) -> float:
    """Row s of the racks and facility tables: rk32 (6, R), rk_i32 (2, R), counts (states,), fac (7, S)
    (four power means, supply air, queued, in flight); the facility sums (and the racks' own wall-power
    sums, `own_rack`) restart. Returns the hottest GPU (NaN if any is NaN; 0.0 without GPUs)."""
    R = rk32.shape[1]
    for i in range(counts.shape[0]):
        counts[i] = 0
    for r in range(R):
        for c in range(4):
            tmp[c, r] = 0.0
    for i in range(node_rack.shape[0]):
        r = node_rack[i]
        st = node_state[i]
        counts[st] += 1
        tmp[0, r] += acc_rack[i] / n
        tmp[1, r] += node_inlet_c[i]
        tmp[2, r] += 1.0 if is_powered[st] else 0.0
        tmp[3, r] += 1.0 if st == serving else 0.0
    for r in range(R):
        rk32[0, r] = tmp[0, r]
        rk32[1, r] = tmp[1, r] / nodes_per_rack
        rk32[2, r] = rack_exhaust_c[r]
        rk32[3, r] = rack_demand[r]
        rk32[4, r] = rack_supply[r]
        rk32[5, r] = rack_recirc[r]
        rk_i32[0, r] = np.int32(tmp[2, r])
        rk_i32[1, r] = np.int32(tmp[3, r])
    for c in range(4):
        fac[c, s] = acc_fac[c] / n
        acc_fac[c] = 0.0
    fac[4, s], fac[5, s], fac[6, s] = supply_c, queued, in_flight
    if own_rack:
        for i in range(acc_rack.shape[0]):
            acc_rack[i] = 0.0
    return _nanmax(gpu_temp_c, 0, gpu_temp_c.shape[0]) if gpu_temp_c.shape[0] else 0.0


try:  # numba compiles the loops; without it the sampler's numpy code is the (identical) fallback
    from numba import njit
    _jit = njit(cache=True, nogil=True)
    _nanmax = _jit(_nanmax)
    accumulate, gpu_row, node_row, base_row = _jit(_accumulate), _jit(_gpu_row), _jit(_node_row), _jit(_base_row)
except ImportError:  # pragma: no cover - numba is a dependency; this keeps a platform without it working
    accumulate = gpu_row = node_row = base_row = None

HAVE_NUMBA = accumulate is not None


resolve = compiled.resolve  # one rule for every kernel (twin.sim.compiled)
