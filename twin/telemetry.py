"""The telemetry seam: columnar tables -> Parquet files + a run manifest.

The engine hands finished columns to :func:`write_run`; everything downstream
(``scenes/``, ``twin.query``, ``twin.plots``) reads them back from disk with
:func:`read_table` / :func:`twin.run.load_run`. The schema is documented in
``docs/telemetry.md`` and pinned here so that writers and readers cannot drift.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

NODE_STATES = ("OFF", "POWERING_ON", "BOOTING", "LOADING", "WARM", "SERVING", "DRAINING", "FAILED")

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
        ("latency_s", _f64), ("network_s", _f64), ("retries", _i32),
    ]),
    "events": pa.schema([
        ("time_s", _f64), ("kind", _str), ("node_id", _i32), ("rack_id", _i32), ("replica_id", _i32),
        ("detail", _str),
    ]),
    "links": pa.schema([
        ("time_s", _f64), ("link_id", _i32), ("src", _str), ("dst", _str), ("kind", _str),
        ("bytes", _f64), ("utilisation", _f32), ("active_flows", _i32),
    ]),
}

TABLES = tuple(SCHEMAS)


class RunExistsError(FileExistsError):
    """The run directory exists and overwriting was not asked for."""


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


def write_table(table: pa.Table, path: Path) -> None:
    """Write one Parquet file deterministically (no wall-clock metadata; fixed row groups)."""
    pq.write_table(table, path, compression="zstd", row_group_size=1 << 20, write_statistics=True)


def read_table(run_dir: Path | str, name: str) -> pa.Table:
    """Read one telemetry table of a finished run."""
    path = Path(run_dir) / "telemetry" / f"{name}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such telemetry table (is {run_dir} a twin run directory?)")
    return pq.read_table(path)


def read_manifest(run_dir: Path | str) -> dict[str, Any]:
    path = Path(run_dir) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found (is {run_dir} a twin run directory?)")
    return json.loads(path.read_text())


class AtomicDir:
    """Build a directory under a temporary name and move it into place only on success.

    Use as a context manager; on an exception (including KeyboardInterrupt) the temporary
    directory is removed and nothing appears at `final`. With `force`, an existing `final`
    is replaced only after the new one is complete, and only if it is a run directory (or empty).
    The temporary name is known before it is created, so a Ctrl-C landing anywhere between
    mkdir and the with-block still cleans it up.
    """

    def __init__(self, final: Path, force: bool = False, marker: str | None = None):
        self.final = Path(final)
        self.force = force
        check_replaceable(self.final, force, marker)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        # a name fixed before mkdir (see __enter__); mkdir's mode honours the umask like any directory
        stem = f".{self.final.name}.{os.getpid()}.{id(self):x}"
        self.tmp = self.final.with_name(f"{stem}.tmp")
        self.old = self.final.with_name(f"{stem}.old")

    def __enter__(self) -> Path:
        try:
            self.tmp.mkdir()
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self._commit()
        finally:
            # success, failure or a second Ctrl-C during the commit: no temporaries stay behind
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self.final.exists():
                shutil.rmtree(self.old, ignore_errors=True)
        return False

    def _commit(self) -> None:
        if not self.final.exists():
            os.replace(self.tmp, self.final)
            return
        os.replace(self.final, self.old)
        try:
            os.replace(self.tmp, self.final)
        except BaseException:
            os.replace(self.old, self.final)  # put the previous run back
            raise


def check_replaceable(path: Path, force: bool, marker: str | None = None) -> None:
    """Raise RunExistsError unless `path` is free, or `force` is given and it may be replaced.

    --force must never turn `-o ~` into rm -rf ~: with a `marker` only what we wrote (a directory
    holding `marker`, e.g. a run's manifest.json) or an empty directory may go.
    """
    path = Path(path)
    if path.exists() and not force:
        raise RunExistsError(f"{path} already exists; pass --force to replace it")
    if marker and path.exists() and not _replaceable(path, marker):
        raise RunExistsError(f"{path} exists and is not a twin run directory (no {marker}); "
                             f"refusing to replace it even with --force")


def _replaceable(path: Path, marker: str) -> bool:
    """An existing path --force may replace: a directory holding `marker` (e.g. a run's
    manifest.json) or an empty directory; never a file or a symlink."""
    return path.is_dir() and not path.is_symlink() and ((path / marker).is_file() or not any(path.iterdir()))


T = TypeVar("T")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path | str, write: Callable[[BinaryIO], T]) -> T:
    """Call write(fh) on a temp file beside `path`, then rename it into place; return its result.

    Readers never see half a file and a failure (or Ctrl-C) leaves nothing behind. The file gets
    an ordinary file's mode (0666 minus the umask), not mkstemp's private 0600.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb", buffering=1 << 20) as fh:
            result = write(fh)
        os.replace(tmp, path)
        return result
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON via a temp file + rename so readers never see half a file."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode()))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_tables(run_dir: Path, tables: Mapping[str, pa.Table]) -> dict[str, int]:
    """Write every telemetry table into RUN_DIR/telemetry; return row counts."""
    tdir = Path(run_dir) / "telemetry"
    tdir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in TABLES:
        table = tables.get(name) if name in tables else SCHEMAS[name].empty_table()
        if table.schema != SCHEMAS[name]:
            raise ValueError(f"telemetry table {name!r} does not match its schema")
        write_table(table, tdir / f"{name}.parquet")
        counts[name] = table.num_rows
    return counts
