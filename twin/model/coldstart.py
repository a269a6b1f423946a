"""Engine start times: a first boot (cold caches) separate from a warm restart (caches on disk / in RAM).

A first vLLM start reads safetensors at an effective ~1-2 GB/s per worker (mmap + per-tensor copy,
not NVMe sequential), runs torch.compile (~40-70 s), a profiling run that sizes the KV pool and
CUDA-graph capture (per captured size and layer: minutes on big models). A warm restart finds the
weights in the page cache or on a fast drive and loads the compiled graphs from the on-disk cache
(vllm-project/vllm #44881, #20264, #19824; runai-model-streamer #67). llama.cpp mmaps the GGUF: a
first start reads it from the drive, a restart from the page cache at PCIe speed, with no compile
step. Every duration is an engine parameter (EngineSpec.boot) with its source in the catalogue.
"""
from __future__ import annotations

from dataclasses import dataclass

from twin.spec.catalogue import EngineSpec, NodeSpec


@dataclass(frozen=True)
class StartPhases:
    """Seconds per phase of one engine start on one node."""
    init_s: float
    weights_s: float
    compile_s: float
    kv_profile_s: float
    cuda_graph_s: float
    jit_s: float = 0.0   # first-use JIT of kernels the engine does not ship precompiled (KernelSpec.first_use_jit_s)

    @property
    def total_s(self) -> float:
        return self.init_s + self.weights_s + self.compile_s + self.kv_profile_s + self.cuda_graph_s + self.jit_s


def start_phases(engine: EngineSpec, node: NodeSpec, weights_gb: float, workers: int, layers_per_stage: float, *,
                 warm: bool, first_use_jit_s: float = 0.0) -> StartPhases:
    """Phases of starting `engine` with `weights_gb` of weights (decimal GB) read by `workers` GPU processes.

    Weights, first boot: weights / min(workers x effective read rate, NVMe, workers x H2D); with
    mmap (llama.cpp) the first read is at the drive's rate. Warm restart: weights / min(NVMe, H2D)
    (page cache or drive), compile from cache. CUDA graphs: per layer of the largest stage.
    An engine without a `boot` block keeps the old model: weights at min(NVMe, H2D) + warmup_s.
    `first_use_jit_s` (the kernel row's, e.g. FlashInfer CUTLASS FP4 on sm_120) is paid on a first
    boot only: the compiled kernels are cached on disk (vllm-project/vllm #47456).
    """
    local = min(node.nvme_read_gb_s, node.pcie_h2d_gb_s)
    b = engine.boot
    if b is None:
        return StartPhases(0.0, weights_gb / local, 0.0, 0.0, engine.warmup_s)
    if warm:
        rate = node.pcie_h2d_gb_s * workers if b.mmap_weights else local
    elif b.mmap_weights:
        rate = node.nvme_read_gb_s
    else:
        rate = min(workers * b.weights_first_gb_s, node.nvme_read_gb_s, workers * node.pcie_h2d_gb_s)
    return StartPhases(init_s=b.init_s, weights_s=weights_gb / rate,
                       compile_s=b.compile_cached_s if warm else b.compile_s,
                       kv_profile_s=b.kv_profile_s, cuda_graph_s=b.cuda_graph_s_per_layer * layers_per_stage,
                       jit_s=0.0 if warm else first_use_jit_s)
