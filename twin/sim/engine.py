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
from collections.abc import Callable, Generator, Mapping

import numpy as np
import simpy

from twin.model import power as pw
from twin.model.node_power import node_parts_w, node_wall_w
from twin.model.states import DRAINING, SERVING, WARM
from twin.model.workload import generate_requests
from twin.sim import compiled
from twin.sim.gc_scope import older_objects_frozen
from twin.sim.autoscaler import Autoscaler
from twin.sim.batching import ServingStep
from twin.sim.events import EventLog
from twin.sim.faults import Fleet, fault_process
from twin.sim.layout import build_layout, pool_offload
from twin.sim.lifecycle import Lifecycle
from twin.sim.network import Network
from twin.sim.plant import LOADING_GPU_GB_S, Plant
from twin.sim.power_cap import FacilityCap
from twin.sim.requests import RequestBook, arrivals_before, kv_reservation_b
from twin.sim.result import RequestRecord, SimResult, collect, stream_tables
from twin.sim.router import ROUTERS, ReplicaLoad
from twin.sim.sampler import Sampler, SamplerLayout
from twin.sim.spool import TableSink
from twin.sim.tenancy import GpuArbiter, Tenancy
from twin.sim.training import build_training
from twin.spec.scenario import Scenario
from twin.spec.simulation import SAMPLED_TABLES
from twin.spec.topology import build_topology

Progress = Callable[[float, dict], None]  # (fraction, {'t_s', 'wall_s'} each tick, or {'msg'} before the first)


class Engine:
    """One run of one scenario: the parts, wired, and the tick that sequences them."""

    def __init__(self, scenario: Scenario, progress: Progress | None = None, kernels: str = "auto",
                 sinks: Mapping[str, TableSink] | None = None) -> None:
        self.sc, self.progress, self.sinks = scenario, progress, dict(sinks or {})
        # compiled kernels give the same bytes as the numpy/Python ones (tests/test_kernels.py)
        self.kernels = compiled.resolve(kernels)
        if self.kernels == "numba":
            compiled.prepare_numba()
        self.route = ROUTERS[self.kernels]
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
                                       full_b=kv_reservation_b(req, lay.plans, worst_case=True),
                                       compiled=self.kernels == "numba")
        self.serving = ServingStep(lay, book, node, dt, cpu, kernels=self.kernels)
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
        self.plant = Plant(topo, cat, node, spec.facility, lay, engines, self.cap, dt, kernels=self.kernels)
        self.cap.facility_w_at = self.plant.facility_w
        self.network = Network(spec, lay, topo, node, nic, dt, book, log, kernels=self.kernels)
        # engine start after the weights (twin.model.coldstart): a unit's first start compiles, later ones
        # load the torch.compile cache
        self.life = Lifecycle(spec, lay, topo, node, tuple(lay.pool_warmup_first_s), env,
                              np.random.default_rng(s_boot), book, self.plant, log, dt,
                              warmup_cached_s=tuple(lay.pool_warmup_cached_s), kernels=self.kernels)
        unit_peak_w = np.array([len(n) for n in lay.unit_nodes], dtype=float) * peak_w
        self.autoscaler = Autoscaler(spec, lay, topo, env, self.life, book, self.plant, self.network.unit_cut,
                                     unit_peak_w, self.cap.allows_ignition)
        self.life.on_unit_lost = self.autoscaler.decide  # lost capacity: decide now, not at the next interval
        self.fleet = Fleet(self.life, self.plant, self.cap, self.network, log, node.psu_count,
                           spec.facility.cooling_capacity_kw * 1e3)
        # several tenants on one GPU (colocated pools, training jobs): the arbiter splits GPU time
        self.jobs = build_training(spec, cat, node, topo.gpus_per_node) if spec.training.jobs else None
        self.job_rows: list[dict] = []
        self.arbiter = None
        if self.jobs is not None or lay.shared_gpus:
            job_gpus = self.jobs.gpu_ids if self.jobs else []
            prio = self.jobs.priority() if self.jobs else np.zeros(0, dtype=np.int64)
            self.arbiter = GpuArbiter(lay.pair_rep, lay.pair_gpu, lay.n_rep, topo.n_gpus, job_gpus, prio)
            self.job_unit = np.array([topo.node_unit[j.node] for j in spec.training.jobs], dtype=np.int64)
        # replicas that work on the CPU (CPU-only pools, offloaded layers) load the package: busy share
        # x their share of the cores (twin.model.cpu_load); offloaded GPUs work only part of a step
        gpu_busy, cpu_load, gpu_w = pool_offload(scenario, lay)
        self.rep_gpu_busy = gpu_busy[lay.rep_pool] if (gpu_busy < 1).any() else None
        self.cpu_reps = np.flatnonzero(cpu_load[lay.rep_pool] > 0)
        self.cpu_rep_node = lay.rep_first_node[self.cpu_reps]
        self.cpu_rep_frac = cpu_load[lay.rep_pool][self.cpu_reps]
        self.sampler = Sampler(_sampler_layout(topo, lay, gpu_w), n_samples, ticks_per_sample, dt,
                               table_ticks={t: sim.table_ticks(t) for t in SAMPLED_TABLES}, kernels=self.kernels)
        stream_tables(self.sampler, topo, scenario, self.sinks)  # the spooled ones: gpus, nodes
        if "links" in self.sinks:
            self.network.stream_links(self.sampler.links, self.sinks["links"])

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
        env, dt, n_ticks = self.env, self.dt, self.n_ticks
        t0 = time.perf_counter()
        if self.progress and self.kernels == "numba":  # the first tick loads (or, once, compiles) them
            self.progress(0.0, {"msg": "loading the compiled kernels (the first run on a machine compiles them: ~40 s)"})
        for k in range(n_ticks):
            self._tick(k)
            if self.progress and (k % 60 == 0 or k == n_ticks - 1):
                self.progress((k + 1) / n_ticks, {"t_s": (k + 1) * dt, "wall_s": time.perf_counter() - t0})
            nxt = env.now + dt  # the time SimPy's Timeout(dt) would be popped at (now + delay)
            if k + 1 < n_ticks and env.peek() > nxt:
                # nothing else is due up to and including the next tick: the timeout would be the
                # next event popped and this generator resumed at once, with no other process in
                # between; advance the clock as that pop would (SimPy keeps it in Environment._now)
                env._now = nxt
                continue
            yield env.timeout(dt)

    def _tick(self, k: int) -> None:
        t0 = k * self.dt
        book, life, net, plant = self.book, self.life, self.network, self.plant
        book.arrive(t0, t0 + self.dt)
        book.expire(t0)
        net.step(life.state, book.rep_inflight, self.out)
        self._admit(t0)
        ten = self._tenancy(t0)
        self.out = self.serving.step(t0, plant.out.gpu_clock, net.rep_nic_gb_s, net.rep_cross_lat_s,
                                     plant.out.gpu_mem_clock, speed=None if ten is None else ten.rep_speed)
        plant.step(life.state, life.gpu_ok, self.out, rep_share=self._gpu_share(ten),
                   gpu_train=None if ten is None or self.jobs is None else ten.gpu_train,
                   cpu_extra_util=self._cpu_util())
        if self.jobs is not None:
            self.jobs.advance(t0, self.dt, plant.out.gpu_clock)
            self.jobs.account_energy(plant.out.gpu_power_w, self.dt)
        life.react()
        life.follow_traffic(book.rep_inflight)
        life.progress_loading(net.loading_rate_b_s())
        self._sample(k)

    def _tenancy(self, t0: float) -> Tenancy | None:
        """Split shared GPUs' time for this tick; pin the units training jobs keep busy."""
        if self.arbiter is None:
            return None
        st, topo = self.life.state, self.topo
        busy = self.book.rep_inflight > 0
        if self.jobs is None:
            return self.arbiter.split(busy, np.zeros(0, dtype=bool))
        gpu_up = self.life.gpu_ok & np.isin(st[topo.gpu_node], (WARM, SERVING, DRAINING))
        want = self.jobs.active(t0, gpu_up)
        ten = self.arbiter.split(busy, want)
        self.jobs.take(t0, want, ten.job_share)
        self.life.unit_pinned[:] = False
        self.life.unit_pinned[self.job_unit[want & (self.job_unit >= 0)]] = True
        return ten

    def _gpu_share(self, ten: Tenancy | None) -> np.ndarray | None:
        """(R,) share of its GPUs' time each replica keeps them working: time slice x offload busy share."""
        if ten is None:
            return self.rep_gpu_busy
        return ten.rep_speed if self.rep_gpu_busy is None else ten.rep_speed * self.rep_gpu_busy

    def _job_memory_b(self) -> np.ndarray | float:
        """(G,) bytes the training jobs hold on each GPU while they are not done (twin.model.training)."""
        if self.jobs is None:
            return 0.0
        return self.jobs.gpu_memory_b(self.topo.n_gpus)

    def _cpu_util(self) -> np.ndarray | None:
        """(N,) package utilisation the CPU-resident replicas add this tick, None without any."""
        if not len(self.cpu_reps):
            return None
        # llama.cpp's threads spin through a step whenever the replica has work (prefill or decode)
        busy = (self.book.rep_inflight[self.cpu_reps] > 0).astype(float)
        return np.bincount(self.cpu_rep_node, weights=busy * self.cpu_rep_frac, minlength=self.topo.n_nodes)

    def _admit(self, t0: float) -> None:
        """Per pool, the router sends queue heads to ready replicas; the request book applies it."""
        bk, lay = self.book, self.lay
        # the serving step and the request book may replace these arrays: hand the router today's
        load = ReplicaLoad(work_s=self.serving.rep_busy, inflight=bk.rep_inflight, kv_reserved_b=bk.rep_kv_reserved,
                           max_batch=lay.rep_max_batch, kv_cap_b=lay.rep_kv_cap,
                           prefill_s_per_tok=lay.rep_prefill_s_per_tok, interval_s=self.serving.rep_interval_s)
        retry = bk.retry_queues
        for k, main in enumerate(bk.queues):
            if not (main or retry[k]):
                continue
            ready = self.life.ready_replicas(lay.pool_reps[k], self.network.unit_cut)
            ids, reps = self.route(retry[k], main, ready, load, bk.reservation,
                                   self.req.prompt_tokens, self.req.output_tokens)
            if len(ids):
                bk.admit(np.asarray(ids, dtype=np.int64), np.asarray(reps, dtype=np.int64), t0)

    def _sample(self, k: int) -> None:
        sm, pl, o, bk = self.sampler, self.plant, self.plant.out, self.book
        sm.accumulate(gpu_power_w=o.gpu_power_w, gpu_util=o.gpu_util, node_wall_w=o.node_wall_w,
                      node_dc_w=o.node_dc_w, node_gpu_w=o.node_gpu_w, rep_tokens_s=self.out.tokens_s,
                      rep_prefill_tok_s=self.out.prefill_tok_s, node_load_gb_s=self.network.node_load_gb_s(),
                      it_w=o.it_w, cooling_w=o.cooling_w, overhead_w=o.overhead_w, facility_w=o.facility_w,
                      gpu_throttled=pl.gpu_throttled, node_cpu_w=o.node_cpu_w, node_cpu_util=o.node_cpu_util)
        if not sm.closes_interval(k):
            return
        if self.jobs is not None and sm.closes("jobs", k):
            self.job_rows.append(self.jobs.record((k + 1) * self.dt))
        links = self.network.sample((k + 1) * self.dt, sm.table_ticks["links"]) if sm.closes("links", k) else None
        sm.snapshot(k, gpu_temp_c=pl.gpu_temp, gpu_clock=o.gpu_clock, gpu_fan_frac=pl.gpu_fan,
                    gpu_throttled=pl.gpu_throttled, node_state=self.life.state, rep_kv_reserved_b=bk.rep_kv_reserved,
                    rep_inflight=bk.rep_inflight, node_inlet_c=o.node_inlet_c, node_exhaust_c=o.node_exhaust_c,
                    node_fan_rpm=pl.fan_rpm, node_airflow_m3_s=o.node_airflow_m3_s, rack_exhaust_c=pl.rack_exhaust,
                    rack_demand_m3_s=o.rack_demand_m3_s, rack_supply_m3_s=o.rack_supply_m3_s,
                    rack_recirc_frac=o.rack_recirc_frac, supply_c=pl.supply_c, queued=bk.queued(),
                    in_flight=len(bk.inflight), links=links,
                    node_cpu_temp_c=pl.cpu_temp, gpu_extra_b=self._job_memory_b())

    def result(self, wall_time_s: float) -> SimResult:
        bk, req = self.book, self.req
        rq = RequestRecord(arrival_s=req.arrival_s, pool=req.pool, prompt_tokens=req.prompt_tokens,
                           output_tokens=req.output_tokens, status=bk.status, drop_reason=bk.drop_reason,
                           admitted_s=bk.admitted_s, first_token_s=bk.first_token_s, done_s=bk.done_s,
                           replica=bk.replica, network_s=bk.network_s, retries=bk.retries,
                           preemptions=bk.preemptions)
        jobs = None if self.jobs is None else (self.job_rows, self.jobs.totals())
        links = self.network.link_columns(self.sampler.links, self.sinks.get("links"))
        return collect(self.sc, self.topo, self.sampler, rq, self.log, links, wall_time_s, jobs=jobs, sinks=self.sinks)


def _sampler_layout(topo, lay, pool_gpu_weights_b: np.ndarray) -> SamplerLayout:
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
        rep_weights_per_gpu_b=np.array([pool_gpu_weights_b[p] / perf[p].n_gpus for p in lay.rep_pool]),
        rep_n_gpus=np.array([perf[p].n_gpus for p in lay.rep_pool], dtype=float),
        gpair_rep=lay.pair_rep, gpair_gpu=lay.pair_gpu)


def simulate(scenario: Scenario, progress: Progress | None = None, kernels: str = "auto",
             sinks: Mapping[str, TableSink] | None = None) -> SimResult:
    """Run `scenario` and return telemetry columns and a summary. Deterministic for a given seed.

    `kernels`: "numba" (compiled hot loops), "numpy" (pure numpy/Python), "auto" (numba if
    installed); both give byte-identical telemetry. `sinks`: {"gpus" / "nodes" / "links": sink}
    to stream those tables into while the simulation runs (twin.telemetry.write.RunWriter.sinks); the
    result then hands them over as streamed tables.
    """
    t0 = time.perf_counter()
    with older_objects_frozen():   # the collector skips the imports' objects (twin.sim.gc_scope)
        engine = Engine(scenario, progress, kernels, sinks)
        engine.run()
        return engine.result(time.perf_counter() - t0)
