"""The telemetry schema: the pinned pyarrow schema of every table a run writes.

Writers (twin.telemetry.write) and readers (twin.telemetry.read, twin.tools, scenes/) share these
definitions so that they cannot drift; every column, unit and sampling rule is in docs/telemetry.md.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from twin.model.states import NODE_STATES

__all__ = ["NODE_STATES", "SCHEMAS", "TABLES", "to_table"]

_f32, _f64, _i32, _i64, _str, _bool = pa.float32(), pa.float64(), pa.int32(), pa.int64(), pa.string(), pa.bool_()

SCHEMAS: dict[str, pa.Schema] = {
    "topology": pa.schema([
        ("node_id", _i32), ("rack_id", _i32), ("row", _str), ("rack_name", _str), ("slot", _i32),
        ("u_position", _i32), ("height_u", _i32), ("x_m", _f64), ("y_m", _f64), ("z_m", _f64),
        ("rack_x_m", _f64), ("rack_y_m", _f64), ("facing", _str), ("node_type", _str), ("gpus", _i32),
        ("pool", _str), ("unit_id", _i32),
    ]),
    "gpus": pa.schema([
        ("time_s", _f64), ("gpu_id", _i32), ("node_id", _i32), ("rack_id", _i32), ("gpu_index", _i32),
        ("power_w", _f32), ("temp_c", _f32), ("util", _f32), ("clock_factor", _f32), ("fan_frac", _f32),
        ("throttled", _bool), ("memory_used_gb", _f32),
    ]),
    "nodes": pa.schema([
        ("time_s", _f64), ("node_id", _i32), ("rack_id", _i32), ("state", _str), ("power_w", _f32),
        ("dc_power_w", _f32), ("inlet_c", _f32), ("exhaust_c", _f32), ("fan_rpm", _f32),
        ("airflow_m3_s", _f32), ("gpu_temp_max_c", _f32), ("gpu_power_w", _f32), ("p2p_gb_s", _f32),
        ("nic_gb_s", _f32), ("active_requests", _i32), ("energy_j", _f64),
        ("cpu_power_w", _f32), ("cpu_temp_c", _f32), ("cpu_util", _f32),
    ]),
    "racks": pa.schema([
        ("time_s", _f64), ("rack_id", _i32), ("power_w", _f32), ("inlet_c", _f32), ("exhaust_c", _f32),
        ("airflow_demand_m3_s", _f32), ("airflow_supply_m3_s", _f32), ("recirculation_frac", _f32),
        ("nodes_on", _i32), ("nodes_serving", _i32),
    ]),
    "facility": pa.schema([
        ("time_s", _f64), ("it_power_w", _f32), ("cooling_power_w", _f32), ("overhead_power_w", _f32),
        ("facility_power_w", _f32), ("pue", _f32), ("supply_c", _f32), ("arrivals", _i32),
        ("arrival_rate_per_s", _f32), ("queued", _i32), ("in_flight", _i32), ("completed", _i32),
        ("dropped", _i32), ("nodes_off", _i32), ("nodes_booting", _i32), ("nodes_loading", _i32),
        ("nodes_warm", _i32), ("nodes_serving", _i32), ("nodes_draining", _i32), ("nodes_failed", _i32),
        ("ttft_p50_s", _f32), ("ttft_p99_s", _f32), ("latency_p50_s", _f32), ("latency_p99_s", _f32),
        ("it_energy_j", _f64), ("facility_energy_j", _f64),
    ]),
    "requests": pa.schema([
        ("request_id", _i64), ("pool", _str), ("arrival_s", _f64), ("admitted_s", _f64),
        ("first_token_s", _f64), ("done_s", _f64), ("prompt_tokens", _i32), ("output_tokens", _i32),
        ("replica_id", _i32), ("status", _str), ("drop_reason", _str), ("ttft_s", _f64),
        ("latency_s", _f64), ("network_s", _f64), ("retries", _i32), ("preemptions", _i32),
    ]),
    "events": pa.schema([
        ("time_s", _f64), ("kind", _str), ("node_id", _i32), ("rack_id", _i32), ("replica_id", _i32),
        ("detail", _str),
    ]),
    "jobs": pa.schema([  # training jobs (twin.sim.training), one row per job and sample
        ("time_s", _f64), ("job_id", _i32), ("job", _str), ("state", _str), ("steps_done", _f64),
        ("progress", _f32), ("tokens_per_s", _f32), ("samples_per_s", _f32), ("gpu_share", _f32),
        ("power_w", _f32), ("energy_j", _f64),
    ]),
    "links": pa.schema([
        ("time_s", _f64), ("link_id", _i32), ("src", _str), ("dst", _str), ("kind", _str),
        ("bytes", _f64), ("utilisation", _f32), ("active_flows", _i32),
    ]),
}

TABLES = tuple(SCHEMAS)


def to_table(name: str, columns: Mapping[str, Any]) -> pa.Table:
    """Build a table of the pinned schema `name` from numpy/list columns.

    Raises KeyError naming a missing column, so a writer that forgets one fails loudly.
    """
    schema = SCHEMAS[name]
    arrays = []
    for field in schema:
        if field.name not in columns:
            raise KeyError(f"telemetry table {name!r} is missing column {field.name!r}")
        values = columns[field.name]
        if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
            arrays.append(pa.array(values.astype(field.type.to_pandas_dtype(), copy=False), type=field.type))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
