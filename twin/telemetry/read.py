"""A finished run directory as a Python object: manifest, tables, SQL.

    >>> import twin
    >>> run = twin.load_run("runs/surge")
    >>> run.table("facility").num_rows
    >>> run.sql("SELECT max(facility_power_w) AS peak_w FROM facility")

This module imports only pyarrow; DuckDB is imported lazily by
:meth:`Run.sql` so ``import twin`` and ``load_run`` stay cheap.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from twin.errors import ToolError, unknown_name
from twin.telemetry.schema import TABLES

DEFAULT_GPU_SLOWDOWN_C = 90.0
"""GPU slowdown threshold used when the manifest does not record one (°C)."""


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


class NotARunError(ToolError):
    """The path is not a twin run directory."""


@dataclass(frozen=True)
class Run:
    """A finished run on disk (see docs/telemetry.md for the directory contract).

    Attributes:
        path: the run directory.
        manifest: the parsed ``manifest.json``.
    """

    path: Path
    manifest: dict[str, Any] = field(repr=False)

    @property
    def name(self) -> str:
        """Scenario name from the manifest, else the directory name."""
        return str(self.manifest.get("scenario", {}).get("name") or self.path.name)

    @property
    def sample_s(self) -> float:
        """Telemetry sample interval (s): from the manifest, else inferred from facility times."""
        value = self.manifest.get("simulation", {}).get("sample_s")
        if value:
            return float(value)
        times = pq.read_table(self.table_path("facility"), columns=["time_s"]).column("time_s")
        # The first sample sits at t = sample_s (docs/telemetry.md), so time_s[0] is the interval.
        return float(times[0].as_py()) if len(times) else 1.0

    @property
    def gpu_slowdown_c(self) -> float:
        """GPU slowdown threshold (°C): manifest ``thresholds.gpu_slowdown_c`` or 90 °C."""
        value = self.manifest.get("thresholds", {}).get("gpu_slowdown_c")
        return float(value) if value is not None else DEFAULT_GPU_SLOWDOWN_C

    def table_path(self, name: str) -> Path:
        """Path of telemetry table `name`; raises ToolError for an unknown or missing table."""
        if name not in TABLES:
            raise unknown_name("table", name, TABLES)
        path = self.path / "telemetry" / f"{name}.parquet"
        if not path.exists():
            raise ToolError(f"{self.path}: telemetry table {name!r} is missing ({path})")
        return path

    @property
    def tables(self) -> list[str]:
        """Names of the telemetry tables present in this run, in contract order (a property,
        like `name` and `sample_s`)."""
        return [n for n in TABLES if (self.path / "telemetry" / f"{n}.parquet").exists()]

    def table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        """Read telemetry table `name` (optionally only `columns`) as a pyarrow Table."""
        return pq.read_table(self.table_path(name), columns=columns)

    def sql(self, query: str) -> pa.Table:
        """Run DuckDB SQL over this run's tables (exposed as views named after them)."""
        from twin.telemetry.sql import sql  # lazy: keeps duckdb out of `import twin`

        return sql(self, query)


def load_run(path: Path | str) -> Run:
    """Open the run directory at `path`.

    Raises NotARunError (a ToolError) with a one-line reason when `path` does not exist,
    has no readable ``manifest.json`` or no ``telemetry/`` directory.
    """
    path = Path(path)
    if not path.exists():
        raise NotARunError(f"{path}: no such run directory")
    if not path.is_dir():
        raise NotARunError(f"{path}: not a directory (expected a twin run directory)")
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise NotARunError(f"{path}: not a twin run directory (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotARunError(f"{manifest_path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict):
        raise NotARunError(f"{manifest_path}: manifest is not a JSON object")
    if not (path / "telemetry").is_dir():
        raise NotARunError(f"{path}: not a twin run directory (no telemetry/ directory)")
    return Run(path=path, manifest=manifest)
