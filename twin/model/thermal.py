"""Heat and air: airflow, exhaust temperature, rack recirculation, GPU RC model, fans, throttling.

Pure numpy functions; vectorised over GPUs / nodes / racks. Sources: shared/reference/hardware.md
("Thermal model") and the references named in each docstring.
"""
from __future__ import annotations

import numpy as np

from twin.model.power import clip
from twin.spec.catalogue import GpuSpec

CP_AIR_J_PER_KG_K = 1006.0   # specific heat of air at ~20 C (hardware.md)
RHO_AIR_KG_M3 = 1.20         # standard air, 20 C, sea level (hardware.md)
CFM_M3_S = 4.719474e-4       # 1 cubic foot per minute in m^3/s
FAN_RESISTANCE_EXPONENT = 0.8  # forced-convection h ~ velocity^0.8 (turbulent Dittus-Boelter scaling)
FAN_START_C = 45.0        # estimate: blower/chassis fan curves start rising above ~45 C
GPU_FAN_TAU_S = 3.0       # estimate: blower spin-up lag
CHASSIS_FAN_TAU_S = 5.0   # estimate: chassis fan controller + spin-up lag
NO_FLOW_M3_S = 1e-9       # below this a node has no air stream of its own (exhaust_c: no rise)


def airflow_m3_s(power_w: np.ndarray | float, delta_t_k: float, rho_kg_m3: float = RHO_AIR_KG_M3,
                 cp_j_per_kg_k: float = CP_AIR_J_PER_KG_K) -> np.ndarray:
    """Air volume flow that carries `power_w` away with a `delta_t_k` temperature rise: V = P/(rho cp dT).

    ~176 CFM per kW at 10 K (hardware.md; the industry rule CFM = 3.16 W / dT_F).
    """
    return np.asarray(power_w, dtype=float) / (rho_kg_m3 * cp_j_per_kg_k * delta_t_k)


def exhaust_c(inlet_c: np.ndarray, power_w: np.ndarray, airflow_m3_s_: np.ndarray,
              rho_kg_m3: float = RHO_AIR_KG_M3) -> np.ndarray:
    """Exhaust temperature: T_out = T_in + P / (m_dot cp), m_dot = rho V. No flow -> inlet."""
    flow = np.asarray(airflow_m3_s_, dtype=float)
    rise = np.divide(np.asarray(power_w, dtype=float), rho_kg_m3 * CP_AIR_J_PER_KG_K * flow,
                     out=np.zeros(np.broadcast(power_w, flow).shape), where=flow > NO_FLOW_M3_S)
    return np.asarray(inlet_c, dtype=float) + rise


def recirculation_frac(demand_m3_s: np.ndarray, supply_m3_s: np.ndarray) -> np.ndarray:
    """Share of a rack's intake drawn from the hot aisle: max(0, D - S) / D (hardware.md)."""
    d = np.asarray(demand_m3_s, dtype=float)
    s = np.asarray(supply_m3_s, dtype=float)
    return np.divide(np.maximum(d - s, 0.0), d, out=np.zeros(np.broadcast(d, s).shape), where=d > 1e-9)


def node_recirculation_frac(rack_frac: np.ndarray, height_frac: np.ndarray, top_bias: float) -> np.ndarray:
    """Per-node share: hot air spills over the rack top, so upper nodes get more.

    factor = 1 - bias + 2 * bias * height (mean 1 over evenly spaced heights 0..1), clipped to [0, 1].
    Estimate, documented as the scenario parameter facility.recirculation_top_bias.
    """
    factor = 1.0 - top_bias + 2.0 * top_bias * np.asarray(height_frac, dtype=float)
    return clip(np.asarray(rack_frac) * factor, 0.0, 1.0)


def mixed_inlet_c(supply_c: np.ndarray | float, hot_c: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Inlet air mixing cold supply with hot-aisle air in proportion `frac` (adiabatic mixing)."""
    return (1.0 - frac) * supply_c + frac * np.asarray(hot_c, dtype=float)


def gpu_thermal_resistance_k_per_w(r_full_k_per_w: float, fan_frac: np.ndarray) -> np.ndarray:
    """Heatsink resistance at a blower speed: R = R_full / f^0.8 (h ~ air velocity^0.8)."""
    return r_full_k_per_w / np.maximum(np.asarray(fan_frac, dtype=float), 0.05) ** FAN_RESISTANCE_EXPONENT


def rc_step_c(temp_c: np.ndarray, ambient_c: np.ndarray, power_w: np.ndarray, r_k_per_w: np.ndarray,
              c_j_per_k: float, dt_s: float) -> np.ndarray:
    """Exact step of C dT/dt = P - (T - T_amb)/R over dt with P, R, T_amb held constant.

    T(t+dt) = T_inf + (T - T_inf) exp(-dt / (R C)), T_inf = T_amb + P R. Unconditionally stable,
    so dt can be 1 s with tau = 10-20 s (hardware.md "Thermal model").
    """
    t_inf = np.asarray(ambient_c) + np.asarray(power_w) * r_k_per_w
    return t_inf + (np.asarray(temp_c) - t_inf) * np.exp(-dt_s / (np.asarray(r_k_per_w) * c_j_per_k))


def rc2_step_c(die_c: np.ndarray, sink_c: np.ndarray, ambient_c: np.ndarray, power_w: np.ndarray,
               r_die_k_per_w: np.ndarray | float, r_sink_k_per_w: np.ndarray, c_die_j_per_k: float,
               c_sink_j_per_k: float, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact step of a two-node ladder, die -> heatsink -> air, with inputs held over dt.

        C_d dT_d/dt = P - (T_d - T_s)/R_d
        C_s dT_s/dt = (T_d - T_s)/R_d - (T_s - T_a)/R_s

    Steady state T_s = T_a + P R_s, T_d = T_s + P R_d. Deviations x from it obey x' = A x, solved
    exactly with the 2x2 matrix exponential (Sylvester's formula; the ladder's eigenvalues are real
    and negative), so any dt is stable. A die heats within seconds while the heatsink's thermal
    mass sets the minutes-long creep to the plateau (a Cauer RC network, as in JEDEC JESD51-14).
    """
    p = np.asarray(power_w, dtype=float)
    r_s = np.asarray(r_sink_k_per_w, dtype=float)
    sink_ss = np.asarray(ambient_c, dtype=float) + p * r_s
    die_ss = sink_ss + p * r_die_k_per_w
    xd = np.asarray(die_c, dtype=float) - die_ss
    xs = np.asarray(sink_c, dtype=float) - sink_ss
    a = -1.0 / (r_die_k_per_w * c_die_j_per_k)
    b = 1.0 / (r_die_k_per_w * c_die_j_per_k)
    c = 1.0 / (r_die_k_per_w * c_sink_j_per_k)
    d = -(1.0 / r_die_k_per_w + 1.0 / r_s) / c_sink_j_per_k
    half_tr = (a + d) / 2.0
    disc = np.sqrt(half_tr ** 2 - (a * d - b * c))
    l1, l2 = half_tr + disc, half_tr - disc
    e1, e2 = np.exp(l1 * dt_s), np.exp(l2 * dt_s)
    k = 1.0 / (l1 - l2)
    new_xd = k * ((e1 * (a - l2) - e2 * (a - l1)) * xd + (e1 - e2) * b * xs)
    new_xs = k * ((e1 - e2) * c * xd + (e1 * (d - l2) - e2 * (d - l1)) * xs)
    return die_ss + new_xd, sink_ss + new_xs


def fan_curve_frac(temp_c: np.ndarray, min_frac: float, start_c: float, target_c: float) -> np.ndarray:
    """Fan controller set point: min below start_c, rising linearly to full at the fan target."""
    x = (np.asarray(temp_c, dtype=float) - start_c) / (target_c - start_c)
    return min_frac + (1.0 - min_frac) * clip(x, 0.0, 1.0)


def first_order_lag(value: np.ndarray, target: np.ndarray, tau_s: float, dt_s: float) -> np.ndarray:
    """Move `value` towards `target` with time constant tau (fan spin-up, exact exponential)."""
    return target + (value - target) * np.exp(-dt_s / tau_s)


def throttle_clock_frac(temp_c: np.ndarray, slowdown_c: float, shutdown_c: float,
                        min_frac: float = 0.5) -> np.ndarray:
    """Clock fraction: 1 up to the slowdown temperature, falling linearly to `min_frac` at shutdown.

    A proportional stand-in for the driver's slowdown (clocks drop until the die holds at
    about the slowdown temperature). min_frac is an estimate (heavy HW slowdown halves clocks).
    """
    x = (np.asarray(temp_c, dtype=float) - slowdown_c) / (shutdown_c - slowdown_c)
    return clip(1.0 - x * (1.0 - min_frac), min_frac, 1.0)


def room_supply_c(supply_c: float, setpoint_c: float, excess_heat_w: float, heat_capacity_j_per_k: float,
                  recovery_tau_s: float, dt_s: float) -> float:
    """Supply air when the room gains more heat than cooling removes.

    Excess heat warms the room's air and thermal mass (dT = Q dt / C); when cooling has spare
    capacity the supply relaxes back to its set point with `recovery_tau_s`. Lumped estimate.
    """
    if excess_heat_w > 0:
        return supply_c + excess_heat_w * dt_s / heat_capacity_j_per_k
    return float(first_order_lag(np.float64(supply_c), np.float64(setpoint_c), recovery_tau_s, dt_s))


# ------------------------------------------- two-stage die/heatsink + memory junction (burn-test fit)
# A heatsink is a distributed RC line (base -> fins), not a lump: the slowest mode of a uniform
# line driven at one end has tau = 4 R C / pi^2 (first eigenvalue (pi/2)^2 of the diffusion
# equation; Carslaw & Jaeger, Conduction of Heat in Solids, s. 3.3), so the die sees ~0.41 of the
# cooler's mass x c_p. With it, published gpu-burn traces (stibbons1990/hex 2022-11-05, RTX 3070 Ti:
# tau ~32-38 s) follow from the coolers' masses instead of a tuned capacity.
DISTRIBUTED_RC_FIRST_MODE = 4.0 / np.pi ** 2
MEMORY_THROTTLE_SPAN_K = 5.0    # estimate: memory clock falls to MEMORY_THROTTLE_MIN over 5 K above the limit
MEMORY_THROTTLE_MIN = 0.5       # estimate: GDDR6X memory clock steps down to about half at most


def gpu_stage_resistances(gpu: GpuSpec, fan_frac: np.ndarray) -> tuple[float, np.ndarray]:
    """(R_spreader, R_sink(fan)) of the two-stage model, K/W: the die + spreader stage carries
    `spreader_resistance_frac` of R at full fan (fixed: TIM, vapour chamber), the heatsink the rest,
    R_sink / f^0.8 (forced convection)."""
    r_spr = gpu.spreader_resistance_frac * gpu.thermal_resistance_k_per_w
    r_sink_full = gpu.thermal_resistance_k_per_w - r_spr
    return r_spr, gpu_thermal_resistance_k_per_w(r_sink_full, np.maximum(fan_frac, gpu.min_fan_frac * 0.2))


def gpu_heatsink_capacity_j_per_k(gpu: GpuSpec) -> float:
    """Effective heatsink capacity of the slow stage: 4/pi^2 x mass x c_p (distributed fin)."""
    return DISTRIBUTED_RC_FIRST_MODE * gpu.heatsink_heat_capacity_j_per_k


def gpu_thermal_equilibrium(ambient_c: np.ndarray | float, power_w: np.ndarray | float, dram_w: np.ndarray | float,
                            fan_frac: np.ndarray | float, gpu: GpuSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steady (die, heatsink, memory junction) temperatures: sink = T_a + P R_sink(f),
    die = sink + P R_spr, memory = sink + P_dram R_mem. Burns start here from idle, not from ambient."""
    r_spr, r_sink = gpu_stage_resistances(gpu, np.asarray(fan_frac, dtype=float))
    p = np.asarray(power_w, dtype=float)
    sink = np.asarray(ambient_c, dtype=float) + p * r_sink
    return sink + p * r_spr, sink, sink + np.asarray(dram_w, dtype=float) * gpu.memory_resistance_k_per_w


def gpu_thermal_step(die_c: np.ndarray, sink_c: np.ndarray, mem_c: np.ndarray, ambient_c: np.ndarray,
                     power_w: np.ndarray, dram_w: np.ndarray, fan_frac: np.ndarray, gpu: GpuSpec,
                     dt_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One exact step of the two-stage GPU model plus its memory-junction node.

    Die + spreader: R_spr with tau = `spreader_time_constant_s` (1-5 s; it carries 30-40 % of the
    rise, the fast jump of published burns). Heatsink: R_sink(f) x 4/pi^2 x mass c_p, 30-60 s at the
    fan speed the controller reaches. Both as the exact two-node ladder (rc2_step_c). Memory
    junction (GDDR6X/GDDR7 packages): C_m dT_m/dt = P_dram - (T_m - T_sink) / R_mem with
    tau = `memory_time_constant_s`, fed by the DRAM share of memory power; its heat is already part
    of board power, so it only offsets the memory from the heatsink.
    """
    r_spr, r_sink = gpu_stage_resistances(gpu, fan_frac)
    die, sink = rc2_step_c(die_c, sink_c, ambient_c, power_w, r_spr, r_sink, gpu_spreader_capacity_j_per_k(gpu),
                           gpu_heatsink_capacity_j_per_k(gpu), dt_s)
    mem_target = sink + np.asarray(dram_w, dtype=float) * gpu.memory_resistance_k_per_w
    mem = first_order_lag(np.asarray(mem_c, dtype=float), mem_target, gpu.memory_time_constant_s, dt_s)
    return die, sink, mem


def gpu_spreader_capacity_j_per_k(gpu: GpuSpec) -> float:
    """Die + spreader stage capacity, J/K: its time constant over its (fan-independent) resistance."""
    return gpu.spreader_time_constant_s / (gpu.spreader_resistance_frac * gpu.thermal_resistance_k_per_w)


def heat_to_air_w(power_w: np.ndarray, stored_j: np.ndarray, dt_s: float) -> np.ndarray:
    """Tick-average heat a part hands to the air stream: P - dE_stored / dt (first law over the
    tick). A part that is warming keeps some of its power in its own mass, so its exhaust lags its
    power; one that is cooling gives back what it stored. With the exact RC steps (rc_step_c,
    rc2_step_c) this is exactly the tick integral of (T_sink - T_air) / R_sink."""
    return np.asarray(power_w, dtype=float) - np.asarray(stored_j, dtype=float) / dt_s


def gpu_stored_j(die0_c: np.ndarray, die1_c: np.ndarray, sink0_c: np.ndarray, sink1_c: np.ndarray,
                 gpu: GpuSpec) -> np.ndarray:
    """Heat the die/spreader and heatsink stages took up over a tick, J: C_spr dT_die + C_sink dT_sink.
    The memory junction is a massless offset above the heatsink (first_order_lag), so it stores none."""
    return (gpu_spreader_capacity_j_per_k(gpu) * (np.asarray(die1_c) - np.asarray(die0_c))
            + gpu_heatsink_capacity_j_per_k(gpu) * (np.asarray(sink1_c) - np.asarray(sink0_c)))


def memory_clock_frac(mem_c: np.ndarray, limit_c: float | None) -> np.ndarray:
    """Memory-clock share the board allows at a memory-junction temperature: 1 up to the limit
    (GDDR6X: 110 C), falling linearly to MEMORY_THROTTLE_MIN over MEMORY_THROTTLE_SPAN_K above it
    (a proportional stand-in for the firmware stepping the memory clock down). Bandwidth and DRAM
    power follow it; with no limit (HBM, GDDR6 boards) always 1."""
    m = np.asarray(mem_c, dtype=float)
    if limit_c is None:
        return np.ones_like(m)
    x = (m - limit_c) / MEMORY_THROTTLE_SPAN_K
    return clip(1.0 - x * (1.0 - MEMORY_THROTTLE_MIN), MEMORY_THROTTLE_MIN, 1.0)
