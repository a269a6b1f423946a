"""Ignition policies and the autoscaling rule (the state machine is twin.model.states).

Pure decisions; the engine owns time and state arrays and asks this module what to do.

State machine (ARCHITECTURE.md): OFF -> POWERING_ON -> BOOTING -> LOADING -> WARM <-> SERVING
-> DRAINING -> WARM | OFF, and FAILED from any powered state. An *ignition unit* is the set of
nodes that must come up together (one node, or the k nodes of a pipeline-parallel replica);
its replicas take traffic only when every node of the unit is ready.

Policies are a registry (POLICIES) selected by name in YAML (`scheduler.policy`):
- cascade: wake units in topology order, rack after rack (the visual story);
- spread: wake the unit whose rack has the fewest powered nodes (spreads heat);
- thermal_aware: wake the unit whose rack inlet is coolest;
- power_ramp_limited: cascade order, but cap the facility's rate of power increase (kW/min).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class IgnitionContext:
    """What a policy may look at when choosing units to wake (arrays indexed by unit / rack)."""
    unit_rack: np.ndarray          # (U,) rack of the unit's first node
    unit_nodes: np.ndarray         # (U,) nodes in the unit
    rack_nodes_on: np.ndarray      # (R,) powered nodes per rack
    rack_inlet_c: np.ndarray       # (R,) current mean inlet
    unit_peak_w: np.ndarray        # (U,) expected wall power of the unit when serving
    ramp_budget_w: float           # remaining power increase allowed now (power_ramp_limited)


class Policy(Protocol):
    def order(self, candidates: np.ndarray, ctx: IgnitionContext) -> np.ndarray: ...
    def limit(self, ordered: np.ndarray, ctx: IgnitionContext) -> np.ndarray: ...


class Cascade:
    """Rack after rack in topology order."""
    def order(self, candidates: np.ndarray, ctx: IgnitionContext) -> np.ndarray:
        return np.sort(candidates)

    def limit(self, ordered: np.ndarray, ctx: IgnitionContext) -> np.ndarray:
        return ordered


class Spread(Cascade):
    """Fewest powered nodes in the rack first; ties by topology order. Ranks are updated as units are picked."""
    def order(self, candidates: np.ndarray, ctx: IgnitionContext) -> np.ndarray:
        on = ctx.rack_nodes_on.astype(float).copy()
        left = list(np.sort(candidates))
        out = []
        while left:
            best = min(left, key=lambda u: (on[ctx.unit_rack[u]], u))
            out.append(best)
            left.remove(best)
            on[ctx.unit_rack[best]] += ctx.unit_nodes[best]
            if len(out) >= 64:  # nobody ignites more than this per decision; keep it O(64 n)
                out.extend(left)
                break
        return np.array(out, dtype=int)


class ThermalAware(Cascade):
    """Coolest rack inlet first (stable sort keeps topology order among equals)."""
    def order(self, candidates: np.ndarray, ctx: IgnitionContext) -> np.ndarray:
        c = np.sort(candidates)
        return c[np.argsort(np.round(ctx.rack_inlet_c[ctx.unit_rack[c]], 2), kind="stable")]


class PowerRampLimited(Cascade):
    """Cascade order, but only as many units as the facility ramp budget allows right now."""
    def limit(self, ordered: np.ndarray, ctx: IgnitionContext) -> np.ndarray:
        cum = np.cumsum(ctx.unit_peak_w[ordered])
        return ordered[cum <= ctx.ramp_budget_w]


POLICIES: dict[str, Policy] = {
    "cascade": Cascade(),
    "spread": Spread(),
    "thermal_aware": ThermalAware(),
    "power_ramp_limited": PowerRampLimited(),
}


def replicas_needed(load_requests: float, requests_per_replica: float, target_utilisation: float) -> int:
    """Replicas to hold `load_requests` (in flight + queued) at `target_utilisation` of each replica's batch."""
    if load_requests <= 0:
        return 0
    return int(math.ceil(load_requests / (target_utilisation * requests_per_replica)))


def units_to_change(active_units: int, needed_units: int, hysteresis: float) -> int:
    """Positive: units to ignite; negative: units that may be drained (beyond the hysteresis band)."""
    if needed_units > active_units:
        return needed_units - active_units
    floor = math.ceil(needed_units * (1.0 + hysteresis))
    return -(active_units - floor) if active_units > floor else 0
