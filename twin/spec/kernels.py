"""Serving-engine specs beyond the efficiency factors: the kernel table and the cold-start phases.

Catalogue kinds `kernels:` (KernelSpec rows, twin/data/catalogue/kernels.yaml) and the `boot:`
block of an engine (BootSpec). The physics that uses them is twin/model/kernels.py and
twin/model/coldstart.py.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from twin.spec.base import NonNeg, Pos, Spec


class BootSpec(Spec):
    """Engine start phases, s (twin/model/coldstart.py): first boot vs warm restart with caches."""
    init_s: NonNeg                 # process start, imports, engine config (before weights)
    weights_first_gb_s: Pos        # effective safetensors / GGUF read rate from a cold page cache
    mmap_weights: bool = False     # llama.cpp: mmap, so a warm restart reads from the page cache at H2D speed
    compile_s: NonNeg = 0.0        # torch.compile, first boot
    compile_cached_s: NonNeg = 0.0  # torch.compile with the on-disk cache (warm restart)
    kv_profile_s: NonNeg = 0.0     # profiling run that sizes the KV pool
    cuda_graph_s_per_layer: NonNeg = 0.0  # CUDA-graph capture per layer on the largest stage
    source: str


class SmallBatchRegime(Spec):
    """A kernel's small-batch regime: up to `max_tokens` tokens per step it runs a different kernel
    with its own compute term (llama.cpp: MMVQ, dp4a dot products on the CUDA cores, instead of MMQ
    on int8 tensor cores; `MMVQ_MAX_BATCH_SIZE 8` in ggml/src/ggml-cuda/mmvq.cuh).

    eta_compute: share of the board's sustained rate in `compute_precision` ("dp4a": int8 dot
    products on the CUDA cores, twin/model/kernels.py dp4a_rate_op_s).
    """
    max_tokens: Annotated[int, Field(ge=1)]
    compute_precision: Literal["dp4a"]
    eta_compute: Annotated[float, Field(gt=0, le=1)]
    source: str


class KernelSpec(Spec):
    """One row of the kernel table: how well `engine`'s `kernel` runs on `architectures`.

    eta_bandwidth: decode (memory-bound) share of DRAM bandwidth; eta_compute_decode / _prefill:
    share of the sustained tensor rate in `compute_precision` for small-M (decode) and large-M
    (prefill) GEMMs. The engine's default for a quantisation is its highest-priority row there.
    `build`: rows for an older engine build era whose kernels measurably differ (llama.cpp before
    CUDA graphs / int8 tensor-core MMQ); where an era has no row for a kernel, the current row applies.
    """
    name: str
    engine: str
    kernel: str
    architectures: list[Literal["ampere", "ada", "hopper", "blackwell", "*"]]
    quantisations: list[str]
    eta_bandwidth: Annotated[float, Field(gt=0, le=1)]
    eta_compute_decode: Annotated[float, Field(gt=0, le=1)]
    eta_compute_prefill: Annotated[float, Field(gt=0, le=1)]
    compute_precision: Literal["fp16", "fp16_acc16", "fp8", "fp4", "int8", "fp32"]
    priority: int = 0
    step_overhead_s: NonNeg | None = None   # per decode step; None: the engine's
    overhead_s_per_layer: NonNeg = 0.0      # per decode step and layer (kernel launches without graphs)
    ridge_sharpness: Annotated[float, Field(ge=1, le=50)] = 3.0  # smooth roofline exponent (max() is infinity)
    first_use_jit_s: NonNeg = 0.0           # first boot: JIT compile of kernels not shipped precompiled (cached for restarts)
    small_batch: SmallBatchRegime | None = None  # decode steps of <= max_tokens tokens: a separate kernel
    build: str | None = None                # engine build era this row describes (e.g. llama.cpp "2023-12"); None: current builds
    source: str


