"""Static serving layout: replica and ignition-unit tables, derived once from topology and specs.

Read-only arrays shared by the parts (router, batching, plant, lifecycle, autoscaler, network,
sampler); nothing here changes during a run. Replica r's GPUs are `rep_gpus[r, :]`, padded with
the sentinel G (one past the last GPU) so that per-replica reductions need no loops.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.model import serving as sv
from twin.model.workload import mean_tokens
from twin.spec.catalogue import NodeSpec
from twin.spec.scenario import Scenario
from twin.spec.topology import Topology


@dataclass(frozen=True)
class Layout:
    """Replica (R,), unit (U,) and pool (P,) tables."""
    perf: tuple[sv.ReplicaPerf, ...]        # per pool
    n_gpus: int
    rep_pool: np.ndarray                    # (R,) int
    rep_unit: np.ndarray                    # (R,) int
    rep_gpus: np.ndarray                    # (R, max GPUs) int, padded with n_gpus
    rep_first_node: np.ndarray              # (R,) node that stands for the replica in events
    gpu_rep: np.ndarray                     # (G,) replica of each GPU, -1 if none
    rep_cross_hops: tuple[tuple[tuple[int, int], ...], ...]  # per replica: (src, dst) node pairs over the NIC
    rep_hops_cross: np.ndarray              # (R,) pipeline hops across the NIC
    rep_hops_intra: np.ndarray              # (R,) pipeline hops over PCIe P2P inside a node
    rep_hidden_bytes: np.ndarray            # (R,) activation bytes per token and hop
    rep_pp: np.ndarray                      # (R,) pipeline stages, float
    rep_kv_cap: np.ndarray                  # (R,) KV-cache bytes
    rep_max_batch: np.ndarray               # (R,) int
    rep_prefill_s_per_tok: np.ndarray       # (R,) compute-bound prefill + TP all-reduce, s per prompt token
    rep_cont_batching: np.ndarray           # (R,) bool
    pool_reps: tuple[np.ndarray, ...]       # per pool: its replica ids
    pool_units: tuple[np.ndarray, ...]      # per pool: its unit ids
    pool_kv_cap: np.ndarray                 # (P,) KV bytes of one replica of the pool
    pool_req_per_replica: np.ndarray        # (P,) requests a replica holds at once on average
    unit_nodes: tuple[np.ndarray, ...]      # per unit: its node ids
    unit_reps: tuple[np.ndarray, ...]       # per unit: its replica ids
    unit_pool: np.ndarray                   # (U,)
    unit_first_node: np.ndarray             # (U,)
    unit_load_bytes_per_node: np.ndarray    # (U,) weight bytes each node of the unit loads

    @property
    def n_rep(self) -> int:
        return len(self.rep_pool)

    @property
    def n_units(self) -> int:
        return len(self.unit_pool)


def pool_perf(scenario: Scenario) -> tuple[sv.ReplicaPerf, ...]:
    """serving.replica_perf for every pool of the scenario."""
    spec, cat = scenario.spec, scenario.catalogue
    gpu = cat.gpu(cat.node(spec.topology.node_type).gpu)
    return tuple(sv.replica_perf(cat.model(p.model), cat.quant(p.quantisation), gpu, cat.engine(p.engine), p.tp, p.pp,
                                 p.memory_utilisation, p.max_batch, p.kv_bytes) for p in spec.pools)


def build_layout(scenario: Scenario, topo: Topology, node: NodeSpec) -> Layout:
    spec = scenario.spec
    perf = pool_perf(scenario)
    G, gpn = topo.n_gpus, topo.gpus_per_node
    reps = topo.replicas
    nr = len(reps)
    rep_pool = np.array([r.pool_id for r in reps], dtype=np.int64)
    max_g = max((len(r.gpu_ids) for r in reps), default=1)
    rep_gpus = np.full((nr, max_g), G, dtype=np.int64)
    gpu_rep = np.full(G, -1, dtype=np.int64)
    for r in reps:
        rep_gpus[r.replica_id, :len(r.gpu_ids)] = r.gpu_ids
        gpu_rep[list(r.gpu_ids)] = r.replica_id
    # pipeline hops per traversal: (src, dst) node pairs that cross the NIC (the fabric's flows),
    # the rest stay inside a node on PCIe P2P
    cross: list[tuple[tuple[int, int], ...]] = []
    for r in reps:
        pool = spec.pools[r.pool_id]
        stage_nodes = [r.gpu_ids[s * pool.tp] // gpn for s in range(pool.pp)]
        cross.append(tuple((a, b) for a, b in zip(stage_nodes, stage_nodes[1:]) if a != b))
    hops_cross = np.array([len(h) for h in cross], dtype=float)
    hops_intra = np.array([spec.pools[r.pool_id].pp - 1 for r in reps], dtype=float) - hops_cross
    pool_kv_cap = np.array([pf.kv_capacity_bytes for pf in perf])
    unit_reps = tuple(np.flatnonzero(np.array([r.unit_id for r in reps], dtype=np.int64) == u)
                      for u in range(topo.n_units))
    unit_nodes = tuple(np.array(u, dtype=np.int64) for u in topo.unit_nodes)
    # requests a replica can hold at once on average (the autoscaler's capacity unit)
    mean_res = mean_tokens(spec.workload.prompt_tokens) + mean_tokens(spec.workload.output_tokens)
    return Layout(
        perf=perf, n_gpus=G, rep_pool=rep_pool, rep_unit=np.array([r.unit_id for r in reps], dtype=np.int64),
        rep_gpus=rep_gpus, rep_first_node=np.array([r.node_ids[0] for r in reps], dtype=np.int64), gpu_rep=gpu_rep,
        rep_cross_hops=tuple(cross), rep_hops_cross=hops_cross, rep_hops_intra=hops_intra,
        rep_hidden_bytes=np.array([perf[p].hidden_size for p in rep_pool], dtype=float) * sv.ACTIVATION_BYTES,
        rep_pp=np.array([perf[p].pp for p in rep_pool], dtype=float),
        rep_kv_cap=pool_kv_cap[rep_pool], rep_max_batch=np.array([perf[p].max_batch for p in rep_pool], dtype=np.int64),
        rep_prefill_s_per_tok=np.array([
            float(sv.prefill_seconds_per_token(perf[p].active_params, perf[p].prefill_gpus, perf[p].prefill_tflops,
                                               perf[p].eta_fl))
            + sv.tp_prefill_s_per_token(perf[p].layers, perf[p].hidden_size, perf[p].tp, node.pcie_p2p_gb_s)
            for p in rep_pool]),
        rep_cont_batching=np.array([perf[p].continuous_batching for p in rep_pool], dtype=bool),
        pool_reps=tuple(np.flatnonzero(rep_pool == k) for k in range(len(spec.pools))),
        pool_units=tuple(np.flatnonzero(topo.unit_pool == k) for k in range(len(spec.pools))),
        pool_kv_cap=pool_kv_cap,
        pool_req_per_replica=np.array([
            max(1.0, min(pf.max_batch, pf.kv_capacity_bytes / max(pf.kv_bytes_per_token * mean_res
                                                                   + pf.state_bytes_per_seq, 1.0)))
            for pf in perf]),
        unit_nodes=unit_nodes, unit_reps=unit_reps, unit_pool=topo.unit_pool,
        unit_first_node=np.array([int(n[0]) for n in unit_nodes], dtype=np.int64),
        unit_load_bytes_per_node=np.array([len(unit_reps[u]) * perf[topo.unit_pool[u]].weights_bytes
                                           / len(unit_nodes[u]) for u in range(topo.n_units)]),
    )
