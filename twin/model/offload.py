"""Serving from system memory: CPU-only inference and llama.cpp partial GPU offload (-ngl N).

Decode reads every weight once per token, so layers kept in system memory stream at the CPU's
memory bandwidth: channels x MT/s x 8 B (8-channel DDR5-5200: 333 GB/s theoretical), times the
share a many-core part actually reaches (`CpuSpec.memory_read_eta`: e.g. ~256 GB/s measured on a
4-CCD Threadripper PRO, ubergarm in ikawrakow/ik_llama.cpp#534), and at most what the cores in use
can pull (`per_core_read_gb_s` each). llama.cpp runs the layers in order, so GPU-resident and
CPU-resident times add. Prefill on the CPU is bound by its compute: cores x all-core clock x
FLOP/cycle x the engine's CPU efficiency; with layers offloaded to the GPU, llama.cpp instead
streams the CPU-resident weights over PCIe for large batches (op offload) when that is faster.
These are the functions the workloads model calls for CPU-only services (issue #20).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from twin.model.kernels import attention_rate_flop_s, bandwidth_b_s, compute_rate_flop_s, decode_gemm_rate_flop_s
from twin.model.replica import GIB, ServingPlan, attention_flops, prefill_flops
from twin.spec.catalogue import CpuSpec, NodeSpec


def system_memory_gb_s(cpu: CpuSpec, node: NodeSpec) -> float:
    """Theoretical system-memory bandwidth: populated channels x min(DIMM, CPU) MT/s x 8 B, GB/s.

    Populated channels = min(DIMMs, the CPU's channels) (one DIMM per channel assumed).
    Raises ValueError when the CPU or node lacks the figures (catalogue fields).
    """
    if cpu.memory_channels is None or (node.dimm_mt_s is None and cpu.max_memory_mt_s is None):
        raise ValueError(f"{cpu.name} / {node.name}: memory_channels and dimm_mt_s (or max_memory_mt_s) are "
                         "needed to serve from system memory")
    mt = min(x for x in (node.dimm_mt_s, cpu.max_memory_mt_s) if x is not None)
    return min(node.dimms, cpu.memory_channels) * mt * 8 / 1000.0


def cpu_read_gb_s(cpu: CpuSpec, node: NodeSpec, cores: float | None = None) -> float:
    """Streaming read bandwidth `cores` cores reach, GB/s: min(eta x theoretical, cores x per-core)."""
    c = cpu.cores if cores is None else min(float(cores), cpu.cores)
    return min(cpu.memory_read_eta * system_memory_gb_s(cpu, node), c * cpu.per_core_read_gb_s)


def cpu_flop_s(cpu: CpuSpec, eta: float, cores: float | None = None) -> float:
    """Achieved FLOP/s of `cores` cores: cores x all-core GHz x FLOP/cycle x eta."""
    if cpu.all_core_ghz is None:
        raise ValueError(f"{cpu.name}: all_core_ghz is needed to compute on the CPU")
    c = cpu.cores if cores is None else min(float(cores), cpu.cores)
    return c * cpu.all_core_ghz * 1e9 * cpu.fp32_flops_per_cycle * eta


def cpu_decode_token_s(weights_read_bytes: float, cpu: CpuSpec, node: NodeSpec, *, cores: float | None = None,
                       kv_read_bytes: float = 0.0, overhead_s: float = 0.0) -> float:
    """One decode token on the CPU alone: (weights + KV) / the cores' share of memory bandwidth, s."""
    return (weights_read_bytes + kv_read_bytes) / (cpu_read_gb_s(cpu, node, cores) * 1e9) + overhead_s


def cpu_prefill_tokens_per_s(flops_per_token: float, cpu: CpuSpec, eta: float, cores: float | None = None) -> float:
    """Prompt tokens/s on the CPU alone: achieved FLOP/s / FLOPs per token (compute bound)."""
    return cpu_flop_s(cpu, eta, cores) / flops_per_token


@dataclass(frozen=True)
class OffloadSplit:
    """Which layers live where: `gpu_layers` over the replica's GPUs, the rest in system memory."""
    layers: int
    gpu_layers: int

    @property
    def cpu_layers(self) -> int:
        return self.layers - self.gpu_layers

    @property
    def gpu_frac(self) -> float:
        return self.gpu_layers / self.layers


def auto_gpu_layers(plan: ServingPlan, memory_utilisation: float, context_tokens: float, slots: int = 1) -> int:
    """llama.cpp `-ngl auto`: as many layers as fit per GPU after the compute buffer and their KV.

    Per GPU: floor((VRAM x utilisation - reserve) / (layer weights + slots x context x KV per layer)),
    summed over the replica's GPUs and capped at the model's layers. Source: llama.cpp's fit logic
    (llama_params_fit, 2025) does this per device with measured buffer sizes; here from the specs.
    """
    per_layer_w = plan.weights_bytes / plan.layers
    per_layer_kv = slots * context_tokens * plan.kv_bytes_per_token / max(plan.layers, 1)
    free = plan.gpu.memory_bytes * memory_utilisation - plan.engine.activation_reserve_gib * GIB
    per_gpu = max(0, int(free // (per_layer_w + per_layer_kv)))
    return min(plan.layers, per_gpu * plan.n_gpus)


def offload_decode_token_s(plan: ServingPlan, split: OffloadSplit, cpu: CpuSpec, node: NodeSpec, *,
                           context_tokens: float, batch: float = 1.0, cores: float | None = None,
                           clock: float = 1.0) -> float:
    """One decode step of a llama.cpp replica with `split` and `batch` sequences holding `context_tokens`
    in all: GPU layers (one GPU at a time, layer split), then CPU layers from system memory, plus the
    per-step overhead, s.

    GPU part: its share of weights + KV at eta_bw x bandwidth, compute term at the SM clock; CPU
    part: its share of weights + KV at the cores' memory bandwidth (cpu_read_gb_s). Source:
    fidelity.md item 8; hardware.md roofline.
    """
    kv = context_tokens * plan.kv_bytes_per_token
    gpu_bytes = split.gpu_frac * (plan.weights_read_bytes + kv)
    gpu_mem_s = gpu_bytes / bandwidth_b_s(plan.gpu, plan.kernel)
    gemm_rate = float(decode_gemm_rate_flop_s(plan.gpu, plan.kernel, batch))  # MMVQ up to 8 tokens a step, MMQ above
    gpu_comp_s = split.gpu_frac * (2.0 * plan.active_params * batch / gemm_rate
                                   + float(attention_flops(plan, context_tokens)) / attention_rate_flop_s(plan.gpu)) \
        / max(clock, 1e-3)
    cpu_bytes = (1.0 - split.gpu_frac) * (plan.weights_read_bytes + kv)
    cpu_s = cpu_bytes / (cpu_read_gb_s(cpu, node, cores) * 1e9)
    return max(gpu_mem_s, gpu_comp_s) + cpu_s + plan.step_overhead_s


def offload_prefill_tokens_per_s(plan: ServingPlan, split: OffloadSplit, cpu: CpuSpec, node: NodeSpec,
                                 prompt_tokens: float, *, cpu_eta: float, cores: float | None = None) -> float:
    """Prompt tokens/s with `split`: GPU layers at the GPU's prefill rate, CPU layers either computed on
    the CPU or (llama.cpp op offload for batches >= 32) streamed to the GPU over PCIe once per
    ubatch, whichever is faster. Source: llama.cpp ggml-backend scheduler (offload_op, 2024)."""
    gemm, attn = prefill_flops(plan, prompt_tokens)
    flops = gemm + attn
    gpu_rate = compute_rate_flop_s(plan.gpu, plan.kernel, "prefill")
    gpu_s = split.gpu_frac * (gemm / gpu_rate + attn / attention_rate_flop_s(plan.gpu))
    cpu_w = (1.0 - split.gpu_frac) * plan.weights_bytes
    on_cpu_s = (1.0 - split.gpu_frac) * flops / cpu_flop_s(cpu, cpu_eta, cores) if split.cpu_layers else 0.0
    ubatches = max(1, math.ceil(prompt_tokens / plan.engine.max_batched_tokens))
    streamed_s = (ubatches * cpu_w / (node.pcie_h2d_gb_s * 1e9) + (1.0 - split.gpu_frac) * flops / gpu_rate
                  if split.cpu_layers else 0.0)
    return prompt_tokens / (gpu_s + min(on_cpu_s, streamed_s))
