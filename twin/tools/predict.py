"""`twin predict`: what one box does with one model, without running the discrete-event engine.

Pure functions over catalogue specs. Every number comes from the same physics the engine uses
(twin.serving roofline, twin.power, twin.thermal); this module only composes them for a single
node in steady state:

- start time:    first boot vs warm restart (twin.model.coldstart: weights at the engine's
                 effective read rate, torch.compile, KV profiling, CUDA graphs; llama.cpp mmap)
- decode tok/s:  the kernel-table roofline (twin.model.replica.decode_step_s), or with layers in
                 system memory the offload bound (twin.model.offload)
- prefill:       tokens/s of a replica and one prompt's latency through its pipeline stages
- concurrency:   closed-loop steady state with paged KV (twin.tools.predict_serving)
- GPU power:     per-GPU board power at each concurrency (decode and prefill) from the achieved
                 bytes/s and FLOP/s (twin.tools.box_power / twin.model.power)
- burn test:     gpu-burn from idle equilibrium, two-stage thermal model (twin.tools.box_power).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.model import power as pw
from twin.tools.box import Box, resolve_box  # noqa: F401  (re-exported: callers build boxes from here)
from twin.tools.predict_serving import (  # noqa: F401  (the serving half of `predict`, re-exported)
    ConcurrencyRow,
    concurrency_table,
    decode_interval_s,
    engine_start,
    kv_fit_sequences,
    prefill_tokens_per_s,
    prompt_latency_s,
    replica_wave,
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

PREFILL_CHUNK_TOKENS = 2048   # estimate: chunked-prefill token budget per step (weights re-read per chunk)


# ---------------------------------------------------------------------------------------- serving
def model_load_s(weights_gb: float, nvme_read_gb_s: float, pcie_h2d_gb_s: float, warmup_s: float) -> float:
    """Weights NVMe -> VRAM plus engine warm-up, s: size / min(NVMe, H2D) + warm-up.

    Source: hardware.md "Boot and load times" (the engine's LOADING + warm-up phases).
    """
    return weights_gb / min(nvme_read_gb_s, pcie_h2d_gb_s) + warmup_s


# ------------------------------------------------------------------------------------------ power
# Node power, idle by P-state and the burn test live in twin.tools.box_power; re-exported above.
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
    pl = box.plan
    prefill_gpus = pl.tp * (pl.pp if pl.engine.pipeline_overlap else 1)
    gb_s, util = pw.replica_gpu_work(
        pl.weights_bytes, pl.active_fraction, pl.active_params, pl.kv_bytes_per_token, pl.state_bytes_per_seq,
        pl.n_gpus, pl.pp, pl.gpu.tflops(box.quant.compute_precision), np.array([batch]), np.array([kv_tokens]),
        np.array([interval_s]), np.array([decode_frac]), np.array([prefill_tok_s]), prefill_gpus,
        PREFILL_CHUNK_TOKENS)
    return float(gb_s[0]), float(util[0])


def decode_gpu_work(box: Box, batch: float, context_tokens: float) -> tuple[float, float]:
    """(GB/s, SM math utilisation) per GPU while `batch` sequences decode at `context_tokens`
    (power.replica_gpu_work, the engine's accounting, with the whole time spent decoding)."""
    b = max(float(batch), 1.0)
    return _work(box, b, b * context_tokens, decode_interval_s(box, b, context_tokens), 1.0, 0.0)


def prefill_gpu_work(box: Box, prompt_tokens: float = 1020) -> tuple[float, float]:
    """(GB/s, SM utilisation) per GPU while prefilling at the prefill rate (power.replica_gpu_work)."""
    return _work(box, 0.0, 0.0, 1.0, 0.0, prefill_tokens_per_s(box, prompt_tokens))


def gpu_power_table(box: Box, rows: list[ConcurrencyRow], prompt_tokens: float,
                    output_tokens: float) -> list[GpuPowerRow]:
    """Per-GPU board power at each concurrency, decode and prefill, under the board's limiter."""
    s_prefill = 1.0 / prefill_tokens_per_s(box, prompt_tokens)
    pre_gb_s, pre_u = prefill_gpu_work(box, prompt_tokens)
    pre_w, pre_c = limited_gpu_power(box.gpu, pre_gb_s, pre_u)
    table = []
    for r in rows:
        gb_s, u = decode_gpu_work(box, r.batch, prompt_tokens + output_tokens / 2)
        dec_w, dec_c = limited_gpu_power(box.gpu, gb_s, u)
        t_pre = r.batch * prompt_tokens * s_prefill
        t_dec = output_tokens * decode_interval_s(box, r.batch, prompt_tokens + output_tokens / 2)
        table.append(GpuPowerRow(concurrency=r.concurrency, decode_w=dec_w, decode_clock=dec_c, decode_mem_gb_s=gb_s,
                                 decode_sm_util=u, prefill_w=pre_w, prefill_clock=pre_c,
                                 mean_w=(pre_w * t_pre + dec_w * t_dec) / max(t_pre + t_dec, 1e-12)))
    return table


# ---------------------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class Prediction:
    """Everything `twin predict` prints."""
    box: Box
    weights_gb: float            # per replica (decimal GB)
    kv_budget_gb: float          # per replica: usable VRAM (GiB x utilisation - engine reserve) - weights
    kv_blocks: int               # paged KV blocks per replica
    load_s: float                # first boot of the engine (weights, compile, KV profiling, CUDA graphs)
    warm_restart_s: float        # restart with the page cache and compile cache warm
    cold_start_s: float          # power-on + POST + OS + first boot
    single_stream_tok_s: float
    prefill_tok_s: float         # replica prompt throughput at the default prompt length
    prompt_latency_s: float      # one default prompt alone through all stages (TTFT floor)
    rows: list[ConcurrencyRow]
    gpu_power: list[GpuPowerRow]
    idle: NodePower
    idle_loaded: NodePower
    peak: NodePower
    burn: BurnTest


def predict(box: Box, concurrencies: list[int], prompt_tokens: float = 1020, output_tokens: float = 129,
            ambient_c: float = 25.0, burn_s: float = 1800.0, power_cap_w: float | None = None) -> Prediction:
    """Compose the single-box figures (defaults: Azure 2023 conversation medians 1,020 / 129 tokens)."""
    n, plan = box.node, box.plan
    first = engine_start(box, warm=False)
    rows = concurrency_table(box, concurrencies, prompt_tokens, output_tokens)
    # offloaded: the GPUs hold only their layers' weights; the pool is what is left next to them
    pool_b = plan.kv_pool_bytes if box.split is None else plan.usable_bytes - box.split.gpu_frac * plan.weights_bytes
    return Prediction(
        box=box, weights_gb=plan.weights_bytes / 1e9, kv_budget_gb=pool_b / 1e9,
        kv_blocks=max(0, int(pool_b // plan.kv_block_bytes)) if plan.kv_block_bytes > 0 else 0, load_s=first.total_s, warm_restart_s=engine_start(box, warm=True).total_s,
        cold_start_s=n.power_on_s + n.post_s + n.os_boot_s + first.total_s,
        single_stream_tok_s=1.0 / decode_interval_s(box, 1, prompt_tokens),
        prefill_tok_s=prefill_tokens_per_s(box, prompt_tokens),
        prompt_latency_s=prompt_latency_s(box, prompt_tokens),
        rows=rows, gpu_power=gpu_power_table(box, rows, prompt_tokens, output_tokens),
        idle=idle_power(box), idle_loaded=idle_power(box, loaded=True), peak=peak_power(box),
        burn=burn_test(box, ambient_c, burn_s, 1.0, power_cap_w))
