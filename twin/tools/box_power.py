"""One box's power and heat without the engine: the power/thermal half of `twin predict`.

- node power: the sum of the parts (twin.model.power), wall through the PSU's 80 PLUS curve for
  the node's mains voltage (NodeSpec.input_voltage_v);
- idle by P-state: bare (P8, CPU idle) and with a model resident (P8 on GeForce/RTX boards, P0 on
  boards that hold it with a context open; the engine's host loops keep CPU cores busy);
- serving: per-GPU board power = idle(P0) + memory term + SM term (power.gpu_board_power_w) under
  the board's power limiter (power.clock_for_board_limit);
- burn test: gpu-burn on every GPU from idle equilibrium, the two-stage die/heatsink model with
  the memory junction (thermal.gpu_thermal_step), fans following the controller.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twin.model import power as pw
from twin.model import thermal as th
from twin.model.node_power import DIMM_ACTIVITY, node_parts_w, node_wall_w
from twin.model.states import SERVING
from twin.model.thermal import CHASSIS_FAN_TAU_S, FAN_START_C, GPU_FAN_TAU_S
from twin.spec.catalogue import GpuSpec
from twin.tools.box import Box

SERVING_DIMM_ACTIVITY = DIMM_ACTIVITY[SERVING]
PLATEAU_BAND_K = 1.0             # "plateau": within 1 K of the final temperature from then on
BURN_SM_UTIL = 1.0               # gpu-burn keeps every SM's math pipes busy (large GEMMs)
BURN_MEMORY_FRAC = 0.10          # estimate: large GEMM tiles reuse operands; ~10 % of DRAM bandwidth


@dataclass(frozen=True)
class NodePower:
    """DC (after the PSU) and wall (AC) power of the node, W."""
    dc_w: float
    wall_w: float


def node_power(box: Box, gpu_w: np.ndarray | float, cpu_util: float, dimm_activity: float,
               fan_frac: float) -> NodePower:
    """The node-power composition (twin.model.node_power, as the engine's plant) with every GPU at
    `gpu_w` and the chassis fans at `fan_frac` of full speed; wall through the PSU curve for the
    node's mains voltage."""
    n = box.node
    gpus = float(np.sum(np.broadcast_to(gpu_w, (n.gpu_count,))))
    parts = node_parts_w(n, box.cpu, box.nic, box.fan, cpu_util=cpu_util, dimm_activity=dimm_activity,
                         fan_rpm=fan_frac * box.fan.max_rpm)
    return NodePower(dc_w=float(parts.dc_w(gpus)), wall_w=node_wall_w(n, parts, gpus, box.psu))


def serving_cpu_util(box: Box, tokens_per_s: float = 0.0) -> float:
    """Host CPU while the engines serve: their busy loops per replica plus per-token host work."""
    return float(pw.host_cpu_util(box.replicas * box.engine.host_busy_cores, tokens_per_s,
                                  box.engine.host_core_s_per_token, box.cpu.cores))


def idle_power(box: Box, loaded: bool = False) -> NodePower:
    """Powered on and idle, chassis fans at minimum speed.

    Bare (`loaded=False`): GPUs in P8, CPU and DIMMs at idle. Loaded (the engine's WARM state):
    model resident, nothing running: P8 on boards that drop to it with a context open, P0 on those
    that hold it (power.pstate_active), and the engines' host loops busy (serving_cpu_util).
    """
    active = pw.pstate_active(np.array([loaded]), np.array([np.inf]), False, box.gpu)
    gpu_w = float(pw.gpu_idle_power_w(active, box.gpu)[0])
    return node_power(box, gpu_w, serving_cpu_util(box) if loaded else 0.0, 0.0, box.fan.min_rpm / box.fan.max_rpm)


def peak_power(box: Box) -> NodePower:
    """Every part at its rated maximum at once: GPUs at board power, CPU at TDP, fans at full speed."""
    return node_power(box, box.gpu.board_power_w, 1.0, 1.0, 1.0)


def psu_headroom_frac(box: Box, dc_w: float) -> float:
    """Share of the PSUs' combined rating left at a DC load: 1 - dc / (rated * count)."""
    return 1.0 - dc_w / (box.psu.rated_w * box.node.psu_count)


def limited_gpu_power(gpu: GpuSpec, mem_gb_s: float, sm_util: float, limit_w: float | None = None,
                      clock_cap: float = 1.0) -> tuple[float, float]:
    """(board W, SM clock) of a busy GPU (P0) under its power limiter (board power or `limit_w`)."""
    idle = pw.gpu_active_idle_w(gpu)
    limit = gpu.board_power_w if limit_w is None else min(limit_w, gpu.board_power_w)
    c = min(clock_cap, float(pw.clock_for_board_limit(limit, idle, mem_gb_s, sm_util, gpu)))
    return float(pw.gpu_board_power_w(idle, mem_gb_s, sm_util, c, gpu)), c


@dataclass(frozen=True)
class BurnTest:
    """Sustained all-GPU load (gpu-burn) from idle equilibrium, sampled every dt_s."""
    t_s: np.ndarray           # (T,)
    gpu_power_w: np.ndarray   # (T, G)
    gpu_temp_c: np.ndarray    # (T, G) die
    gpu_mem_c: np.ndarray     # (T, G) memory junction
    gpu_clock: np.ndarray     # (T, G)
    gpu_fan: np.ndarray       # (T, G) blower / fan speed fraction
    gpu_mem_clock: np.ndarray  # (T, G) memory clock share (memory-junction throttle)
    node_dc_w: np.ndarray     # (T,)
    node_wall_w: np.ndarray   # (T,)
    node_wall_peak_w: np.ndarray  # (T,) with the GPUs' transient allowance
    airflow_m3_s: np.ndarray  # (T,)
    start_c: np.ndarray       # (G,) idle equilibrium the burn starts from

    @property
    def plateau_c(self) -> np.ndarray:
        return self.gpu_temp_c[-1]

    @property
    def time_to_plateau_s(self) -> float:
        """First time after which every GPU stays within PLATEAU_BAND_K of its final temperature."""
        off = np.abs(self.gpu_temp_c - self.gpu_temp_c[-1]).max(axis=1) > PLATEAU_BAND_K
        last = np.flatnonzero(off)
        return float(self.t_s[last[-1] + 1]) if len(last) and last[-1] + 1 < len(self.t_s) else float(self.t_s[0])

    def rise_fraction_at(self, t_s: float) -> float:
        """Share of the hottest GPU's idle-to-plateau rise reached at `t_s`."""
        g = int(self.plateau_c.argmax())
        k = int(abs(self.t_s - t_s).argmin())
        return float((self.gpu_temp_c[k, g] - self.start_c[g]) / (self.plateau_c[g] - self.start_c[g]))

    @property
    def settled(self) -> bool:
        """True when the last minute moved the hottest GPU by less than 0.2 K (a real plateau)."""
        k = min(len(self.t_s) - 1, max(1, int(round(60.0 / (self.t_s[1] - self.t_s[0])))))
        return bool(abs(self.gpu_temp_c[-1].max() - self.gpu_temp_c[-1 - k].max()) < 0.2)


def _air(box: Box, rpm: float, blower: np.ndarray, other_w: float, ambient_c: float) -> tuple[float, float]:
    """(node airflow m^3/s, GPU intake C): chassis fans + blowers; CPU/platform heat pre-heats the GPUs."""
    n, gpu, fan = box.node, box.gpu, box.fan
    airflow = (n.chassis_fan_count * float(pw.fan_airflow_m3_s(fan.max_airflow_m3_s, rpm, fan.max_rpm))
               + gpu.blower_airflow_m3_s * float(blower.sum()))
    return airflow, ambient_c + float(th.exhaust_c(0.0, n.gpu_preheat_frac * other_w, airflow))


def burn_test(box: Box, ambient_c: float = 25.0, duration_s: float = 1800.0, dt_s: float = 1.0,
              power_cap_w: float | None = None) -> BurnTest:
    """gpu-burn on every GPU in `ambient_c` intake air, starting from the idle box's equilibrium:
    SMs saturated (BURN_SM_UTIL), ~10 % of DRAM bandwidth, one spinning host process per GPU."""
    cpu_util = float(pw.host_cpu_util(pw.BURN_HOST_CORES_PER_GPU * box.node.gpu_count, 0.0, 0.0, box.cpu.cores))
    return load_test(box, BURN_MEMORY_FRAC * box.gpu.memory_bandwidth_gb_s, BURN_SM_UTIL, cpu_util, ambient_c,
                     duration_s, dt_s, power_cap_w)


def load_test(box: Box, mem_gb_s: float, sm_util: float, cpu_util: float, ambient_c: float = 25.0,
              duration_s: float = 1800.0, dt_s: float = 1.0, power_cap_w: float | None = None) -> BurnTest:
    """A sustained load on every GPU (`mem_gb_s` of DRAM traffic, `sm_util` of the SM math) from the
    idle box's equilibrium, stepped like the engine.

    Start: GPUs in P8 at idle power, fans at minimum, die/heatsink/memory at their steady state.
    Per tick: the board is in P0; memory clock from the memory junction (GDDR6X/GDDR7 throttle)
    scales the traffic; SM clock = min(thermal throttle, power limiter at min(TGP, cap)); chassis
    fans follow the hottest GPU, blowers their own (first-order spin-up); temperatures by the
    two-stage model. Sources: hardware.md "GPU power model" / "Thermal model"; twin.model.power /
    thermal docstrings.
    """
    n, gpu, cpu, fan = box.node, box.gpu, box.cpu, box.fan
    steps = int(math.floor(duration_s / dt_s + 1e-9))
    G = n.gpu_count
    limit = gpu.board_power_w if power_cap_w is None else min(power_cap_w, gpu.board_power_w)
    # heat released upstream of the GPUs (CPU, memory, platform), as the engine's plant
    other_w = float(node_parts_w(n, cpu, box.nic, fan, cpu_util=cpu_util, dimm_activity=SERVING_DIMM_ACTIVITY,
                                 fan_rpm=0.0).upstream_w)
    # idle equilibrium: P8, fans at their minimum, the idle CPU/platform pre-heating the intake
    rpm = float(fan.min_rpm)
    blower = np.full(G, gpu.min_fan_frac)
    idle_other = float(node_parts_w(n, cpu, box.nic, fan, cpu_util=0.0, dimm_activity=0.0, fan_rpm=0.0).upstream_w)
    _, intake0 = _air(box, rpm, blower, idle_other, ambient_c)
    temp, sink, mem = th.gpu_thermal_equilibrium(intake0, np.full(G, gpu.idle_power_w), 0.0, blower, gpu)
    start = temp.copy()
    out = {k: np.zeros((steps, G)) for k in ("p", "t", "m", "c", "f", "mc")}
    dc_t, wall_t, peak_t, air_t = (np.zeros(steps) for _ in range(4))
    idle_p0 = pw.gpu_active_idle_w(gpu)
    for k in range(steps):
        mem_clock = th.memory_clock_frac(mem, gpu.memory_junction_max_c)
        gb_s = mem_gb_s * mem_clock
        clock = np.minimum(th.throttle_clock_frac(temp, gpu.slowdown_temp_c, gpu.shutdown_temp_c),
                           pw.clock_for_board_limit(limit, idle_p0, gb_s, sm_util, gpu))
        p_gpu = pw.gpu_board_power_w(idle_p0, gb_s, sm_util, clock, gpu)
        rpm_target = fan.max_rpm * float(th.fan_curve_frac(temp.max(), fan.min_rpm / fan.max_rpm, FAN_START_C,
                                                           gpu.fan_target_c))
        rpm = float(th.first_order_lag(np.float64(rpm), np.float64(rpm_target), CHASSIS_FAN_TAU_S, dt_s))
        power = node_power(box, p_gpu, cpu_util, SERVING_DIMM_ACTIVITY, rpm / fan.max_rpm)
        peak = node_power(box, pw.gpu_transient_peak_w(p_gpu, limit, gpu), cpu_util, SERVING_DIMM_ACTIVITY,
                          rpm / fan.max_rpm)
        airflow, intake = _air(box, rpm, blower, other_w, ambient_c)
        temp, sink, mem = th.gpu_thermal_step(temp, sink, mem, intake, p_gpu, pw.gpu_dram_w_per_gb_s(gpu) * gb_s,
                                              blower, gpu, dt_s)
        out["f"][k] = blower  # the fan speed this step ran at (what an nvidia-smi sample would show)
        blower = th.first_order_lag(blower, th.fan_curve_frac(temp, gpu.min_fan_frac, FAN_START_C, gpu.fan_target_c),
                                    GPU_FAN_TAU_S, dt_s)
        out["p"][k], out["t"][k], out["m"][k], out["c"][k], out["mc"][k] = p_gpu, temp, mem, clock, mem_clock
        dc_t[k], wall_t[k], peak_t[k], air_t[k] = power.dc_w, power.wall_w, peak.wall_w, airflow
    return BurnTest(t_s=(np.arange(steps) + 1) * dt_s, gpu_power_w=out["p"], gpu_temp_c=out["t"],
                    gpu_mem_c=out["m"], gpu_clock=out["c"], gpu_fan=out["f"], gpu_mem_clock=out["mc"], node_dc_w=dc_t, node_wall_w=wall_t,
                    node_wall_peak_w=peak_t, airflow_m3_s=air_t, start_c=start)
