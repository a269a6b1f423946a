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
