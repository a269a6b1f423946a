"""What a scenario will cost to simulate, derived before simulating: ticks, requests, telemetry
rows, memory. Validation (twin.model.validate) refuses a scenario the engine cannot run on this
machine and names the field to change, instead of letting it die with a MemoryError after an
hour or run for days.

The memory model is linear in what the engine holds at its peak (the sampled telemetry arrays,
their Arrow tables and the per-request arrays), with per-row costs measured on real runs
(benchmarks/bench_resources.py prints estimate vs measured peak RSS; docs/safety.md):

    memory_B = BASE_B + sum(rows_of_table x BYTES_PER_ROW[table]) + requests x BYTES_PER_REQUEST

Every figure is an estimate with its source; the limits are deliberately generous (a scenario
near a limit is one nobody should run by accident), except memory, which is what this machine has.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from twin.model.fabric import cable_count
from twin.spec.catalogue import Catalogue
from twin.spec.scenario import ScenarioSpec, SurgeSpec

ARRIVAL_GRID_S = 0.25
"""Step of the grid on which twin.model.workload.arrival_times_s integrates the arrival rate
(its `grid_s` default; a test keeps the two equal)."""

MAX_TICKS = 2_000_000                 # simulation.duration_s / dt_s (SimulationSpec checks it too)
MAX_AUTOSCALER_STEPS = 2_000_000      # duration_s / scheduler.interval_s: one Python pass each
MAX_EXPECTED_REQUESTS = 100_000_000   # ~30 GB of request state before any telemetry
MAX_ARRIVAL_GRID_POINTS = 50_000_000  # duration_s / ARRIVAL_GRID_S: three float64 arrays of it
MAX_TELEMETRY_ROWS = 2_000_000_000    # tens of GB of Parquet; nobody opens that by accident
MAX_FAULTS = 10_000                   # one SimPy process each, with its own repair timer
# Engine work: ticks x (nodes + TICK_OVERHEAD_NODES). Measured (manifest wall_time_s): tiny 0.72 ms
# per tick with 4 nodes (the fixed cost of one tick is about what 100 nodes add), surge 1.4 ms
# with 160 nodes, a 1,600-node hall 18.6 ms, i.e. 4-11 us per node-tick; 5e8 node-ticks is
# 30-90 minutes on one core, and a 16,000-node hour at dt_s = 1 is 5.8e7.
TICK_OVERHEAD_NODES = 100
MAX_NODE_TICKS = 5e8
SECONDS_PER_NODE_TICK = 11e-6  # the slowest measured rate, for the message
MEMORY_SHARE = 0.8                    # of physical (or cgroup) memory a run may plan to use

# Fitted to peak RSS of `twin run --no-stage` (benchmarks/bench_resources.py --hall --hall-16000,
# os.wait4 of the child; x86-64, numpy 2, pyarrow, numba's compiled kernels loaded, the gpus /
# nodes / links tables streaming during the simulation; 2 cores; decimal MB): tiny 266; surge 651;
# surge without fabric 573 (411 at sample_s 10); surge with the GPU table every 10 s 611;
# request-heavy tiny at sample_s 60 (240 rows): 481 with 370,500 requests, 851 with 1,482,000,
# i.e. 333 B per request at the margin; hall-1600 1,750; hall-16000 (13.05M requests) 6,796 as
# shipped, 6,449 without its fabric, 6,560 without it and every table at 1 s. Estimates: 456 /
# 755 / 685 / 520 / 661 / 588 / 990 / 2,693 / 6,970 / 6,586 / 6,586 MB: at or above every
# measurement, within 1.35x + 100 MB. The earlier fit (340 MB + 290 B per request) was below the
# largest runs once the kernels and the streaming encoders came; which of the two the extra
# belongs to is not separated, so it is split between the base and the per-request cost.
BASE_B = 455e6  # Python + numpy + pyarrow + simpy + networkx + numba and its kernels, catalogue loaded
# Bytes per row at the peak: the engine's sample arrays, the flattened columns collect() builds
# (int64 ids, Python lists for string columns), the Arrow table and Parquet buffers.
BYTES_PER_ROW = {"gpus": 60.0, "nodes": 120.0, "racks": 160.0, "facility": 400.0, "links": 100.0}
BYTES_PER_REQUEST = 345.0  # ~20 per-request engine arrays, queues, the requests table (Python lists of strings)
# Once a spooled table (gpus, nodes) would exceed SPILL_ROWS rows, the engine keeps only
# BLOCK_SAMPLES samples of it in memory and spills the rest to a temporary directory
# (twin.sim.spool); the Parquet writer then holds one row group of WRITER_ROW_GROUP_ROWS rows
# (twin.telemetry.write.ROW_GROUP_ROWS takes it from here). The links table is kept whole.
SPILL_ROWS = 8_000_000
BLOCK_SAMPLES = 64
WRITER_ROW_GROUP_ROWS = 1 << 20
STREAMED_TABLES = ("gpus", "nodes")


def held_rows(total_rows: float, width: int) -> float:
    """Rows of a spooled table (`width` elements per sample) in memory at once (twin.sim.spool)."""
    if total_rows <= SPILL_ROWS:
        return total_rows
    return float(BLOCK_SAMPLES * width + WRITER_ROW_GROUP_ROWS)


@dataclass(frozen=True)
class ResourceEstimate:
    """What simulating a scenario will take (estimates; units in the names)."""
    nodes: int
    ticks: int
    node_ticks: float             # ticks x (nodes + TICK_OVERHEAD_NODES): the engine's work
    samples: int
    autoscaler_steps: float
    expected_requests: float
    arrival_draws: float          # values the arrival sampler draws (mean + 6 sigma head room)
    arrival_grid_points: float
    rows: dict[str, float]        # per telemetry table
    memory_b: float
    held_rows: dict[str, float] | None = None  # rows of each table in memory at the peak

    def __post_init__(self) -> None:
        if self.held_rows is None:
            object.__setattr__(self, "held_rows", dict(self.rows))

    @property
    def telemetry_rows(self) -> float:
        return sum(self.rows.values())


def excess_integral_s(t_end_s: float, surge: SurgeSpec) -> float:
    """Integral over [0, t_end_s] of the surge envelope's excess shape e(t) in [0, 1], seconds.

    m(t) = 1 + (peak - 1) e(t), with e rising linearly over ramp_s from start_s, 1 over plateau_s,
    falling linearly over decay_s (twin.model.workload.surge_multiplier). Exact for that
    piecewise-linear shape, and safe for huge values (no interpolation grid, inf-tolerant).
    """
    t0 = surge.start_s
    t1 = t0 + surge.ramp_s
    t2 = t1 + surge.plateau_s
    t3 = t2 + surge.decay_s

    def ramp(a: float, b: float, rising: bool) -> float:  # integral of the linear part over [a, b] ∩ [0, T]
        lo, hi = max(a, 0.0), min(b, t_end_s)
        if hi <= lo or b <= a:
            return 0.0
        width = b - a
        fa, fb = (lo - a) / width, (hi - a) / width  # fractions along the segment
        mean = (fa + fb) / 2 if rising else 1 - (fa + fb) / 2
        return mean * (hi - lo)

    plateau = max(0.0, min(t2, t_end_s) - max(t1, 0.0))
    return ramp(t0, t1, True) + plateau + ramp(t2, t3, False)


def expected_requests(spec: ScenarioSpec) -> float:
    """Mean number of arrivals: base_rate x integral of m(t) over the run (requests)."""
    w, d = spec.workload, spec.simulation.duration_s
    return w.base_rate_per_s * (d + (w.surge.peak_multiplier - 1) * excess_integral_s(d, w.surge))


def estimate(spec: ScenarioSpec, cat: Catalogue) -> ResourceEstimate:
    """The resources simulating `spec` takes (needs the node type in `cat` for GPUs per node)."""
    sim, topo = spec.simulation, spec.topology
    ticks = int(math.floor(sim.duration_s / sim.dt_s + 1e-9))
    per_sample = max(1, int(round(sim.sample_s / sim.dt_s)))
    samples = ticks // per_sample
    sampled_ticks = samples * per_sample  # the engine's horizon: whole base samples

    def table_samples(table: str) -> float:  # rows per element of a table with its own interval
        return float(sampled_ticks // max(1, sim.table_ticks(table)))

    racks = topo.rows * topo.racks_per_row
    nodes = racks * topo.nodes_per_rack
    gpn = cat.node(topo.node_type).gpu_count if topo.node_type in cat.entries.get("nodes", {}) else 1
    rows = {"gpus": table_samples("gpus") * nodes * gpn, "nodes": table_samples("nodes") * nodes,
            "racks": float(samples) * racks, "facility": float(samples),
            "links": table_samples("links") * cable_count(spec.fabric, nodes, racks)}
    req = expected_requests(spec)
    shape = spec.workload.arrival.shape if spec.workload.arrival.process == "gamma" else 1.0
    draws = req + 6 * math.sqrt(req / min(shape, 1.0)) + 16  # arrival_times_s's first block
    grid = sim.duration_s / ARRIVAL_GRID_S + 2
    width = {"gpus": nodes * gpn, "nodes": nodes}
    held = {t: held_rows(n, width[t]) if t in STREAMED_TABLES else n for t, n in rows.items()}
    memory = (BASE_B + sum(held[t] * BYTES_PER_ROW[t] for t in held) + req * BYTES_PER_REQUEST
              + max(draws * 16, grid * 24))  # gaps + cumulative sums, or the rate grid's three arrays
    return ResourceEstimate(nodes=nodes, ticks=ticks, node_ticks=float(ticks) * (nodes + TICK_OVERHEAD_NODES), samples=samples, autoscaler_steps=sim.duration_s / spec.scheduler.interval_s,
                            expected_requests=req, arrival_draws=draws, arrival_grid_points=grid, rows=rows,
                            memory_b=memory, held_rows=held)


def available_memory_b() -> float:
    """Memory this process may use: physical RAM, or the cgroup (container) limit if lower (bytes)."""
    total = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    for limit in (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")):
        try:
            text = limit.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = float(text)
    return total


def _gb(b: float) -> str:
    return f"{b / 1e9:,.1f} GB"


def resource_problems(spec: ScenarioSpec, cat: Catalogue, machine_memory_b: float | None = None) -> list[str]:
    """One line per bound `spec` exceeds, naming the field to change (empty when it fits).

    `machine_memory_b`: the memory of the machine (default: this one's, available_memory_b); a
    run may plan to use MEMORY_SHARE of it.
    """
    est = estimate(spec, cat)
    machine = available_memory_b() if machine_memory_b is None else machine_memory_b
    budget = MEMORY_SHARE * machine
    sim, w = spec.simulation, spec.workload
    problems = []
    if est.node_ticks > MAX_NODE_TICKS:
        problems.append(f"simulation.dt_s: {est.ticks:,} ticks of {sim.dt_s:g} s over {est.nodes:,} nodes is {est.node_ticks:,.3g} node-ticks (limit {MAX_NODE_TICKS:,.0f}, about "
                        f"{MAX_NODE_TICKS * SECONDS_PER_NODE_TICK / 3600:.1f} h on one core); raise dt_s or shorten "
                        f"simulation.duration_s")
    if est.autoscaler_steps > MAX_AUTOSCALER_STEPS:
        problems.append(f"scheduler.interval_s: {spec.scheduler.interval_s:g} s means {est.autoscaler_steps:,.0f} autoscaler "
                        f"passes over {sim.duration_s:g} s (limit {MAX_AUTOSCALER_STEPS:,}); raise interval_s")
    if est.arrival_grid_points > MAX_ARRIVAL_GRID_POINTS:
        problems.append(f"simulation.duration_s: {sim.duration_s:g} s needs {est.arrival_grid_points:,.0f} arrival-rate "
                        f"grid points (limit {MAX_ARRIVAL_GRID_POINTS:,}, one per {ARRIVAL_GRID_S:g} s); shorten the run")
    if not est.arrival_draws <= MAX_EXPECTED_REQUESTS:
        field = ("workload.arrival.shape" if est.expected_requests <= MAX_EXPECTED_REQUESTS
                 else "workload.base_rate_per_s or workload.surge.peak_multiplier")
        problems.append(f"{field}: the workload draws ~{est.arrival_draws:,.3g} arrivals "
                        f"({est.expected_requests:,.3g} expected requests at {w.base_rate_per_s:g}/s x surge "
                        f"{w.surge.peak_multiplier:g}; limit {MAX_EXPECTED_REQUESTS:,}); lower it")
    if est.telemetry_rows > MAX_TELEMETRY_ROWS:
        problems.append(f"simulation.sample_s: {sim.sample_s:g} s gives {est.telemetry_rows:,.3g} telemetry rows "
                        f"(limit {MAX_TELEMETRY_ROWS:,}); raise sample_s or shorten simulation.duration_s")
    if len(spec.faults) > MAX_FAULTS:
        problems.append(f"faults: {len(spec.faults):,} faults (limit {MAX_FAULTS:,})")
    if not problems and est.memory_b > budget:
        cost = {t: est.held_rows[t] * BYTES_PER_ROW[t] for t in est.rows}
        biggest = max(cost, key=cost.__getitem__)
        own = biggest in STREAMED_TABLES and getattr(sim.telemetry, biggest).sample_s is not None
        sampling = f"simulation.telemetry.{biggest}.sample_s" if own else "simulation.sample_s"
        field, fix = ((sampling, "raise sample_s or shorten simulation.duration_s")
                      if sum(cost.values()) >= est.expected_requests * BYTES_PER_REQUEST else
                      ("workload.base_rate_per_s", "lower base_rate_per_s or workload.surge.peak_multiplier"))
        problems.append(f"{field}: the run needs an estimated {_gb(est.memory_b)} of memory "
                        f"({est.telemetry_rows:,.0f} telemetry rows at sample_s {sim.sample_s:g} s, "
                        f"{est.expected_requests:,.0f} expected requests), more than the {_gb(budget)} this "
                        f"machine can give ({MEMORY_SHARE:.0%} of {_gb(machine)}); {fix}")
    return problems
