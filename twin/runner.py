"""Write a simulation result as a run directory (docs/telemetry.md), atomically.

`write_run` builds everything in a temporary sibling directory — telemetry, manifest, scenario
text and (optionally) the USD stage — and renames it into place only when all of it succeeded,
so an interrupted or failed run never leaves a half-written directory behind.
"""
from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Callable

from twin.engine import SimResult
from twin.telemetry import AtomicDir, to_table, write_json_atomic, write_tables

RUNS_DIR = Path("runs")
RUN_MARKER = "manifest.json"  # what makes a directory a run that --force may replace


def default_run_dir(scenario_name: str) -> Path:
    return RUNS_DIR / scenario_name


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "unknown"


def manifest(result: SimResult, table_rows: dict[str, int]) -> dict:
    sc = result.scenario
    sim = sc.spec.simulation
    topo = result.topology
    return {
        "twin_version": _version("twin"),
        "scenario": {"name": sc.name, "sha256": sc.sha256, "seed": sc.seed, "description": sc.spec.description},
        "simulation": {"duration_s": sim.duration_s, "dt_s": sim.dt_s, "sample_s": sim.sample_s},
        "topology": {"rows": topo.rows, "racks_per_row": topo.racks_per_row, "nodes_per_rack": topo.nodes_per_rack,
                     "gpus_per_node": topo.gpus_per_node},
        "pools": [p.model_dump(mode="json") for p in sc.spec.pools],
        "thresholds": result.thresholds,
        "versions": {"python": platform.python_version(),
                     **{p: _version(p) for p in ("numpy", "simpy", "pyarrow", "networkx", "usd-core")}},
        "summary": result.summary,
        "tables": table_rows,
    }


def write_run(result: SimResult, run_dir: Path, *, force: bool = False,
              stage: Callable[[Path], dict] | None = None) -> dict:
    """Write telemetry + manifest (+ stage via the `stage` callback) into `run_dir` atomically.

    Returns the manifest. Byte-identical determinism is promised for the Parquet telemetry; the
    manifest also records wall time and versions, which naturally differ between machines.
    """
    tables = {name: to_table(name, cols) for name, cols in result.columns.items()}
    with AtomicDir(Path(run_dir), force=force, marker=RUN_MARKER) as tmp:
        rows = write_tables(tmp, tables)
        man = manifest(result, rows)
        man["wall_time_s"] = round(result.wall_time_s, 3)
        (tmp / "scenario.yaml").write_text(result.scenario.text)
        write_json_atomic(tmp / "manifest.json", man)
        if stage is not None:
            man["stage"] = stage(tmp)
            write_json_atomic(tmp / "manifest.json", man)
    return man
