"""CPU-only LLM decode and prefill bounds (llama.cpp ``device: cpu`` pools pinned to some cores).

MINIMAL placeholder for the workloads issue (#20): the serving-fidelity work owns CPU offload and
CPU-only physics in twin/model/serving*.py. When that lands, its functions replace these and this
module goes (one definition of each concept); the lead has been told.

- Decode reads every weight once per token plus the sequence's KV cache, from system memory:
  interval = bytes / (eta_bw x DRAM bandwidth x the pool's core share) (roofline, as GPU decode;
  fidelity.md item 8: "decode is then bound by system-memory bandwidth").
- Prefill is compute bound: 2 x active params per token / (eta_fl x cores x per-core FLOP/s).
"""
from __future__ import annotations

from twin.model.sharing import core_bandwidth_share

GB = 1e9


def cpu_decode_interval_s(weights_bytes: float, kv_bytes: float, dram_bandwidth_gb_s: float, cores: int,
                          total_cores: int, eta_bw: float) -> float:
    """Seconds per token for one sequence on `cores` of `total_cores` (memory-bandwidth bound).

    Example: Llama 3.1 8B Q4_K_M (4.87 GB) on 12 of 32 cores of 8-channel DDR5-5200 (332.8 GB/s)
    at eta 0.7: 4.87 / (0.7 x 332.8 x 12/32) = 55.7 ms -> 17.9 tok/s.
    """
    bw = eta_bw * dram_bandwidth_gb_s * GB * core_bandwidth_share(cores, total_cores)
    return (weights_bytes + kv_bytes) / bw


def cpu_prefill_s_per_token(active_params: float, cores: int, gflops_per_core: float, eta_fl: float) -> float:
    """Seconds per prompt token: 2 x active_params / (eta_fl x cores x GFLOP/s per core)."""
    return 2.0 * active_params / (eta_fl * cores * gflops_per_core * 1e9)


def ddr_bandwidth_gb_s(channels: int, mt_s: float, bus_bytes: int = 8) -> float:
    """Theoretical DRAM bandwidth: channels x transfers/s x 8-byte bus (DDR5-5200 x 8 = 332.8 GB/s)."""
    return channels * mt_s * 1e6 * bus_bytes / GB
