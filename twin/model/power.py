"""Electrical power: GPUs, CPU, memory, platform, NIC, fans, PSU losses, facility overheads.

Pure numpy functions of arrays and specs; vectorised over nodes or GPUs. Units are in the
names (``_w`` watts, ``_frac`` 0..1). Sources are in each docstring and in
``shared/reference/hardware.md``.
"""
from __future__ import annotations

import numpy as np

from twin.spec.catalogue import PsuSpec

CPU_UTIL_WARM = 0.05      # estimate: engine polling, OS housekeeping


def psu_efficiency(load_frac: np.ndarray, psu: PsuSpec) -> np.ndarray:
    """AC->DC efficiency at a fraction of rated output.

    Between the 80 PLUS test points (10/20/50/100 % load, 230 V internal): linear interpolation;
    above 100 %: the last point. Below the first point the *losses* are extrapolated as fixed plus
    proportional, L(x) = a + b x through the first two points, and efficiency = x / (x + L(x)):
    a supply's fixed losses (controller, fan, magnetising, switching) dominate at light load, so
    efficiency falls off as 1/(1 + a/x) rather than along a straight line (the standard converter
    loss model, Erickson & Maksimovic, Fundamentals of Power Electronics, ch. 3).
    Source: 80 PLUS requirement points (Titanium 90/94/96/94 %).
    """
    x = np.clip(np.asarray(load_frac, dtype=float), 0.0, None)
    pts = np.asarray(psu.efficiency_load_points, dtype=float)
    eff = np.asarray(psu.efficiency_points, dtype=float)
    inside = np.interp(x, pts, eff)
    loss = pts[:2] * (1.0 / eff[:2] - 1.0)          # losses at the first two points, x rated
    b = (loss[1] - loss[0]) / (pts[1] - pts[0])
    a = loss[0] - b * pts[0]
    if a < 0:  # curve rising too steeply for a fixed loss: purely proportional losses instead
        a, b = 0.0, loss[0] / pts[0]
    light = np.divide(x, x + a + b * x, out=np.zeros_like(x), where=x > 0)
    return np.where(x < pts[0], light, inside)


def wall_power_w(dc_power_w: np.ndarray, psu: PsuSpec, psu_count: int = 1) -> np.ndarray:
    """Wall (AC) power drawn to deliver `dc_power_w`, load shared evenly by `psu_count` supplies.

    AC = DC / efficiency(DC / rated). A node with zero DC load draws the PSU standby power.
    """
    dc = np.asarray(dc_power_w, dtype=float)
    eff = psu_efficiency(dc / (psu.rated_w * psu_count), psu)
    wall = np.divide(dc, eff, out=np.zeros_like(eff, dtype=float), where=dc > 0)
    return np.where(dc > 0, wall, psu.standby_w * psu_count)


def gpu_power_w(idle_power_w: float, board_power_w: float, activity: np.ndarray, clock_frac: np.ndarray,
                extra_w: np.ndarray | float = 0.0) -> np.ndarray:
    """Board power: P = P_idle + extra + (P_board - P_idle) * a * c^3.

    `activity` a in 0..1 by serving phase (hardware.md: prefill 0.9-1.0, decode 0.35-0.85);
    `clock_frac` c scales the dynamic part cubically (P ~ f V^2 with V ~ f near the top of the
    V/f curve; hardware.md "power approx. cubic in clock"). `extra_w` adds e.g. the resident-model
    idle increase (+5-10 W).
    """
    a = np.clip(np.asarray(activity, dtype=float), 0.0, 1.0)
    c = np.clip(np.asarray(clock_frac, dtype=float), 0.0, 1.0)
    return idle_power_w + extra_w + (board_power_w - idle_power_w) * a * c ** 3


def clock_for_power_cap(cap_w: np.ndarray | float, idle_power_w: float, board_power_w: float,
                        activity: np.ndarray, extra_w: np.ndarray | float = 0.0) -> np.ndarray:
    """Largest clock fraction c <= 1 with gpu_power_w(...) <= cap_w (inverse of the cube law)."""
    a = np.clip(np.asarray(activity, dtype=float), 1e-6, 1.0)
    room = np.maximum(np.asarray(cap_w, dtype=float) - idle_power_w - extra_w, 0.0)
    return np.clip(np.cbrt(room / ((board_power_w - idle_power_w) * a)), 0.05, 1.0)


def cpu_power_w(idle_power_w: float, tdp_w: float, util: np.ndarray) -> np.ndarray:
    """Package power, linear from idle to TDP in utilisation (SPECpower-style linear model)."""
    return idle_power_w + (tdp_w - idle_power_w) * np.clip(np.asarray(util, dtype=float), 0.0, 1.0)


def fan_power_w(max_power_w: float, rpm: np.ndarray, max_rpm: float) -> np.ndarray:
    """Fan affinity law: power ~ rpm^3. Source: fan laws (hardware.md)."""
    return max_power_w * (np.asarray(rpm, dtype=float) / max_rpm) ** 3


def fan_airflow_m3_s(max_airflow_m3_s: float, rpm: np.ndarray, max_rpm: float) -> np.ndarray:
    """Fan affinity law: volumetric flow ~ rpm."""
    return max_airflow_m3_s * np.asarray(rpm, dtype=float) / max_rpm


def cooling_power_w(heat_w: np.ndarray, cop: float) -> np.ndarray:
    """Electrical power of the cooling plant removing `heat_w` at coefficient of performance `cop`."""
    return np.asarray(heat_w, dtype=float) / cop


def facility_power_w(it_power_w: np.ndarray, cooling_capacity_w: float, cop: float, loss_frac: float,
                     fixed_w: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Facility total = IT + cooling + distribution losses + fixed overhead; returns (total, cooling, overhead).

    Cooling removes at most its capacity (excess heat warms the room, see thermal.room_supply_c);
    distribution (UPS, PDU) losses are a fraction of IT. PUE = total / IT; with cop=2.5, 8 % loss
    and a small fixed load this lands near the surveyed 1.5-1.6 (Uptime Institute; hardware.md).
    """
    it = np.asarray(it_power_w, dtype=float)
    cooling = cooling_power_w(np.minimum(it, cooling_capacity_w), cop)
    overhead = loss_frac * it + fixed_w
    return it + cooling + overhead, cooling, overhead
