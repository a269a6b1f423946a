"""Turn a finished simulation's state arrays into telemetry columns and a run summary.

Kept apart from the engine so the dynamics file stays about dynamics; no SimPy here.
Column meanings and units: docs/telemetry.md.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.model.columns import Coded, repeat_each
from twin.model.metrics import nearest_rank, percentile
from twin.model.states import NODE_STATES
from twin.sim.events import EventLog, Kind
from twin.sim.requests import DONE, DROP_REASONS, DROPPED, INFLIGHT, QUEUED, STATUS_NAMES
from twin.sim.sampler import Sampler
from twin.sim.spool import BlockTable, TableSink
from twin.spec.scenario import Scenario
from twin.spec.topology import Topology



@dataclass
class SimResult:
    """Columns for every telemetry table plus the run summary (see docs/telemetry.md)."""
    scenario: Scenario
    topology: Topology
    columns: dict[str, dict[str, np.ndarray | list]]
    summary: dict
    wall_time_s: float
    thresholds: dict = field(default_factory=dict)


Rows = Callable[[int, dict[str, np.ndarray]], dict]  # (first sample, spool block) -> the table's columns


def gpu_rows(topo: Topology, sample_s: float) -> Rows:
    """The gpus table's columns for a block of the GPU spool (first sample index, (n, G) arrays)."""
    G = topo.n_gpus
    # the id columns in the table's own int32 (docs/telemetry.md): tiled at half the bytes, no cast per block
    ids = {"gpu_id": np.arange(G), "node_id": topo.gpu_node, "rack_id": topo.node_rack[topo.gpu_node],
           "gpu_index": topo.gpu_index}
    ids = {k: np.asarray(v, dtype=np.int32) for k, v in ids.items()}

    def rows(first: int, blk: dict[str, np.ndarray]) -> dict:
        n = len(blk["power_w"])
        return {"time_s": repeat_each((np.arange(first, first + n) + 1) * sample_s, G),
                **{k: np.tile(v, n) for k, v in ids.items()}, **{k: v.ravel() for k, v in blk.items()}}

    return rows


def node_rows(topo: Topology, sample_s: float) -> Rows:
    """The nodes table's columns for a block of the node spool. Blocks must come in order from
    the first (or again from any block start): energy is a running sum carried between them."""
    N = topo.n_nodes
    node_id, rack_id = np.arange(N, dtype=np.int32), np.asarray(topo.node_rack, dtype=np.int32)
    carry = {}

    def rows(first: int, blk: dict[str, np.ndarray]) -> dict:
        n = len(blk["power_w"])
        # energy: the running sum of interval means x sample_s, carried from block to block in the
        # same order as one cumsum over the whole table
        start = carry.get(first, np.zeros(N))
        e = np.cumsum(np.vstack([start[None, :], blk["power_w"].astype(np.float64) * sample_s]), axis=0)[1:]
        carry[first + len(e)] = e[-1].copy()  # a view would keep the whole block's sums alive
        out = {k: v.ravel() for k, v in blk.items() if k != "state"}
        return {"time_s": repeat_each((np.arange(first, first + n) + 1) * sample_s, N),
                "node_id": np.tile(node_id, n), "rack_id": np.tile(rack_id, n),
                **out, "state": Coded(blk["state"].ravel(), NODE_STATES), "energy_j": e.ravel()}

    return rows


# the spooled tables: (the Sampler's spool, its rows, the columns before and after the spool's own)
SPOOLED = {"gpus": (lambda sm: sm.gpu, gpu_rows, ("time_s", "gpu_id", "node_id", "rack_id", "gpu_index"), ()),
           "nodes": (lambda sm: sm.node, node_rows, ("time_s", "node_id", "rack_id"), ("energy_j",))}


def _spooled(name: str, samples: Sampler, topo: Topology, scenario: Scenario) -> tuple:
    """(the spool, its rows formatter, the table's column names) of spooled table `name`."""
    spool_of, rows_of, lead, tail = SPOOLED[name]
    spool = spool_of(samples)
    return spool, rows_of(topo, scenario.spec.simulation.table_sample_s(name)), (*lead, *spool.dtypes, *tail)


def stream_tables(samples: Sampler, topo: Topology, scenario: Scenario, sinks: Mapping[str, TableSink]) -> None:
    """Tap the spooled tables (SPOOLED) named in `sinks` before the first sample: their rows go to
    the sink while the simulation runs (twin.sim.spool), and collect() hands them over as streamed."""
    for name, sink in sinks.items():
        if name in SPOOLED:
            spool, rows, _ = _spooled(name, samples, topo, scenario)
            spool.tap(lambda first, blk, rows=rows, sink=sink: sink.put(rows(first, blk)))


def _spooled_table(name: str, samples: Sampler, topo: Topology, scenario: Scenario,
                   sink: TableSink | None) -> BlockTable:
    spool, rows, names = _spooled(name, samples, topo, scenario)

    def blocks() -> Iterator[dict]:
        for first, blk in spool.blocks():
            yield rows(first, blk)

    return BlockTable(names, blocks, spool, sink)


@dataclass(frozen=True)
class RequestRecord:
    """Every request's fate at the end of the run, (n,) arrays indexed by request id."""
    arrival_s: np.ndarray
    pool: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    status: np.ndarray        # FUTURE, QUEUED, INFLIGHT, DONE, DROPPED
    drop_reason: np.ndarray   # index into DROP_REASONS
    admitted_s: np.ndarray
    first_token_s: np.ndarray
    done_s: np.ndarray
    replica: np.ndarray
    network_s: np.ndarray
    retries: np.ndarray
    preemptions: np.ndarray | None = None   # paged-KV preemptions (recompute) of each request

    @property
    def n(self) -> int:
        return len(self.arrival_s)

def _interval_percentiles(done_s: np.ndarray, values: np.ndarray, times: np.ndarray, sample_s: float,
                          qs: tuple[float, ...]) -> np.ndarray:
    """Percentiles of `values` over requests finishing in each sample interval (t - sample_s, t]; NaN if none."""
    out = np.full((len(qs), times.size), np.nan)
    ok = np.isfinite(done_s) & np.isfinite(values)
    if not ok.any():
        return out
    idx = np.ceil(done_s[ok] / sample_s - 1e-9).astype(np.int64) - 1
    vals = values[ok]
    keep = (idx >= 0) & (idx < times.size)
    idx, vals = idx[keep], vals[keep]
    # requests by interval, each interval's values ascending: lexsort((vals, idx)), as one sort
    # of the values and a stable sort of their intervals (a radix sort when they fit 16 bits)
    order = np.argsort(vals, kind="stable")
    by = idx[order]
    order = order[np.argsort(by.astype(np.int16) if times.size <= np.iinfo(np.int16).max else by, kind="stable")]
    idx, vals = idx[order], vals[order]
    bounds = np.searchsorted(idx, np.arange(times.size + 1))
    counts = np.diff(bounds)
    some = np.flatnonzero(counts)
    for j, q in enumerate(qs):  # each interval's sorted chunk starts at bounds[s]: an actual request's value
        out[j, some] = vals[bounds[some] + nearest_rank(counts[some], q)]
    return out


def _economics(scenario: Scenario, topo: Topology, n_samples: int, rq: RequestRecord,
               state_counts: dict[str, np.ndarray], completed: np.ndarray, it_kwh: float, fac_kwh: float) -> dict:
    """Economics summary keys (twin.economics): costs, tokens per kWh, GPU-hours by state."""
    from twin.model.economics import gpu_hours_by_state, run_economics

    spec = scenario.spec
    eco = spec.economics
    node_spec = scenario.catalogue.node(spec.topology.node_type)
    return run_economics(
        facility_energy_kwh=fac_kwh, it_energy_kwh=it_kwh,
        output_tokens=float(rq.output_tokens[completed].sum()),
        prompt_tokens=float(rq.prompt_tokens[completed].sum()),
        duration_s=n_samples * spec.simulation.sample_s, n_nodes=topo.n_nodes,
        node_capex=eco.node_price_usd if eco.node_price_usd is not None else node_spec.price_usd,
        electricity_usd_per_kwh=eco.electricity_usd_per_kwh, amortisation_years=eco.amortisation_years,
        gpu_hours=gpu_hours_by_state(state_counts, topo.gpus_per_node, spec.simulation.sample_s))


def collect(scenario: Scenario, topo: Topology, samples: Sampler, rq: RequestRecord, events: EventLog,
            links: dict | None, wall_time_s: float, jobs: tuple[list[dict], dict] | None = None,
            sinks: Mapping[str, TableSink] | None = None) -> SimResult:
    """Assemble every telemetry table and the run summary from what the parts recorded.

    `jobs`: the training part's sampled rows and summary totals (twin.sim.training), if any.
    `sinks`: the streamed tables' sinks (stream_tables), handed over with their tables."""
    S, N, R = samples.n_samples, topo.n_nodes, topo.n_racks
    sample_s = scenario.spec.simulation.sample_s
    node_spec = scenario.catalogue.node(scenario.spec.topology.node_type)
    gpu = scenario.catalogue.gpu(node_spec.gpu)
    times = (np.arange(S) + 1) * sample_s
    cols: dict[str, dict[str, Any]] = {}

    rows = [chr(ord("A") + int(topo.rack_row[r])) for r in topo.node_rack]
    cols["topology"] = {
        "node_id": np.arange(N), "rack_id": topo.node_rack, "row": rows,
        "rack_name": [topo.rack_names[r] for r in topo.node_rack], "slot": topo.node_slot,
        "u_position": topo.node_u, "height_u": np.full(N, node_spec.height_u),
        "x_m": topo.node_xyz[:, 0], "y_m": topo.node_xyz[:, 1], "z_m": topo.node_xyz[:, 2],
        "rack_x_m": topo.rack_xy[topo.node_rack, 0], "rack_y_m": topo.rack_xy[topo.node_rack, 1],
        "facing": ["+y" if topo.rack_row[r] % 2 == 0 else "-y" for r in topo.node_rack],
        "node_type": [node_spec.name] * N, "gpus": np.full(N, topo.gpus_per_node),
        "pool": [topo.pool_names[p] if p >= 0 else "" for p in topo.node_pool], "unit_id": topo.node_unit,
    }
    for name in SPOOLED:
        cols[name] = _spooled_table(name, samples, topo, scenario, (sinks or {}).get(name))
    cols["racks"] = {"time_s": repeat_each(times, R), "rack_id": np.tile(np.arange(R), S),
                     **{k: v.ravel() for k, v in samples.rack.items()}}

    # requests
    status = rq.status.copy()
    st_names = np.array(STATUS_NAMES, dtype=object)[status]
    reasons = np.array(DROP_REASONS, dtype=object)[rq.drop_reason]
    ttft = rq.first_token_s - rq.arrival_s
    lat = rq.done_s - rq.arrival_s
    completed = status == DONE
    ttft_out = np.where(np.isfinite(rq.first_token_s), ttft, np.nan)
    lat_out = np.where(completed, lat, np.nan)
    cols["requests"] = {
        "request_id": np.arange(rq.n), "pool": np.array(topo.pool_names, dtype=object)[rq.pool].tolist(),
        "arrival_s": rq.arrival_s, "admitted_s": rq.admitted_s, "first_token_s": rq.first_token_s,
        "done_s": np.where(completed | (status == DROPPED), rq.done_s, np.nan),
        "prompt_tokens": rq.prompt_tokens, "output_tokens": rq.output_tokens,
        "replica_id": rq.replica, "status": st_names.tolist(), "drop_reason": reasons.tolist(),
        "ttft_s": ttft_out, "latency_s": lat_out, "network_s": rq.network_s, "retries": rq.retries,
        "preemptions": rq.preemptions if rq.preemptions is not None else np.zeros(rq.n, dtype=np.int32),
    }

    # facility, incl. per-interval request counts and percentiles
    fc = samples.fac
    arrivals = np.bincount(np.clip(np.ceil(rq.arrival_s / sample_s - 1e-9).astype(np.int64) - 1, 0, S - 1),
                           minlength=S)[:S] if rq.n else np.zeros(S, np.int64)
    # an arrival exactly at t=0 belongs to the first interval
    done_idx = np.ceil(rq.done_s / sample_s - 1e-9) - 1
    comp = np.bincount(done_idx[completed].astype(np.int64).clip(0, S - 1), minlength=S)[:S]
    drop = np.bincount(done_idx[status == DROPPED].astype(np.int64).clip(0, S - 1), minlength=S)[:S]
    ttft_p = _interval_percentiles(np.where(completed, rq.done_s, np.nan), ttft_out, times, sample_s, (50, 99))
    lat_p = _interval_percentiles(np.where(completed, rq.done_s, np.nan), lat_out, times, sample_s, (50, 99))
    count = {name: samples.state_counts[:, i] for i, name in enumerate(NODE_STATES)}
    it_energy = np.cumsum(fc["it_power_w"].astype(np.float32).astype(np.float64) * sample_s)
    fac_energy = np.cumsum(fc["facility_power_w"].astype(np.float32).astype(np.float64) * sample_s)
    cols["facility"] = {
        "time_s": times, "it_power_w": fc["it_power_w"], "cooling_power_w": fc["cooling_power_w"],
        "overhead_power_w": fc["overhead_power_w"], "facility_power_w": fc["facility_power_w"],
        "pue": fc["facility_power_w"] / np.maximum(fc["it_power_w"], 1e-9), "supply_c": fc["supply_c"],
        "arrivals": arrivals, "arrival_rate_per_s": arrivals / sample_s, "queued": fc["queued"],
        "in_flight": fc["in_flight"], "completed": comp, "dropped": drop,
        "nodes_off": count["OFF"], "nodes_booting": count["POWERING_ON"] + count["BOOTING"],
        "nodes_loading": count["LOADING"], "nodes_warm": count["WARM"], "nodes_serving": count["SERVING"],
        "nodes_draining": count["DRAINING"], "nodes_failed": count["FAILED"],
        "ttft_p50_s": ttft_p[0], "ttft_p99_s": ttft_p[1], "latency_p50_s": lat_p[0], "latency_p99_s": lat_p[1],
        "it_energy_j": it_energy, "facility_energy_j": fac_energy,
    }
    cols["events"] = events.columns()
    if links is not None:
        cols["links"] = links
    if jobs is not None:
        rows, _ = jobs
        cols["jobs"] = {k: [v for r in rows for v in r[k]] for k in (rows[0] if rows else {})}

    drop_counts = {DROP_REASONS[i]: int((rq.drop_reason[status == DROPPED] == i).sum())
                   for i in range(1, len(DROP_REASONS))}
    it_kwh = float(it_energy[-1]) / 3.6e6 if S else 0.0
    fac_kwh = float(fac_energy[-1]) / 3.6e6 if S else 0.0
    on_counts = S and (N - count["OFF"] - count["FAILED"])
    summary = {
        "requests_arrived": int(rq.n),
        "requests_completed": int(completed.sum()),
        "requests_dropped": int((status == DROPPED).sum()),
        "requests_queued": int(((status == QUEUED)).sum()),
        "requests_in_flight": int((status == INFLIGHT).sum()),
        "drop_reasons": {k: v for k, v in drop_counts.items() if v},
        "ttft_p50_s": percentile(ttft_out[completed], 50), "ttft_p99_s": percentile(ttft_out[completed], 99),
        "latency_p50_s": percentile(lat_out, 50), "latency_p99_s": percentile(lat_out, 99),
        "peak_it_power_w": float(fc["it_power_w"].max()) if S else 0.0,
        "peak_facility_power_w": float(fc["facility_power_w"].max()) if S else 0.0,
        "it_energy_kwh": it_kwh, "facility_energy_kwh": fac_kwh,
        "pue": fac_kwh / it_kwh if it_kwh > 0 else None,
        "peak_gpu_temp_c": samples.peak_gpu_temp_c if S else None,
        "throttled_gpu_s": float(samples.throttled_gpu_s),
        "peak_nodes_on": int(np.max(on_counts)) if S else 0,
        "peak_nodes_serving": int(count["SERVING"].max()) if S else 0,
        "nodes_ignited": events.count(Kind.IGNITE),
        "thermal_shutdowns": events.count(Kind.THERMAL_SHUTDOWN),
        "faults": events.count(Kind.FAULT),
        "units_lost": events.count(Kind.UNIT_LOST),
        "request_retries": int(rq.retries.sum()),
        "preemptions": int(rq.preemptions.sum()) if rq.preemptions is not None else 0,
        "peak_arrival_rate_per_s": float((arrivals / sample_s).max()) if S else 0.0,
    }
    summary.update(_economics(scenario, topo, S, rq, count, completed, it_kwh, fac_kwh))
    if jobs is not None:
        summary.update(jobs[1])
    thresholds = {"gpu_slowdown_c": gpu.slowdown_temp_c, "gpu_shutdown_c": gpu.shutdown_temp_c,
                  "gpu_fan_target_c": gpu.fan_target_c}
    return SimResult(scenario=scenario, topology=topo, columns=cols, summary=summary, wall_time_s=wall_time_s,
                     thresholds=thresholds)
