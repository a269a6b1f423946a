"""Facility cap bisection (twin.model.facility) against hand-computed limits."""
from __future__ import annotations

import math

from twin.model.facility import (
    BINDING,
    CAP_BISECT_STEPS,
    INFEASIBLE,
    UNDER,
    solve_gpu_limit_w,
)


def hall(limit_w: float) -> float:
    # 100 GPUs drawing min(limit, 200 W) each behind 10 kW of everything else, PUE-like factor 1.5
    return 1.5 * (10_000.0 + 100 * max(20.0, min(limit_w, 200.0)))


def test_a_cap_above_the_uncapped_facility_does_not_bind():
    sol = solve_gpu_limit_w(hall, cap_w=50_000.0, board_power_w=200.0)
    # uncapped: 1.5 x (10 kW + 20 kW) = 45 kW <= 50 kW
    assert sol.regime == UNDER and math.isinf(sol.limit_w) and sol.full_w == 45_000.0 and sol.floor_w == 18_000.0


def test_a_binding_cap_finds_the_largest_limit_that_fits_from_below():
    # 1.5 x (10 kW + 100 L) <= 30 kW  =>  L = 100 W exactly; bisection approaches it from the fitting side
    sol = solve_gpu_limit_w(hall, cap_w=30_000.0, board_power_w=200.0)
    assert sol.regime == BINDING
    assert hall(sol.limit_w) <= 30_000.0
    assert 100.0 - 200.0 / 2 ** CAP_BISECT_STEPS <= sol.limit_w <= 100.0


def test_a_cap_below_the_floor_is_infeasible():
    # at the lowest clock the hall draws 1.5 x (10 kW + 2 kW) = 18 kW > 15 kW
    sol = solve_gpu_limit_w(hall, cap_w=15_000.0, board_power_w=200.0)
    assert sol.regime == INFEASIBLE and sol.limit_w == 0.0 and sol.floor_w == 18_000.0


def test_more_steps_halve_the_gap_each_time():
    # 1.5 x (10 kW + 100 L) <= 29,999 W  =>  L* = 99.99333 W; n steps leave a gap below 200 W / 2^n
    best = (29_999.0 / 1.5 - 10_000.0) / 100
    for n in (4, 8, 16):
        limit = solve_gpu_limit_w(hall, 29_999.0, 200.0, steps=n).limit_w
        assert best - 200.0 / 2 ** n <= limit <= best
