"""Telemetry sampling: interval means of what the parts report, one row per table interval.

OpenDC's monitor pattern: the engine hands readings to the sampler every tick and the sampler
keeps float64 accumulators, so that a sampled power is the mean over its interval and energy is
exactly the integral of power (sum of interval means x sample_s). Instantaneous quantities
(temperatures, clocks, states, queue lengths) are taken at the end of the interval. The sampler
never sees Parquet: `columns()` hands arrays to `twin.sim.result`.

Each of the gpus, nodes and links tables has its own interval (simulation.telemetry, a whole
number of ticks; default simulation.sample_s) with its own accumulators, so energy integrates
exactly per table; racks, facility and the summary's peaks use simulation.sample_s.
Rows are labelled with the end of their interval, (s + 1) * sample_s of their table.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.model import serving as sv
from twin.model.states import IS_LOADED, IS_POWERED, NODE_STATES, SERVING
from twin.sim import sampler_kernel as sk
from twin.sim.spool import SampleList, SampleSpool
from twin.spec.simulation import SAMPLED_TABLES, SimulationSpec


@dataclass(frozen=True)
class SamplerLayout:
    """Static index maps the sampler needs to spread per-replica values onto nodes and racks."""
    gpu_node: np.ndarray         # (G,) node of each GPU
    gpu_rep: np.ndarray          # (G,) replica of each GPU, -1 if none
    node_rack: np.ndarray        # (N,)
    nodes_per_rack: int
    gpus_per_node: int
    n_racks: int
    pair_rep: np.ndarray         # (P,) replica of each (replica, node) pair
    pair_node: np.ndarray        # (P,) node of each pair
    rep_n_nodes: np.ndarray      # (R_rep,) nodes a replica spans
    rep_hidden_bytes: np.ndarray  # (R_rep,) activation bytes per token
    rep_hops_intra: np.ndarray   # (R_rep,) pipeline hops inside a node
    rep_hops_cross: np.ndarray   # (R_rep,) pipeline hops across the NIC
    rep_weights_per_gpu_b: np.ndarray  # (R_rep,) resident weights on each of the replica's GPUs
    rep_n_gpus: np.ndarray       # (R_rep,) GPUs of the replica (float, divides the KV reservation)
    gpair_rep: np.ndarray | None = None  # (Q,) replica of each (replica, GPU) pair: shared GPUs add their tenants
    gpair_gpu: np.ndarray | None = None  # (Q,) GPU of each pair (default: one pair per GPU of gpu_rep)

    def __post_init__(self) -> None:
        if self.gpair_rep is None:  # one replica per GPU at most
            gpus = np.flatnonzero(self.gpu_rep >= 0)
            object.__setattr__(self, "gpair_rep", self.gpu_rep[gpus])
            object.__setattr__(self, "gpair_gpu", gpus)


class Sampler:
    """Interval-mean accumulators and the sampled arrays of the gpus/nodes/racks/facility tables.

    `n_samples` x `ticks_per_sample` ticks are sampled; `table_ticks` gives the gpus, nodes and
    links tables their own ticks per row (default `ticks_per_sample`). `kernels`: "numba" (the
    compiled twin.sim.sampler_kernel loops), "numpy" (this module's numpy code), "auto"; the same bytes."""

    def __init__(self, layout: SamplerLayout, n_samples: int, ticks_per_sample: int, dt_s: float,
                 table_ticks: dict[str, int] | None = None, kernels: str = "auto") -> None:
        self.lay = layout
        self.compiled = sk.resolve(kernels) == "numba"
        self.n_samples, self.ticks_per_sample, self.dt_s = n_samples, ticks_per_sample, dt_s
        self.table_ticks = {**{t: ticks_per_sample for t in SAMPLED_TABLES}, **(table_ticks or {})}
        n_ticks = n_samples * ticks_per_sample
        self.table_samples = {t: n_ticks // n for t, n in self.table_ticks.items()}
        S, G, N, R = n_samples, len(layout.gpu_node), len(layout.node_rack), layout.n_racks
        self.G, self.N, self.R = G, N, R
        self.n_rep = len(layout.rep_n_nodes)
        f32 = np.float32
        # the GPU table is the largest: it goes to a spool that spills to disk for large halls
        self.gpu = SampleSpool({"power_w": f32, "temp_c": f32, "util": f32, "clock_factor": f32, "fan_frac": f32,
                                "throttled": np.dtype(bool), "memory_used_gb": f32}, G, self.table_samples["gpus"])
        self.node = SampleSpool({**{k: np.dtype(f32) for k in (
            "power_w", "dc_power_w", "inlet_c", "exhaust_c", "fan_rpm", "airflow_m3_s", "gpu_temp_max_c", "gpu_power_w",
            "p2p_gb_s", "nic_gb_s", "cpu_power_w", "cpu_temp_c", "cpu_util")}, "state": np.dtype(np.int8),
            "active_requests": np.dtype(np.int32)}, N, self.table_samples["nodes"])
        self.state_counts = np.full((S, len(NODE_STATES)), 0, np.int64)  # nodes in each state per sample
        # columns of one dtype are rows of one array, so that the compiled path writes a row of
        # them through one view; the dicts name the same memory
        self._rack32 = np.full((6, S, R), 0, f32)  # pages written now, not faulted in row by row (spool)
        self._rack_i32 = np.full((2, S, R), 0, np.int32)
        self.rack = {k: self._rack32[i] for i, k in enumerate((
            "power_w", "inlet_c", "exhaust_c", "airflow_demand_m3_s", "airflow_supply_m3_s", "recirculation_frac"))}
        self.rack["nodes_on"], self.rack["nodes_serving"] = self._rack_i32
        self._fac = np.full((7, S), 0, np.float64)
        self.fac = {k: self._fac[i] for i, k in enumerate((
            "it_power_w", "cooling_power_w", "overhead_power_w", "facility_power_w", "supply_c", "queued", "in_flight"))}
        # interval-mean accumulators (float64 so that energy integrates exactly), one set per interval
        self._acc_gpu = np.zeros((2, G))
        self.acc_gpu_w, self.acc_util = self._acc_gpu
        # nodes: wall, dc, gpu, p2p, nic, cpu power, cpu util, and the racks' own wall-power sum
        self._acc_node = np.zeros((8, N))
        (self.acc_node_w, self.acc_node_dc, self.acc_node_gpu, self.acc_p2p, self.acc_nic, self.acc_cpu_w,
         self.acc_cpu_util) = self._acc_node[:7]
        self.acc_fac = np.zeros(4)
        # rack power is the mean of node wall power over the racks' interval: the node accumulator
        # itself when the two intervals agree, its own otherwise
        self._own_rack_acc = self.table_ticks["nodes"] != ticks_per_sample
        self.acc_rack_node_w = self._acc_node[7] if self._own_rack_acc else self.acc_node_w
        self._gpu_accs = (self.acc_gpu_w, self.acc_util)
        self._node_accs = (self.acc_node_w, self.acc_node_dc, self.acc_node_gpu, self.acc_p2p, self.acc_nic,
                           self.acc_cpu_w, self.acc_cpu_util)
        self.throttled_gpu_s = 0.0
        self.peak_gpu_temp_c: float | None = None  # over the racks' sample instants (the summary's peak)
        self.links = SampleList()  # the fabric's samples, one per links interval (Network.sample)
        self._gpu_has_rep = layout.gpu_rep >= 0  # static: computed once, not per GPU row
        # the compiled path's scratch and static inputs, allocated once
        self._tmp_n = np.zeros((4, max(N, R)))
        self._tmp_g = np.zeros(G)
        self._zeros_n, self._zeros_g = np.zeros(N), np.zeros(G)
        self._fac_tick = np.zeros(4)
        self._with_mem = bool(self.n_rep and len(layout.gpair_rep))

    def per_node(self, pair_values: np.ndarray) -> np.ndarray:
        """Sum values given per (replica, node) pair onto nodes."""
        return np.bincount(self.lay.pair_node, weights=pair_values, minlength=self.N)

    def closes_interval(self, k: int) -> bool:
        """True when tick k is the last tick of any table's telemetry interval."""
        n = k + 1
        tt = self.table_ticks
        return (n % self.ticks_per_sample == 0 or n % tt["gpus"] == 0 or n % tt["nodes"] == 0
                or n % tt["links"] == 0)

    def closes(self, table: str, k: int) -> bool:
        """True when tick k is the last tick of an interval of `table` (racks/facility: the base one)."""
        return (k + 1) % self.table_ticks.get(table, self.ticks_per_sample) == 0

    def accumulate(self, *, gpu_power_w: np.ndarray, gpu_util: np.ndarray, node_wall_w: np.ndarray,
                   node_dc_w: np.ndarray, node_gpu_w: np.ndarray, rep_tokens_s: np.ndarray,
                   rep_prefill_tok_s: np.ndarray, node_load_gb_s: np.ndarray | None, it_w: float,
                   cooling_w: float, overhead_w: float, facility_w: float, gpu_throttled: np.ndarray,
                   node_cpu_w: np.ndarray | float = 0.0, node_cpu_util: np.ndarray | float = 0.0) -> None:
        """Add one tick's readings to the interval means."""
        lay = self.lay
        if self.compiled:
            fac = self._fac_tick
            fac[0], fac[1], fac[2], fac[3] = it_w, cooling_w, overhead_w, facility_w
            has_load = node_load_gb_s is not None
            hot = sk.accumulate(self._acc_gpu, gpu_power_w, gpu_util, self._acc_node, self._own_rack_acc, node_wall_w,
                                node_dc_w, node_gpu_w, self._per_node_array(node_cpu_w),
                                self._per_node_array(node_cpu_util), rep_tokens_s, rep_prefill_tok_s,
                                node_load_gb_s if has_load else self._zeros_n, has_load, lay.rep_hidden_bytes,
                                lay.rep_hops_intra, lay.rep_hops_cross, lay.rep_n_nodes, lay.pair_rep, lay.pair_node,
                                self._tmp_n, self.acc_fac, fac, gpu_throttled)
            self.throttled_gpu_s += float(hot) * self.dt_s
            return
        self.acc_cpu_w += node_cpu_w
        self.acc_cpu_util += node_cpu_util
        self.acc_gpu_w += gpu_power_w
        self.acc_util += gpu_util
        self.acc_node_w += node_wall_w
        if self._own_rack_acc:
            self.acc_rack_node_w += node_wall_w
        self.acc_node_dc += node_dc_w
        self.acc_node_gpu += node_gpu_w
        # intra-node pipeline traffic and NIC traffic: tokens/s x activation bytes x hops
        if self.n_rep:
            tok = rep_tokens_s + rep_prefill_tok_s
            intra = tok * lay.rep_hidden_bytes * lay.rep_hops_intra / sv.GB
            cross = tok * lay.rep_hidden_bytes * lay.rep_hops_cross / sv.GB
            # spread over the replica's nodes; each cross hop leaves one node and enters another
            p2p = self.per_node((intra / lay.rep_n_nodes)[lay.pair_rep])
            nic = self.per_node((2 * cross / lay.rep_n_nodes)[lay.pair_rep])
            if node_load_gb_s is not None:
                nic += node_load_gb_s
            self.acc_p2p += p2p
            self.acc_nic += nic
        self.acc_fac += (it_w, float(cooling_w), float(overhead_w), float(facility_w))
        self.throttled_gpu_s += float(gpu_throttled.sum()) * self.dt_s

    def snapshot(self, k: int, *, gpu_temp_c: np.ndarray, gpu_clock: np.ndarray, gpu_fan_frac: np.ndarray,
                 gpu_throttled: np.ndarray, node_state: np.ndarray, rep_kv_reserved_b: np.ndarray,
                 rep_inflight: np.ndarray, node_inlet_c: np.ndarray, node_exhaust_c: np.ndarray,
                 node_fan_rpm: np.ndarray, node_airflow_m3_s: np.ndarray, rack_exhaust_c: np.ndarray,
                 rack_demand_m3_s: np.ndarray, rack_supply_m3_s: np.ndarray, rack_recirc_frac: np.ndarray,
                 supply_c: float, queued: int, in_flight: int, links: tuple | None,
                 node_cpu_temp_c: np.ndarray | float = 0.0, gpu_extra_b: np.ndarray | float = 0.0) -> None:
        """Close every interval ending with tick k: one row of each table whose interval ends, its
        means reset. `links` is the fabric's sample when the links interval ends (else None)."""
        lay = self.lay
        n_done = k + 1
        tt = self.table_ticks
        if self.compiled:
            self._snapshot_compiled(n_done, gpu_temp_c, gpu_clock, gpu_fan_frac, gpu_throttled, node_state,
                                    rep_kv_reserved_b, rep_inflight, node_inlet_c, node_exhaust_c, node_fan_rpm,
                                    node_airflow_m3_s, rack_exhaust_c, rack_demand_m3_s, rack_supply_m3_s,
                                    rack_recirc_frac, supply_c, queued, in_flight, links, node_cpu_temp_c, gpu_extra_b)
            return
        if n_done % tt["gpus"] == 0:
            n = tt["gpus"]
            if self.n_rep and len(lay.gpair_rep):  # every tenant of a shared GPU adds its weights and KV
                loaded = IS_LOADED[node_state[lay.gpu_node]] & self._gpu_has_rep
                rep_kv = rep_kv_reserved_b / lay.rep_n_gpus
                per = (lay.rep_weights_per_gpu_b + rep_kv)[lay.gpair_rep]
                mem = np.where(loaded, np.bincount(lay.gpair_gpu, weights=per, minlength=self.G) / sv.GB, 0.0)
            else:
                mem = np.zeros(self.G)
            mem = mem + np.asarray(gpu_extra_b) / sv.GB  # + training jobs' memory
            self.gpu.append(power_w=self.acc_gpu_w / n, temp_c=gpu_temp_c, util=self.acc_util / n,
                            clock_factor=gpu_clock, fan_frac=gpu_fan_frac, throttled=gpu_throttled,
                            memory_used_gb=mem)
        if n_done % tt["nodes"] == 0:
            n = tt["nodes"]
            self.node.append(power_w=self.acc_node_w / n, dc_power_w=self.acc_node_dc / n, inlet_c=node_inlet_c,
                             exhaust_c=node_exhaust_c, fan_rpm=node_fan_rpm, airflow_m3_s=node_airflow_m3_s,
                             gpu_temp_max_c=gpu_temp_c.reshape(self.N, lay.gpus_per_node).max(axis=1),
                             gpu_power_w=self.acc_node_gpu / n, p2p_gb_s=self.acc_p2p / n, nic_gb_s=self.acc_nic / n,
                             state=node_state,
                             active_requests=self.per_node(rep_inflight[lay.pair_rep]) if self.n_rep else 0,
                             cpu_power_w=self.acc_cpu_w / n, cpu_temp_c=node_cpu_temp_c,
                             cpu_util=self.acc_cpu_util / n)
        if n_done % self.ticks_per_sample == 0:
            self._base_row(n_done // self.ticks_per_sample - 1, gpu_temp_c, node_state, node_inlet_c,
                           rack_exhaust_c, rack_demand_m3_s, rack_supply_m3_s, rack_recirc_frac, supply_c,
                           queued, in_flight)
        if links is not None:
            self.links.append(links)
        if n_done % tt["gpus"] == 0:
            for a in self._gpu_accs:
                a[:] = 0.0
        if n_done % tt["nodes"] == 0:
            for a in self._node_accs:
                a[:] = 0.0

    def _per_node_array(self, x: np.ndarray | float) -> np.ndarray:
        return x if isinstance(x, np.ndarray) else self._zeros_n + x

    def _snapshot_compiled(self, n_done: int, gpu_temp_c, gpu_clock, gpu_fan_frac, gpu_throttled, node_state,
                           rep_kv_reserved_b, rep_inflight, node_inlet_c, node_exhaust_c, node_fan_rpm,
                           node_airflow_m3_s, rack_exhaust_c, rack_demand_m3_s, rack_supply_m3_s, rack_recirc_frac,
                           supply_c, queued, in_flight, links, node_cpu_temp_c, gpu_extra_b) -> None:
        """`snapshot` through the compiled rows (twin.sim.sampler_kernel): the same values, written in place."""
        lay, tt = self.lay, self.table_ticks
        if n_done % tt["gpus"] == 0:
            sp = self.gpu
            extra = gpu_extra_b if isinstance(gpu_extra_b, np.ndarray) else (
                self._zeros_g if gpu_extra_b == 0.0 else self._zeros_g + gpu_extra_b)
            sk.gpu_row(sp.row(np.float32), sp.row(np.bool_), self._acc_gpu, tt["gpus"], gpu_temp_c, gpu_clock,
                       gpu_fan_frac, gpu_throttled, node_state, lay.gpu_node, self._gpu_has_rep, IS_LOADED,
                       self._with_mem, lay.rep_weights_per_gpu_b, rep_kv_reserved_b, lay.rep_n_gpus, lay.gpair_rep,
                       lay.gpair_gpu, extra, self._tmp_g)
            sp.commit()
        if n_done % tt["nodes"] == 0:
            sp = self.node
            sk.node_row(sp.row(np.float32), sp.row(np.int8), sp.row(np.int32), self._acc_node, tt["nodes"],
                        node_inlet_c, node_exhaust_c, node_fan_rpm, node_airflow_m3_s, gpu_temp_c, lay.gpus_per_node,
                        self._per_node_array(node_cpu_temp_c), node_state, self.n_rep > 0, rep_inflight,
                        lay.pair_rep, lay.pair_node, self._tmp_n[0])
            sp.commit()
        if n_done % self.ticks_per_sample == 0:
            s = n_done // self.ticks_per_sample - 1
            peak = sk.base_row(self._rack32[:, s], self._rack_i32[:, s], self.state_counts[s], self._fac, s,
                               self.acc_rack_node_w, self._own_rack_acc, self.acc_fac, self.ticks_per_sample,
                               node_state, lay.node_rack, lay.nodes_per_rack, node_inlet_c, rack_exhaust_c,
                               rack_demand_m3_s, rack_supply_m3_s, rack_recirc_frac, IS_POWERED, SERVING, self._tmp_n,
                               gpu_temp_c, float(supply_c), int(queued), int(in_flight))
            self._note_peak(peak)
        if links is not None:
            self.links.append(links)
        if n_done % tt["nodes"] == 0:  # after the racks' row, which may read the nodes' wall-power sum
            self._acc_node[:7] = 0.0

    def _note_peak(self, gpu_temp_c: float) -> None:
        """The summary's peak GPU temperature, as the float32 the gpus table would hold (whatever its
        own interval); no GPUs, no peak."""
        if not self.G:
            return
        peak = float(np.float32(gpu_temp_c))
        self.peak_gpu_temp_c = peak if self.peak_gpu_temp_c is None else max(self.peak_gpu_temp_c, peak)

    def _base_row(self, s: int, gpu_temp_c: np.ndarray, node_state: np.ndarray, node_inlet_c: np.ndarray,
                  rack_exhaust_c: np.ndarray, rack_demand_m3_s: np.ndarray, rack_supply_m3_s: np.ndarray,
                  rack_recirc_frac: np.ndarray, supply_c: float, queued: int, in_flight: int) -> None:
        """Row s of the racks and facility tables (simulation.sample_s), the state counts and the peak."""
        lay, rk, fc, n = self.lay, self.rack, self.fac, self.ticks_per_sample
        if self.G:
            self._note_peak(gpu_temp_c.max())
        self.state_counts[s] = np.bincount(node_state, minlength=len(NODE_STATES))
        rack = lay.node_rack
        rk["power_w"][s] = np.bincount(rack, weights=self.acc_rack_node_w / n, minlength=self.R)
        rk["inlet_c"][s] = np.bincount(rack, weights=node_inlet_c, minlength=self.R) / lay.nodes_per_rack
        rk["exhaust_c"][s] = rack_exhaust_c
        rk["airflow_demand_m3_s"][s] = rack_demand_m3_s
        rk["airflow_supply_m3_s"][s] = rack_supply_m3_s
        rk["recirculation_frac"][s] = rack_recirc_frac
        on = IS_POWERED[node_state]
        rk["nodes_on"][s] = np.bincount(rack, weights=on, minlength=self.R)
        rk["nodes_serving"][s] = np.bincount(rack, weights=node_state == SERVING, minlength=self.R)
        mean = self.acc_fac / n
        fc["it_power_w"][s], fc["cooling_power_w"][s], fc["overhead_power_w"][s], fc["facility_power_w"][s] = mean
        fc["supply_c"][s] = supply_c
        fc["queued"][s] = queued
        fc["in_flight"][s] = in_flight
        self.acc_fac[:] = 0.0
        if self._own_rack_acc:
            self.acc_rack_node_w[:] = 0.0


# what a sampled row's columns are (docs/telemetry.md): means over the row's interval, totals over
# it (counts, bytes; the facility's percentiles are over requests finishing in it), running sums
# since t = 0; every other column is the value at the end of the interval
INTERVAL_MEANS = {
    "gpus": ("power_w", "util"),
    "nodes": ("power_w", "dc_power_w", "gpu_power_w", "p2p_gb_s", "nic_gb_s", "cpu_power_w", "cpu_util"),
    "racks": ("power_w",),
    "facility": ("it_power_w", "cooling_power_w", "overhead_power_w", "facility_power_w", "pue"),
    "links": ("utilisation", "active_flows"),
    "jobs": ("tokens_per_s", "samples_per_s", "power_w"),
}
INTERVAL_TOTALS = {"facility": ("arrivals", "completed", "dropped", "ttft_p50_s", "ttft_p99_s", "latency_p50_s",
                                "latency_p99_s"), "links": ("bytes",)}
RUNNING_SUMS = {"nodes": ("energy_j",), "facility": ("it_energy_j", "facility_energy_j"), "jobs": ("energy_j",)}


def sampling_statement(sim: SimulationSpec) -> dict[str, dict]:
    """What each sampled table's rows are, for the manifest: {table: {sample_s, statistic}}."""
    out = {}
    for table, means in INTERVAL_MEANS.items():
        s = sim.table_sample_s(table)
        parts = [f"one row per element every {s:g} s, labelled with the end of its interval",
                 f"mean over the {s:g} s: {', '.join(means)}"]
        if table in INTERVAL_TOTALS:
            parts.append(f"over the {s:g} s: {', '.join(INTERVAL_TOTALS[table])}")
        if table in RUNNING_SUMS:
            parts.append(f"running sum since 0 s: {', '.join(RUNNING_SUMS[table])}")
        parts.append("other columns: the value at the interval's end")
        out[table] = {"sample_s": s, "statistic": "; ".join(parts)}
    return out
