"""The telemetry schema: the pinned pyarrow schema of every table a run writes.

Writers (twin.telemetry.write) and readers (twin.telemetry.read, twin.tools, scenes/) share these
definitions so that they cannot drift; every column, unit and sampling rule is in docs/telemetry.md.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from twin.model.columns import Coded
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


def empty_table(name: str) -> pa.Table:
    """Table `name` with no rows (Schema.empty_table would import pandas: 0.3 s of a run)."""
    return pa.Table.from_batches([], schema=SCHEMAS[name])


_NUMPY_TYPES = {pa.float64(): np.float64, pa.float32(): np.float32, pa.int64(): np.int64, pa.int32(): np.int32}


def _from_numpy(values: np.ndarray, typ: pa.DataType) -> pa.Array:
    """An Arrow array over the numpy values' own buffer (NaN stays a value, as pa.array's default).

    pa.array(ndarray) would give the same array, but its first call imports pandas to ask whether
    the ndarray is a pandas object: 0.3 s of every `twin run`.
    """
    if typ == pa.bool_():
        bits = np.packbits(np.asarray(values, dtype=bool), bitorder="little")
        return pa.Array.from_buffers(typ, len(values), [None, pa.py_buffer(bits)])
    data = np.ascontiguousarray(values.astype(_NUMPY_TYPES[typ], copy=False))
    return pa.Array.from_buffers(typ, len(data), [None, pa.py_buffer(data)])


def _strings(values: Sequence[str | None]) -> pa.Array:
    """An Arrow string array of `values` (None is null), built from its UTF-8 bytes and offsets
    (the same array pa.array gives, without pa.array's first-call pandas import)."""
    enc = [b"" if v is None else v.encode() for v in values]
    n = len(enc)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, enc), dtype=np.int32, count=n), out=offsets[1:])
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    nulls = n - int(valid.sum())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pa.Array.from_buffers(pa.string(), n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(b"".join(enc))],
                                 null_count=nulls)


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
        if isinstance(values, Coded):  # the strings built in C from their codes (twin.model.columns)
            arrays.append(pc.take(_strings(values.names), _from_numpy(np.asarray(values.codes), pa.int64())))
        elif isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
            arrays.append(_from_numpy(values, field.type))
        elif field.type == pa.string():
            arrays.append(_strings(values))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
