"""Electrical power: GPUs (P-states, memory and SM terms, power limiter), CPU, fans, PSU losses.

Facility overheads (cooling plant, UPS) are in twin.model.cooling; the node's composition in
twin.model.node_power.

Pure numpy functions of arrays and specs; vectorised over nodes or GPUs. Units are in the
names (``_w`` watts, ``_frac`` 0..1). Sources are in each docstring and in
``shared/reference/hardware.md``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.spec.catalogue import GpuSpec, PsuSpec

# np.clip is a Python wrapper (argument checks, dispatch) around this ufunc: on the small arrays of
# a tick the wrapper costs more than the clipping. The same loops, so the same bytes (both bounds
# given; np.clip with one bound None is np.minimum / np.maximum instead).
clip = getattr(getattr(np, "_core", np), "umath", np).clip

def psu_efficiency(load_frac: np.ndarray, psu: PsuSpec, input_v: int = 230,
                   curve: PsuCurve | None = None) -> np.ndarray:
    """AC->DC efficiency at a fraction of rated output on `input_v` mains (115 or 230 V).

    The curve is the supply's 80 PLUS points for that mains voltage (PsuSpec.curve): 230 V EU
    internal by default, 115 V internal for North American builds, where the same unit is 2-4
    points less efficient (Titanium 90/92/94/90 % vs 90/94/96/94 %; Tom's Hardware 80 PLUS table).
    Between the test points: linear interpolation;
    above 100 %: the last point. Below the first point the *losses* are extrapolated as fixed plus
    proportional, L(x) = a + b x through the first two points, and efficiency = x / (x + L(x)):
    a supply's fixed losses (controller, fan, magnetising, switching) dominate at light load, so
    efficiency falls off as 1/(1 + a/x) rather than along a straight line (the standard converter
    loss model, Erickson & Maksimovic, Fundamentals of Power Electronics, ch. 3).
    Source: 80 PLUS requirement points (Titanium 90/94/96/94 %).
    `curve`: psu_curve(psu, input_v) when the caller holds it (the plant, every tick).
    """
    c = psu_curve(psu, input_v) if curve is None else curve
    pts, a, b = c.load_frac, c.fixed_loss, c.prop_loss
    x = np.clip(np.asarray(load_frac, dtype=float), 0.0, None)
    inside = np.interp(x, pts, c.efficiency)
    light = np.divide(x, x + a + b * x, out=np.zeros_like(x), where=x > 0)
    return np.where(x < pts[0], light, inside)


@dataclass(frozen=True)
class PsuCurve:
    """A supply's efficiency points on one mains voltage and its light-load loss line L(x) = a + b x
    (x and L as fractions of rated output): what psu_efficiency evaluates, computed once per supply."""
    load_frac: np.ndarray
    efficiency: np.ndarray
    fixed_loss: float   # a
    prop_loss: float    # b


def psu_curve(psu: PsuSpec, input_v: int = 230) -> PsuCurve:
    """psu_efficiency's curve of `psu` on `input_v` mains (see there for the loss model)."""
    load_points, eff_points = psu.curve(input_v)
    pts = np.asarray(load_points, dtype=float)
    eff = np.asarray(eff_points, dtype=float)
    loss = pts[:2] * (1.0 / eff[:2] - 1.0)          # losses at the first two points, x rated
    b = (loss[1] - loss[0]) / (pts[1] - pts[0])
    a = loss[0] - b * pts[0]
    if a < 0:  # curve rising too steeply for a fixed loss: purely proportional losses instead
        a, b = 0.0, loss[0] / pts[0]
    return PsuCurve(load_frac=pts, efficiency=eff, fixed_loss=a, prop_loss=b)


def wall_power_w(dc_power_w: np.ndarray, psu: PsuSpec, psu_count: int | np.ndarray = 1,
                 input_v: int = 230, curve: PsuCurve | None = None) -> np.ndarray:
    """Wall (AC) power drawn to deliver `dc_power_w`, load shared evenly by `psu_count` supplies.

    AC = DC / efficiency(DC / rated) on `input_v` mains. A node with zero DC load draws the PSU
    standby power.
    """
    dc = np.asarray(dc_power_w, dtype=float)
    eff = psu_efficiency(dc / (psu.rated_w * psu_count), psu, input_v, curve)
    wall = np.divide(dc, eff, out=np.zeros_like(eff, dtype=float), where=dc > 0)
    return np.where(dc > 0, wall, psu.standby_w * psu_count)


def cpu_power_w(idle_power_w: float, tdp_w: float, util: np.ndarray) -> np.ndarray:
    """Package power, linear from idle to TDP in utilisation (SPECpower-style linear model)."""
    return idle_power_w + (tdp_w - idle_power_w) * clip(np.asarray(util, dtype=float), 0.0, 1.0)


def fan_power_w(max_power_w: float, rpm: np.ndarray, max_rpm: float) -> np.ndarray:
    """Fan affinity law: power ~ rpm^3. Source: fan laws (hardware.md)."""
    return max_power_w * (np.asarray(rpm, dtype=float) / max_rpm) ** 3


def fan_airflow_m3_s(max_airflow_m3_s: float, rpm: np.ndarray, max_rpm: float) -> np.ndarray:
    """Fan affinity law: volumetric flow ~ rpm."""
    return max_airflow_m3_s * np.asarray(rpm, dtype=float) / max_rpm


# ------------------------------------------------------------- GPU board power: P-states and split
# Board watts per GB/s of achieved DRAM traffic at full clock, by memory type, for cards without
# their own figure (GpuSpec.memory_w_per_gb_s). It is the whole board's cost of moving a byte in a
# memory-bound kernel: DRAM + PHY, memory controller, L2, crossbar and the SMs issuing the loads.
# GDDR6X 0.31 (fitting set): an RTX 4090 decoding Qwen3-4B FP8 single-stream drew 246.8 W at
# 137.7 tok/s (~4.4 GB read per token = 606 GB/s), SM 2,820 MHz, P2 (noonghunna/club-3090#697):
# (246.8 - 60 W P0 idle) / 606 = 0.31. HBM 0.042: H200 decode draws 137-300 W while saturating
# HBM (arXiv:2605.11999): (300 - 140 W P0, wilicc/gpu-burn#114) / (0.8 x 4.8 TB/s) = 0.042.
# GDDR6 / GDDR7 are estimates (the GDDR6X figure scaled by DRAM energy per bit, below).
MEMORY_W_PER_GB_S = {"gddr6": 0.30, "gddr6x": 0.31, "gddr7": 0.28, "hbm2": 0.045, "hbm2e": 0.042,
                     "hbm3": 0.042, "hbm3e": 0.042}
# DRAM + PHY energy per bit: the part of memory power that does not scale with the SM clock and
# heats the memory packages. Micron: GDDR6 7.5 pJ/bit, GDDR6X 7.25 pJ/bit (GDDR6X product brief);
# HBM2 ~3.9 pJ/bit (O'Connor et al., MICRO 2017). GDDR7 6.0 and HBM3/3e 3.5 are estimates.
MEMORY_DRAM_PJ_PER_BIT = {"gddr6": 7.5, "gddr6x": 7.25, "gddr7": 6.0, "hbm2": 3.9, "hbm2e": 3.9,
                          "hbm3": 3.5, "hbm3e": 3.5}
CLOCK_FLOOR = 0.3           # lowest SM clock the power limiter goes to (P0 minimum ~ 30 % of boost)
LIMIT_NEWTON_STEPS = 8      # Newton from c = 1: quadratic convergence, ~1e-15 after 6-8 steps


def gpu_active_idle_w(gpu: GpuSpec) -> float:
    """P0/P2 idle: clocks up, nothing running. Default 2 x P8 idle: a V100S idles at 25 W and sits
    at ~50 W for seconds after a kernel (NVIDIA/cuda-samples#74)."""
    return gpu.idle_p0_w if gpu.idle_p0_w is not None else 2.0 * gpu.idle_power_w


def gpu_memory_w_per_gb_s(gpu: GpuSpec) -> float:
    """Board W per GB/s of DRAM traffic at full clock (catalogue figure or the memory type's)."""
    return gpu.memory_w_per_gb_s if gpu.memory_w_per_gb_s is not None else MEMORY_W_PER_GB_S[gpu.memory_type]


def gpu_dram_w_per_gb_s(gpu: GpuSpec) -> float:
    """DRAM + PHY share of it, pJ/bit x 8 bit/B x 1e-3 (W per GB/s); never above the total."""
    return min(MEMORY_DRAM_PJ_PER_BIT[gpu.memory_type] * 8e-3, gpu_memory_w_per_gb_s(gpu))


def gpu_sm_power_w(gpu: GpuSpec) -> float:
    """SM power at 100 % math utilisation and full clock. Default 1.2 x (TGP - P0 idle): boards hold
    gpu-burn at their power limit with the SM clock a few per cent below maximum boost (estimate)."""
    return gpu.sm_power_w if gpu.sm_power_w is not None else 1.2 * (gpu.board_power_w - gpu_active_idle_w(gpu))


def pstate_active(has_context: np.ndarray, since_activity_s: np.ndarray, busy_polling: np.ndarray | bool,
                  gpu: GpuSpec, persistence: bool = False) -> np.ndarray:
    """Whether the board sits in P0/P2 (clocks up) rather than P8.

    P0 while kernels ran within the last `pstate_decay_s` (the driver drops to P8 seconds after the
    last kernel: NVIDIA/cuda-samples#74), while an engine busy-polls the GPU (spinning streams keep
    it "active"), and, on boards that hold P0 whenever a CUDA context is open (`context_holds_p0`:
    Tesla-class parts, NVIDIA/open-gpu-kernel-modules#874, wilicc/gpu-burn#114), while a model is
    resident, or with persistence mode on (the persistence daemon keeps a client open: an estimate,
    consistent with gpu-burn#114's "Persistence-M On, P0"). GeForce/RTX boards with a model resident
    and nothing running idle in P8 (an RTX 5090 with 23 GB resident: 12-17 W, club-3090#761).
    """
    ctx = np.asarray(has_context, dtype=bool)
    recent = np.asarray(since_activity_s, dtype=float) < gpu.pstate_decay_s
    held = (ctx | persistence) & gpu.context_holds_p0
    return recent | (ctx & np.asarray(busy_polling, dtype=bool)) | held


def gpu_idle_power_w(active: np.ndarray, gpu: GpuSpec) -> np.ndarray:
    """Idle floor by P-state: P0/P2 active idle or P8 (GpuSpec.idle_power_w)."""
    return np.where(np.asarray(active, dtype=bool), gpu_active_idle_w(gpu), gpu.idle_power_w)


def gpu_board_power_w(idle_w: np.ndarray | float, mem_gb_s: np.ndarray | float, sm_util: np.ndarray | float,
                      clock_frac: np.ndarray | float, gpu: GpuSpec) -> np.ndarray:
    """Board power = idle(P-state) + memory term + SM term.

        memory: (w_dram + (w_mem - w_dram) c^2) x achieved GB/s
        SM:     P_sm x u x c^3

    `mem_gb_s` is the achieved DRAM traffic; `sm_util` u = achieved FLOP/s / (c x peak FLOP/s) is the
    share of SM math cycles in use; `clock_frac` c the SM clock. DRAM energy per byte is fixed by the
    memory (it does not follow the SM clock: decode tok/s is flat across power caps,
    noonghunna/club-3090#697); the on-chip part of moving a byte and the SM math cost C V^2 per
    operation with V ~ f near the top of the V/f curve, hence c^2 per byte and c^3 per unit time.
    """
    c = clip(np.asarray(clock_frac, dtype=float), 0.0, 1.0)
    g = np.maximum(np.asarray(mem_gb_s, dtype=float), 0.0)
    u = clip(np.asarray(sm_util, dtype=float), 0.0, 1.0)
    w_dram = gpu_dram_w_per_gb_s(gpu)
    w_chip = gpu_memory_w_per_gb_s(gpu) - w_dram
    return np.asarray(idle_w, dtype=float) + (w_dram + w_chip * c ** 2) * g + gpu_sm_power_w(gpu) * u * c ** 3


def clock_for_board_limit(limit_w: np.ndarray | float, idle_w: np.ndarray | float, mem_gb_s: np.ndarray | float,
                          sm_util: np.ndarray | float, gpu: GpuSpec) -> np.ndarray:
    """Highest SM clock c <= 1 with gpu_board_power_w(...) <= limit_w: what the board's power
    limiter settles to. P(c) = A + B c^2 + C c^3 rises and is convex for c > 0, so Newton's method
    started at c = 1 approaches the root from above, monotonically and quadratically
    (LIMIT_NEWTON_STEPS reach machine precision). Floor CLOCK_FLOOR: when even the floor exceeds
    the limit the board runs over it there (DRAM power cannot be clocked away)."""
    g = np.maximum(np.asarray(mem_gb_s, dtype=float), 0.0)
    u = clip(np.asarray(sm_util, dtype=float), 0.0, 1.0)
    w_dram = gpu_dram_w_per_gb_s(gpu)
    b = (gpu_memory_w_per_gb_s(gpu) - w_dram) * g
    c3 = gpu_sm_power_w(gpu) * u
    room = np.asarray(limit_w, dtype=float) - np.asarray(idle_w, dtype=float) - w_dram * g
    if not room.shape == b.shape == c3.shape:  # the engine passes (G,) arrays: nothing to broadcast
        shape = np.broadcast(room, b, c3).shape
        room, b, c3 = (np.broadcast_to(x, shape) for x in (room, b, c3))
    shape = room.shape
    c = np.ones(shape)
    over = b + c3 > room
    if over.any():
        bo, co, ro = b[over], c3[over], room[over]
        x = np.ones(bo.shape)
        for _ in range(LIMIT_NEWTON_STEPS):
            f = bo * x ** 2 + co * x ** 3 - ro
            fp = np.maximum(2 * bo * x + 3 * co * x ** 2, 1e-12)
            x = clip(x - f / fp, CLOCK_FLOOR, 1.0)
        c[over] = x
    return c


def gpu_transient_peak_w(sustained_w: np.ndarray, limit_w: np.ndarray | float, gpu: GpuSpec) -> np.ndarray:
    """Peak board power a 1-s wall meter sees: power-limited boards (within 2 % of their limit)
    overshoot it by `transient_peak_frac` of the limit, because the limiter regulates a running
    average while load steps arrive faster (the reason published wall peaks exceed the caps)."""
    p = np.asarray(sustained_w, dtype=float)
    return np.where(p >= 0.98 * np.asarray(limit_w), p + gpu.transient_peak_frac * np.asarray(limit_w), p)


# ---------------------------------------------------------------------------- host CPU from the work
BURN_HOST_CORES_PER_GPU = 1.0  # gpu-burn: one host process per GPU spinning in cudaDeviceSynchronize (estimate)


def host_cpu_util(busy_cores: np.ndarray | float, tokens_per_s: np.ndarray | float, core_s_per_token: float,
                  cores: int) -> np.ndarray:
    """CPU utilisation driven by the workload: cores the serving engines keep busy (scheduler loops,
    API servers; EngineSpec.host_busy_cores) plus per-token host work (tokenise, detokenise, stream)
    x tokens/s, as a share of the package's cores."""
    work = np.asarray(busy_cores, dtype=float) + np.asarray(tokens_per_s, dtype=float) * core_s_per_token
    return clip(work / cores, 0.0, 1.0)


def replica_gpu_work(weights_bytes: float, active_fraction: float, active_params: float, kv_bytes_per_token: float,
                     state_bytes_per_seq: float, n_gpus: int, pp: int, peak_tflops: float,
                     batch: np.ndarray, kv_tokens: np.ndarray, interval_s: np.ndarray, decode_time_frac: np.ndarray,
                     prefill_tok_s: np.ndarray, prefill_gpus: int, prefill_chunk_tokens: float,
                     clock: np.ndarray | float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Tick-average DRAM GB/s and SM math utilisation per GPU of each replica (power inputs).

    Decode: per token interval the min(pp, batch) micro-batches each read the weights they touch
    (serving.weight_bytes_read: MoE touches a share) and the batch reads its KV cache and recurrent
    state once; every sequence costs 2 x active params FLOPs; spread over the replica's GPUs and
    weighted by the share of the tick spent decoding. Prefill: 2 x active params FLOPs per prompt
    token over the GPUs prefilling, weights re-read once per `prefill_chunk_tokens` chunk.
    u = achieved FLOP/s / (c x peak): the share of SM math cycles in use at clock c.
    """
    from twin.model.serving import weight_bytes_read  # serving's roofline bytes (one definition)
    b = np.maximum(np.asarray(batch, dtype=float), 1.0)
    m = np.minimum(pp, b)
    decoding = np.asarray(batch, dtype=float) > 0
    iv = np.where(decoding, np.asarray(interval_s, dtype=float), 1.0)
    read = (m * weight_bytes_read(weights_bytes, active_fraction, b / m) + np.asarray(kv_tokens, dtype=float)
            * kv_bytes_per_token + b * state_bytes_per_seq)
    frac = np.where(decoding, np.asarray(decode_time_frac, dtype=float), 0.0)
    peak = peak_tflops * 1e12 * np.maximum(np.asarray(clock, dtype=float), 1e-3)
    pre = np.asarray(prefill_tok_s, dtype=float)
    gb_s = frac * read / iv / n_gpus / 1e9 + pre * weights_bytes / n_gpus / prefill_chunk_tokens / 1e9
    util = frac * 2.0 * active_params * b / iv / n_gpus / peak + 2.0 * active_params * pre / prefill_gpus / peak
    return gb_s, clip(util, 0.0, 1.0)
