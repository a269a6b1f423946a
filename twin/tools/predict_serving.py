"""Serving figures of one box for `twin predict`: decode, prefill, prompt latency, concurrency, start times.

Compositions of the pure physics in twin.model (replica: kernel-table roofline, paged KV, PP
prompt latency; offload: llama.cpp -ngl and CPU-only; coldstart: first boot vs warm restart)
for the replicas of one node in steady state.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from twin.model import offload as ol
from twin.model import replica as rp
from twin.model import serving as sv
from twin.model.coldstart import StartPhases, start_phases
from twin.model.kvcache import sequences_that_fit
from twin.tools.box import Box

INTRA_NODE_HOP_LATENCY_S = 5e-6  # as twin.engine: one PCIe P2P pipeline hop (launch + sync)


def _hops(box: Box, tokens: float) -> tuple[float, float]:
    """(pipeline hop time, TP all-reduce time) for `tokens` tokens per micro-batch on this node, s."""
    pf, n = box.plan, box.node
    hop = (pf.pp - 1) * float(sv.pipeline_hop_s(tokens, pf.hidden_size, n.pcie_p2p_gb_s, INTRA_NODE_HOP_LATENCY_S))
    tp = float(sv.tp_allreduce_s(tokens, pf.layers, pf.hidden_size, pf.tp, n.pcie_p2p_gb_s,
                                 n.tp_allreduce_latency_s))
    return hop, tp


def decode_interval_s(box: Box, batch: float, context_tokens: float, clock: float = 1.0) -> float:
    """Seconds between tokens of each of `batch` sequences whose mean context is `context_tokens`.

    GPU-resident replicas: twin.model.replica.decode_step_s with intra-node hops and TP
    all-reduces; llama.cpp with layers in system memory: twin.model.offload.offload_decode_token_s.
    """
    b = max(float(batch), 1.0)
    if box.split is not None:
        return ol.offload_decode_token_s(box.plan, box.split, box.cpu, box.node, context_tokens=b * context_tokens,
                                         batch=b, clock=clock)
    hop, tp = _hops(box, b / min(box.pp, b))
    return float(rp.decode_step_s(box.plan, b, b * context_tokens, clock=clock, hop_s=hop, tp_comm_s=tp))


def _tp_prefill_s(box: Box) -> float:
    return sv.tp_prefill_s_per_token(box.model.layers, box.model.hidden_size, box.tp, box.node.pcie_p2p_gb_s)


def prefill_tokens_per_s(box: Box, prompt_tokens: float = 1020, cached_tokens: float = 0.0) -> float:
    """Prompt tokens/s of one replica with a queue of prompts of `prompt_tokens` after `cached_tokens`
    of context (attention FLOPs included)."""
    if box.split is not None:
        return ol.offload_prefill_tokens_per_s(box.plan, box.split, box.cpu, box.node, prompt_tokens,
                                               cpu_eta=box.engine.cpu_eta_compute)
    return rp.prefill_tokens_per_s(box.plan, prompt_tokens, tp_s_per_token=_tp_prefill_s(box),
                                   cached_tokens=cached_tokens)


def prompt_latency_s(box: Box, prompt_tokens: float) -> float:
    """One prompt alone through the replica's stages, s (sum of stage times + hops, not a 1/pp share)."""
    if box.split is not None:
        return prompt_tokens / prefill_tokens_per_s(box, prompt_tokens)
    return rp.prompt_latency_s(box.plan, prompt_tokens, hop_s_per_token=rp.hop_s_per_token(box.plan,
                               box.node.pcie_p2p_gb_s), hop_latency_s=INTRA_NODE_HOP_LATENCY_S,
                               tp_s_per_token=_tp_prefill_s(box))


def kv_fit_sequences(box: Box, prompt_tokens: float, output_tokens: float) -> int:
    """Sequences the KV pool holds at once. Paged engines (preemption on) count current context, whose
    steady-state mean is P + O/2; engines that reserve up front (llama.cpp slots) count P + O."""
    pf = box.plan
    if box.split is not None:
        return pf.max_batch
    paged = box.engine.preemption != "none"
    ctx = prompt_tokens + (output_tokens / 2 if paged else output_tokens)
    if pf.kv_bytes_per_token <= 0:
        return pf.max_batch
    if pf.state_bytes_per_seq > 0:  # recurrent state per sequence comes out of the same pool
        return max(0, int(pf.kv_pool_bytes // (ctx * pf.kv_bytes_per_token + pf.state_bytes_per_seq)))
    return sequences_that_fit(pf.kv_blocks, ctx, pf.kv_block_tokens)


@dataclass(frozen=True)
class ConcurrencyRow:
    """Steady state at `concurrency` closed-loop clients spread over the node's replicas."""
    concurrency: int
    batch: int                 # sequences decoding together on the busiest replica
    stream_tok_s: float        # decode tokens/s each of those sequences sees
    aggregate_tok_s: float     # output tokens/s of the whole node, prefill time included
    ttft_s: float              # mean time to first token
    latency_s: float           # mean request latency (prompt + all output tokens)


def replica_wave(box: Box, clients: int, prompt_tokens: float, output_tokens: float) -> tuple[int, float, float, float, float]:
    """One replica serving `clients` closed-loop requests. Returns (batch, stream tok/s, aggregate tok/s, TTFT, latency).

    Continuous batching (vLLM, llama.cpp -cb): twin.model.replica.closed_loop, prompts mixed into
    decode steps. Without it (llama.cpp --no-cont-batching) requests run in waves of
    b = min(clients, slots, KV fit): T_wave = b P s_prefill + O interval(b), TTFT = (b + 1)/2 P s_prefill.
    """
    if clients <= 0:
        return 0, 0.0, 0.0, 0.0, 0.0
    fit = kv_fit_sequences(box, prompt_tokens, output_tokens)
    ctx = prompt_tokens + output_tokens / 2
    s_prefill = 1.0 / prefill_tokens_per_s(box, prompt_tokens)
    if box.engine.continuous_batching and box.split is None:
        b = max(1, min(clients, box.plan.max_batch, max(fit, 1)))
        hop, tp = _hops(box, b / min(box.pp, b))
        st = rp.closed_loop(box.plan, clients, prompt_tokens, output_tokens, fit_seqs=fit, hop_s=hop,
                            tp_comm_s=tp, tp_s_per_token=_tp_prefill_s(box),
                            prompt_s=prompt_latency_s(box, prompt_tokens))
        return st.batch, 1.0 / st.step_s, st.out_tok_s, st.ttft_s, st.latency_s
    b = max(1, min(clients, box.plan.max_batch, max(fit, 1)))
    waves = math.ceil(clients / b)
    interval = decode_interval_s(box, b, ctx)
    t_wave = b * prompt_tokens * s_prefill + output_tokens * interval
    earlier = (waves - 1) / 2 * t_wave  # mean wait for the waves ahead
    ttft = (b + 1) / 2 * prompt_tokens * s_prefill + earlier
    return b, 1.0 / interval, b * output_tokens / t_wave, ttft, t_wave + earlier


def concurrency_table(box: Box, concurrencies: list[int], prompt_tokens: float,
                      output_tokens: float) -> list[ConcurrencyRow]:
    """replica_wave for each concurrency, clients dealt round-robin over the node's replicas."""
    rows = []
    for c in concurrencies:
        per = [c // box.replicas + (i < c % box.replicas) for i in range(box.replicas)]
        waves = [replica_wave(box, k, prompt_tokens, output_tokens) for k in per]
        busiest = waves[0]
        ttft = sum(k * w[3] for k, w in zip(per, waves)) / max(c, 1)   # client-weighted means
        latency = sum(k * w[4] for k, w in zip(per, waves)) / max(c, 1)
        rows.append(ConcurrencyRow(concurrency=c, batch=busiest[0], stream_tok_s=busiest[1],
                                   aggregate_tok_s=sum(w[2] for w in waves), ttft_s=ttft, latency_s=latency))
    return rows


def engine_start(box: Box, *, warm: bool) -> StartPhases:
    """First boot (warm=False) or warm restart of every replica's engine on the node (twin.model.coldstart).

    A first boot pays the kernel row's first-use JIT unless `box.boot_cache` has the prebuilt kernels,
    and torch.compile unless it has the compile cache."""
    pf = box.plan
    gpu_share = 1.0 if box.split is None else box.split.gpu_frac
    return start_phases(box.engine, box.node, pf.weights_bytes / 1e9 * box.replicas, box.node.gpu_count,
                        math.ceil(gpu_share * box.model.layers / box.pp), warm=warm,
                        first_use_jit_s=box.kernel.first_use_jit_s if box.kernel else 0.0,
                        boot_cache=box.boot_cache)
