"""The physical plant: GPU, node, rack and facility power; air; temperatures; clocks.

One `step` per tick, in the order the physics closes its loop:
  1. GPU activity from the serving step and the node states; clocks from the thermal throttle
     (start-of-tick temperature) and any per-GPU power cap;
  2. node power of every part but the GPUs (twin.model.node_power, THE composition), chassis fans
     following the hottest GPU;
  3. the clock limiter (facility power cap, twin.sim.power_cap) solves for GPU clocks against
     everything else; GPU power; node DC and wall power;
  4. air: node airflow, rack recirculation, inlets and exhausts; GPU die/sink temperatures and
     blower fans (twin.model.thermal);
  5. facility power, cooling and the room's supply air.
What should make something else happen (a PSU overloaded, a GPU crossing its slowdown or shutdown
temperature, the room starting to heat up) is returned as `Alarms`; the lifecycle reacts.

The plant holds what it integrates (temperatures, fan speeds, rack exhausts, supply air) and the
conditions faults degrade (fans, PSUs, per-GPU caps, CRAH airflow and capacity).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from twin.model import power as pw
from twin.model import serving as sv
from twin.model import thermal as th
from twin.model.node_power import cpu_util_for_state, dimm_activity_for_state, node_parts_w
from twin.model.states import DRAINING, FAILED, LOADING, OFF, POWERING_ON, SERVING, WARM
from twin.model.thermal import CHASSIS_FAN_TAU_S, FAN_START_C, GPU_FAN_TAU_S
from twin.sim.batching import ServingOutputs
from twin.spec.catalogue import Catalogue, NodeSpec
from twin.spec.scenario import FacilitySpec
from twin.spec.topology import Topology

LOADING_GPU_ACTIVITY = 0.10  # estimate: H2D weight copies + allocator warm-up


@dataclass(frozen=True)
class CapPreview:
    """Everything a facility cap controller needs to choose GPU clocks this tick."""
    clock0: np.ndarray          # (G,) clock before the facility cap (throttle, per-GPU cap)
    powered: np.ndarray         # (G,) bool
    activity: np.ndarray        # (G,)
    extra_w: np.ndarray         # (G,) resident-model idle increase
    other_dc_w: np.ndarray      # (N,) node DC power of everything but the GPUs
    psus_working: np.ndarray    # (N,) PSUs sharing the load (at least 1)
    cooling_available_w: float


class ClockLimiter(Protocol):
    def clock_limit(self, preview: CapPreview) -> np.ndarray: ...


@dataclass(frozen=True)
class Alarms:
    """What the physics says should make something else happen this tick."""
    psu_overload: np.ndarray     # nodes asking more of their surviving PSUs than they are rated for
    throttle_changed: np.ndarray  # GPUs that crossed their slowdown temperature (first 1,000)
    hot_nodes: np.ndarray        # nodes with a GPU at or above its shutdown temperature
    gpu_max_c: np.ndarray        # (N,) hottest GPU per node at the start of the tick
    cooling_short: bool | None   # IT heat newly above (True) / below (False) the cooling, else None


@dataclass(frozen=True)
class PlantOutputs:
    gpu_power_w: np.ndarray
    gpu_util: np.ndarray
    gpu_clock: np.ndarray
    node_dc_w: np.ndarray
    node_gpu_w: np.ndarray
    node_wall_w: np.ndarray
    node_airflow_m3_s: np.ndarray
    node_inlet_c: np.ndarray
    node_exhaust_c: np.ndarray
    rack_demand_m3_s: np.ndarray
    rack_supply_m3_s: np.ndarray
    rack_recirc_frac: np.ndarray
    it_w: float
    facility_w: float
    cooling_w: float
    overhead_w: float
    alarms: Alarms


class Plant:
    """Power, air and heat of the whole hall."""

    def __init__(self, topo: Topology, cat: Catalogue, node: NodeSpec, fac: FacilitySpec, gpu_rep: np.ndarray,
                 limiter: ClockLimiter, dt_s: float) -> None:
        self.topo, self.node, self.fac, self.gpu_rep, self.limiter, self.dt = topo, node, fac, gpu_rep, limiter, dt_s
        self.gpu, self.cpu, self.psu = cat.gpu(node.gpu), cat.cpu(node.cpu), cat.psu(node.psu)
        self.nic, self.fan = cat.nic(node.nic), cat.fan(node.chassis_fan)
        N, G, R = topo.n_nodes, topo.n_gpus, topo.n_racks
        self.N, self.G, self.R, self.gpn = N, G, R, topo.gpus_per_node
        # integrated state
        self.supply_c = fac.supply_air_c
        self.gpu_temp = np.full(G, fac.supply_air_c)   # die
        self.gpu_sink = np.full(G, fac.supply_air_c)   # heatsink (thermal.gpu_step_c)
        self.gpu_fan = np.zeros(G)
        self.fan_rpm = np.zeros(N)
        self.rack_exhaust = np.full(R, fac.supply_air_c)
        self.gpu_throttled = np.zeros(G, dtype=bool)
        self.cooling_short = False
        # conditions the faults degrade
        self.fan_ok = np.ones(N, dtype=bool)
        self.psu_ok = np.full(N, node.psu_count, dtype=np.int64)   # working PSUs per node
        self.gpu_cap_w = np.full(G, np.inf)                       # per-GPU power cap
        self.plenum_frac = 1.0                                    # share of CRAH airflow and capacity
        self.cooling_capacity_w = fac.cooling_capacity_kw * 1e3
        z, zn, zr = np.zeros(G), np.zeros(N), np.zeros(R)
        none = np.zeros(0, dtype=np.int64)
        self.out = PlantOutputs(  # before the first tick: cold, idle, full clocks
            gpu_power_w=z, gpu_util=z, gpu_clock=np.ones(G), node_dc_w=zn, node_gpu_w=zn, node_wall_w=zn,
            node_airflow_m3_s=zn, node_inlet_c=np.full(N, fac.supply_air_c), node_exhaust_c=zn,
            rack_demand_m3_s=zr, rack_supply_m3_s=zr, rack_recirc_frac=zr, it_w=0.0, facility_w=0.0,
            cooling_w=0.0, overhead_w=0.0, alarms=Alarms(none, none, none, zn, None))

    @property
    def cooling_available_w(self) -> float:
        """Heat the plant can remove now: capacity x share of CRAH units running (cooling_failure)."""
        return self.cooling_capacity_w * self.plenum_frac

    def facility_w(self, it_w: float) -> float:
        """Facility power at an IT load with today's cooling (power.facility_power_w)."""
        fac = self.fac
        return float(pw.facility_power_w(np.float64(it_w), self.cooling_available_w, fac.cooling_cop,
                                         fac.electrical_loss_fraction, fac.fixed_overhead_kw * 1e3)[0])

    def step(self, state: np.ndarray, gpu_ok: np.ndarray, serving: ServingOutputs) -> PlantOutputs:
        dt = self.dt
        topo, gpu, node, fac, fan = self.topo, self.gpu, self.node, self.fac, self.fan
        st = state
        # ---- GPU activity and clocks before any facility cap
        g_state = st[topo.gpu_node]
        has_rep = self.gpu_rep >= 0
        rep_idx = np.where(has_rep, self.gpu_rep, 0)
        serving_g = np.isin(g_state, (SERVING, DRAINING, WARM)) & has_rep
        pre = np.where(serving_g, serving.prefill_frac[rep_idx], 0.0)
        decf = np.where(serving_g, serving.decode_frac[rep_idx], 0.0)
        activity = pre * sv.ACTIVITY_PREFILL + decf * sv.decode_activity(np.where(serving_g, serving.batch[rep_idx], 1.0))
        activity = np.where(g_state == LOADING, LOADING_GPU_ACTIVITY, activity)
        gpu_util = np.clip(pre + decf, 0.0, 1.0)
        powered = ~np.isin(g_state, (OFF, FAILED))
        loaded = np.isin(g_state, (WARM, SERVING, DRAINING))
        extra = np.where(loaded, gpu.loaded_idle_extra_w, 0.0)
        # clocks: thermal throttle (from the temperature at the start of the tick) and power cap
        c_th = th.throttle_clock_frac(self.gpu_temp, gpu.slowdown_temp_c, gpu.shutdown_temp_c)
        capped = np.isfinite(self.gpu_cap_w)
        c_cap = np.where(capped, pw.clock_for_power_cap(np.where(capped, self.gpu_cap_w, 1e9), gpu.idle_power_w,
                                                        gpu.board_power_w, activity, extra), 1.0)
        powered &= gpu_ok  # a failed GPU has dropped off the bus
        clock0 = np.where(powered, np.minimum(c_th, c_cap), 1.0)
        # ---- the node's other parts; chassis fans: full speed during power-on (POST fan test),
        # else following the hottest GPU
        on = ~np.isin(st, (OFF, FAILED))
        gmax = self.gpu_temp.reshape(self.N, self.gpn).max(axis=1)
        rpm_target = fan.min_rpm + (fan.max_rpm - fan.min_rpm) * np.clip(
            (gmax - FAN_START_C) / (gpu.fan_target_c - FAN_START_C), 0.0, 1.0)
        rpm_target = np.where(st == POWERING_ON, fan.max_rpm, rpm_target)
        driven = on & self.fan_ok
        rpm_target = np.where(driven, rpm_target, 0.0)
        self.fan_rpm = th.first_order_lag(self.fan_rpm, rpm_target, CHASSIS_FAN_TAU_S, dt)
        parts = node_parts_w(node, self.cpu, self.nic, fan, cpu_util=cpu_util_for_state(node, st),
                             dimm_activity=dimm_activity_for_state(st), fan_rpm=self.fan_rpm, powered=on,
                             nic_powered=on & (st != POWERING_ON), fans_driven=driven)
        other_dc = parts.other_w
        psus = np.maximum(self.psu_ok, 1)
        # ---- GPU power last, so that a facility cap can be solved for against everything else
        clock = self.limiter.clock_limit(CapPreview(clock0=clock0, powered=powered, activity=activity, extra_w=extra,
                                                    other_dc_w=other_dc, psus_working=psus,
                                                    cooling_available_w=self.cooling_available_w))
        g_pow = np.where(powered, pw.gpu_power_w(gpu.idle_power_w, gpu.board_power_w, activity, clock, extra), 0.0)
        gpu_node_w = np.bincount(topo.gpu_node, weights=g_pow, minlength=self.N)
        node_dc = parts.dc_w(gpu_node_w)
        node_wall = pw.wall_power_w(node_dc, self.psu, psus)
        # redundant PSUs: the survivors trip when the node asks for more than they are rated for
        overload = np.flatnonzero(on & (self.psu_ok < node.psu_count) & (node_dc > self.psu_ok * self.psu.rated_w))
        # ---- air: node airflow (chassis fans + GPU blowers), rack recirculation, inlets
        blower = gpu.blower_airflow_m3_s * self.gpu_fan.reshape(self.N, self.gpn).sum(axis=1)
        chassis = node.chassis_fan_count * pw.fan_airflow_m3_s(fan.max_airflow_m3_s, self.fan_rpm, fan.max_rpm)
        airflow = chassis + blower
        rho = fac.air_density_kg_m3
        rack = topo.node_rack
        demand = np.bincount(rack, weights=airflow, minlength=self.R)
        supply = np.full(self.R, fac.plenum_airflow_per_rack_m3_s * self.plenum_frac)
        recirc = th.recirculation_frac(demand, supply)
        node_frac = th.node_recirculation_frac(recirc[rack], topo.node_height, fac.recirculation_top_bias)
        inlet = th.mixed_inlet_c(self.supply_c, self.rack_exhaust[rack], node_frac)
        exhaust = th.exhaust_c(inlet, node_dc, airflow, rho)
        flow_w = np.bincount(rack, weights=airflow * exhaust, minlength=self.R)
        self.rack_exhaust = np.where(demand > 1e-9, flow_w / np.maximum(demand, 1e-9), self.supply_c)
        # GPUs breathe chassis air pre-heated by part of the CPU/memory/platform heat
        preheat = th.exhaust_c(0.0, node.gpu_preheat_frac * parts.upstream_w, airflow, rho)
        g_amb = (inlet + preheat)[topo.gpu_node]
        self.gpu_temp, self.gpu_sink = th.gpu_step_c(self.gpu_temp, self.gpu_sink, g_amb, g_pow, self.gpu_fan, gpu, dt)
        fan_target = np.where(powered, th.fan_curve_frac(self.gpu_temp, gpu.min_fan_frac, FAN_START_C,
                                                         gpu.fan_target_c), 0.0)
        self.gpu_fan = th.first_order_lag(self.gpu_fan, fan_target, GPU_FAN_TAU_S, dt)
        throttled = powered & (self.gpu_temp > gpu.slowdown_temp_c)
        changed = np.flatnonzero(throttled != self.gpu_throttled)[:1000]
        self.gpu_throttled = throttled
        hot = np.unique(topo.gpu_node[np.flatnonzero(powered & (self.gpu_temp >= gpu.shutdown_temp_c))])
        # ---- facility
        it_w = float(node_wall.sum())
        fac_w, cool_w, over_w = pw.facility_power_w(np.float64(it_w), self.cooling_available_w, fac.cooling_cop,
                                                    fac.electrical_loss_fraction, fac.fixed_overhead_kw * 1e3)
        self.supply_c = th.room_supply_c(self.supply_c, fac.supply_air_c, it_w - self.cooling_available_w,
                                         fac.room_heat_capacity_j_per_k, fac.supply_recovery_s, dt)
        short = it_w > self.cooling_available_w
        short_changed = None
        if short != self.cooling_short:
            self.cooling_short = short_changed = short
        self.out = PlantOutputs(
            gpu_power_w=g_pow, gpu_util=gpu_util, gpu_clock=clock, node_dc_w=node_dc, node_gpu_w=gpu_node_w,
            node_wall_w=node_wall, node_airflow_m3_s=airflow, node_inlet_c=inlet, node_exhaust_c=exhaust,
            rack_demand_m3_s=demand, rack_supply_m3_s=supply, rack_recirc_frac=recirc, it_w=it_w, facility_w=fac_w,
            cooling_w=cool_w, overhead_w=over_w,
            alarms=Alarms(psu_overload=overload, throttle_changed=changed, hot_nodes=hot, gpu_max_c=gmax,
                          cooling_short=short_changed))
        return self.out
