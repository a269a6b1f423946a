"""The physical plant: GPU, node, rack and facility power; air; temperatures; clocks.

One `step` per tick, in the order the physics closes its loop:
  1. GPU work from the serving step (achieved DRAM GB/s and SM utilisation per GPU,
     power.replica_gpu_work) and the node states; P-states (activity decay, context-holding
     boards); clocks from the thermal throttle (start-of-tick temperature) and the board's power
     limiter at min(TGP, any per-GPU cap);
  2. node power of every part but the GPUs (twin.model.node_power, THE composition), the CPU
     following the workload, chassis fans following the hottest GPU;
  3. the clock limiter (facility power cap, twin.sim.power_cap) solves for GPU clocks against
     everything else; GPU board power (power.gpu_board_power_w); node DC and wall power;
  4. air: sealed racks balance each front chamber's pressure (twin.model.airflow) or open racks
     spill over the top; inlets and exhausts; GPU die/heatsink/memory temperatures, blower fans
     and the memory-clock throttle (twin.model.thermal);
  5. facility power from the cooling plant (twin.model.cooling) and the room's supply air.
What should make something else happen (a PSU overloaded, a GPU crossing its slowdown or shutdown
temperature, the room starting to heat up) is returned as `Alarms`; the lifecycle reacts.

The plant holds what it integrates (temperatures, fan speeds, rack exhausts and chamber
pressures, supply air, when each GPU last worked) and the conditions faults degrade (fans, PSUs,
per-GPU caps, CRAH airflow and capacity).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple, Protocol

import numpy as np

from twin.model import airflow as af
from twin.model import power as pw
from twin.model import thermal as th
from twin.model.cpu_load import CPU_HEAT_CAPACITY_J_PER_K, cpu_temp_step_c
from twin.model.node_power import cpu_util_for_state, cpu_util_table, dimm_activity_for_state, node_parts_w
from twin.model.training import TRAIN_DRAM_FRAC, TRAINING_ACTIVITY
from twin.model.states import DRAINING, FAILED, LOADING, OFF, POWERING_ON, SERVING, WARM
from twin.model.thermal import CHASSIS_FAN_TAU_S, FAN_START_C, GPU_FAN_TAU_S
from twin.sim.batching import ServingOutputs
from twin.sim import plant_kernel
from twin.sim.plant_step import CompiledStep, FacilityTerms
from twin.sim.layout import Layout
from twin.spec.catalogue import Catalogue, EngineSpec, NodeSpec
from twin.spec.scenario import FacilitySpec
from twin.spec.topology import Topology

LOADING_GPU_GB_S = 25.0       # weights arrive over PCIe H2D at ~25 GB/s and land in DRAM (hardware.md)
PREFILL_CHUNK_TOKENS = 2048   # as twin.tools.predict: weights re-read once per chunked-prefill step (estimate)


# The tick's value objects (CapPreview, Alarms, PlantOutputs; batching.ServingOutputs,
# router.ReplicaLoad) are NamedTuples: immutable like a frozen dataclass, and built in a third of
# the time (a frozen dataclass sets each field through object.__setattr__: 3.1 us for PlantOutputs'
# 20, ~8 us a tick for the five), which the engine pays 3,600 times an hour.
class CapPreview(NamedTuple):
    """Everything a facility cap controller needs to choose GPU clocks this tick."""
    clock0: np.ndarray          # (G,) clock before the facility cap (throttle, board limiter)
    powered: np.ndarray         # (G,) bool
    idle_w: np.ndarray          # (G,) idle floor by P-state
    mem_gb_s: np.ndarray        # (G,) achieved DRAM traffic
    sm_util: np.ndarray         # (G,) share of SM math cycles in use
    other_dc_w: np.ndarray      # (N,) node DC power of everything but the GPUs
    psus_working: np.ndarray    # (N,) PSUs sharing the load (at least 1)
    facility_w_at: Callable[[float], float]  # facility W at an IT load, with today's plant
    kernels: str = "numpy"      # the plant's: "numba" lets the controller search through compiled passes


class ClockLimiter(Protocol):
    def clock_limit(self, preview: CapPreview) -> np.ndarray: ...


class Alarms(NamedTuple):
    """What the physics says should make something else happen this tick."""
    psu_overload: np.ndarray     # nodes asking more of their surviving PSUs than they are rated for
    throttle_changed: np.ndarray  # GPUs that crossed their slowdown temperature (first 1,000)
    hot_nodes: np.ndarray        # nodes with a GPU at or above its shutdown temperature
    gpu_max_c: np.ndarray        # (N,) hottest GPU per node at the start of the tick
    cooling_short: bool | None   # heat newly above (True) / below (False) what the plant removes, else None


class PlantOutputs(NamedTuple):
    gpu_power_w: np.ndarray
    gpu_util: np.ndarray
    gpu_clock: np.ndarray
    gpu_mem_clock: np.ndarray
    node_dc_w: np.ndarray
    node_gpu_w: np.ndarray
    node_wall_w: np.ndarray
    node_cpu_w: np.ndarray          # CPU package power (twin.model.cpu_load heats it)
    node_cpu_util: np.ndarray       # CPU package utilisation
    node_airflow_m3_s: np.ndarray
    node_inlet_c: np.ndarray
    node_exhaust_c: np.ndarray
    rack_demand_m3_s: np.ndarray   # server flow out of each rack's front
    rack_supply_m3_s: np.ndarray   # what the floor / blowers deliver
    rack_recirc_frac: np.ndarray   # share of intake that is hot-aisle air
    it_w: float
    facility_w: float
    cooling_w: float
    overhead_w: float
    alarms: Alarms


class Plant:
    """Power, air and heat of the whole hall."""

    def __init__(self, topo: Topology, cat: Catalogue, node: NodeSpec, fac: FacilitySpec, layout: Layout,
                 engines: tuple[EngineSpec, ...], limiter: ClockLimiter, dt_s: float, kernels: str = "auto") -> None:
        # "numba": the tick through compiled passes (twin.sim.plant_step), "numpy": the numpy step
        # below, the reference; the same bytes either way (tests/test_plant_step.py)
        self.kernels = plant_kernel.resolve(kernels)
        self.topo, self.node, self.fac, self.lay, self.limiter, self.dt = topo, node, fac, layout, limiter, dt_s
        self.gpu_rep = layout.gpu_rep
        # every (replica, GPU) incidence: several pools may share one GPU (issue 20)
        self.gpair_rep, self.gpair_gpu = layout.pair_rep, layout.pair_gpu
        self.gpu, self.cpu, self.psu = cat.gpu(node.gpu), cat.cpu(node.cpu), cat.psu(node.psu)
        self.nic, self.fan = cat.nic(node.nic), cat.fan(node.chassis_fan)
        self._psu_curve = pw.psu_curve(self.psu, node.input_voltage_v)   # its loss line: once, not per tick
        self.rep_busy_cores = np.array([engines[p].host_busy_cores for p in layout.rep_pool], dtype=float)
        self.core_s_per_token = float(np.mean([e.host_core_s_per_token for e in engines])) if engines else 0.0
        N, G, R = topo.n_nodes, topo.n_gpus, topo.n_racks
        self.N, self.G, self.R, self.gpn = N, G, R, topo.gpus_per_node
        self.pair_rep = np.array([r.replica_id for r in topo.replicas for _ in r.node_ids], dtype=np.int64)
        self.pair_node = np.array([n for r in topo.replicas for n in r.node_ids], dtype=np.int64)
        self.rep_n_nodes = np.bincount(self.pair_rep, minlength=layout.n_rep).astype(float)
        # what never changes between ticks, hoisted: each (replica, node) pair's share of its replica
        # and the busy cores that puts on the node; the CPU utilisation of the unloaded states
        self._pair_share = 1.0 / self.rep_n_nodes[self.pair_rep]
        self._pair_busy = self.rep_busy_cores[self.pair_rep] * self._pair_share
        self._cpu_table = cpu_util_table(node)
        self._has_rep = self.gpu_rep >= 0
        # integrated state
        self.t_s = 0.0
        self.supply_c = fac.supply_air_c
        self.gpu_temp = np.full(G, fac.supply_air_c)   # die + spreader
        self.gpu_sink = np.full(G, fac.supply_air_c)   # heatsink (thermal.gpu_thermal_step)
        self.gpu_mem = np.full(G, fac.supply_air_c)    # memory junction
        self.gpu_last_work_s = np.full(G, -np.inf)     # last time each board ran work (P-state decay)
        self.gpu_mem_clock = np.ones(G)
        self.gpu_fan = np.zeros(G)
        self.fan_rpm = np.zeros(N)
        self.fresh = True   # before the first tick: fans of the nodes the run starts on are set then
        self._fan_speed = np.zeros(N + G)   # sealed racks: chassis fan groups, then one per GPU blower
        self._fan_groups = replace(af.server_fan_groups(N, self.fan, node.chassis_fan_count, self._fan_speed[:N],
                                                        self.gpu, topo.gpu_node, self._fan_speed[N:]),
                                   speed_frac=self._fan_speed)  # the buffer the ticks write the speeds into
        self.rack_exhaust = np.full(R, fac.supply_air_c)
        self.rack_pa: np.ndarray | None = None         # sealed racks: last chamber pressures (warm start)
        self.gpu_throttled = np.zeros(G, dtype=bool)
        self.cpu_temp = np.full(N, fac.supply_air_c)   # CPU package (twin.model.cpu_load)
        self.cooling_short = False
        # conditions the faults degrade
        self.fan_ok = np.ones(N, dtype=bool)
        self.psu_ok = np.full(N, node.psu_count, dtype=np.int64)   # working PSUs per node
        self.gpu_cap_w = np.full(G, np.inf)                       # per-GPU power cap
        self.plenum_frac = 1.0                                    # share of CRAH airflow and capacity
        self.cooling_capacity_w = fac.cooling_capacity_kw * 1e3
        z, zn, zr = np.zeros(G), np.zeros(N), np.zeros(R)
        none = self._no_nodes = np.zeros(0, dtype=topo.gpu_node.dtype)
        self.out = PlantOutputs(  # before the first tick: cold, idle, full clocks
            gpu_power_w=z, gpu_util=z, gpu_clock=np.ones(G), gpu_mem_clock=np.ones(G), node_dc_w=zn, node_gpu_w=zn,
            node_wall_w=zn, node_cpu_w=zn, node_cpu_util=zn, node_airflow_m3_s=zn, node_inlet_c=np.full(N, fac.supply_air_c), node_exhaust_c=zn,
            rack_demand_m3_s=zr, rack_supply_m3_s=zr, rack_recirc_frac=zr, it_w=0.0, facility_w=0.0,
            cooling_w=0.0, overhead_w=0.0, alarms=Alarms(none, none, none, zn, None))
        self._facility = FacilityTerms(fac, R)   # cooling.plant_power per tick, its fixed terms cached
        self._fast = (CompiledStep(self, LOADING_GPU_GB_S, PREFILL_CHUNK_TOKENS) if self.kernels == "numba"
                      else None)

    @property
    def cooling_available_w(self) -> float:
        """Heat the plant can remove now: capacity x share of CRAH units running (cooling_failure)."""
        return self.cooling_capacity_w * self.plenum_frac

    @property
    def crah_airflow_m3_s(self) -> float:
        """Air the running CRAH units deliver to the floor."""
        return self.fac.plenum_airflow_per_rack_m3_s * self.R * self.plenum_frac

    def facility_w(self, it_w: float) -> float:
        """Facility power at an IT load with today's cooling (plant_power's total_w, to the last bit)."""
        return self._facility.at(it_w, self.cooling_available_w, self.crah_airflow_m3_s)[0]

    def _gpu_work(self, serving: ServingOutputs, clock: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-GPU tick-average DRAM GB/s and SM utilisation of each replica's serving work."""
        lay = self.lay
        rep_gb, rep_u = np.zeros(lay.n_rep), np.zeros(lay.n_rep)
        rep_clock = np.append(clock, 1.0)[lay.rep_gpus].min(axis=1)
        for p, pf in enumerate(lay.perf):
            reps = lay.pool_reps[p]
            if len(reps):
                rep_gb[reps], rep_u[reps] = pw.replica_gpu_work(
                    pf.weights_bytes, pf.active_fraction, pf.active_params, pf.kv_bytes_per_token,
                    pf.state_bytes_per_seq, pf.n_gpus, pf.pp, pf.decode_tflops, serving.decode_batch[reps],
                    serving.kv_tokens[reps], serving.interval_s[reps], serving.decode_time_frac[reps],
                    serving.prefill_tok_s[reps], pf.prefill_gpus, PREFILL_CHUNK_TOKENS, rep_clock[reps])
                split = lay.splits[p]
                if split is not None:  # llama.cpp offload: the cards read and compute only their layers
                    rep_gb[reps] *= split.gpu_frac
                    rep_u[reps] *= split.gpu_frac
        # per GPU: the sum over its tenants (a time-sliced replica's interval already carries its share)
        gb = np.bincount(self.gpair_gpu, weights=rep_gb[self.gpair_rep], minlength=self.G)
        u = np.bincount(self.gpair_gpu, weights=rep_u[self.gpair_rep], minlength=self.G)
        return gb, np.minimum(u, 1.0)

    def _host_util(self, st: np.ndarray, serving: ServingOutputs) -> np.ndarray:
        """CPU utilisation the workload asks of each node: its replicas' engine loops + tokens/s."""
        share = self._pair_share
        sp = st[self.pair_node]
        live = (sp == WARM) | (sp == SERVING) | (sp == DRAINING)
        busy = np.bincount(self.pair_node, weights=self._pair_busy * live, minlength=self.N)
        tok = serving.tokens_s + serving.prefill_tok_s
        tok_n = np.bincount(self.pair_node, weights=tok[self.pair_rep] * share, minlength=self.N)
        return pw.host_cpu_util(busy, tok_n, self.core_s_per_token, self.cpu.cores)

    def _air(self) -> tuple[np.ndarray, ...]:
        """(node airflow, node inlet, rack server flow, rack supply, rack hot-air share) this tick."""
        fac, topo, node, gpu = self.fac, self.topo, self.node, self.gpu
        rack = topo.node_rack
        if fac.containment == "sealed":
            sr = fac.sealed_rack
            # the room's fans never change, only their speeds: one FanGroups, speeds written in place
            speed = self._fan_speed
            np.divide(self.fan_rpm, self.fan.max_rpm, out=speed[:self.N])
            speed[self.N:] = self.gpu_fan
            fans = self._fan_groups
            bal = af.rack_balance(fans, rack, self.R, plenum_pa=sr.plenum_pa * self.plenum_frac ** 2,
                                blower_free_flow_m3_s=sr.blower_free_flow_m3_s, blower_shutoff_pa=sr.blower_shutoff_pa,
                                blower_speed_frac=sr.blower_speed_frac, leak_area_m2=sr.leakage_area_m2,
                                rho_kg_m3=fac.air_density_kg_m3, guess_pa=self.rack_pa)
            self.rack_pa = bal.chamber_pa
            # blowers drawing more than the running CRAHs deliver pull room air back through the floor
            blow_c = af.blower_intake_c(self.supply_c, float(np.mean(self.rack_exhaust)), float(bal.blower_m3_s.sum()),
                                        self.crah_airflow_m3_s)
            rack_in = af.sealed_inlet_c(blow_c, self.rack_exhaust, bal.blower_m3_s, bal.leak_in_m3_s)
            seen = bal.leak_in_m3_s + bal.blower_m3_s
            hot = np.divide(bal.leak_in_m3_s, seen, out=np.zeros(self.R), where=seen > 0)
            return (bal.node_m3_s, rack_in[rack], np.bincount(rack, weights=bal.node_m3_s, minlength=self.R),
                    bal.blower_m3_s, hot)
        blower = gpu.blower_airflow_m3_s * self.gpu_fan.reshape(self.N, self.gpn).sum(axis=1)
        chassis = node.chassis_fan_count * pw.fan_airflow_m3_s(self.fan.max_airflow_m3_s, self.fan_rpm, self.fan.max_rpm)
        airflow = chassis + blower
        demand = np.bincount(rack, weights=airflow, minlength=self.R)
        supply = np.full(self.R, fac.plenum_airflow_per_rack_m3_s * self.plenum_frac)
        recirc = th.recirculation_frac(demand, supply)
        node_frac = th.node_recirculation_frac(recirc[rack], topo.node_height, fac.recirculation_top_bias)
        return airflow, th.mixed_inlet_c(self.supply_c, self.rack_exhaust[rack], node_frac), demand, supply, recirc

    def _heat_numpy(self, on: np.ndarray, airflow: np.ndarray, inlet: np.ndarray, parts, node_dc: np.ndarray,
                    g_pow: np.ndarray, gb_s: np.ndarray, powered: np.ndarray) -> tuple[np.ndarray, ...]:
        """Temperatures, exhausts and blowers this tick: (node exhaust, GPUs throttled, hot nodes).
        What reaches the air is each part's power less what its own mass takes up this tick (first
        law): a warming GPU or CPU heats the exhaust only as fast as its heatsink passes the heat on,
        so no exhaust is hotter than the surfaces that heated it."""
        topo, node, gpu, fac, dt = self.topo, self.node, self.gpu, self.fac, self.dt
        rho = fac.air_density_kg_m3
        cpu0 = self.cpu_temp
        self.cpu_temp = cpu_temp_step_c(cpu0, inlet, parts.cpu_w, dt)
        cpu_stored_j = CPU_HEAT_CAPACITY_J_PER_K * (self.cpu_temp - cpu0)
        # the fans of a powered node drive an air stream through it; an unpowered node has none (its
        # coasting fans stop within seconds and its parts cool by natural convection into the rack air)
        stream = on & (airflow > th.NO_FLOW_M3_S)
        # GPUs breathe chassis air pre-heated by part of the CPU/memory/platform heat
        preheat = np.where(stream, th.exhaust_c(0.0, node.gpu_preheat_frac * th.heat_to_air_w(
            parts.upstream_w, cpu_stored_j, dt), airflow, rho), 0.0)
        g_amb = (inlet + preheat)[topo.gpu_node]
        die0, sink0 = self.gpu_temp, self.gpu_sink
        self.gpu_temp, self.gpu_sink, self.gpu_mem = th.gpu_thermal_step(
            die0, sink0, self.gpu_mem, g_amb, g_pow, pw.gpu_dram_w_per_gb_s(gpu) * gb_s, self.gpu_fan, gpu, dt)
        gpu_stored_j = th.gpu_stored_j(die0, self.gpu_temp, sink0, self.gpu_sink, gpu)
        node_air_w = th.heat_to_air_w(node_dc, np.bincount(topo.gpu_node, weights=gpu_stored_j, minlength=self.N)
                                      + cpu_stored_j, dt)
        exhaust = np.where(stream, th.exhaust_c(inlet, node_air_w, airflow, rho), inlet)
        rack = topo.node_rack
        flow = np.bincount(rack, weights=airflow, minlength=self.R)
        flow_w = np.bincount(rack, weights=airflow * exhaust, minlength=self.R)
        self.rack_exhaust = np.where(flow > 1e-9, flow_w / np.maximum(flow, 1e-9), self.supply_c)
        # a node with no stream of its own: the air at its back is the rack's hot-aisle air
        exhaust = np.where(stream, exhaust, np.where(flow[rack] > 1e-9, self.rack_exhaust[rack], inlet))
        self.gpu_mem_clock = th.memory_clock_frac(self.gpu_mem, gpu.memory_junction_max_c)
        fan_target = np.where(powered, th.fan_curve_frac(self.gpu_temp, gpu.min_fan_frac, FAN_START_C,
                                                         gpu.fan_target_c), 0.0)
        self.gpu_fan = th.first_order_lag(self.gpu_fan, fan_target, GPU_FAN_TAU_S, dt)
        throttled = powered & (self.gpu_temp > gpu.slowdown_temp_c)
        hot = np.unique(topo.gpu_node[np.flatnonzero(powered & (self.gpu_temp >= gpu.shutdown_temp_c))])
        return exhaust, throttled, hot

    def step(self, state: np.ndarray, gpu_ok: np.ndarray, serving: ServingOutputs,
             rep_share: np.ndarray | None = None, gpu_train: np.ndarray | None = None,
             cpu_extra_util: np.ndarray | None = None) -> PlantOutputs:
        """One tick. `rep_share` (R,): each replica's share of its GPUs' time when GPUs are shared;
        `gpu_train` (G,): share of each GPU's time a training job runs (GEMM-bound: SMs fully busy,
        DRAM at TRAIN_DRAM_FRAC of peak); `cpu_extra_util` (N,): package utilisation CPU-resident
        engines add (twin.model.cpu_load)."""
        if self._fast is not None:
            return self._step_compiled(state, gpu_ok, serving, rep_share, gpu_train, cpu_extra_util)
        dt = self.dt
        topo, gpu, node, fan = self.topo, self.gpu, self.node, self.fan
        st = state
        self.t_s += dt
        # ---- GPU work, P-states and clocks before any facility cap
        g_state = st[topo.gpu_node]
        has_rep = self._has_rep
        resident = (g_state == WARM) | (g_state == SERVING) | (g_state == DRAINING)
        serving_g = resident & has_rep
        pr, pg = self.gpair_rep, self.gpair_gpu
        w = 1.0 if rep_share is None else rep_share[pr]
        busy_p = (serving.prefill_frac[pr] + serving.decode_frac[pr]) * w
        gpu_util = pw.clip(np.where(serving_g, np.bincount(pg, weights=busy_p, minlength=self.G), 0.0), 0.0, 1.0)
        powered = (g_state != OFF) & (g_state != FAILED)
        loading = g_state == LOADING
        resident = resident | loading
        gb_s, sm_u = self._gpu_work(serving, self.out.gpu_clock)
        gb_s = np.where(loading, LOADING_GPU_GB_S, np.where(serving_g, gb_s, 0.0)) * self.gpu_mem_clock
        sm_u = np.where(serving_g, sm_u, 0.0)
        if gpu_train is not None:  # training jobs: the GEMMs keep the SMs full (board at its limit)
            train = np.where(resident & ~loading, gpu_train, 0.0)
            sm_u = np.minimum(sm_u + train * TRAINING_ACTIVITY, 1.0)
            gb_s = gb_s + train * TRAIN_DRAM_FRAC * gpu.memory_bandwidth_gb_s * self.gpu_mem_clock
            gpu_util = pw.clip(gpu_util + train, 0.0, 1.0)
        self.gpu_last_work_s = np.where(powered & ((gb_s > 0) | (sm_u > 0)), self.t_s, self.gpu_last_work_s)
        active = pw.pstate_active(resident, self.t_s - self.gpu_last_work_s, False, gpu)
        idle_w = pw.gpu_idle_power_w(active, gpu)
        c_th = th.throttle_clock_frac(self.gpu_temp, gpu.slowdown_temp_c, gpu.shutdown_temp_c)
        c_lim = pw.clock_for_board_limit(np.minimum(gpu.board_power_w, self.gpu_cap_w), idle_w, gb_s, sm_u, gpu)
        powered &= gpu_ok  # a failed GPU has dropped off the bus
        clock0 = np.where(powered, np.minimum(c_th, c_lim), 1.0)
        if self.fresh:  # the nodes a run starts on have been running: blowers at their set point
            self.gpu_fan = np.where(powered, th.fan_curve_frac(self.gpu_temp, gpu.min_fan_frac, FAN_START_C,
                                                               gpu.fan_target_c), 0.0)
        # ---- the node's other parts; chassis fans: full speed during power-on (POST fan test),
        # else following the hottest GPU
        on = (st != OFF) & (st != FAILED)
        gmax = self.gpu_temp.reshape(self.N, self.gpn).max(axis=1)
        rpm_target = fan.min_rpm + (fan.max_rpm - fan.min_rpm) * pw.clip(
            (gmax - FAN_START_C) / (gpu.fan_target_c - FAN_START_C), 0.0, 1.0)
        rpm_target = np.where(st == POWERING_ON, fan.max_rpm, rpm_target)
        driven = on & self.fan_ok
        rpm_target = np.where(driven, rpm_target, 0.0)
        if self.fresh:  # ... and chassis fans spinning at theirs, not spinning up from rest
            self.fan_rpm = np.where(driven & (st != POWERING_ON), rpm_target, self.fan_rpm)
            self.fresh = False
        self.fan_rpm = th.first_order_lag(self.fan_rpm, rpm_target, CHASSIS_FAN_TAU_S, dt)
        host = self._host_util(st, serving)
        if cpu_extra_util is not None:  # CPU-only pools and offloaded layers stream on their cores
            host = pw.clip(host + cpu_extra_util, 0.0, 1.0)
        cpu_util = cpu_util_for_state(node, st, host, self._cpu_table)
        parts = node_parts_w(node, self.cpu, self.nic, fan, cpu_util=cpu_util,
                             dimm_activity=dimm_activity_for_state(st), fan_rpm=self.fan_rpm, powered=on,
                             nic_powered=on & (st != POWERING_ON), fans_driven=driven)
        other_dc = parts.other_w
        psus = np.maximum(self.psu_ok, 1)
        # ---- GPU power last, so that a facility cap can be solved for against everything else
        clock = self.limiter.clock_limit(CapPreview(clock0=clock0, powered=powered, idle_w=idle_w, mem_gb_s=gb_s,
                                                    sm_util=sm_u, other_dc_w=other_dc, psus_working=psus,
                                                    facility_w_at=self.facility_w))
        g_pow = np.where(powered, pw.gpu_board_power_w(idle_w, gb_s, sm_u, clock, gpu), 0.0)
        gpu_node_w = np.bincount(topo.gpu_node, weights=g_pow, minlength=self.N)
        node_dc = parts.dc_w(gpu_node_w)
        node_wall = pw.wall_power_w(node_dc, self.psu, psus, node.input_voltage_v, self._psu_curve)
        # redundant PSUs: the survivors trip when the node asks for more than they are rated for
        overload = np.flatnonzero(on & (self.psu_ok < node.psu_count) & (node_dc > self.psu_ok * self.psu.rated_w))
        # ---- air and heat
        airflow, inlet, demand, supply, recirc = self._air()
        exhaust, throttled, hot = self._heat_numpy(on, airflow, inlet, parts, node_dc, g_pow, gb_s, powered)
        return self._close(gpu_util, clock, g_pow, node_dc, gpu_node_w, node_wall, parts.cpu_w, cpu_util, airflow,
                           inlet, exhaust, demand, supply, recirc, throttled, overload, hot, gmax)

    def _step_compiled(self, st: np.ndarray, gpu_ok: np.ndarray, serving: ServingOutputs, rep_share, gpu_train,
                       cpu_extra_util) -> PlantOutputs:
        """step() through twin.sim.plant_step's compiled passes: the same tick in the same order."""
        fs = self._fast
        self.t_s += self.dt
        gpu_util, powered, idle_w, clock0, on, gmax, cpu_util, cpu_w, other_dc, psus = fs.clocks(
            self, st, gpu_ok, serving, rep_share, gpu_train, cpu_extra_util)
        clock = self.limiter.clock_limit(CapPreview(clock0=clock0, powered=powered, idle_w=idle_w, mem_gb_s=fs.gb_s,
                                                    sm_util=fs.sm_u, other_dc_w=other_dc, psus_working=psus,
                                                    facility_w_at=self.facility_w, kernels="numba"))
        g_pow, gpu_node_w, node_dc, node_wall, overload = fs.power(self, clock, powered, idle_w, other_dc, psus, on)
        airflow, inlet, demand, supply, recirc, exhaust, throttled, hot, changed = fs.air_heat(
            self, on, cpu_w, node_dc, g_pow, powered)
        return self._close(gpu_util, clock, g_pow, node_dc, gpu_node_w, node_wall, cpu_w, cpu_util, airflow,
                           inlet, exhaust, demand, supply, recirc, throttled, overload, hot, gmax, changed)

    def _close(self, gpu_util, clock, g_pow, node_dc, gpu_node_w, node_wall, cpu_w, cpu_util, airflow, inlet, exhaust,
               demand, supply, recirc, throttled, overload, hot, gmax, changed=None) -> PlantOutputs:
        """The tick's end, both paths: throttle changes; the cooling plant (heat it cannot remove
        warms the room); the outputs."""
        dt = self.dt
        if changed is None:  # (the compiled step finds them in its heat pass)
            changed = np.flatnonzero(throttled != self.gpu_throttled)[:1000]
        self.gpu_throttled = throttled
        it_w = float(np.add.reduce(node_wall))   # ndarray.sum's own reduction (the same pairwise sum)
        facility_w, cooling_w, overhead_w, heat_excess_w = self._facility.at(it_w, self.cooling_available_w,
                                                                             self.crah_airflow_m3_s)
        # no excess: spare capacity brings the supply back to its set point (any negative excess relaxes it)
        excess = heat_excess_w if heat_excess_w > 0 else -1.0
        self.supply_c = self._facility.room_supply_c(self.supply_c, excess, dt)
        short = heat_excess_w > 0
        short_changed = None
        if short != self.cooling_short:
            self.cooling_short = short_changed = short
        self.out = PlantOutputs(
            gpu_power_w=g_pow, gpu_util=gpu_util, gpu_clock=clock, gpu_mem_clock=self.gpu_mem_clock,
            node_dc_w=node_dc, node_gpu_w=gpu_node_w, node_wall_w=node_wall, node_cpu_w=np.asarray(cpu_w, dtype=float),
            node_cpu_util=np.asarray(cpu_util, dtype=float), node_airflow_m3_s=airflow, node_inlet_c=inlet,
            node_exhaust_c=exhaust, rack_demand_m3_s=demand, rack_supply_m3_s=supply, rack_recirc_frac=recirc,
            it_w=it_w, facility_w=facility_w, cooling_w=cooling_w, overhead_w=overhead_w,
            alarms=Alarms(psu_overload=overload, throttle_changed=changed, hot_nodes=hot, gpu_max_c=gmax,
                          cooling_short=short_changed))
        return self.out
