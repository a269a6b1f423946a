"""The autoscaler: every `scheduler.interval_s` (and at once after a unit is lost), per pool,
compare the units needed for the load with the units active; ignite (ignition policy order,
boot slots, ramp budget, facility cap) or drain (after `scale_down_delay_s` below the
hysteresis band). The decisions are twin.model.policies; this part applies them to the lifecycle.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator

import numpy as np
import simpy

from twin.model.policies import POLICIES, IgnitionContext, replicas_needed, units_to_change
from twin.model.states import FAILED, IS_STARTING, OFF
from twin.sim.layout import Layout
from twin.sim.lifecycle import Lifecycle
from twin.sim.plant import Plant
from twin.sim.requests import RequestBook
from twin.spec.scenario import ScenarioSpec
from twin.spec.topology import Topology

RAMP_WINDOW_S = 60.0  # scheduler.max_ramp_kw_per_min is enforced over a sliding minute


class Autoscaler:
    def __init__(self, spec: ScenarioSpec, layout: Layout, topo: Topology, env: simpy.Environment,
                 lifecycle: Lifecycle, book: RequestBook, plant: Plant, unit_cut: np.ndarray,
                 unit_peak_w: np.ndarray, allows_ignition: Callable[[int], bool]) -> None:
        self.spec, self.lay, self.topo, self.env = spec, layout, topo, env
        self.life, self.book, self.plant = lifecycle, book, plant
        self.unit_cut = unit_cut                # (U,) read-only view: units the fabric cannot reach
        self.unit_peak_w = unit_peak_w          # (U,) wall power of the unit serving flat out
        self.allows_ignition = allows_ignition  # facility power cap: room for unit u at the clock floor?
        self.policy = POLICIES[spec.scheduler.policy]
        self.low_since = [-1.0] * len(spec.pools)  # since when each pool has had more units than needed
        self.ramp_hist: deque = deque()            # (time, peak W) of recent ignitions
        self.unit_rack = np.array([topo.node_rack[n[0]] for n in layout.unit_nodes])
        self.unit_n_nodes = np.array([len(n) for n in layout.unit_nodes])
        self.guests = [tuple(q for q, g in enumerate(spec.pools) if g.colocate == p.name) for p in spec.pools]

    def process(self) -> Generator:
        while True:
            yield self.env.timeout(self.spec.scheduler.interval_s)
            self.decide()

    def decide(self) -> None:
        sched, lay, life = self.spec.scheduler, self.lay, self.life
        now = self.env.now
        total_nodes = sum(p.nodes for p in self.spec.pools)
        booting = int(IS_STARTING[life.state].sum())
        boot_slots = max(0, sched.max_concurrent_boots - booting)
        for k, pool in enumerate(self.spec.pools):
            units = lay.pool_units[k]
            if not len(units):
                continue
            reps_per_unit = len(lay.unit_reps[units[0]])
            nodes_per_unit = len(lay.unit_nodes[units[0]])
            # pools colocated on this pool's units (issue 20) load the same units
            load = sum(self.book.waiting(q) + int(self.book.rep_inflight[lay.pool_reps[q]].sum())
                       for q in (k, *self.guests[k]))
            need_reps = replicas_needed(load, lay.pool_req_per_replica[k], sched.target_utilisation)
            warm_units = math.ceil(sched.warm_pool_nodes * pool.nodes / total_nodes / nodes_per_unit)
            needed = min(len(units), math.ceil(need_reps / reps_per_unit) + warm_units)
            first = life.state[lay.unit_first_node[units]]
            alive = ~life.unit_failed[units] & ~self.unit_cut[units] & (first != OFF) & (first != FAILED)
            active = units[alive & ~life.unit_draining[units]]
            delta = units_to_change(len(active), needed, sched.hysteresis)
            if delta > 0:
                self.low_since[k] = -1.0
                # cheapest first: take back units that are draining
                for u in units[alive & life.unit_draining[units]][::-1][:delta]:
                    life.undrain(int(u))
                    delta -= 1
                off = units[(first == OFF) & ~life.unit_failed[units]]
                if delta > 0 and len(off) and boot_slots > 0:
                    ctx = self.ignition_context(now)
                    chosen = self.policy.limit(self.policy.order(off, ctx), ctx)
                    take = min(delta, boot_slots // nodes_per_unit)
                    for u in chosen[:take]:
                        if not self.allows_ignition(int(u)):
                            break
                        self.ramp_hist.append((now, float(ctx.unit_peak_w[u])))
                        why = f"replaces {life.replacing[k].popleft()}" if life.replacing[k] else ""
                        life.ignite(int(u), why)
                        boot_slots -= nodes_per_unit
            elif delta < 0:
                if self.low_since[k] < 0:
                    self.low_since[k] = now
                if now - self.low_since[k] >= sched.scale_down_delay_s:
                    ready = [u for u in active if life.unit_ready[u] and not life.unit_pinned[u]]
                    for u in sorted(ready, reverse=True)[:-delta]:
                        life.drain(int(u))
                    self.low_since[k] = now
            else:
                self.low_since[k] = -1.0

    def ignition_context(self, now: float) -> IgnitionContext:
        topo, st = self.topo, self.life.state
        on = (st != OFF) & (st != FAILED)
        rack_on = np.bincount(topo.node_rack, weights=on, minlength=topo.n_racks)
        inlet = np.bincount(topo.node_rack, weights=self.plant.out.node_inlet_c,
                            minlength=topo.n_racks) / topo.nodes_per_rack
        while self.ramp_hist and self.ramp_hist[0][0] <= now - RAMP_WINDOW_S:
            self.ramp_hist.popleft()
        used = sum(w for _, w in self.ramp_hist)
        budget = self.spec.scheduler.max_ramp_kw_per_min * 1e3 * RAMP_WINDOW_S / 60.0 - used
        return IgnitionContext(unit_rack=self.unit_rack, unit_nodes=self.unit_n_nodes, rack_nodes_on=rack_on,
                               rack_inlet_c=inlet, unit_peak_w=self.unit_peak_w, ramp_budget_w=budget)
