"""`twin predict`: what one box does with one model, without running the discrete-event engine.

Pure functions over catalogue specs. Every number comes from the same physics the engine uses
(twin.serving roofline, twin.power, twin.thermal); this module only composes them for a single
node in steady state:

- load time:     weights / min(NVMe read, PCIe H2D) + engine warm-up (hardware.md "Boot and load")
- decode tok/s:  1 / serving.decode_token_interval_s at the given batch and context
- prefill tok/s: 1 / serving.prefill_seconds_per_token
- concurrency:   a closed-loop "wave" model (below)
- GPU power:     per-GPU board power at each concurrency (decode and prefill) from the achieved
                 bytes/s and FLOP/s (twin.tools.box_power / twin.model.power)
- burn test:     gpu-burn from idle equilibrium, two-stage thermal model (twin.tools.box_power).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twin.model import power as pw
from twin.model import serving as sv
from twin.spec.catalogue import (
    Catalogue,
    CpuSpec,
    EngineSpec,
    FanSpec,
    GpuSpec,
    ModelSpec,
    NicSpec,
    NodeSpec,
    PsuSpec,
    QuantSpec,
)
from twin.tools.box_power import (  # noqa: F401  (re-exported: the power half of `twin predict`)
    BurnTest,
    NodePower,
    burn_test,
    idle_power,
    limited_gpu_power,
    node_power,
    peak_power,
    psu_headroom_frac,
)

INTRA_NODE_HOP_LATENCY_S = 5e-6  # as twin.engine: one PCIe P2P pipeline hop (launch + sync)


@dataclass(frozen=True)
class Box:
    """One node and the model it serves (every part resolved from the catalogue)."""
    node: NodeSpec
    gpu: GpuSpec
    cpu: CpuSpec
    psu: PsuSpec
    nic: NicSpec
    fan: FanSpec
    model: ModelSpec
    quant: QuantSpec
    engine: EngineSpec
    tp: int = 1
    pp: int = 1
    memory_utilisation: float = 0.92
    max_batch: int | None = None
    kv_bytes: float | None = None

    @property
    def replicas(self) -> int:
        """Replicas of tp x pp GPUs that fit on the node's GPUs."""
        return self.node.gpu_count // (self.tp * self.pp)

    @property
    def perf(self) -> sv.ReplicaPerf:
        return sv.replica_perf(self.model, self.quant, self.gpu, self.engine, self.tp, self.pp,
                               self.memory_utilisation, self.max_batch, self.kv_bytes)


def resolve_box(cat: Catalogue, node: str, model: str, quantisation: str, engine: str = "vllm", *,
                gpu: str | None = None, gpu_count: int | None = None, tp: int = 1, pp: int = 1,
                memory_utilisation: float = 0.92, max_batch: int | None = None,
                kv_bytes: float | None = None) -> Box:
    """Look every name up (KeyError names the missing one); `gpu`/`gpu_count` replace the node's GPUs."""
    n = cat.node(node)
    if gpu is not None or gpu_count is not None:
        n = n.model_copy(update={"gpu": gpu or n.gpu, "gpu_count": gpu_count or n.gpu_count,
                                 "name": f"{n.name}+{gpu_count or n.gpu_count}x{gpu or n.gpu}"})
    if tp * pp > n.gpu_count:
        raise ValueError(f"tp x pp = {tp * pp} GPUs exceeds the {n.gpu_count} GPUs of one {n.name}; "
                         "predict models a single box")
    return Box(node=n, gpu=cat.gpu(n.gpu), cpu=cat.cpu(n.cpu), psu=cat.psu(n.psu), nic=cat.nic(n.nic),
               fan=cat.fan(n.chassis_fan), model=cat.model(model), quant=cat.quant(quantisation),
               engine=cat.engine(engine), tp=tp, pp=pp, memory_utilisation=memory_utilisation,
               max_batch=max_batch, kv_bytes=kv_bytes)


# ---------------------------------------------------------------------------------------- serving
def model_load_s(weights_gb: float, nvme_read_gb_s: float, pcie_h2d_gb_s: float, warmup_s: float) -> float:
    """Weights NVMe -> VRAM plus engine warm-up, s: size / min(NVMe, H2D) + warm-up.

    Source: hardware.md "Boot and load times" (the engine's LOADING + warm-up phases).
    """
    return weights_gb / min(nvme_read_gb_s, pcie_h2d_gb_s) + warmup_s


def decode_interval_s(box: Box, batch: float, context_tokens: float) -> float:
    """Seconds between tokens of each of `batch` sequences whose mean context is `context_tokens`.

    The engine's decode step (serving.decode_token_interval_s) with its TP all-reduces and its
    intra-node pipeline hops over PCIe P2P, at full clock.
    """
    pf, p2p = box.perf, box.node.pcie_p2p_gb_s
    b = max(float(batch), 1.0)
    per_micro = b / min(pf.pp, b)
    hop_s = (pf.pp - 1) * float(sv.pipeline_hop_s(per_micro, pf.hidden_size, p2p, INTRA_NODE_HOP_LATENCY_S))
    tp_s = float(sv.tp_allreduce_s(per_micro, pf.layers, pf.hidden_size, pf.tp, p2p, box.node.tp_allreduce_latency_s))
    return float(sv.decode_token_interval_s(
        np.array([b]), np.array([b * context_tokens]), weights_bytes=pf.weights_bytes,
        active_fraction=pf.active_fraction, active_params=pf.active_params,
        kv_bytes_per_token=pf.kv_bytes_per_token, state_bytes_per_seq=pf.state_bytes_per_seq, tp=pf.tp,
        pp=pf.pp, bandwidth_gb_s=pf.bandwidth_gb_s, dense_tflops=pf.decode_tflops, eta_bw=pf.eta_bw,
        eta_fl=pf.eta_fl, clock=np.array([1.0]), step_overhead_s=pf.step_overhead_s, hop_s=hop_s,
        tp_comm_s=tp_s)[0])


def prefill_tokens_per_s(box: Box) -> float:
    """Prompt tokens/s of one replica: compute-bound roofline (serving.prefill_seconds_per_token)
    plus the TP all-reduce traffic per token (serving.tp_prefill_s_per_token), as in the engine."""
    pf = box.perf
    return 1.0 / (float(sv.prefill_seconds_per_token(pf.active_params, pf.prefill_gpus, pf.prefill_tflops, pf.eta_fl))
                  + sv.tp_prefill_s_per_token(pf.layers, pf.hidden_size, pf.tp, box.node.pcie_p2p_gb_s))


def kv_fit_sequences(box: Box, tokens_per_seq: float) -> int:
    """How many sequences of `tokens_per_seq` the replica's KV budget holds (max_batch aside)."""
    pf = box.perf
    per_seq = tokens_per_seq * pf.kv_bytes_per_token + pf.state_bytes_per_seq
    return int(pf.kv_capacity_bytes // per_seq) if per_seq > 0 else pf.max_batch


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
    """One replica serving `clients` requests that arrive together and are re-sent on completion.

    Requests run in waves of b = min(clients, max_batch, KV fit): a wave prefills its b prompts
    one after another (FIFO) and then decodes O tokens at the batch-b interval, so
      T_wave = b * P * s_prefill + O * interval(b),   aggregate = b * O / T_wave,
      TTFT = (b + 1) / 2 * P * s_prefill (+ earlier waves),  latency = T_wave (+ earlier waves).
    Without continuous batching this is exactly llama.cpp's behaviour; with it, it is the steady
    state of equal-length requests. Returns (b, stream tok/s, aggregate tok/s, TTFT s, latency s).
    """
    if clients <= 0:
        return 0, 0.0, 0.0, 0.0, 0.0
    pf = box.perf
    fit = kv_fit_sequences(box, prompt_tokens + output_tokens)
    b = max(1, min(clients, pf.max_batch, fit))
    waves = math.ceil(clients / b)
    interval = decode_interval_s(box, b, prompt_tokens + output_tokens / 2)
    s_prefill = 1.0 / prefill_tokens_per_s(box)
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
        # client-weighted means over the replicas
        ttft = sum(k * w[3] for k, w in zip(per, waves)) / max(c, 1)
        latency = sum(k * w[4] for k, w in zip(per, waves)) / max(c, 1)
        rows.append(ConcurrencyRow(concurrency=c, batch=busiest[0], stream_tok_s=busiest[1],
                                   aggregate_tok_s=sum(w[2] for w in waves), ttft_s=ttft, latency_s=latency))
    return rows


# ------------------------------------------------------------------------------------------ power
# Node power, idle by P-state and the burn test live in twin.tools.box_power; re-exported here.
PREFILL_CHUNK_TOKENS = 2048   # estimate: chunked-prefill token budget per step (weights re-read per chunk)


@dataclass(frozen=True)
class GpuPowerRow:
    """Per-GPU board power of the busiest replica at `concurrency` clients (power.gpu_board_power_w)."""
    concurrency: int
    decode_w: float            # while decoding its batch
    decode_clock: float        # SM clock the power limiter allows while decoding
    decode_mem_gb_s: float     # achieved DRAM traffic per GPU while decoding
    decode_sm_util: float      # share of SM math cycles in use while decoding
    prefill_w: float           # while prefilling a prompt (compute bound)
    prefill_clock: float
    mean_w: float              # time-weighted over the wave (prefill share + decode share)


def _work(box: Box, batch: float, kv_tokens: float, interval_s: float, decode_frac: float,
          prefill_tok_s: float) -> tuple[float, float]:
    pf = box.perf
    gb_s, util = pw.replica_gpu_work(
        pf.weights_bytes, pf.active_fraction, pf.active_params, pf.kv_bytes_per_token, pf.state_bytes_per_seq,
        pf.n_gpus, pf.pp, pf.decode_tflops, np.array([batch]), np.array([kv_tokens]), np.array([interval_s]),
        np.array([decode_frac]), np.array([prefill_tok_s]), pf.prefill_gpus, PREFILL_CHUNK_TOKENS)
    return float(gb_s[0]), float(util[0])


def decode_gpu_work(box: Box, batch: float, context_tokens: float) -> tuple[float, float]:
    """(GB/s, SM math utilisation) per GPU while `batch` sequences decode at `context_tokens`
    (power.replica_gpu_work, the engine's accounting, with the whole time spent decoding)."""
    b = max(float(batch), 1.0)
    return _work(box, b, b * context_tokens, decode_interval_s(box, b, context_tokens), 1.0, 0.0)


def prefill_gpu_work(box: Box) -> tuple[float, float]:
    """(GB/s, SM utilisation) per GPU while prefilling at the prefill rate (power.replica_gpu_work)."""
    return _work(box, 0.0, 0.0, 1.0, 0.0, prefill_tokens_per_s(box))


def gpu_power_table(box: Box, rows: list[ConcurrencyRow], prompt_tokens: float,
                    output_tokens: float) -> list[GpuPowerRow]:
    """Per-GPU board power at each concurrency, decode and prefill, under the board's limiter."""
    s_prefill = 1.0 / prefill_tokens_per_s(box)
    pre_gb_s, pre_u = prefill_gpu_work(box)
    pre_w, pre_c = limited_gpu_power(box.gpu, pre_gb_s, pre_u)
    table = []
    for r in rows:
        gb_s, u = decode_gpu_work(box, r.batch, prompt_tokens + output_tokens / 2)
        dec_w, dec_c = limited_gpu_power(box.gpu, gb_s, u)
        t_pre = r.batch * prompt_tokens * s_prefill
        t_dec = output_tokens * decode_interval_s(box, r.batch, prompt_tokens + output_tokens / 2)
        table.append(GpuPowerRow(concurrency=r.concurrency, decode_w=dec_w, decode_clock=dec_c, decode_mem_gb_s=gb_s,
                                 decode_sm_util=u, prefill_w=pre_w, prefill_clock=pre_c,
                                 mean_w=(pre_w * t_pre + dec_w * t_dec) / (t_pre + t_dec)))
    return table


# ---------------------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class Prediction:
    """Everything `twin predict` prints."""
    box: Box
    weights_gb: float
    kv_budget_gb: float
    load_s: float
    cold_start_s: float
    single_stream_tok_s: float
    prefill_tok_s: float
    rows: list[ConcurrencyRow]
    gpu_power: list[GpuPowerRow]
    idle: NodePower
    idle_loaded: NodePower
    peak: NodePower
    burn: BurnTest


def predict(box: Box, concurrencies: list[int], prompt_tokens: float = 1020, output_tokens: float = 129,
            ambient_c: float = 25.0, burn_s: float = 1800.0, power_cap_w: float | None = None) -> Prediction:
    """Compose the single-box figures (defaults: Azure 2023 conversation medians 1,020 / 129 tokens)."""
    n = box.node
    plan = sv.replica_memory_plan(box.model, box.quant, box.gpu, box.tp * box.pp, box.memory_utilisation,
                                  box.kv_bytes)
    weights_node_gb = plan.weights_gb * box.replicas
    load = model_load_s(weights_node_gb, n.nvme_read_gb_s, n.pcie_h2d_gb_s, box.engine.warmup_s)
    rows = concurrency_table(box, concurrencies, prompt_tokens, output_tokens)
    return Prediction(
        box=box, weights_gb=plan.weights_gb, kv_budget_gb=plan.kv_budget_gb, load_s=load,
        cold_start_s=n.power_on_s + n.post_s + n.os_boot_s + load,
        single_stream_tok_s=1.0 / decode_interval_s(box, 1, prompt_tokens),
        prefill_tok_s=prefill_tokens_per_s(box),
        rows=rows, gpu_power=gpu_power_table(box, rows, prompt_tokens, output_tokens),
        idle=idle_power(box), idle_loaded=idle_power(box, loaded=True), peak=peak_power(box),
        burn=burn_test(box, ambient_c, burn_s, 1.0, power_cap_w))
