"""Node lifecycle: the state machine, ignition, failures, repairs and the reactions to alarms.

OFF -> POWERING_ON -> BOOTING -> LOADING -> WARM <-> SERVING -> DRAINING -> WARM | OFF, FAILED
from any powered state (twin.model.states.LEGAL; `set_state` refuses anything else). Nodes come
up together as ignition units (the k nodes of a pipeline-parallel replica); a unit takes traffic
only when all of it is WARM. A loss during an ignition bumps the unit's generation so that the
ignition process abandons itself at its next step.

Failures hold a node FAILED: every cause (a node_crash fault, the last PSU gone, a PSU overload
trip, a thermal shutdown) takes a hold and only the release of the last hold repairs the node
(FAILED -> OFF), so two overlapping faults need both cleared. GPUs likewise: a GPU is back only
when every fault on it has cleared.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator

import numpy as np
import simpy

from twin.model.states import BOOTING, DRAINING, FAILED, LEGAL, LOADING, NODE_STATES, OFF, POWERING_ON, SERVING, WARM
from twin.sim import lifecycle_kernel as lk
from twin.sim.events import EventLog, Kind
from twin.sim.layout import Layout
from twin.sim.plant import Plant
from twin.sim.requests import RequestBook
from twin.spec.catalogue import NodeSpec
from twin.spec.scenario import ScenarioSpec
from twin.spec.topology import Topology


class Lifecycle:
    """(N,) node states and holds, (U,) unit flags, (G,) GPU health, (R,) replicas lost."""

    def __init__(self, spec: ScenarioSpec, layout: Layout, topo: Topology, node: NodeSpec,
                 warmup_s: tuple[float, ...], env: simpy.Environment, boot_rng: np.random.Generator,
                 book: RequestBook, plant: Plant, log: EventLog, dt_s: float,
                 warmup_cached_s: tuple[float, ...] | None = None, kernels: str = "numpy") -> None:
        self.spec, self.lay, self.topo, self.node = spec, layout, topo, node
        self._compiled = kernels == "numba" and lk.HAVE_NUMBA  # follow_traffic's test (twin.sim.lifecycle_kernel)
        self.warmup_s = warmup_s                     # per pool: the engine's warm-up after loading, first start
        self.warmup_cached_s = warmup_s if warmup_cached_s is None else warmup_cached_s  # with compile caches
        self.env, self.boot_rng, self.book, self.plant, self.log, self.dt = env, boot_rng, book, plant, log, dt_s
        N, U = topo.n_nodes, layout.n_units
        self.state = np.full(N, OFF, dtype=np.int8)
        self.load_left = np.zeros(N)                 # weight bytes a LOADING node still has to copy
        self.unit_ready = np.zeros(U, dtype=bool)
        self.unit_pinned = np.zeros(layout.n_units, dtype=bool)  # kept on by a training job (engine sets it)
        self.unit_draining = np.zeros(U, dtype=bool)
        self.unit_failed = np.zeros(U, dtype=bool)
        self.unit_gen = np.zeros(U, dtype=np.int64)  # bumped when a unit is lost mid-ignition
        self.unit_started = np.zeros(U, dtype=bool)  # has warmed up once: its nodes hold the compile cache
        self.node_holds = np.zeros(N, dtype=np.int64)  # active causes keeping a node FAILED
        self.psu_tripped = np.zeros(N, dtype=bool)     # a PSU overload holds the node until a PSU is swapped
        self.gpu_holds = np.zeros(topo.n_gpus, dtype=np.int64)
        self.gpu_ok = np.ones(topo.n_gpus, dtype=bool)  # a dead GPU draws nothing, serves nothing
        self.rep_lost = np.zeros(layout.n_rep, dtype=bool)
        self.replacing: list[deque] = [deque() for _ in spec.pools]  # lost units awaiting a replacement
        self.on_unit_lost: Callable[[], None] = lambda: None  # the autoscaler reacts at once (set by the engine)
        # static maps follow_traffic reads each tick: node -> unit (0 where none, masked by _has_unit)
        # and each unit's nodes flat, so per-unit "all nodes ..." tests are one bincount
        self._has_unit = topo.node_unit >= 0
        self._node_unit0 = np.where(self._has_unit, topo.node_unit, 0)
        self._flat_unit = np.repeat(np.arange(U), [len(n) for n in layout.unit_nodes]).astype(np.int64)
        self._flat_node = (np.concatenate([np.asarray(n, dtype=np.int64) for n in layout.unit_nodes]) if U
                           else np.zeros(0, np.int64))
        self._unit_size = np.bincount(self._flat_unit, minlength=U)
        self._u_busy, self._kinds = np.zeros(U, dtype=bool), np.zeros(N, dtype=np.int8)  # the kernels' scratch
        self._settle_scratch = tuple(np.zeros(U, dtype=bool) for _ in range(4))

    # ---------------------------------------------------------------- the state machine
    def set_state(self, nd: int, new: int) -> None:
        old = int(self.state[nd])
        if old == new:
            return
        if (old, new) not in LEGAL:
            raise RuntimeError(f"illegal transition {NODE_STATES[old]}->{NODE_STATES[new]} on node {nd}")
        self.state[nd] = new
        self.log.emit(Kind.STATE_CHANGE, nd, -1, f"{NODE_STATES[old]}->{NODE_STATES[new]}")

    def ready_replicas(self, reps: np.ndarray, unit_cut: np.ndarray) -> np.ndarray:
        """The replicas among `reps` that may take requests: unit ready, not draining, failed or cut off."""
        if self._compiled:  # one loop instead of five masks and gathers (twin.sim.lifecycle_kernel.ready)
            out = np.empty_like(reps)
            return out[:lk.ready(reps, self.lay.rep_unit, self.unit_ready, self.unit_draining, self.unit_failed,
                                 unit_cut, self.rep_lost, out)]
        ru = self.lay.rep_unit[reps]
        ok = self.unit_ready[ru] & ~self.unit_draining[ru] & ~self.unit_failed[ru] & ~unit_cut[ru] & ~self.rep_lost[reps]
        return reps[ok]

    def initial_units(self) -> None:
        """Units already WARM at t=0, shared between pools by their node counts (at least one each)."""
        want = self.spec.scheduler.initial_on_nodes
        total = sum(p.nodes for p in self.spec.pools)
        for k, pool in enumerate(self.spec.pools):
            units = self.lay.pool_units[k]
            if not len(units) or want == 0:
                continue
            per_unit = len(self.lay.unit_nodes[units[0]])
            n_units = max(1, int(round(want * pool.nodes / total / per_unit)))
            for u in units[:n_units]:
                for nd in self.lay.unit_nodes[u]:
                    self.state[nd] = WARM
                    self.log.emit(Kind.INITIAL, int(nd), -1, "WARM")
                self.unit_ready[u] = True
                self.unit_started[u] = True   # it has run the model before: compile cache on disk

    # ---------------------------------------------------------------- ignition
    def ignite(self, u: int, why: str = "") -> None:
        """Start powering unit u on (a process: power-on, boot, load, warm-up)."""
        self.env.process(self._ignite(u, why))

    def _ignite(self, u: int, why: str) -> Generator:
        env, ns = self.env, self.node
        nodes = self.lay.unit_nodes[u]
        gen = int(self.unit_gen[u])  # a loss bumps it: this ignition is then abandoned at its next step
        self.log.emit(Kind.IGNITE, int(nodes[0]), -1, f"unit {u} {why}".strip())
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
        pool = self.lay.unit_pool[u]
        yield env.timeout(self.warmup_cached_s[pool] if self.unit_started[u] else self.warmup_s[pool])
        if self.unit_gen[u] != gen:
            return
        for nd in nodes:
            self.set_state(int(nd), WARM)
        self.unit_ready[u] = True
        self.unit_started[u] = True
        self.log.emit(Kind.READY, int(nodes[0]), -1, f"unit {u}")

    def _boot_and_load(self, nd: int, boot_s: float, u: int, gen: int) -> Generator:
        yield self.env.timeout(boot_s)
        if self.unit_gen[u] != gen or self.state[nd] != BOOTING:
            return
        self.set_state(nd, LOADING)
        self.load_left[nd] = self.lay.unit_load_bytes_per_node[u]
        while self.load_left[nd] > 0 and self.state[nd] == LOADING:
            yield self.env.timeout(self.dt)

    def progress_loading(self, rate_b_s: np.ndarray) -> None:
        """LOADING nodes copy weights at `rate_b_s` (N,) bytes/s this tick."""
        if self._compiled:  # in place, one loop (the numpy code below allocates four arrays)
            lk.progress(self.state, LOADING, self.load_left, rate_b_s, self.dt)
            return
        loading = self.state == LOADING
        if loading.any():
            self.load_left = np.where(loading, np.maximum(self.load_left - rate_b_s * self.dt, 0.0), self.load_left)

    def drain(self, u: int) -> None:
        self.unit_draining[u] = True
        for nd in self.lay.unit_nodes[u]:
            self.set_state(int(nd), DRAINING)
        self.log.emit(Kind.DRAIN, int(self.lay.unit_nodes[u][0]), -1, f"unit {u}")

    def undrain(self, u: int) -> None:
        self.unit_draining[u] = False
        for nd in self.lay.unit_nodes[u]:
            if self.state[nd] == DRAINING:
                self.set_state(int(nd), WARM)
        self.log.emit(Kind.UNDRAIN, int(self.lay.unit_nodes[u][0]), -1, f"unit {u}")

    # ---------------------------------------------------------------- failures and repairs
    def hold_node(self, nd: int, why: str) -> None:
        """One more cause keeps node `nd` FAILED (the first one fails it)."""
        self.node_holds[nd] += 1
        self._fail_node(nd, why)

    def release_node(self, nd: int) -> None:
        """One cause of node `nd`'s failure is gone; the last one repairs it (FAILED -> OFF)."""
        self.node_holds[nd] -= 1
        if self.node_holds[nd] == 0:
            self._repair_node(nd)

    def clear_psu_trip(self, nd: int) -> None:
        """A PSU was swapped: an overload trip on the node no longer holds it."""
        if self.psu_tripped[nd]:
            self.psu_tripped[nd] = False
            self.release_node(nd)

    def _repair_node(self, nd: int) -> None:
        """A repaired node returns to OFF (follow_traffic returns its unit once all of it is OFF)."""
        if self.state[nd] == FAILED:
            self.state[nd] = OFF
            self.log.emit(Kind.STATE_CHANGE, nd, -1, "FAILED->OFF")

    def _fail_node(self, nd: int, why: str) -> None:
        """A node stops: its unit's replicas are lost; their in-flight requests go back to the queue."""
        if self.state[nd] == FAILED:
            return
        was_on = self.state[nd] != OFF
        if was_on:
            self.set_state(nd, FAILED)
        else:  # broken while powered off: it must not be ignited until repaired (not a state-machine step)
            self.state[nd] = FAILED
            self.log.emit(Kind.STATE_CHANGE, nd, -1, "OFF->FAILED")
        u = int(self.topo.node_unit[nd])
        if u >= 0:
            self._lose_unit(u, f"{why} on node {nd}", was_on)

    def hold_gpu(self, g: int, why: str) -> None:
        """One GPU dies: its replica is lost (requests retried elsewhere); the node keeps its other replicas."""
        self.gpu_holds[g] += 1
        if not self.gpu_ok[g]:
            return
        self.gpu_ok[g] = False
        nd = int(self.topo.gpu_node[g])
        for r in self.lay.gpu_reps[g]:  # every pool's replica on the GPU (shared GPUs carry several)
            if self.rep_lost[r]:
                continue
            self.rep_lost[r] = True
            self.log.emit(Kind.REPLICA_LOST, nd, r, f"{why} on gpu {g}")
            self.book.requeue(np.array([r]), f"{why} on gpu {g}", self.env.now)
            u = int(self.lay.rep_unit[r])
            if self.rep_lost[self.lay.unit_reps[u]].all() and not self.unit_failed[u]:
                # nothing left to serve: take the unit out of service
                self._lose_unit(u, f"{why} on gpu {g}", was_on=self.state[nd] != OFF)

    def release_gpu(self, g: int) -> None:
        """A fault on GPU g cleared; once none is left the GPU is swapped and its replica serves again."""
        self.gpu_holds[g] -= 1
        if self.gpu_holds[g] > 0:
            return
        self.gpu_ok[g] = True
        for r in self.lay.gpu_reps[g]:
            gpus = self.lay.rep_gpus[r]
            if self.gpu_ok[gpus[gpus < self.lay.n_gpus]].all():
                self.rep_lost[r] = False

    def _lose_unit(self, u: int, why: str, was_on: bool = True) -> None:
        """An ignition unit can no longer serve: stop it, retry its requests, ask for a replacement
        (if it was on: a unit lost while OFF only stops being a candidate for ignition)."""
        self.unit_failed[u] = True
        self.unit_ready[u] = False
        self.unit_draining[u] = False
        self.unit_gen[u] += 1
        for other in self.lay.unit_nodes[u]:
            if self.state[other] not in (OFF, FAILED):
                # the rest of a broken pipeline cannot serve: power it down through DRAINING
                if self.state[other] in (WARM, SERVING):
                    self.set_state(int(other), DRAINING)
                elif self.state[other] in (POWERING_ON, BOOTING, LOADING):
                    # abort the boot: the state machine has no BOOTING->OFF, so through FAILED
                    self.set_state(int(other), FAILED)
                    self._repair_node(int(other))
        self.book.requeue(self.lay.unit_reps[u], why, self.env.now)
        self.log.emit(Kind.UNIT_LOST, int(self.lay.unit_nodes[u][0]), -1, f"unit {u}: {why}")
        if was_on:
            self.replacing[int(self.lay.unit_pool[u])].append(f"unit {u} ({why})")
            self.on_unit_lost()  # react now rather than at the next scheduler interval: lost capacity is urgent

    # ---------------------------------------------------------------- each tick
    def react(self) -> None:
        """The plant's alarms become failures and events, in the order they happened."""
        out, pl = self.plant.out, self.plant
        al = out.alarms
        for nd in al.psu_overload:
            nd = int(nd)
            if not self.psu_tripped[nd]:
                self.psu_tripped[nd] = True
                self.hold_node(nd, f"psu_overload ({out.node_dc_w[nd]:.0f} W on {int(pl.psu_ok[nd])} PSUs)")
        for gid in al.throttle_changed:
            self.log.emit(Kind.THROTTLE_START if pl.gpu_throttled[gid] else Kind.THROTTLE_END,
                          int(self.topo.gpu_node[gid]), int(self.lay.gpu_rep[gid]), f"gpu {int(gid)}")
        for nd in al.hot_nodes:
            self.log.emit(Kind.THERMAL_SHUTDOWN, int(nd), -1, f"{float(al.gpu_max_c[nd]):.1f} C")
            self.hold_node(int(nd), "thermal_shutdown")  # no fault clears it: the node stays down
        if al.cooling_short is not None:  # the room starts / stops heating up: worth a line in the story
            self.log.emit(Kind.COOLING_OVERLOAD if al.cooling_short else Kind.COOLING_RECOVERED, -1, -1,
                          f"IT {out.it_w / 1e3:.1f} kW vs cooling {pl.cooling_available_w / 1e3:.1f} kW; "
                          f"supply air {pl.supply_c:.1f} C")

    def follow_traffic(self, rep_inflight: np.ndarray) -> None:
        """SERVING <-> WARM follows traffic; drained units power down once empty; repaired units return.
        A unit pinned by a training job (`unit_pinned`) counts as busy."""
        lay, topo, st = self.lay, self.topo, self.state
        # node by node in id order within each kind of change (the event log's order); a change of
        # one kind never makes a node match a later kind, so all three can be found first
        if self._compiled:
            u_busy, kinds = self._u_busy, self._kinds
            changes = lk.follow(self.unit_pinned, lay.rep_unit, rep_inflight, topo.node_unit, st, WARM, SERVING,
                                DRAINING, u_busy, kinds)
            to_serving, to_warm, drained = ((kinds == k).nonzero()[0] for k in (lk.TO_SERVING, lk.TO_WARM,
                                                                               lk.DRAINED)) if changes else ((),) * 3
        else:
            u_busy = self.unit_pinned.copy()
            u_busy[lay.rep_unit[(rep_inflight > 0).nonzero()[0]]] = True
            node_busy = u_busy[self._node_unit0] & self._has_unit if lay.n_units else np.zeros(topo.n_nodes, bool)
            to_serving = ((st == WARM) & node_busy).nonzero()[0]
            to_warm = ((st == SERVING) & ~node_busy).nonzero()[0]
            drained = ((st == DRAINING) & ~node_busy).nonzero()[0]
        for nd in to_serving:
            self.set_state(int(nd), SERVING)
        for nd in to_warm:
            self.set_state(int(nd), WARM)
        for nd in drained:
            u = topo.node_unit[nd]
            if self.spec.scheduler.power_off_idle or self.unit_failed[u]:
                self.set_state(int(nd), OFF)
            else:
                self.set_state(int(nd), WARM)
        if self._compiled:  # the units' decisions below in one loop (twin.sim.lifecycle_kernel.settle)
            lk.settle(self.unit_draining, self.unit_failed, self.unit_ready, u_busy, lay.rep_unit, self.rep_lost,
                      self._flat_unit, self._flat_node, st, OFF, FAILED, WARM, *self._settle_scratch)
            return
        cand = self.unit_draining | self.unit_failed
        if not cand.any():
            return
        # a unit's decisions read only its own flags and its nodes' states (set above), so every
        # candidate unit is decided at once
        s_flat = st[self._flat_node]
        U = lay.n_units

        def every(ok: np.ndarray) -> np.ndarray:  # (U,) True where ok holds on all of the unit's nodes
            return np.bincount(self._flat_unit, weights=ok, minlength=U) == self._unit_size

        lost_any = np.bincount(lay.rep_unit, weights=self.rep_lost, minlength=U) > 0
        back = cand & self.unit_failed & every(s_flat == OFF) & ~lost_any
        self.unit_failed[back] = False  # repaired (or only collateral): the scheduler may ignite it again
        done = cand & every((s_flat == OFF) | (s_flat == FAILED) | (s_flat == WARM)) & ~u_busy & self.unit_draining
        self.unit_draining[done] = False
        self.unit_ready[done] = every(s_flat == WARM)[done]
