"""LLM serving physics: memory plan, roofline prefill and decode times, GPU activity.

Pure functions of specs and numpy arrays; no SimPy, no I/O.

References (see shared/reference/hardware.md, "LLM serving"):
- Decode is memory-bandwidth bound: one iteration reads the weights once plus every
  sequence's KV cache; time = bytes / (eta_bw * bandwidth).
- Prefill is compute bound: time = 2 * active_params * tokens / (eta_fl * dense FLOPS).
- Pipeline parallel (pp stages) does not shorten one token's latency: the stages run in turn,
  so weights stream at one stage's bandwidth; with pp micro-batches in flight every stage is busy,
  which multiplies how many sequences share that latency (vLLM-style virtual engines).
- Tensor parallel (tp) splits every layer: tp GPUs stream weights together, at the cost of two
  all-reduces per layer over PCIe (no NVLink on RTX PRO cards).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.spec.catalogue import EngineSpec, GpuSpec, ModelSpec, QuantSpec

GB = 1e9
ACTIVATION_BYTES = 2.0      # BF16 activations between pipeline stages / in all-reduces
# GPU activity by phase (fraction of the way from idle to board power), hardware.md:
ACTIVITY_PREFILL = 0.95      # prefill 0.9-1.0
ACTIVITY_DECODE_B1 = 0.45    # decode batch 1: 0.35-0.55
ACTIVITY_DECODE_LARGE = 0.80  # large-batch decode: 0.6-0.85
DECODE_LARGE_BATCH = 64


@dataclass(frozen=True)
class MemoryPlan:
    """VRAM budget of one replica (all its GPUs together), GB."""
    weights_gb: float
    usable_gb: float
    kv_budget_gb: float
    kv_bytes_per_token: float
    state_bytes_per_seq: float


def replica_memory_plan(model: ModelSpec, quant: QuantSpec, gpu: GpuSpec, n_gpus: int,
                        memory_utilisation: float, kv_bytes: float | None = None) -> MemoryPlan:
    """Weights vs usable VRAM; what is left holds KV cache and recurrent state.

    usable = n_gpus * memory_gb * memory_utilisation (vLLM's gpu_memory_utilization);
    weights = total_params * bytes_per_param. Activation workspace is inside the (1 - util) margin.
    """
    weights_gb = model.total_params_b * quant.bytes_per_param
    usable_gb = n_gpus * gpu.memory_gb * memory_utilisation
    kvb = quant.kv_bytes if kv_bytes is None else kv_bytes
    return MemoryPlan(weights_gb=weights_gb, usable_gb=usable_gb, kv_budget_gb=usable_gb - weights_gb,
                      kv_bytes_per_token=model.kv_bytes_per_token(kvb),
                      state_bytes_per_seq=model.state_mb_per_seq * 1e6)


def weight_bytes_read(total_bytes: float, active_fraction: float, batch: np.ndarray) -> np.ndarray:
    """Bytes of weights one decode iteration reads for `batch` sequences.

    Dense models (active_fraction = 1) read everything. For mixture-of-experts, each token
    touches ~active_fraction of the weights; with independent routing the expected share
    touched by a batch is 1 - (1 - f)^batch (estimate; shared layers make it an upper bound).
    """
    batch = np.asarray(batch, dtype=float)
    touched = 1.0 - (1.0 - active_fraction) ** np.maximum(batch, 1.0)
    return total_bytes * touched


def decode_token_interval_s(batch: np.ndarray, kv_tokens: np.ndarray, *, weights_bytes: float,
                            active_fraction: float, active_params: float, kv_bytes_per_token: float,
                            state_bytes_per_seq: float, tp: int, pp: int, bandwidth_gb_s: float,
                            dense_tflops: float, eta_bw: float, eta_fl: float, clock: np.ndarray,
                            step_overhead_s: float, hop_s: np.ndarray | float = 0.0,
                            tp_comm_s: np.ndarray | float = 0.0) -> np.ndarray:
    """Seconds between successive tokens of each sequence on a replica serving `batch` sequences.

    The batch is split into m = min(pp, batch) micro-batches of b = batch / m sequences. A token
    of one sequence needs its micro-batch to traverse all pp stages; each stage reads its 1/pp of
    the weights and of the micro-batch's KV cache, so the traversal reads
      memory:  weights_read(b) + KV(batch) / m + recurrent state(b)   at tp * eta_bw * bandwidth
      compute: 2 * active_params * b                                  at tp * eta_fl * FLOPS
    and takes the larger of the two (roofline). With m <= pp micro-batches in flight no stage is
    over-subscribed, so this traversal time is also the steady-state interval between tokens.
    Divided by the clock factor; plus per-iteration overhead, pipeline hops and TP all-reduces.
    Vectorised over replicas. Source: roofline model, hardware.md "LLM serving".
    """
    n = np.maximum(np.asarray(batch, dtype=float), 1.0)
    micro = np.minimum(pp, n)
    b = n / micro
    mem_bytes = (weight_bytes_read(weights_bytes, active_fraction, b)
                 + (np.asarray(kv_tokens, dtype=float) * kv_bytes_per_token + state_bytes_per_seq * n) / micro)
    mem_s = mem_bytes / (tp * eta_bw * bandwidth_gb_s * GB)
    comp_s = 2.0 * active_params * b / (tp * eta_fl * dense_tflops * 1e12)
    return np.maximum(mem_s, comp_s) / np.maximum(clock, 1e-3) + step_overhead_s + hop_s + tp_comm_s


def prefill_seconds_per_token(active_params: float, n_gpus: int, dense_tflops: float, eta_fl: float,
                              clock: np.ndarray | float = 1.0) -> np.ndarray:
    """Compute-bound prefill cost per prompt token, s: 2 * active_params / (n_gpus * eta * FLOPS).

    Chunked prefill pipelines prompt chunks through all pp stages, so every GPU of the replica
    contributes. Source: roofline, hardware.md ("Prefill time ~ 2 * active_params * tokens / ...").
    """
    return 2.0 * active_params / (n_gpus * eta_fl * dense_tflops * 1e12 * np.maximum(clock, 1e-3))


def pipeline_hop_s(tokens: np.ndarray | float, hidden_size: int, link_gb_s: float, latency_s: float) -> np.ndarray:
    """One pipeline hop: activations hidden_size * 2 B * tokens over a link of link_gb_s, plus latency."""
    return np.asarray(tokens, dtype=float) * hidden_size * ACTIVATION_BYTES / (link_gb_s * GB) + latency_s


def tp_allreduce_s(tokens: np.ndarray | float, layers: int, hidden_size: int, tp: int, p2p_gb_s: float,
                   latency_s: float) -> np.ndarray:
    """Two ring all-reduces per layer over PCIe: 2 * layers * (latency + 2(tp-1)/tp * bytes / bw).

    `latency_s` is the node's per-call cost (catalogue NodeSpec.tp_allreduce_latency_s).
    Megatron-style TP: one all-reduce after attention, one after the MLP (Shoeybi et al. 2019).
    """
    if tp <= 1:
        return np.zeros_like(np.asarray(tokens, dtype=float))
    bytes_ = np.asarray(tokens, dtype=float) * hidden_size * ACTIVATION_BYTES * 2 * (tp - 1) / tp
    return 2 * layers * (latency_s + bytes_ / (p2p_gb_s * GB))


def tp_prefill_s_per_token(layers: int, hidden_size: int, tp: int, p2p_gb_s: float) -> float:
    """All-reduce traffic a prompt token adds to prefill under TP, s (bandwidth term of
    tp_allreduce_s; the per-call latency is amortised over a whole prompt chunk). vLLM does not
    overlap it with compute by default, so it adds to the compute-bound prefill time."""
    return float(tp_allreduce_s(1.0, layers, hidden_size, tp, p2p_gb_s, 0.0))


def decode_activity(batch: np.ndarray) -> np.ndarray:
    """GPU activity while decoding: 0.45 at batch 1 rising log-linearly to 0.80 at batch >= 64.

    Source: hardware.md GPU power model (decode batch 1: 0.35-0.55; large batch 0.6-0.85).
    """
    b = np.clip(np.asarray(batch, dtype=float), 1.0, DECODE_LARGE_BATCH)
    return ACTIVITY_DECODE_B1 + (ACTIVITY_DECODE_LARGE - ACTIVITY_DECODE_B1) * np.log(b) / np.log(DECODE_LARGE_BATCH)


@dataclass(frozen=True)
class ReplicaPerf:
    """Per-pool constants the engine needs every tick (derived once from specs)."""
    weights_bytes: float
    active_fraction: float
    active_params: float
    kv_bytes_per_token: float
    state_bytes_per_seq: float
    kv_capacity_bytes: float
    tp: int
    pp: int
    n_gpus: int
    prefill_gpus: int          # GPUs working on a prompt at once: tp x pp, or tp without pipeline overlap
    bandwidth_gb_s: float
    decode_tflops: float
    prefill_tflops: float
    eta_bw: float
    eta_fl: float
    step_overhead_s: float
    max_batch: int
    hidden_size: int
    layers: int
    continuous_batching: bool


def replica_perf(model: ModelSpec, quant: QuantSpec, gpu: GpuSpec, engine: EngineSpec, tp: int, pp: int,
                 memory_utilisation: float, max_batch: int | None, kv_bytes: float | None = None) -> ReplicaPerf:
    plan = replica_memory_plan(model, quant, gpu, tp * pp, memory_utilisation, kv_bytes)
    flops = gpu.tflops(quant.compute_precision)
    return ReplicaPerf(
        weights_bytes=plan.weights_gb * GB, active_fraction=model.active_params_b / model.total_params_b,
        active_params=model.active_params_b * 1e9, kv_bytes_per_token=plan.kv_bytes_per_token,
        state_bytes_per_seq=plan.state_bytes_per_seq, kv_capacity_bytes=max(0.0, plan.kv_budget_gb) * GB,
        tp=tp, pp=pp, n_gpus=tp * pp, prefill_gpus=tp * (pp if engine.pipeline_overlap else 1),
        bandwidth_gb_s=gpu.memory_bandwidth_gb_s, decode_tflops=flops,
        prefill_tflops=flops, eta_bw=engine.eta_bandwidth, eta_fl=engine.eta_flops,
        step_overhead_s=engine.step_overhead_s, max_batch=max_batch or engine.default_max_batch,
        hidden_size=model.hidden_size, layers=model.layers, continuous_batching=engine.continuous_batching,
    )
