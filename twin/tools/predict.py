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
- burn test:     every GPU at board power (activity 1), the node's fans and thermal RC stepped
                 with thermal.rc_step_c until the temperatures plateau.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twin.model import power as pw
from twin.model import thermal as th
from twin.model.node_power import DIMM_ACTIVITY, node_parts_w, node_wall_w

# the engine's fan-controller and idle-state estimates, so that predict and `twin run` agree
from twin.model.power import CPU_UTIL_WARM
from twin.model.states import SERVING
from twin.model.thermal import CHASSIS_FAN_TAU_S, FAN_START_C, GPU_FAN_TAU_S
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

SERVING_DIMM_ACTIVITY = DIMM_ACTIVITY[SERVING]
PLATEAU_BAND_K = 1.0             # "plateau": within 1 K of the final temperature from then on


# ---------------------------------------------------------------------------------------- serving
def model_load_s(weights_gb: float, nvme_read_gb_s: float, pcie_h2d_gb_s: float, warmup_s: float) -> float:
    """Weights NVMe -> VRAM plus engine warm-up, s: size / min(NVMe, H2D) + warm-up.

    Source: hardware.md "Boot and load times" (the engine's LOADING + warm-up phases).
    """
    return weights_gb / min(nvme_read_gb_s, pcie_h2d_gb_s) + warmup_s


# ------------------------------------------------------------------------------------------ power
@dataclass(frozen=True)
class NodePower:
    """DC (after the PSU) and wall (AC) power of the node, W."""
    dc_w: float
    wall_w: float


def node_power(box: Box, gpu_w: np.ndarray | float, cpu_util: float, dimm_activity: float,
               fan_frac: float) -> NodePower:
    """The node-power composition (twin.model.node_power, as the engine) with every GPU at `gpu_w`
    and the chassis fans at `fan_frac` of full speed; wall through the PSU efficiency curve."""
    n = box.node
    gpus = float(np.sum(np.broadcast_to(gpu_w, (n.gpu_count,))))
    parts = node_parts_w(n, box.cpu, box.nic, box.fan, cpu_util=cpu_util, dimm_activity=dimm_activity,
                         fan_rpm=fan_frac * box.fan.max_rpm)
    return NodePower(dc_w=float(parts.dc_w(gpus)), wall_w=node_wall_w(n, parts, gpus, box.psu))


def idle_power(box: Box, loaded: bool = False) -> NodePower:
    """Powered on and idle, chassis fans at minimum speed.

    Bare (`loaded=False`): GPUs, CPU and DIMMs at idle. Loaded: the engine's WARM state, i.e. the
    model resident (+loaded_idle_extra_w per GPU) and the engine polling (CPU_UTIL_WARM).
    """
    gpu_w = box.gpu.idle_power_w + (box.gpu.loaded_idle_extra_w if loaded else 0.0)
    return node_power(box, gpu_w, CPU_UTIL_WARM if loaded else 0.0, 0.0, box.fan.min_rpm / box.fan.max_rpm)


def peak_power(box: Box) -> NodePower:
    """Every part at its rated maximum at once: GPUs at board power, CPU at TDP, fans at full speed."""
    return node_power(box, box.gpu.board_power_w, 1.0, 1.0, 1.0)


def psu_headroom_frac(box: Box, dc_w: float) -> float:
    """Share of the PSUs' combined rating left at a DC load: 1 - dc / (rated * count)."""
    return 1.0 - dc_w / (box.psu.rated_w * box.node.psu_count)


@dataclass(frozen=True)
class BurnTest:
    """Sustained all-GPU load (activity 1) from a cold start, sampled every dt_s."""
    t_s: np.ndarray           # (T,)
    gpu_power_w: np.ndarray   # (T, G)
    gpu_temp_c: np.ndarray    # (T, G)
    gpu_clock: np.ndarray     # (T, G)
    node_dc_w: np.ndarray     # (T,)
    node_wall_w: np.ndarray   # (T,)
    airflow_m3_s: np.ndarray  # (T,)

    @property
    def plateau_c(self) -> np.ndarray:
        return self.gpu_temp_c[-1]

    @property
    def time_to_plateau_s(self) -> float:
        """First time after which every GPU stays within PLATEAU_BAND_K of its final temperature."""
        off = np.abs(self.gpu_temp_c - self.gpu_temp_c[-1]).max(axis=1) > PLATEAU_BAND_K
        last = np.flatnonzero(off)
        return float(self.t_s[last[-1] + 1]) if len(last) and last[-1] + 1 < len(self.t_s) else float(self.t_s[0])

    @property
    def settled(self) -> bool:
        """True when the last minute moved the hottest GPU by less than 0.2 K (a real plateau)."""
        k = min(len(self.t_s) - 1, max(1, int(round(60.0 / (self.t_s[1] - self.t_s[0])))))
        return bool(abs(self.gpu_temp_c[-1].max() - self.gpu_temp_c[-1 - k].max()) < 0.2)


def burn_test(box: Box, ambient_c: float = 25.0, duration_s: float = 1800.0, dt_s: float = 1.0,
              power_cap_w: float | None = None) -> BurnTest:
    """Every GPU at full activity (gpu-burn style) in `ambient_c` intake air, stepped like the engine.

    Per tick: clock = min(thermal throttle, power cap); GPU power = power.gpu_power_w(a=1);
    CPU at the node's serving utilisation; chassis fans follow the hottest GPU and the blowers
    their own GPU (thermal.fan_curve_frac, first-order spin-up); GPU intake = ambient + the share
    of CPU/platform heat that pre-heats it; die temperature by thermal.rc_step_c.
    Source: hardware.md "GPU power model" and "Thermal model"; the same composition as
    twin.sim.plant.Plant.step for one node at constant inlet.
    """
    n, gpu, cpu, fan = box.node, box.gpu, box.cpu, box.fan
    steps = int(math.floor(duration_s / dt_s + 1e-9))
    G = n.gpu_count
    temp = np.full(G, float(ambient_c))   # die
    sink = temp.copy()                   # heatsink
    blower = np.zeros(G)
    rpm = float(fan.min_rpm)
    out = {k: np.zeros((steps, G)) for k in ("p", "t", "c")}
    dc_t, wall_t, air_t = np.zeros(steps), np.zeros(steps), np.zeros(steps)
    # heat released upstream of the GPUs (CPU, memory, platform), as the engine's plant
    other_w = float(node_parts_w(n, cpu, box.nic, fan, cpu_util=n.cpu_util_serving, dimm_activity=SERVING_DIMM_ACTIVITY,
                                 fan_rpm=0.0).upstream_w)
    for k in range(steps):
        clock = th.throttle_clock_frac(temp, gpu.slowdown_temp_c, gpu.shutdown_temp_c)
        if power_cap_w is not None:
            clock = np.minimum(clock, pw.clock_for_power_cap(power_cap_w, gpu.idle_power_w, gpu.board_power_w, 1.0))
        p_gpu = pw.gpu_power_w(gpu.idle_power_w, gpu.board_power_w, np.ones(G), clock)
        rpm_target = fan.max_rpm * float(th.fan_curve_frac(temp.max(), fan.min_rpm / fan.max_rpm, FAN_START_C,
                                                           gpu.fan_target_c))
        rpm = float(th.first_order_lag(np.float64(rpm), np.float64(rpm_target), CHASSIS_FAN_TAU_S, dt_s))
        power = node_power(box, p_gpu, n.cpu_util_serving, SERVING_DIMM_ACTIVITY, rpm / fan.max_rpm)
        airflow = (n.chassis_fan_count * float(pw.fan_airflow_m3_s(fan.max_airflow_m3_s, rpm, fan.max_rpm))
                   + gpu.blower_airflow_m3_s * float(blower.sum()))
        intake = ambient_c + float(th.exhaust_c(0.0, n.gpu_preheat_frac * other_w, airflow))
        temp, sink = th.gpu_step_c(temp, sink, intake, p_gpu, blower, gpu, dt_s)
        blower = th.first_order_lag(blower, th.fan_curve_frac(temp, gpu.min_fan_frac, FAN_START_C, gpu.fan_target_c),
                                    GPU_FAN_TAU_S, dt_s)
        out["p"][k], out["t"][k], out["c"][k] = p_gpu, temp, clock
        dc_t[k], wall_t[k], air_t[k] = power.dc_w, power.wall_w, airflow
    return BurnTest(t_s=(np.arange(steps) + 1) * dt_s, gpu_power_w=out["p"], gpu_temp_c=out["t"],
                    gpu_clock=out["c"], node_dc_w=dc_t, node_wall_w=wall_t, airflow_m3_s=air_t)


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
    idle: NodePower
    idle_loaded: NodePower
    peak: NodePower
    burn: BurnTest


def predict(box: Box, concurrencies: list[int], prompt_tokens: float = 1020, output_tokens: float = 129,
            ambient_c: float = 25.0, burn_s: float = 1800.0, power_cap_w: float | None = None) -> Prediction:
    """Compose the single-box figures (defaults: Azure 2023 conversation medians 1,020 / 129 tokens)."""
    n, plan = box.node, box.plan
    first = engine_start(box, warm=False)
    # offloaded: the GPUs hold only their layers' weights; the pool is what is left next to them
    pool_b = plan.kv_pool_bytes if box.split is None else plan.usable_bytes - box.split.gpu_frac * plan.weights_bytes
    return Prediction(
        box=box, weights_gb=plan.weights_bytes / 1e9, kv_budget_gb=pool_b / 1e9,
        kv_blocks=max(0, int(pool_b // plan.kv_block_bytes)) if plan.kv_block_bytes > 0 else 0, load_s=first.total_s, warm_restart_s=engine_start(box, warm=True).total_s,
        cold_start_s=n.power_on_s + n.post_s + n.os_boot_s + first.total_s,
        single_stream_tok_s=1.0 / decode_interval_s(box, 1, prompt_tokens),
        prefill_tok_s=prefill_tokens_per_s(box, prompt_tokens),
        prompt_latency_s=prompt_latency_s(box, prompt_tokens),
        rows=concurrency_table(box, concurrencies, prompt_tokens, output_tokens),
        idle=idle_power(box), idle_loaded=idle_power(box, loaded=True), peak=peak_power(box),
        burn=burn_test(box, ambient_c, burn_s, 1.0, power_cap_w))
