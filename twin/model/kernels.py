"""Kernel table: which GEMM kernel an engine runs for a quantisation on a GPU, and how well.

Efficiency is keyed by (engine, kernel, GPU architecture, batch regime), one catalogue row per
(engine, kernel, architectures) in twin/data/catalogue/kernels.yaml, each with its source:
- decode (small-M GEMV/GEMM, memory bound): `eta_bandwidth` of DRAM bandwidth, and
  `eta_compute_decode` of the sustained tensor rate for the compute term;
- prefill (large-M GEMM): `eta_compute_prefill` of the sustained tensor rate.
The engine's default kernel for a quantisation is its highest-`priority` row that supports the
GPU's architecture (vLLM picks Marlin for AWQ/GPTQ where it runs; the plain `awq` GEMM kernel is a
user choice, `--quantization awq`).

The smooth roofline (`roofline_s`) replaces max(memory, compute): near the ridge a kernel is
neither purely bandwidth- nor compute-limited (tile quantisation, pipeline bubbles), so time is
the p-norm (t_mem^n + t_comp^n)^(1/n); n = `ridge_sharpness` (max() is n -> infinity). n = 3 puts
a kernel at the ridge 26 % above max(), matching the bend of published Marlin / FP8 GEMM
batch sweeps (Frantar et al. 2024, "MARLIN", fig. 1: speed-up over FP16 falls from ~3.9x at
batch <= 16 to ~1.5x at batch 128 instead of dropping at a sharp knee). Pure functions; no I/O.
"""
from __future__ import annotations

import numpy as np

from twin.spec.catalogue import Catalogue, GpuSpec, KernelSpec


class KernelError(ValueError):
    """A kernel that does not exist for this engine / quantisation / GPU; the message names those that do."""


def kernels_for(cat: Catalogue, engine: str, quantisation: str, architecture: str | None) -> list[KernelSpec]:
    """Rows of `engine` supporting `quantisation` on `architecture` ('*' rows match any), best first."""
    rows = [r for r in cat.kernel_rows() if r.engine == engine and quantisation in r.quantisations
            and ("*" in r.architectures or (architecture is not None and architecture in r.architectures))]
    return sorted(rows, key=_rank)


def _rank(r: KernelSpec) -> tuple:
    """Best first: higher priority, then an architecture-specific row before a wildcard one."""
    return (-r.priority, "*" in r.architectures, r.name)


def build_eras(cat: Catalogue, engine: str) -> list[str]:
    """Build eras of `engine` that have their own kernel rows, oldest first (YYYY-MM sorts by date)."""
    return sorted({r.build for r in cat.kernel_rows() if r.engine == engine and r.build is not None})


def _for_build(cat: Catalogue, engine: str, rows: list[KernelSpec], build: str | None) -> list[KernelSpec]:
    """Rows of one build era: the era's own rows, and the current rows of kernels the era did not change.

    Raises KernelError naming the eras that exist when `build` has no row for `engine` at all.
    """
    current = [r for r in rows if r.build is None]
    if build is None:
        return current
    eras = build_eras(cat, engine)
    if build not in eras:
        raise KernelError(f"no kernel rows for {engine} build {build!r}; builds with their own rows: "
                          f"{', '.join(eras) or 'none'} (omit the build for the current one)")
    era = [r for r in rows if r.build == build]
    changed = {r.kernel for r in era}
    return sorted(era + [r for r in current if r.kernel not in changed], key=_rank)


def select_kernel(cat: Catalogue, engine: str, quantisation: str, gpu: GpuSpec, kernel: str | None = None,
                  build: str | None = None) -> KernelSpec:
    """The row the engine runs: `kernel` if given (must exist here), else the engine's default;
    `build` selects an older build era's rows (twin/data/catalogue/kernels.yaml), None the current.

    Raises KernelError naming the kernels that exist for this engine, quantisation and GPU.
    """
    rows = _for_build(cat, engine, kernels_for(cat, engine, quantisation, gpu.architecture), build)
    arch = gpu.architecture or "unknown architecture"
    if kernel is None:
        if not rows:
            raise KernelError(f"{engine} has no kernel for {quantisation} on {gpu.name} ({arch})")
        return rows[0]
    exact = [r for r in rows if r.kernel == kernel]
    if exact:
        # a specific architecture row beats a wildcard one
        return sorted(exact, key=lambda r: "*" in r.architectures)[0]
    have = sorted({r.kernel for r in rows})
    known = sorted({r.kernel for r in cat.kernel_rows() if r.engine == engine})
    hint = (f"kernels for {quantisation} on {gpu.name} ({arch}): {', '.join(have)}" if have
            else f"{engine} has no kernel for {quantisation} on {gpu.name} ({arch})")
    if kernel not in known:
        return _raise(f"unknown kernel {kernel!r} for {engine}; {hint}")
    return _raise(f"kernel {kernel!r} does not run {quantisation} on {gpu.name} ({arch}); {hint}")


def _raise(message: str) -> KernelSpec:
    raise KernelError(message)


def roofline_s(mem_s: np.ndarray | float, comp_s: np.ndarray | float, sharpness: float) -> np.ndarray:
    """Smooth roofline time (t_mem^n + t_comp^n)^(1/n), s; equals max() as n -> infinity.

    Computed as m * (1 + (c/m)^n)^(1/n) with m = max(t_mem, t_comp) to stay finite for large n.
    """
    a, b = np.asarray(mem_s, dtype=float), np.asarray(comp_s, dtype=float)
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    ratio = np.divide(lo, hi, out=np.zeros_like(hi), where=hi > 0)
    return hi * roofline_factor(ratio, sharpness)


def roofline_factor(ratio: np.ndarray, sharpness: float) -> np.ndarray:
    """(1 + ratio^n)^(1/n) for ratio = min / max of (t_mem, t_comp): roofline_s / max, dimensionless, in [1, 2^(1/n)].

    Its own function so that the compiled serving step (twin.sim.serving_kernel) applies exactly
    these numpy powers to the ratio it computes.
    """
    return (1.0 + ratio ** sharpness) ** (1.0 / sharpness)


def compute_rate_flop_s(gpu: GpuSpec, row: KernelSpec, regime: str) -> float:
    """Achieved FLOP/s of one GPU: eta(regime) x power-limited sustained tensor rate in the row's precision."""
    eta = row.eta_compute_prefill if regime == "prefill" else row.eta_compute_decode
    return eta * gpu.sustained_tflops(row.compute_precision) * 1e12


# dp4a (__dp4a, sm_61+): one instruction per lane does four int8 multiply-adds into an int32, where
# an FP32 FMA does one; counting a multiply-add as 2 ops, the CUDA cores' int8 dot-product rate is 4x
# their FP32 FLOP rate (NVIDIA Tesla P40 datasheet: 47 TOPS INT8 vs 12 TFLOPS FP32). Caveat: GA10x,
# Ada and Hopper SMs have 64 INT32 lanes beside 128 FP32 lanes, so if IDP4A issues only on the INT32
# lanes their ratio is 2x; only eta x rate is fitted, so this matters only between architectures
# with a different INT32/FP32 lane ratio (A100, Blackwell), never between Ampere GA10x and Ada.
DP4A_OPS_PER_FP32_FLOP = 4.0


def dp4a_rate_op_s(gpu: GpuSpec) -> float:
    """Int8 dot-product rate of the CUDA cores (dp4a), op/s: 4 x the FP32 rate x the sustained share.

    The CUDA cores run at the same power-limited clock as the tensor cores, so the board's
    `sustained_frac` applies. Raises KernelError if the GPU has no FP32 rate in its catalogue entry.
    """
    if "fp32" not in gpu.dense_tflops:
        raise KernelError(f"gpus.{gpu.name}.dense_tflops.fp32 is needed for the small-batch (dp4a) kernel")
    return DP4A_OPS_PER_FP32_FLOP * gpu.dense_tflops["fp32"] * gpu.sustained_frac * 1e12


def decode_gemm_rate_flop_s(gpu: GpuSpec, row: KernelSpec, tokens_per_step: np.ndarray | float) -> np.ndarray:
    """Achieved GEMM FLOP/s of one GPU in a decode step of `tokens_per_step` tokens.

    Up to the row's small-batch `max_tokens` the engine runs its small-batch kernel (llama.cpp MMVQ,
    dp4a on the CUDA cores: eta x dp4a_rate_op_s); above it the row's decode rate (MMQ, tensor cores).
    Source: ggml/src/ggml-cuda/mmvq.cuh MMVQ_MAX_BATCH_SIZE 8; ggml-cuda.cu picks MMVQ for ne11 <= 8.
    """
    large = compute_rate_flop_s(gpu, row, "decode")
    tokens = np.asarray(tokens_per_step, dtype=float)
    if row.small_batch is None:
        return np.full_like(tokens, large)
    small = row.small_batch.eta_compute * dp4a_rate_op_s(gpu)
    return np.where(tokens <= row.small_batch.max_tokens, small, large)


ATTENTION_ETA = 0.5  # FlashAttention-2 reaches 50-73 % of A100 FP16 peak forward (Dao 2023, fig. 4); lower end


def attention_rate_flop_s(gpu: GpuSpec) -> float:
    """Achieved FLOP/s of attention (QK^T, AV) on one GPU: FlashAttention runs on 16-bit tensor cores
    with FP32 accumulation whatever the weights' kernel, at ATTENTION_ETA of the sustained FP16 rate."""
    return ATTENTION_ETA * gpu.sustained_tflops("fp16") * 1e12


def bandwidth_b_s(gpu: GpuSpec, row: KernelSpec) -> float:
    """Achieved DRAM read bandwidth of one GPU in decode, bytes/s: eta_bandwidth x datasheet bandwidth."""
    return row.eta_bandwidth * gpu.memory_bandwidth_gb_s * 1e9
