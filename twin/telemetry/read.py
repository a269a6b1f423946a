"""A finished run directory as a Python object: manifest, tables, SQL.

    >>> import twin
    >>> run = twin.load_run("runs/surge")
    >>> run.table("facility").num_rows
    >>> run.sql("SELECT max(facility_power_w) AS peak_w FROM facility")

Reading is safe against crafted run directories (docs/safety.md): every file is read through
:meth:`Run.file`, which refuses links that lead out of the run directory and anything that is not
a regular file of bounded size; the manifest's fields are type-checked once, at load, so every
reader can trust them; a telemetry table whose columns have the wrong types is refused with the
column named. Every refusal is one line naming the file (and field).

This module imports only pyarrow and pydantic; DuckDB is imported lazily by
:meth:`Run.sql` so ``import twin`` and ``load_run`` stay cheap.
"""
from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from twin.errors import ToolError, format_validation_error, unknown_name
from twin.telemetry.schema import SCHEMAS, TABLES

DEFAULT_GPU_SLOWDOWN_C = 90.0
"""GPU slowdown threshold used when the manifest does not record one (°C)."""
MAX_MANIFEST_BYTES = 64_000_000
MAX_SCENARIO_TEXT_BYTES = 2_000_000


class NotARunError(ToolError):
    """The path is not a twin run directory (or a file in it may not be read)."""


# ----------------------------------------------------------------------- the manifest's shape

Number = Union[StrictInt, StrictFloat]  # JSON numbers only: not true/false, not "1.5"


class _Loose(BaseModel):
    # extra="allow": newer writers may add fields; only the fields readers use are checked
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class _ScenarioInfo(_Loose):
    name: Optional[StrictStr] = None
    sha256: Optional[StrictStr] = None
    seed: Optional[StrictInt] = None
    description: Optional[StrictStr] = None
    source: Optional[StrictStr] = None
    overrides: dict[str, Any] = {}


class _Hardware(_Loose):
    gpu: Optional[StrictStr] = None
    gpu_memory_gb: Optional[Number] = Field(default=None, gt=0)
    gpu_boost_clock_mhz: Optional[Number] = Field(default=None, gt=0)


class _Simulation(_Loose):
    duration_s: Optional[Number] = Field(default=None, gt=0)
    dt_s: Optional[Number] = Field(default=None, gt=0)
    sample_s: Optional[Number] = Field(default=None, gt=0)


class _TableSampling(_Loose):
    sample_s: Optional[Number] = Field(default=None, gt=0)


Scalar = Union[StrictBool, StrictInt, StrictFloat, StrictStr, None]


class _Manifest(_Loose):
    twin_version: Optional[StrictStr] = None
    scenario: _ScenarioInfo = _ScenarioInfo()
    simulation: _Simulation = _Simulation()
    sampling: dict[str, _TableSampling] = {}  # per table (simulation.telemetry); absent in older runs
    topology: dict[str, Scalar] = {}
    pools: list[dict[str, Union[Scalar, list[StrictInt]]]] = []  # lists: a pool's `gpus` indices (shared nodes)
    thresholds: dict[str, Optional[Number]] = {}
    summary: dict[str, Union[Optional[Number], dict[str, Number]]] = {}
    versions: dict[str, Scalar] = {}
    tables: dict[str, StrictInt] = {}
    wall_time_s: Optional[Number] = None
    stage: Optional[dict[str, Any]] = None
    hardware: Optional[_Hardware] = None


def check_manifest(doc: Any, origin: str) -> dict[str, Any]:
    """`doc` if it has the manifest's shape where readers look; NotARunError naming the field else."""
    if not isinstance(doc, dict):
        raise NotARunError(f"{origin}: manifest is not a JSON object")
    try:
        _Manifest.model_validate(doc)
    except ValidationError as exc:
        lines = format_validation_error(exc)
        raise NotARunError(f"{origin}: {lines[0]}" + (f" (and {len(lines) - 1} more)" if len(lines) > 1 else "")) from None
    return doc


def _missing_constant(name: str) -> None:
    """NaN/Infinity (not JSON, but older writers emitted them for a missing percentile): null."""
    return None


# ----------------------------------------------------------------------- safe file access

def _inside(root: Path, rel: str) -> Path:
    """`root/rel` resolved, if it stays inside `root` (the run directory itself may be a link)."""
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(real_root / rel))
    if real != real_root and real_root not in real.parents:
        raise NotARunError(f"{Path(root) / rel}: links outside the run directory; refusing to read it")
    return real


def run_file(root: Path | str, rel: str, max_bytes: int | None = None, required: bool = True) -> Path | None:
    """The real path of file `rel` of the run at `root`, checked: inside the run, a regular file,
    at most `max_bytes`. None when it is absent and not `required`."""
    root = Path(root)
    real = _inside(root, rel)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        if required:
            raise NotARunError(f"{root / rel}: not found (is {root} a twin run directory?)") from None
        return None
    except OSError as exc:
        raise NotARunError(f"{root / rel}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise NotARunError(f"{root / rel}: not a regular file; refusing to read it")
    if max_bytes is not None and st.st_size > max_bytes:
        raise NotARunError(f"{root / rel}: larger than {max_bytes / 1e6:,.0f} MB; refusing to read it")
    return real


def _read_json(root: Path, rel: str) -> dict[str, Any]:
    real = run_file(root, rel, MAX_MANIFEST_BYTES)
    assert real is not None
    try:
        doc = json.loads(real.read_bytes(), parse_constant=_missing_constant)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise NotARunError(f"{Path(root) / rel}: unreadable manifest ({str(exc).splitlines()[0]})") from None
    return check_manifest(doc, str(Path(root) / rel))


def _check_schema(path: Path, shown: Path, name: str) -> None:
    """Refuse a table whose columns have other types than the pinned schema (missing columns are
    the readers' business: their SQL fails with the column named), and a topology without nodes
    (every run has at least one; the layout-based readers cannot draw none)."""
    try:
        with pq.ParquetFile(path) as footer:
            schema, rows = footer.schema_arrow, footer.metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise NotARunError(f"{shown}: not a readable Parquet table ({str(exc).splitlines()[0]})") from None
    if name == "topology" and rows == 0:
        raise NotARunError(f"{shown}: no nodes (a run twin wrote has at least one)")
    pinned = SCHEMAS[name]
    for f in schema:
        want = pinned.field(f.name).type if f.name in pinned.names else None
        if want is not None and f.type != want:
            raise NotARunError(f"{shown}: column {f.name} is {f.type}, expected {want}")


def read_table(run_dir: Path | str, name: str, columns: list[str] | None = None) -> pa.Table:
    """Read one telemetry table of a finished run (checked as Run.table_path does)."""
    return Run(Path(run_dir), {}).table(name, columns)


def read_manifest(run_dir: Path | str) -> dict[str, Any]:
    """The run's manifest.json, checked (inside the run, bounded, fields of the right types)."""
    return _read_json(Path(run_dir), "manifest.json")


@dataclass(frozen=True)
class Run:
    """A finished run on disk (see docs/telemetry.md for the directory contract).

    Attributes:
        path: the run directory.
        manifest: the parsed ``manifest.json`` (its fields checked by load_run).
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
        first = float(times[0].as_py()) if len(times) and times[0].is_valid else 1.0
        return first if math.isfinite(first) and first > 0 else 1.0

    def table_sample_s(self, name: str) -> float:
        """Sample interval of table `name` (s): the manifest's ``sampling.<name>.sample_s`` (runs
        whose tables have their own intervals, simulation.telemetry), else :attr:`sample_s`."""
        value = (self.manifest.get("sampling") or {}).get(name, {}).get("sample_s")
        return float(value) if value else self.sample_s  # checked > 0 by check_manifest

    @property
    def gpu_slowdown_c(self) -> float:
        """GPU slowdown threshold (°C): manifest ``thresholds.gpu_slowdown_c`` or 90 °C."""
        value = self.manifest.get("thresholds", {}).get("gpu_slowdown_c")
        return float(value) if value is not None else DEFAULT_GPU_SLOWDOWN_C

    def file(self, rel: str, max_bytes: int | None = None) -> Path | None:
        """The real path of `rel` inside this run (None if absent); NotARunError for a link out of
        the run, something other than a regular file, or a file over `max_bytes`."""
        return run_file(self.path, rel, max_bytes, required=False)

    def text(self, rel: str, max_bytes: int = MAX_SCENARIO_TEXT_BYTES) -> str | None:
        """The text of file `rel` of this run (e.g. scenario.yaml), checked as :meth:`file`."""
        real = self.file(rel, max_bytes)
        return None if real is None else real.read_bytes().decode("utf-8", errors="replace")

    def table_path(self, name: str) -> Path:
        """Path of telemetry table `name`; ToolError for an unknown, missing or malformed table."""
        if name not in TABLES:
            raise unknown_name("table", name, TABLES)
        rel = f"telemetry/{name}.parquet"
        path = run_file(self.path, rel, required=False)
        if path is None:
            raise ToolError(f"{self.path}: telemetry table {name!r} is missing ({self.path / rel})")
        _check_schema(path, self.path / rel, name)
        return path

    @property
    def tables(self) -> list[str]:
        """Names of the telemetry tables present in this run, in contract order (a property,
        like `name` and `sample_s`)."""
        return [n for n in TABLES if os.path.lexists(self.path / "telemetry" / f"{n}.parquet")]

    def table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        """Read telemetry table `name` (optionally only `columns`) as a pyarrow Table."""
        path = self.table_path(name)
        try:
            return pq.read_table(path, columns=columns)
        except (pa.ArrowException, OSError) as exc:
            raise ToolError(f"{self.path / 'telemetry' / (name + '.parquet')}: {str(exc).splitlines()[0]}") from None

    def sql(self, query: str, *, unrestricted: bool = False) -> pa.Table:
        """Run one DuckDB SELECT over this run's tables (views named after them).

        Read-only and confined to this run's Parquet files unless `unrestricted` (docs/safety.md).
        """
        from twin.telemetry.sql import sql  # lazy: keeps duckdb out of `import twin`

        return sql(self, query, unrestricted=unrestricted)


def is_run_dir(path: Path | str) -> bool:
    """Whether `path` looks like a run directory to read: a manifest.json file and a telemetry/
    folder (ownership for --force is twin.telemetry.outputs' question, not this one)."""
    path = Path(path)
    return path.is_dir() and (path / "manifest.json").is_file() and (path / "telemetry").is_dir()


def load_run(path: Path | str) -> Run:
    """Open the run directory at `path`.

    Raises NotARunError (a ToolError) with a one-line reason when `path` does not exist, is not
    a directory, has no readable, well-formed ``manifest.json`` (inside it, not linked from
    elsewhere) or no ``telemetry/`` directory.
    """
    path = Path(path)
    if not path.exists():
        raise NotARunError(f"{path}: no such run directory")
    if not path.is_dir():
        raise NotARunError(f"{path}: not a directory (expected a twin run directory)")
    if not os.path.lexists(path / "manifest.json"):
        raise NotARunError(f"{path}: not a twin run directory (no manifest.json)")
    manifest = _read_json(path, "manifest.json")
    tel = path / "telemetry"
    if not tel.is_dir():
        raise NotARunError(f"{path}: not a twin run directory (no telemetry/ directory)")
    _inside(path, "telemetry")  # a telemetry/ that links elsewhere is not this run's
    return Run(path=path, manifest=manifest)
