"""The simulation engine: the only SimPy user.

SimPy owns time. Discrete things happen as SimPy processes at their exact times (node ignition
steps, scheduler decisions, faults); everything continuous advances in ONE physics tick process
that updates numpy state arrays for all requests, replicas, GPUs, nodes and racks at once:

  1. arrivals -> per-pool FIFO queues; queue timeouts drop; router admits to replicas
     (least outstanding work, KV-cache reservation of prompt + output tokens);
  2. serving: per replica, chunked prefill first (FIFO, capped share of the tick when sequences
     are decoding), then decode at the roofline token interval (twin.serving), all requests
     vectorised with group-wise scans; sub-tick first-token and completion times;
  3. power (twin.power) and thermal (twin.thermal), closing the loop through clock throttling;
  4. telemetry accumulators (interval means) written every `sample_s`.

Determinism: every random draw comes from child streams of SeedSequence(seed); no wall clock,
no global RNG, no set/dict iteration order that depends on hashing.
"""
from __future__ import annotations

import math
import time
from collections import deque
from typing import Callable

import numpy as np
import simpy

from twin.model import power as pw
from twin.model import serving as sv
from twin.model.node_power import node_parts_w, node_wall_w
from twin.model.policies import (
    POLICIES,
    IgnitionContext,
    replicas_needed,
    units_to_change,
)
from twin.model.states import (
    BOOTING,
    DRAINING,
    FAILED,
    LEGAL,
    LOADING,
    NODE_STATES,
    OFF,
    POWERING_ON,
    SERVING,
    WARM,
)
from twin.model.workload import generate_requests
from twin.sim.events import EventLog, Kind
from twin.sim.result import RequestRecord, SimResult, collect
from twin.sim.batching import ServingStep
from twin.sim.layout import build_layout
from twin.sim.plant import Plant
from twin.sim.requests import RequestBook
from twin.sim.router import ReplicaLoad, least_work_admit
from twin.sim.sampler import Sampler, SamplerLayout
from twin.spec.scenario import Scenario
from twin.spec.topology import build_topology

CAP_BISECT_STEPS = 12     # facility cap: 200 W / 2^12 = 0.05 W per GPU (the cap side: never over)
PREFILL_SHARE_MAX = 0.6   # estimate: chunked-prefill token budget keeps >= 40 % of a step for decode
LOADING_GPU_ACTIVITY = 0.10  # estimate: H2D weight copies + allocator warm-up
P2P_HOP_LATENCY_S = 5e-6  # estimate: PCIe P2P copy launch + sync per intra-node pipeline hop
DIMM_ACTIVE_UTIL = {POWERING_ON: 0.0, BOOTING: 1.0, LOADING: 1.0, WARM: 0.0, SERVING: 0.5, DRAINING: 0.5}


class _Sim:
    def __init__(self, scenario: Scenario, progress: Callable[[float, dict], None] | None):
        self.sc = scenario
        spec, cat = scenario.spec, scenario.catalogue
        self.spec = spec
        self.progress = progress
        self.topo = topo = build_topology(scenario)
        self.node_spec = node = cat.node(spec.topology.node_type)
        self.gpu = cat.gpu(node.gpu)
        self.cpu = cat.cpu(node.cpu)
        self.psu = cat.psu(node.psu)
        self.nic = cat.nic(node.nic)
        self.fan = cat.fan(node.chassis_fan)
        sim = spec.simulation
        self.dt = sim.dt_s
        self.ticks_per_sample = int(round(sim.sample_s / sim.dt_s))
        self.n_ticks = int(math.floor(sim.duration_s / sim.dt_s + 1e-9))
        self.n_samples = self.n_ticks // self.ticks_per_sample
        root = np.random.SeedSequence(sim.seed)
        s_work, s_boot = root.spawn(2)
        self.boot_rng = np.random.default_rng(s_boot)
        self.req = generate_requests(spec, s_work)

        N, G, R = topo.n_nodes, topo.n_gpus, topo.n_racks
        self.N, self.G, self.R = N, G, R
        self.gpn = topo.gpus_per_node
        self.log = EventLog(topo.node_rack, lambda: self.env.now)
        # ---- pools and replicas
        self.lay = lay = build_layout(scenario, topo, node)
        self.perf = lay.perf
        self.n_rep = nr = lay.n_rep
        self.rep_pool, self.rep_unit, self.rep_gpus, self.gpu_rep = lay.rep_pool, lay.rep_unit, lay.rep_gpus, lay.gpu_rep
        self.rep_cross_hops, self.rep_hops_cross, self.rep_hops_intra = lay.rep_cross_hops, lay.rep_hops_cross, lay.rep_hops_intra
        self.rep_hidden_bytes = lay.rep_hidden_bytes
        self.pool_reps, self.unit_reps, self.unit_nodes = lay.pool_reps, lay.unit_reps, lay.unit_nodes
        self.unit_pool, self.pool_units = lay.unit_pool, lay.pool_units
        self.unit_load_bytes_per_node = lay.unit_load_bytes_per_node
        self.pool_req_per_replica = lay.pool_req_per_replica
        # ---- request state
        kvpt = np.array([pf.kv_bytes_per_token for pf in lay.perf])
        stpt = np.array([pf.state_bytes_per_seq for pf in lay.perf])
        reservation = (self.req.prompt_tokens + self.req.output_tokens) * kvpt[self.req.pool] + stpt[self.req.pool]
        max_ctx = np.array([cat.model(p.model).max_context for p in spec.pools])[self.req.pool]
        self.book = RequestBook(self.req, reservation, max_ctx, lay.pool_kv_cap, nr, spec.workload.timeout_s,
                                lay.rep_first_node, self.log)
        self.serving = ServingStep(lay, self.book, node, self.dt)
        self.out = self.serving.idle
        # ---- node / GPU state
        self.state = np.full(N, OFF, dtype=np.int8)
        self.unit_ready = np.zeros(topo.n_units, dtype=bool)
        self.unit_draining = np.zeros(topo.n_units, dtype=bool)
        self.unit_failed = np.zeros(topo.n_units, dtype=bool)
        self.unit_busy_since = np.full(topo.n_units, -1.0)
        self.unit_gen = np.zeros(topo.n_units, dtype=np.int64)  # bumped when a unit is lost mid-ignition
        self.load_left = np.zeros(N)
        self.plant = Plant(topo, cat, node, spec.facility, lay.gpu_rep, self, self.dt)
        self.gpu_ok = np.ones(G, dtype=bool)          # gpu_failure: a dead GPU draws nothing, serves nothing
        self.rep_lost = np.zeros(nr, dtype=bool)      # replica lost with one of its GPUs
        self.fac_cap_w = math.inf                     # facility_power_cap (W at the utility meter)
        self.fac_cap_gpu_w = math.inf                 # per-GPU limit the cap controller currently applies
        self.fac_cap_state = ""                       # "", "binding" or "infeasible": for transition events
        self.fac_floor_w = 0.0                        # facility power with every GPU at its lowest clock
        self.replacing: list[deque] = [deque() for _ in spec.pools]  # lost units awaiting a replacement
        self.low_since = [-1.0] * len(spec.pools)
        self.ramp_hist: deque = deque()
        # RDMA latency of a replica's cross-node hops: 2 NIC traversals + one leaf switch per hop
        # until the fabric knows the real paths (hardware.md "Fabric")
        self.rep_cross_lat_s = self.rep_hops_cross * (2 * self.nic.latency_s + spec.fabric.switch_latency_s)
        self.unit_cut = np.zeros(topo.n_units, dtype=bool)  # powered but unreachable over the fabric
        self.fabric = None
        fabric_faults = any(f.kind in ("link_down", "switch_down") for f in spec.faults)
        if spec.fabric.enabled and (self.rep_hops_cross.any() or spec.fabric.load_from == "network" or fabric_faults):
            from twin.model.fabric import (
                FabricModel,  # networkx stays behind twin.fabric
            )
            self.fabric = FabricModel(spec.fabric, topo, self.nic, node.pcie_h2d_gb_s, self.dt, lay.rep_cross_hops,
                                      lay.rep_hidden_bytes)
            self.rep_cross_lat_s = self.fabric.rep_cross_latency_s
        self.rep_nic_gb_s = np.full(nr, self.nic.achievable_gb_s)
        self._alloc_samples()

    # ------------------------------------------------------------------ helpers
    def event(self, kind: str, node: int = -1, replica: int = -1, detail: str = "") -> None:
        self.log.emit(Kind(kind), node, replica, detail)

    def set_state(self, node: int, new: int) -> None:
        old = int(self.state[node])
        if old == new:
            return
        if (old, new) not in LEGAL:
            raise RuntimeError(f"illegal transition {NODE_STATES[old]}->{NODE_STATES[new]} on node {node}")
        self.state[node] = new
        self.event("state_change", node, -1, f"{NODE_STATES[old]}->{NODE_STATES[new]}")

    # ------------------------------------------------------------------ processes
    def run(self) -> None:
        self.env = env = simpy.Environment()
        self._initial_units()
        env.process(self._tick_proc())
        env.process(self._scheduler_proc())
        for i, f in enumerate(self.spec.faults):
            env.process(self._fault_proc(i, f))
        env.run(until=self.n_ticks * self.dt + self.dt / 2)

    def _initial_units(self) -> None:
        """Units already WARM at t=0, shared between pools by their node counts (at least one each)."""
        want = self.spec.scheduler.initial_on_nodes
        total = sum(p.nodes for p in self.spec.pools)
        for k, pool in enumerate(self.spec.pools):
            units = self.pool_units[k]
            if not len(units) or want == 0:
                continue
            per_unit = len(self.unit_nodes[units[0]])
            n_units = max(1, int(round(want * pool.nodes / total / per_unit)))
            for u in units[:n_units]:
                for nd in self.unit_nodes[u]:
                    self.state[nd] = WARM
                    self.event("initial", int(nd), -1, "WARM")
                self.unit_ready[u] = True

    def _ignite(self, u: int, why: str = ""):
        env, ns = self.env, self.node_spec
        nodes = self.unit_nodes[u]
        gen = int(self.unit_gen[u])  # a loss bumps it: this ignition is then abandoned at its next step
        self.event("ignite", int(nodes[0]), -1, f"unit {u} {why}".strip())
        for nd in nodes:
            self.set_state(int(nd), POWERING_ON)
        yield env.timeout(ns.power_on_s)
        if self.unit_gen[u] != gen:
            return
        for nd in nodes:
            self.set_state(int(nd), BOOTING)
        jitter = self.boot_rng.normal(0.0, ns.boot_jitter_frac, size=len(nodes))
        boot_s = (ns.post_s + ns.os_boot_s) * np.clip(1.0 + jitter, 0.5, 2.0)
        procs = [env.process(self._boot_and_load(int(nd), float(b), u, gen)) for nd, b in zip(nodes, boot_s)]
        yield simpy.AllOf(env, procs)
        if self.unit_gen[u] != gen:
            return
        yield env.timeout(self.sc.catalogue.engine(self.spec.pools[self.unit_pool[u]].engine).warmup_s)
        if self.unit_gen[u] != gen:
            return
        for nd in nodes:
            self.set_state(int(nd), WARM)
        self.unit_ready[u] = True
        self.event("ready", int(nodes[0]), -1, f"unit {u}")

    def _boot_and_load(self, nd: int, boot_s: float, u: int, gen: int):
        yield self.env.timeout(boot_s)
        if self.unit_gen[u] != gen or self.state[nd] != BOOTING:
            return
        self.set_state(nd, LOADING)
        self.load_left[nd] = self.unit_load_bytes_per_node[u]
        while self.load_left[nd] > 0 and self.state[nd] == LOADING:
            yield self.env.timeout(self.dt)

    def _scheduler_proc(self):
        sched = self.spec.scheduler
        policy = POLICIES[sched.policy]
        while True:
            yield self.env.timeout(sched.interval_s)
            self._autoscale(policy)

    def _autoscale(self, policy) -> None:
        sched = self.spec.scheduler
        now = self.env.now
        total_nodes = sum(p.nodes for p in self.spec.pools)
        booting = int(np.isin(self.state, (POWERING_ON, BOOTING, LOADING)).sum())
        boot_slots = max(0, sched.max_concurrent_boots - booting)
        for k, pool in enumerate(self.spec.pools):
            units = self.pool_units[k]
            if not len(units):
                continue
            reps_per_unit = len(self.unit_reps[units[0]])
            nodes_per_unit = len(self.unit_nodes[units[0]])
            load = self.book.waiting(k) + int(self.book.rep_inflight[self.pool_reps[k]].sum())
            need_reps = replicas_needed(load, self.pool_req_per_replica[k], sched.target_utilisation)
            warm_units = math.ceil(sched.warm_pool_nodes * pool.nodes / total_nodes / nodes_per_unit)
            needed = min(len(units), math.ceil(need_reps / reps_per_unit) + warm_units)
            first = self.state[[int(self.unit_nodes[u][0]) for u in units]]
            alive = ~self.unit_failed[units] & ~self.unit_cut[units] & (first != OFF) & (first != FAILED)
            active = units[alive & ~self.unit_draining[units]]
            delta = units_to_change(len(active), needed, sched.hysteresis)
            if delta > 0:
                self.low_since[k] = -1.0
                # cheapest first: take back units that are draining
                for u in units[alive & self.unit_draining[units]][::-1][:delta]:
                    self.unit_draining[u] = False
                    for nd in self.unit_nodes[u]:
                        if self.state[nd] == DRAINING:
                            self.set_state(int(nd), WARM)
                    self.event("undrain", int(self.unit_nodes[u][0]), -1, f"unit {u}")
                    delta -= 1
                off = units[(first == OFF) & ~self.unit_failed[units]]
                if delta > 0 and len(off) and boot_slots > 0:
                    ctx = self._ignition_ctx(now)
                    chosen = policy.limit(policy.order(off, ctx), ctx)
                    take = min(delta, boot_slots // nodes_per_unit)
                    for u in chosen[:take]:
                        if not self._cap_allows_ignition(int(u)):
                            break
                        self.ramp_hist.append((now, float(ctx.unit_peak_w[u])))
                        why = f"replaces {self.replacing[k].popleft()}" if self.replacing[k] else ""
                        self.env.process(self._ignite(int(u), why))
                        boot_slots -= nodes_per_unit
            elif delta < 0:
                if self.low_since[k] < 0:
                    self.low_since[k] = now
                if now - self.low_since[k] >= sched.scale_down_delay_s:
                    ready = [u for u in active if self.unit_ready[u]]
                    for u in sorted(ready, reverse=True)[:-delta]:
                        self.unit_draining[u] = True
                        for nd in self.unit_nodes[u]:
                            self.set_state(int(nd), DRAINING)
                        self.event("drain", int(self.unit_nodes[u][0]), -1, f"unit {u}")
                    self.low_since[k] = now
            else:
                self.low_since[k] = -1.0

    def _ignition_ctx(self, now: float) -> IgnitionContext:
        topo = self.topo
        on = (self.state != OFF) & (self.state != FAILED)
        rack_on = np.bincount(topo.node_rack, weights=on, minlength=self.R)
        inlet = np.bincount(topo.node_rack, weights=self.plant.out.node_inlet_c, minlength=self.R) / topo.nodes_per_rack
        window = 60.0
        while self.ramp_hist and self.ramp_hist[0][0] <= now - window:
            self.ramp_hist.popleft()
        used = sum(w for _, w in self.ramp_hist)
        budget = self.spec.scheduler.max_ramp_kw_per_min * 1e3 * window / 60.0 - used
        return IgnitionContext(
            unit_rack=np.array([topo.node_rack[n[0]] for n in self.unit_nodes]),
            unit_nodes=np.array([len(n) for n in self.unit_nodes]),
            rack_nodes_on=rack_on, rack_inlet_c=inlet, unit_peak_w=self.unit_peak_w, ramp_budget_w=budget)

    def _fault_proc(self, i: int, f):
        yield self.env.timeout(f.at_s)
        target = f.target if f.target is not None else ""
        nd = (int(f.target) // self.gpn if f.kind == "gpu_failure" else int(f.target)) \
            if isinstance(f.target, int) else -1
        # the fault event comes first so that the reactions it causes follow it in the table
        words = (f"faults[{i}]", f.kind, str(target), "" if f.value is None else f"{f.value:g}")
        self.event("fault", nd, -1, " ".join(w for w in words if w))
        undo = self._apply_fault(f, f"{f.kind} faults[{i}]")
        if f.duration_s is not None:
            yield self.env.timeout(f.duration_s)
            if undo:
                undo()
            self.event("fault_cleared", nd, -1, f"faults[{i}] {f.kind}")

    def _repair_node(self, nd: int) -> None:
        """A repaired node returns to OFF (the tick returns its unit to service once all of it is OFF)."""
        if self.state[nd] == FAILED:
            self.state[nd] = OFF
            self.event("state_change", nd, -1, "FAILED->OFF")

    def _apply_fault(self, f, reason: str):
        """Apply fault `f`; return a function that undoes it (called when its duration ends)."""
        if f.kind == "node_crash" or (f.kind == "psu_failure" and self.plant.psu_ok[int(f.target)] <= 1):
            nd = int(f.target)
            self.plant.psu_ok[nd] -= f.kind == "psu_failure"
            self._fail_node(nd, reason)

            def repair():
                self.plant.psu_ok[nd] = self.node_spec.psu_count
                self._repair_node(nd)
            return repair
        if f.kind == "psu_failure":  # redundant supplies: the others carry the load (checked each tick)
            nd = int(f.target)
            self.plant.psu_ok[nd] -= 1
            self.event("psu_degraded", nd, -1, f"{int(self.plant.psu_ok[nd])} of {self.node_spec.psu_count} PSUs left")
            return lambda: self.plant.psu_ok.__setitem__(nd, self.node_spec.psu_count)
        if f.kind == "gpu_failure":
            g = int(f.target)
            self._fail_gpu(g, reason)

            def replace_gpu():
                self.gpu_ok[g] = True
                r = int(self.gpu_rep[g])
                if r >= 0 and self.gpu_ok[self.rep_gpus[r][self.rep_gpus[r] < self.G]].all():
                    self.rep_lost[r] = False
                self._repair_node(int(self.topo.gpu_node[g]))
            return replace_gpu
        if f.kind == "fan_failure":
            nd = int(f.target)
            self.plant.fan_ok[nd] = False
            return lambda: self.plant.fan_ok.__setitem__(nd, True)
        if f.kind == "cooling_failure":
            # CRAH units lost: their share of plenum airflow AND of coil capacity goes (both scale
            # with plenum_frac in _power_thermal); default 0.3 = most of the room's CRAHs down
            self.plant.plenum_frac = 0.3 if f.value is None else float(f.value)
            return lambda: setattr(self.plant, "plenum_frac", 1.0)
        if f.kind == "cooling_capacity":
            old = self.plant.cooling_capacity_w
            self.plant.cooling_capacity_w = float(f.value) * 1e3
            return lambda: setattr(self.plant, "cooling_capacity_w", old)
        if f.kind == "power_cap":
            self.plant.gpu_cap_w[:] = float(f.value)
            return lambda: self.plant.gpu_cap_w.__setitem__(slice(None), np.inf)
        if f.kind == "facility_power_cap":
            self.fac_cap_w = float(f.value) * 1e3

            def lift():
                self.fac_cap_w = math.inf
                self._cap_transition("", "cap lifted")
            return lift
        if f.kind in ("link_down", "switch_down"):
            if self.fabric is None:
                return None
            self.fabric.fail(str(f.target))
            self._fabric_connectivity(f"{reason} {f.target}")

            def restore():
                self.fabric.restore(str(f.target))
                self._fabric_connectivity(f"{reason} {f.target} cleared")
            return restore
        return None

    def _fail_node(self, nd: int, why: str) -> None:
        """A node stops: its unit's replicas are lost; their in-flight requests go back to the queue."""
        if self.state[nd] == FAILED:
            return
        was_on = self.state[nd] != OFF
        if was_on:
            self.set_state(nd, FAILED)
        else:  # broken while powered off: it must not be ignited until repaired (not a state-machine step)
            self.state[nd] = FAILED
            self.event("state_change", nd, -1, "OFF->FAILED")
        u = int(self.topo.node_unit[nd])
        if u >= 0:
            self._lose_unit(u, f"{why} on node {nd}", was_on)

    def _fail_gpu(self, g: int, why: str) -> None:
        """One GPU dies: its replica is lost (requests retried elsewhere); the node keeps its other replicas."""
        if not self.gpu_ok[g]:
            return
        self.gpu_ok[g] = False
        nd, r = int(self.topo.gpu_node[g]), int(self.gpu_rep[g])
        if r < 0 or self.rep_lost[r]:
            return
        self.rep_lost[r] = True
        self.event("replica_lost", nd, r, f"{why} on gpu {g}")
        self._requeue_replicas(np.array([r]), f"{why} on gpu {g}")
        u = int(self.rep_unit[r])
        if self.rep_lost[self.unit_reps[u]].all() and not self.unit_failed[u]:
            self._lose_unit(u, f"{why} on gpu {g}", was_on=self.state[nd] != OFF)  # nothing left to serve: take the unit out of service

    def _lose_unit(self, u: int, why: str, was_on: bool = True) -> None:
        """An ignition unit can no longer serve: stop it, retry its requests, ask for a replacement
        (if it was on: a unit lost while OFF only stops being a candidate for ignition)."""
        self.unit_failed[u] = True
        self.unit_ready[u] = False
        self.unit_draining[u] = False
        self.unit_gen[u] += 1
        for other in self.unit_nodes[u]:
            if self.state[other] not in (OFF, FAILED):
                # the rest of a broken pipeline cannot serve: power it down through DRAINING
                if self.state[other] in (WARM, SERVING):
                    self.set_state(int(other), DRAINING)
                elif self.state[other] in (POWERING_ON, BOOTING, LOADING):
                    # abort the boot: the state machine has no BOOTING->OFF, so through FAILED
                    self.set_state(int(other), FAILED)
                    self._repair_node(int(other))
        self._requeue_replicas(self.unit_reps[u], why)
        self.event("unit_lost", int(self.unit_nodes[u][0]), -1, f"unit {u}: {why}")
        if was_on:
            self.replacing[int(self.unit_pool[u])].append(f"unit {u} ({why})")
            # react now rather than at the next scheduler interval: lost capacity is urgent
            self._autoscale(POLICIES[self.spec.scheduler.policy])

    def _requeue_replicas(self, reps: np.ndarray, why: str) -> None:
        self.book.requeue(reps, why, self.env.now)

    # ------------------------------------------------------------------ the tick
    def _tick_proc(self):
        t0 = time.perf_counter()
        for k in range(self.n_ticks):
            self._tick(k)
            if self.progress and (k % 60 == 0 or k == self.n_ticks - 1):
                self.progress((k + 1) / self.n_ticks, {"t_s": (k + 1) * self.dt,
                                                        "wall_s": time.perf_counter() - t0})
            yield self.env.timeout(self.dt)

    def _tick(self, k: int) -> None:
        t0 = k * self.dt
        t1 = t0 + self.dt
        self.book.arrive(t0, t1)
        self.book.expire(t0)
        if self.fabric is not None:
            self._fabric_step()
        self._admit(t0)
        self.out = self.serving.step(t0, self.plant.out.gpu_clock, self.rep_nic_gb_s, self.rep_cross_lat_s)
        self._power_thermal()
        self._loading_progress()
        self._accumulate(k)

    def _admit(self, t0: float) -> None:
        """Route queue heads to the ready replica with least outstanding work (FCFS, head-of-line)."""
        bk, lay = self.book, self.lay
        ready_unit = self.unit_ready & ~self.unit_draining & ~self.unit_failed & ~self.unit_cut
        load = ReplicaLoad(work_s=self.serving.rep_busy, inflight=bk.rep_inflight, kv_reserved_b=bk.rep_kv_reserved,
                           max_batch=lay.rep_max_batch, kv_cap_b=lay.rep_kv_cap,
                           prefill_s_per_tok=lay.rep_prefill_s_per_tok, interval_s=self.serving.rep_interval_s)
        for k, main_q in enumerate(bk.queues):
            if not (main_q or bk.retry_queues[k]):
                continue
            reps = self.pool_reps[k]
            reps = reps[ready_unit[self.rep_unit[reps]] & ~self.rep_lost[reps]]
            ids, to = least_work_admit(bk.retry_queues[k], main_q, reps, load, bk.reservation,
                                       self.req.prompt_tokens, self.req.output_tokens)
            if ids:
                bk.admit(np.array(ids, dtype=np.int64), np.array(to, dtype=np.int64), t0)

    # ------------------------------------------------------------------ power and heat
    def _power_thermal(self) -> None:
        out = self.plant.step(self.state, self.gpu_ok, self.out)
        al, topo = out.alarms, self.topo
        st = self.state
        for nd in al.psu_overload:
            self._fail_node(int(nd), f"psu_overload ({out.node_dc_w[nd]:.0f} W on {int(self.plant.psu_ok[nd])} PSUs)")
        thr = self.plant.gpu_throttled
        for gid in al.throttle_changed:
            self.event("throttle_start" if thr[gid] else "throttle_end", int(topo.gpu_node[gid]),
                       int(self.gpu_rep[gid]), f"gpu {int(gid)}")
        for nd in al.hot_nodes:
            self.event("thermal_shutdown", int(nd), -1, f"{float(al.gpu_max_c[nd]):.1f} C")
            self._fail_node(int(nd), "thermal_shutdown")
        if al.cooling_short is not None:  # the room starts / stops heating up: worth a line in the story
            self.event("cooling_overload" if al.cooling_short else "cooling_recovered", -1, -1,
                       f"IT {out.it_w / 1e3:.1f} kW vs cooling {self.plant.cooling_available_w / 1e3:.1f} kW; "
                       f"supply air {self.plant.supply_c:.1f} C")
        # ---- serving <-> warm follows traffic; drained units power down when empty
        u_busy = np.zeros(self.topo.n_units, dtype=bool)
        if self.n_rep:
            np.logical_or.at(u_busy, self.rep_unit, self.book.rep_inflight > 0)
        node_busy = np.zeros(self.N, dtype=bool)
        has_unit = self.topo.node_unit >= 0
        node_busy[has_unit] = u_busy[self.topo.node_unit[has_unit]]
        for nd in np.flatnonzero((st == WARM) & node_busy):
            self.set_state(int(nd), SERVING)
        for nd in np.flatnonzero((st == SERVING) & ~node_busy):
            self.set_state(int(nd), WARM)
        for nd in np.flatnonzero((st == DRAINING) & ~node_busy):
            u = self.topo.node_unit[nd]
            if self.spec.scheduler.power_off_idle or self.unit_failed[u]:
                self.set_state(int(nd), OFF)
            else:
                self.set_state(int(nd), WARM)
        for u in np.flatnonzero(self.unit_draining | self.unit_failed):
            if (self.unit_failed[u] and all(self.state[x] == OFF for x in self.unit_nodes[u])
                    and not self.rep_lost[self.unit_reps[u]].any()):
                self.unit_failed[u] = False  # repaired (or only collateral): the scheduler may ignite it again
            if all(self.state[x] in (OFF, FAILED, WARM) for x in self.unit_nodes[u]) and not u_busy[u]:
                if self.unit_draining[u]:
                    self.unit_draining[u] = False
                    self.unit_ready[u] = bool(all(self.state[x] == WARM for x in self.unit_nodes[u]))

    def clock_limit(self, pv) -> np.ndarray:
        """GPU clocks that keep facility power <= facility_power_cap this tick (one uniform per-GPU limit).

        Facility power rises monotonically with the per-GPU limit (cube law -> PSU curve -> cooling
        and losses), so bisection finds the largest limit that fits; everything else on the nodes
        (CPU, memory, fans) is taken as given this tick. If even the lowest clock does not fit,
        GPUs run at that floor and the scheduler stops igniting (see _cap_allows_ignition).
        """
        clock0, powered, activity, extra, other_dc_w = pv.clock0, pv.powered, pv.activity, pv.extra_w, pv.other_dc_w
        if not math.isfinite(self.fac_cap_w):
            return clock0
        gpu, topo = self.gpu, self.topo
        psus = pv.psus_working

        def fac_at(limit_w: float) -> tuple[float, np.ndarray]:
            c = np.minimum(clock0, pw.clock_for_power_cap(limit_w, gpu.idle_power_w, gpu.board_power_w, activity, extra))
            g = np.where(powered, pw.gpu_power_w(gpu.idle_power_w, gpu.board_power_w, activity, c, extra), 0.0)
            dc = np.bincount(topo.gpu_node, weights=g, minlength=self.N) + other_dc_w
            return self.plant.facility_w(float(pw.wall_power_w(dc, self.psu, psus).sum())), c

        lo, hi = 0.0, float(gpu.board_power_w)  # limit 0 W -> the clock floor of clock_for_power_cap
        floor_w, clock = fac_at(lo)
        self.fac_floor_w = floor_w  # what capping cannot remove: the scheduler's ignition budget
        full_w, _ = fac_at(hi)
        if full_w <= self.fac_cap_w:
            self.fac_cap_gpu_w = math.inf
            self._cap_transition("", f"facility {full_w / 1e3:.1f} kW under cap {self.fac_cap_w / 1e3:.1f} kW")
            return clock0
        if floor_w > self.fac_cap_w:
            self.fac_cap_gpu_w = lo
            self._cap_transition("infeasible", f"facility {floor_w / 1e3:.1f} kW at lowest GPU clocks > cap "
                                               f"{self.fac_cap_w / 1e3:.1f} kW")
            return clock
        for _ in range(CAP_BISECT_STEPS):
            mid = 0.5 * (lo + hi)
            if fac_at(mid)[0] <= self.fac_cap_w:
                lo = mid
            else:
                hi = mid
        _, clock = fac_at(lo)
        self.fac_cap_gpu_w = lo
        self._cap_transition("binding", f"GPUs limited to {lo:.0f} W to hold facility <= {self.fac_cap_w / 1e3:.1f} kW "
                                        f"(uncapped {full_w / 1e3:.1f} kW)")
        return clock

    def _cap_transition(self, new: str, detail: str) -> None:
        """Record the facility cap controller's reactions when its regime changes (not every tick)."""
        if new == self.fac_cap_state:
            return
        kind = {"": "power_cap_released", "binding": "power_cap_engaged", "infeasible": "power_cap_infeasible"}[new]
        self.fac_cap_state = new
        self.event(kind, -1, -1, detail)

    def _cap_allows_ignition(self, u: int) -> bool:
        """Under a facility cap, ignite a unit only if the facility would still fit with every GPU at its
        lowest clock (the controller can then absorb the newcomer by capping clocks further)."""
        if not math.isfinite(self.fac_cap_w):
            return True
        fac = self.spec.facility
        per_it_w = 1.0 + 1.0 / fac.cooling_cop + fac.electrical_loss_fraction  # facility W per IT W (marginal)
        add_w = len(self.unit_nodes[u]) * self._node_floor_wall_w() * per_it_w
        if self.fac_floor_w + add_w <= self.fac_cap_w:
            self.fac_floor_w += add_w
            return True
        self.event("ignition_delayed", int(self.unit_nodes[u][0]), -1,
                   f"unit {u}: facility_power_cap {self.fac_cap_w / 1e3:.1f} kW (floor {self.fac_floor_w / 1e3:.1f} kW "
                   f"+ {add_w / 1e3:.1f} kW)")
        return False

    def _node_floor_wall_w(self) -> float:
        """Wall power of a node that is loading weights with its GPUs at idle: what capping cannot remove."""
        node, gpu = self.node_spec, self.gpu
        parts = node_parts_w(node, self.cpu, self.nic, self.fan, cpu_util=node.cpu_util_loading, dimm_activity=1.0,
                             fan_rpm=self.fan.max_rpm)
        return node_wall_w(node, parts, node.gpu_count * (gpu.idle_power_w + gpu.loaded_idle_extra_w), self.psu)

    def _loading_progress(self) -> None:
        loading = self.state == LOADING
        if not loading.any():
            return
        node = self.node_spec
        local = min(node.nvme_read_gb_s, node.pcie_h2d_gb_s) * sv.GB
        if self.fabric is not None and self.spec.fabric.load_from == "network":
            rate = self.fabric.loading_rate_gb_s * sv.GB
        else:
            rate = np.full(self.N, local)
        self.load_left = np.where(loading, np.maximum(self.load_left - rate * self.dt, 0.0), self.load_left)

    def _fabric_connectivity(self, why: str) -> None:
        """After a fabric change: units that lost their path to the spines stop taking requests and
        their in-flight requests go back to the queue (retried elsewhere); reconnected units return."""
        self.rep_cross_lat_s = self.fabric.rep_cross_latency_s
        ok = self.fabric.unit_connected()
        for u in np.flatnonzero(~ok & ~self.unit_cut):
            self.unit_cut[u] = True
            self.event("unit_disconnected", int(self.unit_nodes[u][0]), -1, f"unit {u}: {why}")
            self._requeue_replicas(self.unit_reps[u], why)
        for u in np.flatnonzero(ok & self.unit_cut):
            self.unit_cut[u] = False
            self.event("unit_reconnected", int(self.unit_nodes[u][0]), -1, f"unit {u}: {why}")

    def _fabric_step(self) -> None:
        loading = np.flatnonzero(self.state == LOADING) if self.spec.fabric.load_from == "network" else np.zeros(0, int)
        active = np.flatnonzero(self.book.rep_inflight > 0) if self.n_rep else np.zeros(0, int)
        self.fabric.step(active, loading, self.out.tokens_s + self.out.prefill_tok_s)
        self.rep_nic_gb_s = self.fabric.rep_nic_gb_s
        self.node_nic_gb_s = self.fabric.node_nic_gb_s

    # ------------------------------------------------------------------ telemetry
    def _alloc_samples(self) -> None:
        reps = self.topo.replicas
        # (replica, node) pairs for spreading per-replica quantities onto nodes without loops
        pair_rep = np.array([r.replica_id for r in reps for _ in r.node_ids], dtype=np.int64)
        pair_node = np.array([n for r in reps for n in r.node_ids], dtype=np.int64)
        self.sampler = Sampler(SamplerLayout(
            gpu_node=self.topo.gpu_node, gpu_rep=self.gpu_rep, node_rack=self.topo.node_rack,
            nodes_per_rack=self.topo.nodes_per_rack, gpus_per_node=self.gpn, n_racks=self.R,
            pair_rep=pair_rep, pair_node=pair_node,
            rep_n_nodes=np.bincount(pair_rep, minlength=self.n_rep).astype(float),
            rep_hidden_bytes=self.rep_hidden_bytes, rep_hops_intra=self.rep_hops_intra,
            rep_hops_cross=self.rep_hops_cross,
            rep_weights_per_gpu_b=np.array([self.perf[p].weights_bytes / self.perf[p].n_gpus for p in self.rep_pool]),
            rep_n_gpus=np.array([self.perf[p].n_gpus for p in self.rep_pool], dtype=float)),
            self.n_samples, self.ticks_per_sample, self.dt)
        self.unit_peak_w = np.array([len(n) for n in self.unit_nodes], dtype=float) * self._node_peak_wall_w()

    def _node_peak_wall_w(self) -> float:
        """Wall power of a node serving flat out (large-batch decode on every GPU): the ramp budget's unit."""
        node, gpu = self.node_spec, self.gpu
        parts = node_parts_w(node, self.cpu, self.nic, self.fan, cpu_util=node.cpu_util_serving, dimm_activity=1.0,
                             fan_rpm=self.fan.max_rpm)
        return node_wall_w(node, parts, node.gpu_count * gpu.board_power_w * sv.ACTIVITY_DECODE_LARGE, self.psu)

    def _accumulate(self, k: int) -> None:
        net = self.fabric is not None and self.spec.fabric.load_from == "network"
        sm, pl = self.sampler, self.plant
        o = pl.out
        sm.accumulate(gpu_power_w=o.gpu_power_w, gpu_util=o.gpu_util, node_wall_w=o.node_wall_w,
                      node_dc_w=o.node_dc_w, node_gpu_w=o.node_gpu_w, rep_tokens_s=self.out.tokens_s,
                      rep_prefill_tok_s=self.out.prefill_tok_s,
                      node_load_gb_s=self.fabric.node_load_gb_s if net else None, it_w=o.it_w,
                      cooling_w=o.cooling_w, overhead_w=o.overhead_w, facility_w=o.facility_w,
                      gpu_throttled=pl.gpu_throttled)
        if not sm.closes_interval(k):
            return
        sm.snapshot(k, gpu_temp_c=pl.gpu_temp, gpu_clock=o.gpu_clock, gpu_fan_frac=pl.gpu_fan,
                    gpu_throttled=pl.gpu_throttled, node_state=self.state, rep_kv_reserved_b=self.book.rep_kv_reserved,
                    rep_inflight=self.book.rep_inflight, node_inlet_c=o.node_inlet_c, node_exhaust_c=o.node_exhaust_c,
                    node_fan_rpm=pl.fan_rpm, node_airflow_m3_s=o.node_airflow_m3_s, rack_exhaust_c=pl.rack_exhaust,
                    rack_demand_m3_s=o.rack_demand_m3_s, rack_supply_m3_s=o.rack_supply_m3_s,
                    rack_recirc_frac=o.rack_recirc_frac, supply_c=pl.supply_c,
                    queued=self.book.queued(), in_flight=len(self.book.inflight),
                    links=self.fabric.sample((k + 1) * self.dt, sm.ticks_per_sample) if self.fabric is not None
                    else None)


def simulate(scenario: Scenario, progress: Callable[[float, dict], None] | None = None) -> SimResult:
    """Run `scenario` and return telemetry columns and a summary. Deterministic for a given seed."""
    t0 = time.perf_counter()
    sim = _Sim(scenario, progress)
    sim.run()
    bk = sim.book
    rq = RequestRecord(arrival_s=sim.req.arrival_s, pool=sim.req.pool, prompt_tokens=sim.req.prompt_tokens,
                       output_tokens=sim.req.output_tokens, status=bk.status, drop_reason=bk.drop_reason,
                       admitted_s=bk.admitted_s, first_token_s=bk.first_token_s, done_s=bk.done_s,
                       replica=bk.replica, network_s=bk.network_s, retries=bk.retries)
    links = sim.fabric.columns(sim.sampler.links) if sim.fabric is not None and sim.sampler.links else None
    return collect(sim.sc, sim.topo, sim.sampler, rq, sim.log, links, time.perf_counter() - t0)
