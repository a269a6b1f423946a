"""A small, hand-made run directory that follows docs/telemetry.md exactly.

Readers (scenes/, query, plots) are unit-tested against it so their tests do not depend on
the engine's physics; end-to-end tests use a real tiny run (see conftest.py). Values are
simple closed forms so expectations can be computed by hand in the tests.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from twin.model.states import NODE_STATES
from twin.telemetry.schema import to_table
from twin.telemetry.atomic import write_json_atomic
from twin.telemetry.write import write_tables


def make_synthetic_run(run_dir: Path, racks_per_row: int = 2, nodes_per_rack: int = 3,
                       samples: int = 20, sample_s: float = 10.0) -> Path:
    """Write a run of 2 rows x `racks_per_row` racks x `nodes_per_rack` nodes x 3 GPUs.

    node n at sample k (time t=(k+1)*sample_s): power_w = 200 + 10*n + 5*k, GPU temp = 30 + k + n,
    state cycles OFF (k<2) -> BOOTING (k<4) -> SERVING.
    """
    run_dir = Path(run_dir)
    rows = ["A", "B"]
    n_racks = 2 * racks_per_row
    n_nodes = n_racks * nodes_per_rack
    node = np.arange(n_nodes)
    rack = node // nodes_per_rack
    slot = node % nodes_per_rack
    row_idx = rack // racks_per_row
    rack_in_row = rack % racks_per_row
    rack_x = rack_in_row * 0.6
    rack_y = np.where(row_idx == 0, -1.2, 1.2)
    topo = {
        "node_id": node, "rack_id": rack, "row": [rows[r] for r in row_idx],
        "rack_name": [f"{rows[r]}{i + 1:02d}" for r, i in zip(row_idx, rack_in_row)],
        "slot": slot, "u_position": 3 + 4 * slot, "height_u": np.full(n_nodes, 4),
        "x_m": rack_x, "y_m": rack_y, "z_m": 0.1 + (3 + 4 * slot) * 0.04445,
        "rack_x_m": rack_x, "rack_y_m": rack_y, "facing": ["+y" if r == 0 else "-y" for r in row_idx],
        "node_type": ["refinery-node"] * n_nodes, "gpus": np.full(n_nodes, 3),
        "pool": ["nano"] * n_nodes, "unit_id": node,
    }
    t = (np.arange(samples) + 1) * sample_s
    tt, nn = np.meshgrid(t, node, indexing="ij")
    kk = (tt / sample_s - 1).astype(int)
    state_idx = np.where(kk < 2, 0, np.where(kk < 4, NODE_STATES.index("BOOTING"), NODE_STATES.index("SERVING")))
    power = 200.0 + 10 * nn + 5 * kk
    nodes = {
        "time_s": tt.ravel(), "node_id": nn.ravel(), "rack_id": (nn // nodes_per_rack).ravel(),
        "state": [NODE_STATES[s] for s in state_idx.ravel()], "power_w": power.ravel(),
        "dc_power_w": (power * 0.95).ravel(), "inlet_c": np.full(tt.size, 22.0),
        "exhaust_c": (22.0 + power / 100).ravel(), "fan_rpm": (1000 + 10 * kk).ravel(),
        "airflow_m3_s": np.full(tt.size, 0.05), "gpu_temp_max_c": (30.0 + kk + nn + 2).ravel(),
        "gpu_power_w": (power * 0.5).ravel(), "p2p_gb_s": (kk % 3).ravel().astype(float),
        "nic_gb_s": np.zeros(tt.size), "active_requests": (kk * 2).ravel(),
        "energy_j": (np.cumsum(power, axis=0) * sample_s).ravel(),
        "cpu_power_w": np.full(tt.size, 100.0), "cpu_temp_c": np.full(tt.size, 40.0), "cpu_util": np.full(tt.size, 0.2),
    }
    gpu = np.arange(n_nodes * 3)
    tg, gg = np.meshgrid(t, gpu, indexing="ij")
    kg = (tg / sample_s - 1).astype(int)
    gnode = gg // 3
    gpus = {
        "time_s": tg.ravel(), "gpu_id": gg.ravel(), "node_id": gnode.ravel(),
        "rack_id": (gnode // nodes_per_rack).ravel(), "gpu_index": (gg % 3).ravel(),
        "power_w": (50.0 + 5 * kg).ravel(), "temp_c": (30.0 + kg + gnode + (gg % 3)).ravel(),
        "util": np.clip(kg / samples, 0, 1).ravel(), "clock_factor": np.ones(tg.size),
        "fan_frac": np.full(tg.size, 0.4), "throttled": (30.0 + kg + gnode + (gg % 3) > 90).ravel(),
        "memory_used_gb": np.full(tg.size, 20.0),
    }
    tr, rr = np.meshgrid(t, np.arange(n_racks), indexing="ij")
    rack_power = np.stack([power[:, rack == r].sum(axis=1) for r in range(n_racks)], axis=1)
    racks = {
        "time_s": tr.ravel(), "rack_id": rr.ravel(), "power_w": rack_power.ravel(),
        "inlet_c": np.full(tr.size, 22.0), "exhaust_c": np.full(tr.size, 32.0),
        "airflow_demand_m3_s": np.full(tr.size, 0.15), "airflow_supply_m3_s": np.full(tr.size, 0.2),
        "recirculation_frac": np.zeros(tr.size), "nodes_on": np.full(tr.size, nodes_per_rack),
        "nodes_serving": np.full(tr.size, 1),
    }
    it_power = power.sum(axis=1)
    counts = {s: (state_idx == NODE_STATES.index(s)).sum(axis=1) for s in NODE_STATES}
    facility = {
        "time_s": t, "it_power_w": it_power, "cooling_power_w": it_power * 0.4,
        "overhead_power_w": it_power * 0.1, "facility_power_w": it_power * 1.5, "pue": np.full(samples, 1.5),
        "supply_c": np.full(samples, 20.0), "arrivals": np.full(samples, 10),
        "arrival_rate_per_s": np.full(samples, 1.0), "queued": np.zeros(samples), "in_flight": np.full(samples, 3),
        "completed": np.full(samples, 10), "dropped": np.zeros(samples), "nodes_off": counts["OFF"],
        "nodes_booting": counts["BOOTING"] + counts["POWERING_ON"], "nodes_loading": counts["LOADING"],
        "nodes_warm": counts["WARM"], "nodes_serving": counts["SERVING"], "nodes_draining": counts["DRAINING"],
        "nodes_failed": counts["FAILED"], "ttft_p50_s": np.full(samples, 0.2), "ttft_p99_s": np.full(samples, 0.9),
        "latency_p50_s": np.full(samples, 2.0), "latency_p99_s": np.full(samples, 6.0),
        "it_energy_j": np.cumsum(it_power) * sample_s, "facility_energy_j": np.cumsum(it_power * 1.5) * sample_s,
    }
    n_req = samples * 10
    arrival = np.repeat(t - sample_s, 10) + np.tile(np.arange(10), samples) * (sample_s / 10)
    requests = {
        "request_id": np.arange(n_req), "pool": ["nano"] * n_req, "arrival_s": arrival,
        "admitted_s": arrival + 0.1, "first_token_s": arrival + 0.2, "done_s": arrival + 2.0,
        "prompt_tokens": np.full(n_req, 1000), "output_tokens": np.full(n_req, 100),
        "replica_id": np.arange(n_req) % n_nodes, "status": ["completed"] * n_req, "drop_reason": [""] * n_req,
        "ttft_s": np.full(n_req, 0.2), "latency_s": np.full(n_req, 2.0), "network_s": np.zeros(n_req),
        "retries": np.zeros(n_req), "preemptions": np.zeros(n_req),
    }
    events = {
        "time_s": np.array([2 * sample_s, 4 * sample_s]), "kind": ["state_change", "state_change"],
        "node_id": np.array([0, 0]), "rack_id": np.array([0, 0]), "replica_id": np.array([-1, -1]),
        "detail": ["OFF->BOOTING", "BOOTING->SERVING"],
    }
    tables = {name: to_table(name, cols) for name, cols in [
        ("topology", topo), ("nodes", nodes), ("gpus", gpus), ("racks", racks),
        ("facility", facility), ("requests", requests), ("events", events)]}
    run_dir.mkdir(parents=True, exist_ok=True)
    counts_rows = write_tables(run_dir, tables)
    write_json_atomic(run_dir / "manifest.json", {
        "twin_version": "test", "scenario": {"name": "synthetic", "sha256": "0" * 64, "seed": 1},
        "simulation": {"duration_s": samples * sample_s, "dt_s": sample_s, "sample_s": sample_s},
        "topology": {"rows": 2, "racks_per_row": racks_per_row, "nodes_per_rack": nodes_per_rack,
                     "gpus_per_node": 3},
        "summary": {"requests_arrived": n_req, "requests_completed": n_req, "requests_dropped": 0,
                    "peak_it_power_w": float(it_power.max())},
        "tables": counts_rows,
    })
    return run_dir
