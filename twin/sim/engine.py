"""The simulation engine: wires the parts together and sequences them; the parts compute.

SimPy owns time. Discrete things happen as SimPy processes at their exact times (ignition steps,
autoscaler decisions, faults); everything continuous advances in ONE physics tick that calls the
parts in order (docs/architecture.md "One tick"):

    requests.arrive / expire -> network.step -> router -> batching -> plant (+ power cap)
    -> lifecycle.react / follow_traffic / progress_loading -> sampler

Determinism: every random draw comes from child streams of SeedSequence(seed); no wall clock,
no global RNG, no set/dict iteration order that depends on hashing.

The run covers [0, horizon) with horizon = the whole telemetry intervals that fit in
`duration_s`: every simulated tick is sampled, requests arriving at or after the horizon are not
part of the run, and nothing scheduled at or after it happens.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator

import numpy as np
import simpy

from twin.model import power as pw
from twin.model.node_power import node_parts_w, node_wall_w
from twin.model.workload import generate_requests
from twin.sim.autoscaler import Autoscaler
from twin.sim.batching import ServingStep
from twin.sim.events import EventLog
from twin.sim.faults import Fleet, fault_process
from twin.sim.layout import build_layout
from twin.sim.lifecycle import Lifecycle
from twin.sim.network import Network
from twin.sim.plant import LOADING_GPU_GB_S, Plant
from twin.sim.power_cap import FacilityCap
from twin.sim.requests import RequestBook, arrivals_before, kv_reservation_b
from twin.sim.result import RequestRecord, SimResult, collect
from twin.sim.router import ReplicaLoad, least_work_admit
from twin.sim.sampler import Sampler, SamplerLayout
from twin.spec.scenario import Scenario
from twin.spec.topology import build_topology

Progress = Callable[[float, dict], None]


class Engine:
    """One run of one scenario: the parts, wired, and the tick that sequences them."""

    def __init__(self, scenario: Scenario, progress: Progress | None = None) -> None:
        self.sc, self.progress = scenario, progress
        spec, cat = scenario.spec, scenario.catalogue
        self.topo = topo = build_topology(scenario)
        node = cat.node(spec.topology.node_type)
        cpu, nic, fan, psu, gpu = cat.cpu(node.cpu), cat.nic(node.nic), cat.fan(node.chassis_fan), cat.psu(node.psu), \
            cat.gpu(node.gpu)
        sim = spec.simulation
        self.dt = dt = sim.dt_s
        ticks_per_sample = int(round(sim.sample_s / dt))
        n_samples = int(math.floor(sim.duration_s / dt + 1e-9)) // ticks_per_sample
        self.n_ticks = n_samples * ticks_per_sample
        self.horizon_s = self.n_ticks * dt
        s_work, s_boot = np.random.SeedSequence(sim.seed).spawn(2)
        self.req = req = arrivals_before(generate_requests(spec, s_work), self.horizon_s)
        self.env = env = simpy.Environment()
        self.log = log = EventLog(topo.node_rack, lambda: env.now)
        self.lay = lay = build_layout(scenario, topo, node)
        max_ctx = np.array([cat.model(p.model).max_context for p in spec.pools])[req.pool]
        self.book = book = RequestBook(req, kv_reservation_b(req, lay.plans), max_ctx, lay.pool_kv_cap, lay.n_rep,
                                       spec.workload.timeout_s, lay.rep_first_node, log,
                                       full_b=kv_reservation_b(req, lay.plans, worst_case=True))
        self.serving = ServingStep(lay, book, node, dt, cpu)
        self.out = self.serving.idle
        # a node loading weights with its GPUs idle (the cap's floor) and one serving flat out (ramp unit)
        loading = node_parts_w(node, cpu, nic, fan, cpu_util=node.cpu_util_loading, dimm_activity=1.0,
                               fan_rpm=fan.max_rpm)
        serving = node_parts_w(node, cpu, nic, fan, cpu_util=node.cpu_util_serving, dimm_activity=1.0,
                               fan_rpm=fan.max_rpm)
        loading_gpu_w = float(pw.gpu_board_power_w(pw.gpu_active_idle_w(gpu), LOADING_GPU_GB_S, 0.0, 1.0, gpu))
        floor_w = node_wall_w(node, loading, node.gpu_count * loading_gpu_w, psu)
        peak_w = node_wall_w(node, serving, node.gpu_count * gpu.board_power_w, psu)
        self.cap = FacilityCap(gpu, psu, node.input_voltage_v, topo.gpu_node, topo.n_nodes, lay, floor_w, log)
        engines = tuple(cat.engine(p.engine) for p in spec.pools)
        self.plant = Plant(topo, cat, node, spec.facility, lay, engines, self.cap, dt)
        self.cap.facility_w_at = self.plant.facility_w
        self.network = Network(spec, lay, topo, node, nic, dt, book, log)
        # engine start after the weights (twin.model.coldstart): a unit's first start compiles, later ones
        # load the torch.compile cache
        self.life = Lifecycle(spec, lay, topo, node, tuple(lay.pool_warmup_first_s), env,
                              np.random.default_rng(s_boot), book, self.plant, log, dt,
                              warmup_cached_s=tuple(lay.pool_warmup_cached_s))
        unit_peak_w = np.array([len(n) for n in lay.unit_nodes], dtype=float) * peak_w
        self.autoscaler = Autoscaler(spec, lay, topo, env, self.life, book, self.plant, self.network.unit_cut,
                                     unit_peak_w, self.cap.allows_ignition)
        self.life.on_unit_lost = self.autoscaler.decide  # lost capacity: decide now, not at the next interval
        self.fleet = Fleet(self.life, self.plant, self.cap, self.network, log, node.psu_count,
                           spec.facility.cooling_capacity_kw * 1e3)
        self.sampler = Sampler(_sampler_layout(topo, lay), n_samples, ticks_per_sample, dt)

    # ------------------------------------------------------------------ processes
    def run(self) -> None:
        env = self.env
        self.life.initial_units()
        env.process(self._ticker())
        env.process(self.autoscaler.process())
        for i, f in enumerate(self.sc.spec.faults):
            env.process(fault_process(env, i, f, self.fleet, self.topo.gpus_per_node, self.horizon_s))
        env.run(until=self.horizon_s)

    def _ticker(self) -> Generator:
        t0 = time.perf_counter()
        for k in range(self.n_ticks):
            self._tick(k)
            if self.progress and (k % 60 == 0 or k == self.n_ticks - 1):
                self.progress((k + 1) / self.n_ticks, {"t_s": (k + 1) * self.dt, "wall_s": time.perf_counter() - t0})
            yield self.env.timeout(self.dt)

    def _tick(self, k: int) -> None:
        t0 = k * self.dt
        book, life, net, plant = self.book, self.life, self.network, self.plant
        book.arrive(t0, t0 + self.dt)
        book.expire(t0)
        net.step(life.state, book.rep_inflight, self.out)
        self._admit(t0)
        self.out = self.serving.step(t0, plant.out.gpu_clock, net.rep_nic_gb_s, net.rep_cross_lat_s,
                                     plant.out.gpu_mem_clock)
        plant.step(life.state, life.gpu_ok, self.out)
        life.react()
        life.follow_traffic(book.rep_inflight)
        life.progress_loading(net.loading_rate_b_s())
        self._sample(k)

    def _admit(self, t0: float) -> None:
        """Per pool, the router sends queue heads to ready replicas; the request book applies it."""
        bk, lay = self.book, self.lay
        # the serving step replaces these arrays every tick: hand the router today's
        load = ReplicaLoad(work_s=self.serving.rep_busy, inflight=bk.rep_inflight, kv_reserved_b=bk.rep_kv_reserved,
                           max_batch=lay.rep_max_batch, kv_cap_b=lay.rep_kv_cap,
                           prefill_s_per_tok=lay.rep_prefill_s_per_tok, interval_s=self.serving.rep_interval_s)
        for k, main in enumerate(bk.queues):
            if not (main or bk.retry_queues[k]):
                continue
            ready = self.life.ready_replicas(lay.pool_reps[k], self.network.unit_cut)
            ids, reps = least_work_admit(bk.retry_queues[k], main, ready, load, bk.reservation,
                                         self.req.prompt_tokens, self.req.output_tokens)
            if ids:
                bk.admit(np.array(ids, dtype=np.int64), np.array(reps, dtype=np.int64), t0)

    def _sample(self, k: int) -> None:
        sm, pl, o, bk = self.sampler, self.plant, self.plant.out, self.book
        sm.accumulate(gpu_power_w=o.gpu_power_w, gpu_util=o.gpu_util, node_wall_w=o.node_wall_w,
                      node_dc_w=o.node_dc_w, node_gpu_w=o.node_gpu_w, rep_tokens_s=self.out.tokens_s,
                      rep_prefill_tok_s=self.out.prefill_tok_s, node_load_gb_s=self.network.node_load_gb_s(),
                      it_w=o.it_w, cooling_w=o.cooling_w, overhead_w=o.overhead_w, facility_w=o.facility_w,
                      gpu_throttled=pl.gpu_throttled)
        if not sm.closes_interval(k):
            return
        sm.snapshot(k, gpu_temp_c=pl.gpu_temp, gpu_clock=o.gpu_clock, gpu_fan_frac=pl.gpu_fan,
                    gpu_throttled=pl.gpu_throttled, node_state=self.life.state, rep_kv_reserved_b=bk.rep_kv_reserved,
                    rep_inflight=bk.rep_inflight, node_inlet_c=o.node_inlet_c, node_exhaust_c=o.node_exhaust_c,
                    node_fan_rpm=pl.fan_rpm, node_airflow_m3_s=o.node_airflow_m3_s, rack_exhaust_c=pl.rack_exhaust,
                    rack_demand_m3_s=o.rack_demand_m3_s, rack_supply_m3_s=o.rack_supply_m3_s,
                    rack_recirc_frac=o.rack_recirc_frac, supply_c=pl.supply_c, queued=bk.queued(),
                    in_flight=len(bk.inflight), links=self.network.sample((k + 1) * self.dt, sm.ticks_per_sample))

    def result(self, wall_time_s: float) -> SimResult:
        bk, req = self.book, self.req
        rq = RequestRecord(arrival_s=req.arrival_s, pool=req.pool, prompt_tokens=req.prompt_tokens,
                           output_tokens=req.output_tokens, status=bk.status, drop_reason=bk.drop_reason,
                           admitted_s=bk.admitted_s, first_token_s=bk.first_token_s, done_s=bk.done_s,
                           replica=bk.replica, network_s=bk.network_s, retries=bk.retries,
                           preemptions=bk.preemptions)
        return collect(self.sc, self.topo, self.sampler, rq, self.log, self.network.link_columns(self.sampler.links),
                       wall_time_s)


def _sampler_layout(topo, lay) -> SamplerLayout:
    reps = topo.replicas
    # (replica, node) pairs for spreading per-replica quantities onto nodes without loops
    pair_rep = np.array([r.replica_id for r in reps for _ in r.node_ids], dtype=np.int64)
    pair_node = np.array([n for r in reps for n in r.node_ids], dtype=np.int64)
    perf = lay.perf
    return SamplerLayout(
        gpu_node=topo.gpu_node, gpu_rep=lay.gpu_rep, node_rack=topo.node_rack, nodes_per_rack=topo.nodes_per_rack,
        gpus_per_node=topo.gpus_per_node, n_racks=topo.n_racks, pair_rep=pair_rep, pair_node=pair_node,
        rep_n_nodes=np.bincount(pair_rep, minlength=lay.n_rep).astype(float), rep_hidden_bytes=lay.rep_hidden_bytes,
        rep_hops_intra=lay.rep_hops_intra, rep_hops_cross=lay.rep_hops_cross,
        rep_weights_per_gpu_b=np.array([perf[p].weights_bytes / perf[p].n_gpus for p in lay.rep_pool]),
        rep_n_gpus=np.array([perf[p].n_gpus for p in lay.rep_pool], dtype=float))


def simulate(scenario: Scenario, progress: Progress | None = None) -> SimResult:
    """Run `scenario` and return telemetry columns and a summary. Deterministic for a given seed."""
    t0 = time.perf_counter()
    engine = Engine(scenario, progress)
    engine.run()
    return engine.result(time.perf_counter() - t0)
