"""One serving replica from its kernel row: memory plan in GiB, decode step, prefill and prompt latency.

The second generation of twin/model/serving.py, used by the engine (twin/sim), `twin predict` and
benchmarks/accuracy.py. What changed, with the reason (shared/reference/fidelity.md items 1-7):
- Memory in bytes from GiB as nvidia-smi reports; the engine's per-GPU reserve (profiled
  activations, CUDA graphs, non-torch memory) comes off before the KV pool, which is paged in
  blocks of `kv_block_tokens` (twin/model/kvcache.py).
- Efficiencies come from the kernel table (engine, kernel, architecture, regime), compute rates
  from the board's power-limited sustained tensor rate, and the roofline is smooth near the ridge.
- Decode follows memory bandwidth: a lower SM clock (power cap, thermal slowdown) scales only the
  compute term; a memory-clock drop (HW slowdown) is the separate `mem_clock` argument.
- Prefill adds attention FLOPs: 4 x layers x context x d_attn per token (QK^T and AV, 2 FLOP per
  multiply-add), i.e. 2 L d P (P + 2 P0) for P prompt tokens after P0 cached ones.
- A pipeline-parallel prompt traverses the stages one after another: its latency is the sum of
  the stage times (chunks of `max_batched_tokens` pipeline behind each other) plus the hops;
  pipelining raises pool throughput, not one request's latency.
Units are in the names; vectorised over replicas where the engine needs it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twin.model.kernels import (attention_rate_flop_s, bandwidth_b_s, compute_rate_flop_s, decode_gemm_rate_flop_s,
                                roofline_s)
from twin.model.serving import ACTIVATION_BYTES, weight_bytes_read
from twin.spec.catalogue import EngineSpec, GpuSpec, KernelSpec, ModelSpec, QuantSpec

GIB = 2.0 ** 30


@dataclass(frozen=True)
class ServingPlan:
    """Constants of one replica of tp x pp GPUs running `kernel` (derived once from specs)."""
    gpu: GpuSpec
    engine: EngineSpec
    kernel: KernelSpec
    tp: int
    pp: int
    weights_bytes: float          # all weights in VRAM
    weights_read_bytes: float     # read by one token's traversal (input embedding: one row, not the table)
    active_fraction: float
    active_params: float
    kv_bytes_per_token: float
    state_bytes_per_seq: float
    usable_bytes: float           # n_gpus x (VRAM x utilisation - engine reserve)
    kv_pool_bytes: float          # usable - weights (<= 0: does not fit)
    layers: int
    attention_layers: int
    attn_dim: int                 # attention heads x head dim (the d of the attention FLOPs)
    hidden_size: int
    max_batch: int

    @property
    def n_gpus(self) -> int:
        return self.tp * self.pp

    @property
    def kv_block_tokens(self) -> int:
        return self.engine.kv_block_tokens

    @property
    def kv_block_bytes(self) -> float:
        return self.kv_block_tokens * self.kv_bytes_per_token

    @property
    def kv_blocks(self) -> int:
        """Blocks in the paged KV pool (0 when nothing is left after the weights)."""
        if self.kv_block_bytes <= 0:
            return 0
        return max(0, int(self.kv_pool_bytes // self.kv_block_bytes))

    @property
    def step_overhead_s(self) -> float:
        base = self.kernel.step_overhead_s if self.kernel.step_overhead_s is not None else self.engine.step_overhead_s
        return base + self.kernel.overhead_s_per_layer * self.layers

    @property
    def prefill_gpus(self) -> int:
        """GPUs busy on prompts when the queue is long: all stages (vLLM PP) or one stage at a time (llama.cpp)."""
        return self.tp * (self.pp if self.engine.pipeline_overlap else 1)


def embedding_bytes(model: ModelSpec, quant: QuantSpec) -> float:
    """Input-embedding table bytes a decode step does not read (one row per token): vocab x hidden x B/param."""
    return 0.0 if model.tied_embeddings else model.vocab_size * model.hidden_size * quant.bytes_per_param


def serving_plan(model: ModelSpec, quant: QuantSpec, gpu: GpuSpec, engine: EngineSpec, kernel: KernelSpec,
                 tp: int = 1, pp: int = 1, memory_utilisation: float = 0.92, kv_bytes: float | None = None,
                 max_batch: int | None = None) -> ServingPlan:
    """Memory plan and rates of a replica. usable = GPUs x (GiB x 2^30 x utilisation - reserve GiB x 2^30).

    Source: vLLM's worker sizes the KV pool as gpu_memory_utilization x total memory minus the
    profiled peak (weights + activations + CUDA graphs + non-torch allocations), fidelity.md item 1.
    """
    n = tp * pp
    weights = model.total_params_b * 1e9 * quant.bytes_per_param
    usable = n * (gpu.memory_bytes * memory_utilisation - engine.activation_reserve_gib * GIB)
    kvb = quant.kv_bytes if kv_bytes is None else kv_bytes
    return ServingPlan(
        gpu=gpu, engine=engine, kernel=kernel, tp=tp, pp=pp, weights_bytes=weights,
        weights_read_bytes=weights - embedding_bytes(model, quant),
        active_fraction=model.active_params_b / model.total_params_b, active_params=model.active_params_b * 1e9,
        kv_bytes_per_token=model.kv_bytes_per_token(kvb), state_bytes_per_seq=model.state_mb_per_seq * 1e6,
        usable_bytes=usable, kv_pool_bytes=usable - weights, layers=model.layers,
        attention_layers=model.attention_layers, attn_dim=model.attention_heads * model.head_dim or model.hidden_size,
        hidden_size=model.hidden_size, max_batch=max_batch or engine.default_max_batch)


def attention_flops(plan: ServingPlan, context_tokens: np.ndarray | float) -> np.ndarray:
    """Attention FLOPs of one token at `context_tokens` of context: 4 x attention layers x context x d_attn."""
    return 4.0 * plan.attention_layers * plan.attn_dim * np.asarray(context_tokens, dtype=float)


@dataclass(frozen=True)
class DecodeConstants:
    """The terms of decode_step_s that do not change from tick to tick, for one plan (derived once).

    Each is the value decode_step_s would compute inline, grouped as it groups them, so a step
    evaluated from these is bit-identical to one evaluated from the plan.
    """
    pp: int
    tp: int
    weights_read_bytes: float
    active_fraction: float
    kv_bytes_per_token: float
    state_bytes_per_seq: float
    tp_bandwidth_b_s: float        # tp x achieved DRAM bandwidth of one GPU, bytes/s
    gemm_flop_per_token: float     # 2 x active parameters
    small_max_tokens: float        # tokens per step up to which the small-batch kernel runs (inf: none)
    small_gemm_rate_flop_s: float  # the small-batch kernel's rate (llama.cpp MMVQ)
    gemm_rate_flop_s: float        # the decode kernel's rate above it (MMQ, tensor cores)
    attn_flop_per_ctx: float       # 4 x attention layers x d_attn
    attn_rate_flop_s: float
    ridge_sharpness: float
    step_overhead_s: float


def decode_constants(plan: ServingPlan) -> DecodeConstants:
    """Tick-independent constants of `plan`'s decode step (twin.model.kernels rates; plan overheads)."""
    sb = plan.kernel.small_batch
    large = compute_rate_flop_s(plan.gpu, plan.kernel, "decode")
    small = large if sb is None else float(decode_gemm_rate_flop_s(plan.gpu, plan.kernel, sb.max_tokens))
    return DecodeConstants(
        pp=plan.pp, tp=plan.tp, weights_read_bytes=plan.weights_read_bytes, active_fraction=plan.active_fraction,
        kv_bytes_per_token=plan.kv_bytes_per_token, state_bytes_per_seq=plan.state_bytes_per_seq,
        tp_bandwidth_b_s=plan.tp * bandwidth_b_s(plan.gpu, plan.kernel),
        gemm_flop_per_token=2.0 * plan.active_params,
        small_max_tokens=math.inf if sb is None else float(sb.max_tokens),
        small_gemm_rate_flop_s=small,
        gemm_rate_flop_s=large, attn_flop_per_ctx=4.0 * plan.attention_layers * plan.attn_dim,
        attn_rate_flop_s=attention_rate_flop_s(plan.gpu), ridge_sharpness=plan.kernel.ridge_sharpness,
        step_overhead_s=plan.step_overhead_s)


def decode_step_s(plan: ServingPlan, batch: np.ndarray | float, kv_tokens: np.ndarray | float, *,
                  clock: np.ndarray | float = 1.0, mem_clock: np.ndarray | float = 1.0,
                  hop_s: np.ndarray | float = 0.0, tp_comm_s: np.ndarray | float = 0.0) -> np.ndarray:
    """Seconds between successive tokens of each of `batch` sequences holding `kv_tokens` of context in all.

    Micro-batches m = min(pp, batch) of b = batch / m keep every stage busy; one token's traversal
    reads weights_read(b) + KV / m + state(b) at tp x eta_bw x bandwidth x mem_clock and does
    2 x active x b + attention FLOPs at tp x eta_compute x sustained rate x clock (the rate of the
    kernel that runs b tokens per step: llama.cpp MMVQ up to 8, MMQ above; SM clock only:
    decode is flat across power caps, noonghunna/club-3090 #104 and #697, arXiv 2501.08219).
    Smooth roofline of the two, plus per-step overhead, hops and TP all-reduces.
    """
    n = np.maximum(np.asarray(batch, dtype=float), 1.0)
    micro = np.minimum(plan.pp, n)
    return decode_step_from(decode_constants(plan), n, micro, n / micro, kv_tokens, clock=clock,
                            mem_clock=mem_clock, hop_s=hop_s, tp_comm_s=tp_comm_s)


def decode_step_from(c: DecodeConstants, n: np.ndarray, micro: np.ndarray, b: np.ndarray,
                     kv_tokens: np.ndarray | float, *, clock: np.ndarray | float = 1.0,
                     mem_clock: np.ndarray | float = 1.0, hop_s: np.ndarray | float = 0.0,
                     tp_comm_s: np.ndarray | float = 0.0) -> np.ndarray:
    """decode_step_s from precomputed constants and the caller's n = max(batch, 1), micro = min(pp, n)
    and b = n / micro (the engine needs them for its hop and TP terms too), s. Same float operations
    in the same order as written out in decode_step_s's docstring."""
    kv = np.asarray(kv_tokens, dtype=float)
    # dense: 1 - (1 - 1)^b is exactly 1, so the weights term is the plain byte count
    w = (c.weights_read_bytes if c.active_fraction == 1.0
         else weight_bytes_read(c.weights_read_bytes, c.active_fraction, b))
    mem_bytes = w + (kv * c.kv_bytes_per_token + c.state_bytes_per_seq * n) / micro
    mem_s = mem_bytes / (c.tp_bandwidth_b_s * np.maximum(mem_clock, 1e-3))
    rate = (c.gemm_rate_flop_s if c.small_max_tokens == math.inf
            else np.where(b <= c.small_max_tokens, c.small_gemm_rate_flop_s, c.gemm_rate_flop_s))
    comp_s = (c.gemm_flop_per_token * b / rate + c.attn_flop_per_ctx * (kv / micro) / c.attn_rate_flop_s) \
        / (c.tp * np.maximum(clock, 1e-3))
    return roofline_s(mem_s, comp_s, c.ridge_sharpness) + c.step_overhead_s + hop_s + tp_comm_s


def prefill_flops(plan: ServingPlan, prompt_tokens: float, cached_tokens: float = 0.0) -> tuple[float, float]:
    """(GEMM, attention) FLOPs to prefill `prompt_tokens` after `cached_tokens`: 2 A P and 2 L_attn d P (P + 2 P0)."""
    p = float(prompt_tokens)
    return (2.0 * plan.active_params * p,
            2.0 * plan.attention_layers * plan.attn_dim * p * (p + 2.0 * cached_tokens))


def _prefill_on_s(plan: ServingPlan, flops: tuple[float, float], weight_bytes: float, gpus: int, chunks: float,
                  clock: float, mem_clock: float) -> float:
    """(GEMM, attention) `flops` on `gpus` GPUs that hold `weight_bytes` between them and read them once
    per chunk, s. GEMMs at the kernel's prefill rate, attention at the FlashAttention rate; the weight
    read is the memory term of the smooth roofline (compute-bound in practice)."""
    gemm, attn = flops
    comp_s = (gemm / compute_rate_flop_s(plan.gpu, plan.kernel, "prefill") + attn / attention_rate_flop_s(plan.gpu)) \
        / (gpus * max(clock, 1e-3))
    mem_s = chunks * weight_bytes / (gpus * bandwidth_b_s(plan.gpu, plan.kernel) * max(mem_clock, 1e-3))
    return float(roofline_s(mem_s, comp_s, plan.kernel.ridge_sharpness))


def _scaled(flops: tuple[float, float], k: float) -> tuple[float, float]:
    return flops[0] / k, flops[1] / k


def prefill_tokens_per_s(plan: ServingPlan, prompt_tokens: float, *, tp_s_per_token: float = 0.0,
                         clock: float = 1.0, cached_tokens: float = 0.0) -> float:
    """Pool prompt throughput of one replica with a queue of prompts of `prompt_tokens`, tokens/s.

    Every GPU works (vLLM PP keeps all stages busy on different chunks) unless the engine's stages
    run in turn (llama.cpp layer split: one GPU's rate). TP all-reduce traffic adds per token.
    """
    chunks = max(1, math.ceil(prompt_tokens / plan.engine.max_batched_tokens))
    flops = prefill_flops(plan, prompt_tokens, cached_tokens)
    if plan.engine.pipeline_overlap:   # all tp x pp GPUs busy, sharing the weights
        t = _prefill_on_s(plan, flops, plan.weights_read_bytes, plan.n_gpus, chunks, clock, 1.0)
    else:                              # stages take turns: pp x one stage (tp GPUs, 1/pp of the layers)
        t = plan.pp * _prefill_on_s(plan, _scaled(flops, plan.pp), plan.weights_read_bytes / plan.pp, plan.tp,
                                    chunks, clock, 1.0)
    return prompt_tokens / (t + tp_s_per_token * prompt_tokens)


def prompt_latency_s(plan: ServingPlan, prompt_tokens: float, *, cached_tokens: float = 0.0,
                     hop_s_per_token: float = 0.0, hop_latency_s: float = 0.0, tp_s_per_token: float = 0.0,
                     clock: float = 1.0, mem_clock: float = 1.0) -> float:
    """Time for one prompt alone to reach its first token through all pp stages, s.

    With C = max_batched_tokens and k = ceil(P / C) chunks, a stage holds 1/pp of the layers and
    works on one chunk at a time; chunk j leaves stage s at (j + s) x t_stage, so the last chunk
    leaves the last stage after (k + pp - 1) x t_stage: the sum of the stage times for a prompt
    of one chunk (sum, not a 1/pp share), k x t_stage x (1 + (pp - 1)/k) for long prompts. Engines
    whose stages never overlap (llama.cpp) take k x pp x t_stage. Hops: (pp - 1) x (latency +
    chunk activations over the link). Source: GPipe schedule (Huang et al. 2019); fidelity.md item 4.
    """
    p = float(prompt_tokens)
    k = max(1, math.ceil(p / plan.engine.max_batched_tokens))
    chunk = p / k
    stage_s = _prefill_on_s(plan, _scaled(prefill_flops(plan, p, cached_tokens), k * plan.pp),
                            plan.weights_read_bytes / plan.pp, plan.tp, 1, clock, mem_clock) \
        + tp_s_per_token * chunk / plan.pp
    slots = (k + plan.pp - 1) if plan.engine.pipeline_overlap else k * plan.pp
    hops = (plan.pp - 1) * (hop_latency_s + hop_s_per_token * chunk) * (1 if plan.engine.pipeline_overlap else k)
    return slots * stage_s + hops


def hop_s_per_token(plan: ServingPlan, link_gb_s: float) -> float:
    """Activation transfer per token per pipeline hop: hidden x 2 B over the link, s."""
    return plan.hidden_size * ACTIVATION_BYTES / (link_gb_s * 1e9)


@dataclass(frozen=True)
class SteadyState:
    """Closed loop of `clients` requests of P prompt / O output tokens on one continuously batching replica."""
    batch: int                # sequences decoding together
    step_s: float             # decode step at that batch
    out_tok_s: float          # output tokens/s of the replica
    ttft_s: float             # mean time to first token
    latency_s: float          # mean request latency


def closed_loop(plan: ServingPlan, clients: int, prompt_tokens: float, output_tokens: float, *,
                fit_seqs: int, hop_s: float = 0.0, tp_comm_s: float = 0.0, tp_s_per_token: float = 0.0,
                prompt_s: float | None = None) -> SteadyState:
    """Steady state of a continuously batching replica holding `clients` requests in flight.

    Each output token costs its share of a decode step, step(b) / b, plus its share of the prompt
    work, P x s_prefill / O, so out = b / (step(b) + b x P x s_prefill / O) (vLLM chunked prefill
    mixes prompts into decode steps). b = min(clients, max_batch, fit_seqs): sequences beyond b wait
    in the queue (Little's law: latency = clients / request rate). TTFT = own prompt alone
    (prompt_latency_s) stretched by the share of GPU time the other b - 1 prompts take, plus one step.
    """
    b = max(1, min(clients, plan.max_batch, max(fit_seqs, 1)))
    ctx = prompt_tokens + output_tokens / 2.0
    step = float(decode_step_s(plan, b, b * ctx, hop_s=hop_s, tp_comm_s=tp_comm_s))
    s_pf = 1.0 / prefill_tokens_per_s(plan, prompt_tokens, tp_s_per_token=tp_s_per_token)
    per_token = step / b + prompt_tokens * s_pf / output_tokens
    out = 1.0 / per_token
    rate = out / output_tokens                     # requests/s
    # share of GPU time the *other* in-flight requests' prompts take while this one prefills
    prefill_share = min(0.95, rate * prompt_tokens * s_pf * (b - 1) / b)
    own = prompt_s if prompt_s is not None else prompt_tokens * s_pf
    latency = max(clients / rate, own + output_tokens * step)
    wait = max(0.0, latency - (own + output_tokens * step)) if clients > b else 0.0
    return SteadyState(batch=b, step_s=step, out_tok_s=out,
                       ttft_s=wait + own / (1.0 - prefill_share) + step, latency_s=latency)


def prefill_s_per_token(plan: ServingPlan, prompt_tokens: np.ndarray | float, *, tp_s_per_token: float = 0.0,
                        clock: np.ndarray | float = 1.0) -> np.ndarray:
    """Replica time per prompt token when its prefill GPUs all work (the pool-throughput cost), s.

    GEMMs 2 A at the prefill rate plus causal attention 2 L d P (its mean context is P / 2) at the
    FlashAttention rate, over `prefill_gpus`, divided by the SM clock; plus the TP all-reduce
    traffic. Vectorised over prompts: the engine's FIFO prefill scan charges each request its own.
    """
    p = np.asarray(prompt_tokens, dtype=float)
    gemm = 2.0 * plan.active_params / compute_rate_flop_s(plan.gpu, plan.kernel, "prefill")
    attn = 2.0 * plan.attention_layers * plan.attn_dim * p / attention_rate_flop_s(plan.gpu)
    return (gemm + attn) / (plan.prefill_gpus * np.maximum(clock, 1e-3)) + tp_s_per_token


def pipeline_fill_s(work_s: np.ndarray, pp: int, chunks: np.ndarray | float, overlap: bool) -> np.ndarray:
    """Extra latency a prompt pays filling a pipeline beyond its throughput share of the replica, s.

    `work_s` is the prompt's cost at the whole replica's throughput (prefill_s_per_token x P). With
    overlapping stages (vLLM PP) the prompt's k chunks take (k + pp - 1) stage slots of work / k, and
    the throughput share accounts for k of them, so the fill adds (pp - 1) x work / k (for one chunk:
    latency = pp x work, the sum of the stage times). Non-overlapping stages (llama.cpp) already
    run at one stage's speed: no extra. Source: GPipe schedule; prompt_latency_s.
    """
    w = np.asarray(work_s, dtype=float)
    if not overlap or pp <= 1:
        return np.zeros_like(w)
    return (pp - 1) * w / np.maximum(np.asarray(chunks, dtype=float), 1.0)
