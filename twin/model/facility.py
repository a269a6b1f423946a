"""Facility power cap: the largest uniform per-GPU power limit that keeps the facility under a cap.

Pure functions. Facility power (IT through the PSU curves, plus the cooling plant and UPS losses,
twin.model.cooling.plant_power) rises monotonically with a uniform per-GPU limit (the power
limiter's clock, power.clock_for_board_limit), so bisection on [0, board power] finds the largest
limit that fits. Limit 0 W maps to the lowest clock the limiter allows: the facility's floor, what
capping can never remove.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

CAP_BISECT_STEPS = 12  # 200 W / 2^12 = 0.05 W per GPU; `lo` always fits, so the cap side is never exceeded

UNDER, BINDING, INFEASIBLE = "", "binding", "infeasible"


@dataclass(frozen=True)
class CapSolution:
    limit_w: float   # per-GPU power limit to apply (inf: the cap does not bind)
    regime: str      # UNDER, BINDING or INFEASIBLE
    floor_w: float   # facility power with every GPU at its lowest clock
    full_w: float    # facility power without any facility limit


def solve_gpu_limit_w(facility_w_at: Callable[[float], float], cap_w: float, board_power_w: float,
                      steps: int = CAP_BISECT_STEPS) -> CapSolution:
    """Bisect for the largest per-GPU limit L in [0, board] with facility_w_at(L) <= cap_w.

    `facility_w_at` must be non-decreasing in L. If even L = 0 does not fit, the cap is
    infeasible: GPUs go to the floor (limit 0) and the caller should stop adding load.
    """
    floor_w = facility_w_at(0.0)
    full_w = facility_w_at(board_power_w)
    if full_w <= cap_w:
        return CapSolution(math.inf, UNDER, floor_w, full_w)
    if floor_w > cap_w:
        return CapSolution(0.0, INFEASIBLE, floor_w, full_w)
    lo, hi = 0.0, float(board_power_w)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if facility_w_at(mid) <= cap_w:
            lo = mid
        else:
            hi = mid
    return CapSolution(lo, BINDING, floor_w, full_w)
