"""Static serving layout: replica and ignition-unit tables, derived once from topology and specs.

Read-only arrays shared by the parts (router, batching, plant, lifecycle, autoscaler, network,
sampler); nothing here changes during a run. Replica r's GPUs are `rep_gpus[r, :]`, padded with
the sentinel G (one past the last GPU) so that per-replica reductions need no loops.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.model import replica as rp
from twin.model import offload as ol
from twin.model.coldstart import start_phases
from twin.model import serving as sv
from twin.model.kernels import attention_rate_flop_s, select_kernel
from twin.model.workload import mean_tokens
from twin.spec.catalogue import NodeSpec
from twin.spec.scenario import Scenario
from twin.spec.topology import Topology


@dataclass(frozen=True)
class Layout:
    """Replica (R,), unit (U,) and pool (P,) tables."""
    perf: tuple[sv.ReplicaPerf, ...]        # per pool (sizes the sampler and the network use)
    plans: tuple[rp.ServingPlan, ...]       # per pool: kernel-table serving plan (twin.model.replica)
    splits: tuple[ol.OffloadSplit | None, ...]  # per pool: llama.cpp layers kept in system memory (None: all on GPU)
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
    pool_cores: tuple[float | None, ...]    # per pool: CPU cores its system-memory part streams with (None: all)
    rep_cross_hops: tuple[tuple[tuple[int, int], ...], ...]  # per replica: (src, dst) node pairs over the NIC
    rep_hops_cross: np.ndarray              # (R,) pipeline hops across the NIC
    rep_hops_intra: np.ndarray              # (R,) pipeline hops over PCIe P2P inside a node
    rep_hidden_bytes: np.ndarray            # (R,) activation bytes per token and hop
    rep_pp: np.ndarray                      # (R,) pipeline stages, float
    rep_kv_cap: np.ndarray                  # (R,) KV-cache bytes
    rep_max_batch: np.ndarray               # (R,) int
    rep_prefill_s_per_tok: np.ndarray       # (R,) prefill GEMMs + TP all-reduce, s per prompt token (all prefill GPUs)
    rep_prefill_attn_s: np.ndarray          # (R,) causal attention, s per prompt token per token of the prompt
    rep_pp_overlap: np.ndarray              # (R,) bool: pipeline stages overlap (vLLM PP), so a prompt pays the fill
    rep_chunk_tokens: np.ndarray            # (R,) prefill chunk (max_batched_tokens)
    rep_paged: np.ndarray                   # (R,) bool: paged KV with preemption (vLLM); else reserved up front
    rep_block_bytes: np.ndarray             # (R,) bytes of one KV block (block tokens x KV bytes per token)
    rep_block_tokens: np.ndarray            # (R,) tokens per KV block
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
    node_load_rate_b_s: np.ndarray          # (N,) first-boot weight read rate (cold page cache), bytes/s
    pool_warmup_first_s: np.ndarray         # (P,) after the weights, first start: init + compile + KV profile + graphs
    pool_warmup_cached_s: np.ndarray        # (P,) ... later starts, with the torch.compile cache on disk

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
                                 p.memory_fraction, p.max_batch, p.kv_bytes) for p in spec.pools)


def pool_plans(scenario: Scenario) -> tuple[rp.ServingPlan, ...]:
    """twin.model.replica.serving_plan for every pool: its kernel (the pool's or the engine's
    default, from the pool's build era) and its paged-KV block size (the pool's or the engine's)."""
    spec, cat = scenario.spec, scenario.catalogue
    gpu = cat.gpu(cat.node(spec.topology.node_type).gpu)
    plans = []
    for p in spec.pools:
        eng = cat.engine(p.engine)
        if p.kv_block_tokens is not None:
            eng = eng.model_copy(update={"kv_block_tokens": p.kv_block_tokens})
        plans.append(rp.serving_plan(cat.model(p.model), cat.quant(p.quantisation), gpu, eng,
                                     select_kernel(cat, p.engine, p.quantisation, gpu, p.kernel, p.build), p.tp, p.pp,
                                     p.memory_fraction, p.kv_bytes, p.max_batch))
    return tuple(plans)


def pool_splits(scenario: Scenario, plans: tuple[rp.ServingPlan, ...]) -> tuple[ol.OffloadSplit | None, ...]:
    """Each pool's `gpu_layers` (an int, or 'auto' for the workload's longest request per slot);
    a CPU-only pool (``device: cpu``) keeps every layer in system memory (gpu_layers 0)."""
    spec = scenario.spec
    ctx = spec.workload.prompt_tokens.max + spec.workload.output_tokens.max
    out: list[ol.OffloadSplit | None] = []
    for p, pl in zip(spec.pools, plans):
        if p.device == "cpu":
            out.append(ol.OffloadSplit(layers=pl.layers, gpu_layers=0))
            continue
        if p.gpu_layers is None:
            out.append(None)
            continue
        n = ol.auto_gpu_layers(pl, p.memory_fraction, ctx, pl.max_batch) if p.gpu_layers == "auto" else p.gpu_layers
        out.append(None if n >= pl.layers else ol.OffloadSplit(layers=pl.layers, gpu_layers=int(n)))
    return tuple(out)


def _kv_pool_b(plan: rp.ServingPlan, split: ol.OffloadSplit | None = None) -> float:
    """KV bytes a replica can hold: whole blocks of the paged pool (vLLM) or the pool as reserved
    (llama.cpp). Offloaded: the VRAM next to the GPU layers holds their share of every token's KV
    (the CPU layers' KV sits in system memory), expressed as whole-token bytes."""
    if split is not None:
        return max(0.0, plan.usable_bytes - split.gpu_frac * plan.weights_bytes) / max(split.gpu_frac, 1e-9)
    if plan.engine.preemption != "none" and plan.kv_block_bytes > 0:
        return plan.kv_blocks * plan.kv_block_bytes
    return max(0.0, plan.kv_pool_bytes)


def build_layout(scenario: Scenario, topo: Topology, node: NodeSpec) -> Layout:
    spec = scenario.spec
    perf = pool_perf(scenario)
    plans = pool_plans(scenario)
    splits = pool_splits(scenario, plans)
    cat = scenario.catalogue
    cpu = cat.cpu(node.cpu)
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
    pool_cores = tuple(float(p.cores) if p.cores is not None and (p.device == "cpu" or p.gpu_layers is not None)
                       else None for p in spec.pools)
    # pipeline hops per traversal: (src, dst) node pairs that cross the NIC (the fabric's flows),
    # the rest stay inside a node on PCIe P2P
    cross: list[tuple[tuple[int, int], ...]] = []
    for r in reps:
        pool = spec.pools[r.pool_id]
        stage_nodes = [r.gpu_ids[s * pool.tp] // gpn for s in range(pool.pp)] if r.gpu_ids else []
        cross.append(tuple((a, b) for a, b in zip(stage_nodes, stage_nodes[1:]) if a != b))
    hops_cross = np.array([len(h) for h in cross], dtype=float)
    hops_intra = np.array([spec.pools[r.pool_id].pp - 1 for r in reps], dtype=float) - hops_cross
    pool_kv_cap = np.array([_kv_pool_b(pl, sp) for pl, sp in zip(plans, splits)])
    for k, p in enumerate(spec.pools):  # a CPU-only pool keeps its KV cache in the RAM it reserves
        if p.device == "cpu":
            pool_kv_cap[k] = max(0.0, (p.ram_gb or 0.0) * sv.GB - plans[k].weights_bytes)
    mean_prompt = mean_tokens(spec.workload.prompt_tokens)
    # offloaded pools: llama.cpp prefills at the offload rate (CPU layers computed or streamed over PCIe)
    # a CPU-only pool computes its prompts on its own cores (no GPU to stream its layers to)
    offload_s_per_tok = [None if sp is None else
                         1.0 / (ol.cpu_prefill_tokens_per_s(2.0 * pl.active_params, cpu, pl.engine.cpu_eta_compute,
                                                            pool_cores[k]) if spec.pools[k].device == "cpu" else
                                ol.offload_prefill_tokens_per_s(pl, sp, cpu, node, mean_prompt,
                                                                cpu_eta=pl.engine.cpu_eta_compute, cores=pool_cores[k]))
                         for k, (pl, sp) in enumerate(zip(plans, splits))]
    paged = np.array([pl.engine.preemption != "none" for pl in plans], dtype=bool)
    unit_reps = tuple(np.flatnonzero(np.array([r.unit_id for r in reps], dtype=np.int64) == u)
                      for u in range(topo.n_units))
    unit_nodes = tuple(np.array(u, dtype=np.int64) for u in topo.unit_nodes)
    # requests a replica can hold at once on average (the autoscaler's capacity unit): a paged pool
    # holds the current context, on average prompt + output / 2; a reserving one prompt + output
    mean_p, mean_o = mean_tokens(spec.workload.prompt_tokens), mean_tokens(spec.workload.output_tokens)
    mean_res = np.where(paged, mean_p + mean_o / 2, mean_p + mean_o)
    # engine start (twin.model.coldstart): the weights at the first-boot rate of each node's pool
    # (nodes were powered off, so the page cache is cold); then the engine's warm-up phases: a unit's
    # first start pays the kernel row's first-use JIT and torch.compile unless the pool's boot_cache
    # has them; a restart of the same unit finds both on its disk
    starts = [(start_phases(pl.engine, node, 1.0, node.gpu_count, -(-pl.layers // pl.pp), warm=False,
                            first_use_jit_s=pl.kernel.first_use_jit_s, boot_cache=p.boot_cache),
               start_phases(pl.engine, node, 1.0, node.gpu_count, -(-pl.layers // pl.pp), warm=True))
              for p, pl in zip(spec.pools, plans)]
    node_rate = np.full(topo.n_nodes, min(node.nvme_read_gb_s, node.pcie_h2d_gb_s) * sv.GB)
    for u, nodes in enumerate(topo.unit_nodes):
        node_rate[list(nodes)] = sv.GB / starts[topo.unit_pool[u]][0].weights_s  # 1 GB in weights_s seconds
    warm_first = np.array([f.total_s - f.weights_s for f, _ in starts])
    warm_cached = np.array([w.total_s - w.weights_s for _, w in starts])
    return Layout(
        perf=perf, plans=plans, splits=splits, n_gpus=G, node_load_rate_b_s=node_rate, pool_warmup_first_s=warm_first,
        pool_warmup_cached_s=warm_cached, rep_pool=rep_pool, rep_unit=np.array([r.unit_id for r in reps], dtype=np.int64),
        rep_gpus=rep_gpus, rep_first_node=np.array([r.node_ids[0] for r in reps], dtype=np.int64), gpu_rep=gpu_rep,
        gpu_reps=tuple(tuple(x) for x in on_gpu), pair_rep=pair_rep, pair_gpu=pair_gpu,
        shared_gpus=any(len(x) > 1 for x in on_gpu), rep_cpu=np.array([r.device == "cpu" for r in reps], dtype=bool),
        pool_cores=pool_cores,
        rep_cross_hops=tuple(cross), rep_hops_cross=hops_cross, rep_hops_intra=hops_intra,
        rep_hidden_bytes=np.array([perf[p].hidden_size for p in rep_pool], dtype=float) * sv.ACTIVATION_BYTES,
        rep_pp=np.array([perf[p].pp for p in rep_pool], dtype=float),
        rep_kv_cap=pool_kv_cap[rep_pool], rep_max_batch=np.array([perf[p].max_batch for p in rep_pool], dtype=np.int64),
        rep_prefill_s_per_tok=np.array([
            offload_s_per_tok[p] if offload_s_per_tok[p] is not None else
            float(rp.prefill_s_per_token(plans[p], 0.0))
            + sv.tp_prefill_s_per_token(perf[p].layers, perf[p].hidden_size, perf[p].tp, node.pcie_p2p_gb_s)
            for p in rep_pool]),
        rep_prefill_attn_s=np.array([0.0 if splits[p] is not None else
                                     2.0 * plans[p].attention_layers * plans[p].attn_dim
                                     / (attention_rate_flop_s(plans[p].gpu) * plans[p].prefill_gpus) for p in rep_pool]),
        rep_pp_overlap=np.array([plans[p].engine.pipeline_overlap for p in rep_pool], dtype=bool),
        rep_chunk_tokens=np.array([plans[p].engine.max_batched_tokens for p in rep_pool], dtype=float),
        rep_paged=paged[rep_pool],
        rep_block_bytes=np.array([plans[p].kv_block_bytes for p in rep_pool]),
        rep_block_tokens=np.array([plans[p].kv_block_tokens for p in rep_pool], dtype=np.int64),
        rep_cont_batching=np.array([perf[p].continuous_batching for p in rep_pool], dtype=bool),
        pool_reps=tuple(np.flatnonzero(rep_pool == k) for k in range(len(spec.pools))),
        pool_units=tuple(np.flatnonzero(topo.unit_pool == k) for k in range(len(spec.pools))),
        pool_kv_cap=pool_kv_cap,
        pool_req_per_replica=np.array([
            max(1.0, min(pl.max_batch, pool_kv_cap[k] / max(pl.kv_bytes_per_token * mean_res[k]
                                                             + pl.state_bytes_per_seq, 1.0)))
            for k, pl in enumerate(plans)]),
        unit_nodes=unit_nodes, unit_reps=unit_reps, unit_pool=topo.unit_pool,
        unit_first_node=np.array([int(n[0]) for n in unit_nodes], dtype=np.int64),
        unit_load_bytes_per_node=np.array([_unit_weights_b(unit_reps[u], rep_pool, perf) / len(unit_nodes[u])
                                           for u in range(topo.n_units)]),
    )


def _unit_weights_b(reps: np.ndarray, rep_pool: np.ndarray, perf: tuple[sv.ReplicaPerf, ...]) -> float:
    """Weight bytes a unit loads: replicas x weights, pool by pool (colocated pools add theirs)."""
    pools, counts = np.unique(rep_pool[reps], return_counts=True)
    return float(sum(int(c) * perf[int(p)].weights_bytes for p, c in zip(pools, counts)))


def pool_offload(scenario: Scenario, lay: "Layout") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pool: (share of a busy decode step its GPUs work, share of the CPU package its threads
    load while it has work, weight bytes a replica keeps on its GPUs).

    1 / 0 / all for GPU pools; 0 / cores share / 0 for CPU-only pools; with llama.cpp partial
    offload the GPUs wait on system memory for the CPU part of every step (twin.model.offload:
    the parts add), while the streaming threads (all cores unless `cores`) keep the package busy."""
    spec, cat = scenario.spec, scenario.catalogue
    node = cat.node(spec.topology.node_type)
    cpu = cat.cpu(node.cpu)
    n = len(spec.pools)
    gpu_busy, cpu_load = np.ones(n), np.zeros(n)
    gpu_w = np.array([pf.weights_bytes for pf in lay.perf])
    for k, (p, pl, sp) in enumerate(zip(spec.pools, lay.plans, lay.splits)):
        if sp is None:
            continue
        cores = lay.pool_cores[k]
        total = ol.offload_decode_token_s(pl, sp, cpu, node, context_tokens=1000.0, cores=cores)
        kv = 1000.0 * pl.kv_bytes_per_token
        cpu_s = (1.0 - sp.gpu_frac) * (pl.weights_read_bytes + kv) / (ol.cpu_read_gb_s(cpu, node, cores) * 1e9)
        gpu_busy[k] = 0.0 if p.device == "cpu" else max(0.0, 1.0 - cpu_s / total)
        cpu_load[k] = (1.0 - gpu_busy[k]) * (cores or cpu.cores) / cpu.cores
        gpu_w[k] = sp.gpu_frac * pl.weights_bytes
    return gpu_busy, cpu_load, gpu_w
