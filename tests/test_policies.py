"""The four ignition policies and the autoscaling rule, with hand-built contexts."""
from __future__ import annotations

import numpy as np

from twin.model.policies import POLICIES, IgnitionContext, replicas_needed, units_to_change


def ctx(**kw) -> IgnitionContext:
    # five one-node units: units 0, 1 in rack 0; 2, 3 in rack 1; 4 in rack 2
    base = dict(unit_rack=np.array([0, 0, 1, 1, 2]), unit_nodes=np.ones(5, int), rack_nodes_on=np.zeros(3),
                rack_inlet_c=np.full(3, 22.0), unit_peak_w=np.full(5, 1000.0), ramp_budget_w=np.inf)
    base.update(kw)
    return IgnitionContext(**base)


CANDIDATES = np.array([4, 2, 0, 3, 1])


def choose(name: str, c: IgnitionContext) -> list[int]:
    p = POLICIES[name]
    return p.limit(p.order(CANDIDATES, c), c).tolist()


def test_the_registry_has_the_four_policies():
    assert set(POLICIES) == {"cascade", "spread", "thermal_aware", "power_ramp_limited"}


def test_cascade_wakes_units_in_topology_order():
    assert choose("cascade", ctx()) == [0, 1, 2, 3, 4]


def test_spread_wakes_the_emptiest_rack_first_and_recounts_after_each_pick():
    # racks on: 3, 0, 1. Rack 1 (0 on) gives unit 2; now racks 1 and 2 both have 1: the lower
    # unit id wins (3); then rack 2 (1) before rack 0 (3): unit 4; then 0 and 1
    assert choose("spread", ctx(rack_nodes_on=np.array([3.0, 0.0, 1.0]))) == [2, 3, 4, 0, 1]


def test_thermal_aware_wakes_the_coolest_rack_first_ties_in_topology_order():
    # inlets 21, 25, 23 C: rack 0, then rack 2, then rack 1; 22.004 and 22.0 are equal at 0.01 C
    assert choose("thermal_aware", ctx(rack_inlet_c=np.array([21.0, 25.0, 23.0]))) == [0, 1, 4, 2, 3]
    assert choose("thermal_aware", ctx(rack_inlet_c=np.array([25.0, 22.004, 22.0]))) == [2, 3, 4, 0, 1]


def test_power_ramp_limited_takes_only_what_the_ramp_budget_allows():
    # 1 kW per unit and 2.5 kW of budget left this minute: two units, in cascade order
    assert choose("power_ramp_limited", ctx(ramp_budget_w=2500.0)) == [0, 1]
    assert choose("power_ramp_limited", ctx(ramp_budget_w=500.0)) == []


def test_replicas_needed_at_the_target_utilisation():
    # 45 requests, 10 per replica at 70 %: ceil(45 / 7) = 7
    assert replicas_needed(45, 10, 0.7) == 7 and replicas_needed(0, 10, 0.7) == 0


def test_units_to_change_ignites_below_and_drains_only_beyond_the_hysteresis_band():
    assert units_to_change(3, 5, 0.2) == 2
    # 10 needed x 1.2 = 12: 12 active is inside the band, 15 active may drain 3
    assert units_to_change(12, 10, 0.2) == 0 and units_to_change(15, 10, 0.2) == -3
