"""CPU-only LLM serving (``device: cpu`` pools: llama.cpp pinned to some cores) as a ReplicaPerf.

MINIMAL STAND-IN (issue #20, told to the lead): the serving-fidelity work (issue #17) owns CPU
offload and CPU-only physics in twin/model/offload.py and adds the CPU's memory figures to the
catalogue (CpuSpec.memory_channels, max_memory_mt_s, ...). Until that lands on main this module
carries the same two rates with the same signatures, from the table below; then
:func:`cpu_read_gb_s` / :func:`cpu_flop_s` are replaced by theirs and the table goes (one
definition of each concept).

- Decode reads every weight once per token plus the sequences' KV cache from system memory:
  interval = bytes / the cores' read bandwidth, where that bandwidth is
  min(eta x channels x MT/s x 8 B, cores x one core's streaming read) (fidelity.md item 8;
  8-channel DDR5-5200 = 332.8 GB/s theoretical, ~256 GB/s measured on a 4-CCD Threadripper PRO:
  ubergarm, ikawrakow/ik_llama.cpp#534, so eta ~0.7-0.77).
- Prefill is compute bound: 2 x active params per token / (cores x all-core GHz x FLOP/cycle x eta).
"""
from __future__ import annotations

from dataclasses import dataclass

from twin.model import serving as sv
from twin.spec.catalogue import CpuSpec, EngineSpec, ModelSpec, NodeSpec, QuantSpec

GB = 1e9
MEMORY_READ_ETA = 0.7       # achievable share of channel bandwidth for streaming reads (see above)
PER_CORE_READ_GB_S = 25.0   # estimate: one Zen 2-4 core's streaming read, 20-30 GB/s
CPU_PREFILL_ETA = 0.5       # estimate: llama.cpp CPU GEMM share of FP32 FMA peak (AVX2/AVX-512 kernels)


@dataclass(frozen=True)
class CpuMemory:
    channels: int
    mt_s: int                 # DIMM speed the platform runs
    all_core_ghz: float
    fp32_flops_per_cycle: float
    source: str


CPU_MEMORY: dict[str, CpuMemory] = {
    "threadripper-pro-7975wx": CpuMemory(8, 5200, 4.0, 32.0, "AMD product page: 8-channel DDR5-5200, 4.0 GHz base; Zen 4 2x256-bit FMA"),
    "epyc-7542": CpuMemory(8, 3200, 2.9, 32.0, "AMD product page: 8-channel DDR4-3200, 2.9 GHz base; Zen 2 2x256-bit FMA"),
    "ryzen-9-7950x": CpuMemory(2, 5200, 5.1, 32.0, "AMD product page: 2-channel DDR5-5200, ~5.1 GHz all-core; Zen 4"),
}


def system_memory_gb_s(cpu: CpuSpec, node: NodeSpec) -> float:
    """Theoretical bandwidth: populated channels (min(DIMMs, channels)) x MT/s x 8 B, GB/s."""
    m = CPU_MEMORY[cpu.name]
    return min(node.dimms, m.channels) * m.mt_s * 8 / 1000.0


def cpu_read_gb_s(cpu: CpuSpec, node: NodeSpec, cores: float | None = None) -> float:
    """Streaming read bandwidth `cores` cores reach, GB/s: min(eta x theoretical, cores x per-core).

    Threadripper PRO 7975WX, 8 DIMMs, 12 cores: min(0.7 x 332.8, 12 x 25) = 233 GB/s.
    """
    c = cpu.cores if cores is None else min(float(cores), cpu.cores)
    return min(MEMORY_READ_ETA * system_memory_gb_s(cpu, node), c * PER_CORE_READ_GB_S)


def cpu_flop_s(cpu: CpuSpec, eta: float, cores: float | None = None) -> float:
    """Achieved FLOP/s of `cores` cores: cores x all-core GHz x FLOP/cycle x eta."""
    m = CPU_MEMORY[cpu.name]
    c = cpu.cores if cores is None else min(float(cores), cpu.cores)
    return c * m.all_core_ghz * 1e9 * m.fp32_flops_per_cycle * eta


def cpu_replica_perf(model: ModelSpec, quant: QuantSpec, engine: EngineSpec, cpu: CpuSpec, node: NodeSpec,
                     cores: int, ram_gb: float, max_batch: int | None) -> sv.ReplicaPerf:
    """The serving step's per-replica constants for a CPU-only replica: the same roofline
    (twin.model.serving.decode_token_interval_s) with the cores' memory bandwidth and FLOP/s in place
    of a GPU's, KV cache in the RAM the pool reserves beyond its weights."""
    weights_b = model.total_params_b * 1e9 * quant.bytes_per_param
    flops = cpu_flop_s(cpu, 1.0, cores) / 1e12
    return sv.ReplicaPerf(
        weights_bytes=weights_b, active_fraction=model.active_params_b / model.total_params_b,
        active_params=model.active_params_b * 1e9, kv_bytes_per_token=model.kv_bytes_per_token(quant.kv_bytes),
        state_bytes_per_seq=model.state_mb_per_seq * 1e6, kv_capacity_bytes=max(0.0, ram_gb * GB - weights_b),
        tp=1, pp=1, n_gpus=1, prefill_gpus=1, bandwidth_gb_s=cpu_read_gb_s(cpu, node, cores), decode_tflops=flops,
        prefill_tflops=flops, eta_bw=1.0, eta_fl=CPU_PREFILL_ETA, step_overhead_s=engine.step_overhead_s,
        max_batch=max_batch or engine.default_max_batch, hidden_size=model.hidden_size, layers=model.layers,
        continuous_batching=engine.continuous_batching)


# ----------------------------------------------------------------------------- partial offload
COMPUTE_BUFFER_RESERVE_GB = 1.0   # estimate: llama.cpp CUDA compute buffer + context per GPU (0.5-1.5 GB)
OP_OFFLOAD_UBATCH = 512           # llama.cpp default ubatch: CPU-resident weights cross PCIe once per ubatch


@dataclass(frozen=True)
class Offload:
    """A llama.cpp replica with `gpu_layers` of `layers` on its GPUs (layer split) and the rest in RAM."""
    perf: sv.ReplicaPerf      # the serving step's constants with the split folded in (effective rates)
    gpu_layers: int
    layers: int
    gpu_weights_b: float      # weight bytes on the GPUs (all of them)
    cpu_weights_b: float      # weight bytes in system memory
    gpu_busy_frac: float      # share of a decode step the GPUs work (the rest waits on system memory)
    gpu_decode_s: float       # one token's GPU part at batch 1
    cpu_decode_s: float       # one token's system-memory part at batch 1


def auto_gpu_layers(weights_b: float, layers: int, n_gpus: int, gpu_memory_gb: float, memory_fraction: float,
                    kv_b_per_layer: float = 0.0) -> int:
    """llama.cpp ``-ngl auto``: whole layers that fit each GPU after the compute buffer, summed, capped."""
    free = gpu_memory_gb * GB * memory_fraction - COMPUTE_BUFFER_RESERVE_GB * GB
    per_gpu = max(0, int(free // (weights_b / layers + kv_b_per_layer)))
    return min(layers, per_gpu * n_gpus)


def offload_replica(model: ModelSpec, quant: QuantSpec, engine: EngineSpec, gpu, cpu: CpuSpec, node: NodeSpec,
                    n_gpus: int, memory_fraction: float, gpu_layers: int | str, max_batch: int | None,
                    context_tokens: float = 4096.0) -> Offload:
    # the GPUs hold the layers in turn (layer split = pipeline stages without overlap): pp = n_gpus,
    # so a decode step keeps each GPU busy 1/n of its GPU part (serving step: decode_frac x min(pp, b) / pp)
    """Partial offload (llama.cpp -ngl N), one decode step at batch 1:
      GPU part  = f x (weights + KV) / (eta_bw x one GPU's bandwidth)   (layer split: GPUs in turn)
      CPU part  = (1 - f) x (weights + KV) / the cores' read bandwidth  (cpu_read_gb_s, all cores)
    with f = gpu_layers / layers; the parts run one after the other, so they add. Folded into one
    effective bandwidth for the serving roofline. Prefill: GPU layers at the GPU's FLOPS; CPU layers
    either on the CPU or streamed to the GPU over PCIe once per 512-token ubatch (llama.cpp op
    offload), whichever is faster. Source: fidelity.md item 8; llama.cpp ggml-backend scheduler.
    """
    weights_b = model.total_params_b * 1e9 * quant.bytes_per_param
    kvpt = model.kv_bytes_per_token(quant.kv_bytes)
    slots = max_batch or engine.default_max_batch
    if gpu_layers == "auto":
        gpu_layers = auto_gpu_layers(weights_b, model.layers, n_gpus, gpu.memory_gb, memory_fraction,
                                     slots * context_tokens * kvpt / model.layers)
    f = int(gpu_layers) / model.layers
    step_b = weights_b + context_tokens * kvpt
    gpu_s = f * step_b / (engine.eta_bandwidth * gpu.memory_bandwidth_gb_s * GB)
    cpu_s = (1.0 - f) * step_b / (cpu_read_gb_s(cpu, node) * GB)
    eff_bw_gb_s = step_b / (gpu_s + cpu_s) / GB
    act = model.active_params_b * 1e9
    gpu_flops = engine.eta_flops * gpu.tflops(quant.compute_precision) * 1e12
    cpu_layer_s = (1.0 - f) * 2.0 * act / cpu_flop_s(cpu, CPU_PREFILL_ETA)
    streamed_s = (1.0 - f) * (weights_b / (node.pcie_h2d_gb_s * GB) / OP_OFFLOAD_UBATCH + 2.0 * act / gpu_flops)
    prefill_s_per_tok = f * 2.0 * act / gpu_flops + min(cpu_layer_s, streamed_s)
    kv_cap = max(0.0, n_gpus * gpu.memory_gb * GB * memory_fraction - f * weights_b
                 - n_gpus * COMPUTE_BUFFER_RESERVE_GB * GB)
    perf = sv.ReplicaPerf(
        weights_bytes=weights_b, active_fraction=model.active_params_b / model.total_params_b, active_params=act,
        kv_bytes_per_token=kvpt, state_bytes_per_seq=model.state_mb_per_seq * 1e6, kv_capacity_bytes=kv_cap,
        tp=1, pp=n_gpus, n_gpus=n_gpus, prefill_gpus=1, bandwidth_gb_s=eff_bw_gb_s,
        decode_tflops=2.0 * act / prefill_s_per_tok / 1e12, prefill_tflops=2.0 * act / prefill_s_per_tok / 1e12,
        eta_bw=1.0, eta_fl=1.0, step_overhead_s=engine.step_overhead_s, max_batch=slots,
        hidden_size=model.hidden_size, layers=model.layers, continuous_batching=engine.continuous_batching)
    return Offload(perf=perf, gpu_layers=int(gpu_layers), layers=model.layers, gpu_weights_b=f * weights_b,
                   cpu_weights_b=(1.0 - f) * weights_b, gpu_busy_frac=gpu_s / (gpu_s + cpu_s),
                   gpu_decode_s=gpu_s, cpu_decode_s=cpu_s)
