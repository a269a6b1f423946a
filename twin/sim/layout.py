"""Static serving layout: replica and ignition-unit tables, derived once from topology and specs.

Read-only arrays shared by the parts (router, batching, plant, lifecycle, autoscaler, network,
sampler); nothing here changes during a run. Replica r's GPUs are `rep_gpus[r, :]`, padded with
the sentinel G (one past the last GPU) so that per-replica reductions need no loops.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.model import serving as sv
from twin.model.cpu_inference import cpu_replica_perf, offload_replica
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
    gpu_rep: np.ndarray                     # (G,) replica of each GPU (the first one when shared), -1 if none
    gpu_reps: tuple[tuple[int, ...], ...]   # (G,) every replica on each GPU (several pools on one GPU)
    pair_rep: np.ndarray                    # (P,) replica of each (replica, GPU) pair
    pair_gpu: np.ndarray                    # (P,) GPU of each pair
    shared_gpus: bool                       # some GPU carries more than one replica
    rep_cpu: np.ndarray                     # (R,) bool: a CPU-only replica (device: cpu), no GPUs
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
    node = cat.node(spec.topology.node_type)
    out = []
    for p in spec.pools:
        model, quant, engine = cat.model(p.model), cat.quant(p.quantisation), cat.engine(p.engine)
        if p.device == "cpu":
            out.append(cpu_replica_perf(model, quant, engine, cat.cpu(node.cpu), node, p.cores or 1, p.ram_gb or 0.0,
                                        p.max_batch))
        elif p.gpu_layers is not None:
            out.append(offload_replica(model, quant, engine, gpu, cat.cpu(node.cpu), node, p.tp * p.pp,
                                       p.memory_fraction, p.gpu_layers, p.max_batch).perf)
        else:
            out.append(sv.replica_perf(model, quant, gpu, engine, p.tp, p.pp, p.memory_fraction, p.max_batch,
                                       p.kv_bytes))
    return tuple(out)


def pool_offload(scenario: Scenario, perf: tuple[sv.ReplicaPerf, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pool: (share of a busy step the GPUs work, share of the CPU package the pool's threads
    load, weight bytes a replica keeps on its GPUs).

    1 / 0 for GPU pools; 0 / cores share for CPU-only pools; for partial offload the GPUs wait on
    system memory most of a step, when every core streams (llama.cpp's default threads)."""
    spec, cat = scenario.spec, scenario.catalogue
    node = cat.node(spec.topology.node_type)
    cpu = cat.cpu(node.cpu)
    gpu_busy, cpu_load = np.ones(len(spec.pools)), np.zeros(len(spec.pools))
    gpu_w = np.array([pf.weights_bytes for pf in perf])
    for k, p in enumerate(spec.pools):
        if p.device == "cpu":
            gpu_busy[k], cpu_load[k], gpu_w[k] = 0.0, (p.cores or 0) / cpu.cores, 0.0
        elif p.gpu_layers is not None:
            off = offload_replica(cat.model(p.model), cat.quant(p.quantisation), cat.engine(p.engine), cat.gpu(node.gpu),
                                  cpu, node, p.tp * p.pp, p.memory_fraction, p.gpu_layers, p.max_batch)
            gpu_busy[k] = off.gpu_busy_frac
            cpu_load[k] = (1.0 - off.gpu_busy_frac) * (p.cores or cpu.cores) / cpu.cores
            gpu_w[k] = off.gpu_weights_b
    return gpu_busy, cpu_load, gpu_w


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
    on_gpu: list[list[int]] = [[] for _ in range(G)]
    for r in reps:
        rep_gpus[r.replica_id, :len(r.gpu_ids)] = r.gpu_ids
        for g in r.gpu_ids:
            if gpu_rep[g] < 0:
                gpu_rep[g] = r.replica_id
            on_gpu[g].append(r.replica_id)
    pair_rep = np.array([r.replica_id for r in reps for _ in r.gpu_ids], dtype=np.int64)
    pair_gpu = np.array([g for r in reps for g in r.gpu_ids], dtype=np.int64)
    # pipeline hops per traversal: (src, dst) node pairs that cross the NIC (the fabric's flows),
    # the rest stay inside a node on PCIe P2P
    cross: list[tuple[tuple[int, int], ...]] = []
    for r in reps:
        pool = spec.pools[r.pool_id]
        stage_nodes = [r.gpu_ids[s * pool.tp] // gpn for s in range(pool.pp)] if r.gpu_ids else []
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
        gpu_reps=tuple(tuple(x) for x in on_gpu), pair_rep=pair_rep, pair_gpu=pair_gpu,
        shared_gpus=any(len(x) > 1 for x in on_gpu), rep_cpu=np.array([r.device == "cpu" for r in reps], dtype=bool),
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
        unit_load_bytes_per_node=np.array([_unit_weights_b(unit_reps[u], rep_pool, perf) / len(unit_nodes[u])
                                           for u in range(topo.n_units)]),
    )


def _unit_weights_b(reps: np.ndarray, rep_pool: np.ndarray, perf: tuple[sv.ReplicaPerf, ...]) -> float:
    """Weight bytes a unit loads: replicas x weights, pool by pool (colocated pools add theirs)."""
    pools, counts = np.unique(rep_pool[reps], return_counts=True)
    return float(sum(int(c) * perf[int(p)].weights_bytes for p, c in zip(pools, counts)))
