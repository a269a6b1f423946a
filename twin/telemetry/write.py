"""Write a simulation result as a run directory (docs/telemetry.md), atomically.

`write_run` builds everything in a temporary sibling directory — telemetry, manifest, scenario
text and (optionally) the USD stage — and renames it into place only when all of it succeeded,
so an interrupted or failed run never leaves a half-written directory behind.
"""
from __future__ import annotations

import os
import platform
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from twin.model.resources import WRITER_ROW_GROUP_ROWS
from twin.sim.result import SimResult
from twin.sim.sampler import sampling_statement
from twin.telemetry.atomic import AtomicDir, OutputLock, signals_deferred, write_json_atomic
from twin.telemetry.outputs import write_marker
from twin.telemetry.schema import SCHEMAS, TABLES, empty_table, to_table

RUNS_DIR = Path("runs")
RUN_KIND = "run"  # the marker kind (twin.telemetry.outputs) that --force may replace with a run
STAGE_KIND = "stage"

# the memory estimate counts one row group of the streamed tables as held: one definition, there
ROW_GROUP_ROWS = WRITER_ROW_GROUP_ROWS
WRITER_THREADS = min(2, os.cpu_count() or 1)  # two tables in flight: nodes and gpus are ~70 % of the bytes


def write_table(table: pa.Table, path: Path) -> None:
    """Write one Parquet file deterministically (no wall-clock metadata; fixed row groups)."""
    pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP_ROWS, write_statistics=True)


class WriteCancelled(Exception):
    """A writer thread stopped because the run is being abandoned (see write_tables)."""


class StreamedParquet:
    """One table's Parquet file written as its rows arrive, holding at most one row group.

    Row groups are cut at exactly ROW_GROUP_ROWS rows, as write_table cuts a whole table, so the
    file is the same, byte for byte, as writing the table at once, however the rows come in
    pieces. `put` may run on another thread than `close`/`abort` (a spool's, during the
    simulation: twin.sim.spool.TableSink); a lock orders them, and `abort` waits for a `put` in
    progress, so nothing is written to the file once it returns.
    """

    def __init__(self, name: str, path: Path) -> None:
        self.name, self.path = name, Path(path)
        self._lock = threading.Lock()
        self._pending: list[pa.Table] = []
        self._rows = self.total = 0
        self._w: pq.ParquetWriter | None = pq.ParquetWriter(path, SCHEMAS[name], compression="zstd",
                                                            write_statistics=True)

    def put(self, cols: Mapping[str, object]) -> None:
        with self._lock:
            if self._w is None:
                raise WriteCancelled(self.name)
            t = to_table(self.name, cols)
            self._pending.append(t)
            self._rows += t.num_rows
            self.total += t.num_rows
            while self._rows >= ROW_GROUP_ROWS:
                self._flush(ROW_GROUP_ROWS)

    def _flush(self, n: int) -> None:
        t = pa.concat_tables(self._pending)
        self._w.write_table(t.slice(0, n).combine_chunks(), row_group_size=ROW_GROUP_ROWS)
        self._pending = [t.slice(n)] if t.num_rows > n else []
        self._rows = t.num_rows - n

    def close(self) -> int:
        """Write the last row group, close the file; the rows written."""
        with self._lock:
            if self._w is None:
                raise WriteCancelled(self.name)
            try:
                if self._rows:
                    self._flush(self._rows)
                elif not self.total:
                    self._w.write_table(empty_table(self.name))
            finally:
                self._w.close()
                self._w = None
        return self.total

    def abort(self) -> None:
        """Stop: close the file unfinished (whoever removes it next knows it is incomplete)."""
        with self._lock:
            if self._w is not None:
                self._w.close()
                self._w = None


def write_streamed(name: str, blocks: Iterable[Mapping[str, object]], path: Path,
                   stop: threading.Event | None = None) -> int:
    """Write table `name` from blocks of columns (StreamedParquet); a set `stop` ends it at the
    next block with WriteCancelled."""
    sink = StreamedParquet(name, path)
    try:
        for cols in blocks:
            if stop is not None and stop.is_set():
                raise WriteCancelled(name)
            sink.put(cols)
    except BaseException:
        sink.abort()
        raise
    return sink.close()


def write_tables(run_dir: Path, tables: Mapping[str, pa.Table],
                 meanwhile: Callable[[], None] | None = None) -> dict[str, int]:
    """Write every telemetry table into RUN_DIR/telemetry; return row counts. A value with
    `blocks()` (the gpus table of a SimResult) is streamed instead of built whole. `meanwhile`
    runs on this thread while the writer threads encode (they hold no GIL there).

    Files are written on WRITER_THREADS threads: pyarrow encodes and compresses without the GIL,
    and each file's bytes do not depend on which thread wrote it or when.
    """
    tdir = Path(run_dir) / "telemetry"
    tdir.mkdir(parents=True, exist_ok=True)
    for name in TABLES:  # every schema problem before any file
        table = tables.get(name)
        if table is not None and not hasattr(table, "blocks") and table.schema != SCHEMAS[name]:
            raise ValueError(f"telemetry table {name!r} does not match its schema")

    stop = threading.Event()

    def one(name: str) -> int:
        if stop.is_set():
            raise WriteCancelled(name)
        path = tdir / f"{name}.parquet"
        if getattr(tables.get(name), "sink", None) is not None:  # streamed into `path` while simulating
            return tables[name].finish_stream()
        if hasattr(tables.get(name), "blocks"):
            return write_streamed(name, tables[name].blocks(), path, stop)
        table = tables.get(name) if name in tables else empty_table(name)
        write_table(table, path)
        return table.num_rows

    # Ctrl-C or a failed table: the caller removes the directory next, so no thread may still be
    # writing into it (a file created mid-rmtree kept the temporary directory alive). Two rules:
    # - threads start with signals held: a Ctrl-C inside Thread.start() left a running thread the
    #   pool had not yet recorded, so its shutdown could not wait for it;
    # - on the way out the streamed writers stop at their next block and the pool is joined, with
    #   signals held again, so a second Ctrl-C cannot cut the wait short.
    pool = ThreadPoolExecutor(max_workers=WRITER_THREADS, thread_name_prefix="twin-writer")
    try:
        with signals_deferred():
            futures = [pool.submit(one, name) for name in TABLES]
        if meanwhile is not None:
            meanwhile()
        counts = {name: f.result() for name, f in zip(TABLES, futures)}
    except BaseException:
        stop.set()
        with signals_deferred():
            pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return counts


def default_run_dir(scenario_name: str) -> Path:
    return RUNS_DIR / scenario_name


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "unknown"


def resolved_scenario_yaml(result: SimResult, overrides: Mapping[str, object] | None = None,
                           source: Path | None = None) -> str:
    """The scenario exactly as it ran: every default filled in, --set and --seed applied.

    `twin run` on this text reproduces the run's telemetry byte for byte (the spec round-trips
    through pydantic unchanged, floats through YAML exactly). Extra catalogue files are written
    as absolute paths, so the copy in the run directory still finds them.
    """
    import yaml

    doc = result.scenario.spec.model_dump(mode="json")
    if source is not None:
        base = Path(source).resolve().parent
        doc["catalogue"] = [p if Path(p).is_absolute() else str(base / p) for p in doc.get("catalogue", [])]
    head = ["# Resolved scenario of this run: defaults filled in, overrides and seed applied.",
            "# `twin run` on this file reproduces the run's telemetry byte for byte."]
    if source is not None:
        head.append(f"# source: {source}")
    head += [f"# override: {k}={v}" for k, v in (overrides or {}).items()]
    return "\n".join(head) + "\n" + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def _hardware(result: SimResult) -> dict:
    """What exporters need to name the hardware like the real thing (dcgm-exporter labels)."""
    cat, node_type = result.scenario.catalogue, result.scenario.spec.topology.node_type
    try:
        node = cat.node(node_type)
        gpu = cat.gpu(node.gpu)
    except Exception:  # a synthetic or custom catalogue without the entry: exporters fall back
        return {"node_type": node_type}
    return {"node_type": node_type, "gpu": gpu.name, "gpu_memory_gb": gpu.memory_gb,
            "gpu_boost_clock_mhz": gpu.boost_clock_mhz}


def manifest(result: SimResult, table_rows: dict[str, int], overrides: Mapping[str, object] | None = None,
             source: Path | None = None) -> dict:
    sc = result.scenario
    sim = sc.spec.simulation
    topo = result.topology
    return {
        "twin_version": _version("twin"),
        "scenario": {"name": sc.name, "sha256": sc.sha256, "seed": sc.seed, "description": sc.spec.description,
                     "source": None if source is None else str(source), "overrides": dict(overrides or {})},
        "hardware": _hardware(result),
        "simulation": {"duration_s": sim.duration_s, "dt_s": sim.dt_s, "sample_s": sim.sample_s},
        "sampling": sampling_statement(sim),  # each table's own interval and what a row means
        "topology": {"rows": topo.rows, "racks_per_row": topo.racks_per_row, "nodes_per_rack": topo.nodes_per_rack,
                     "gpus_per_node": topo.gpus_per_node},
        "pools": [p.model_dump(mode="json") for p in sc.spec.pools],
        "thresholds": result.thresholds,
        "versions": {"python": platform.python_version(),
                     **{p: _version(p) for p in ("numpy", "simpy", "pyarrow", "networkx", "usd-core")}},
        "summary": result.summary,
        "tables": table_rows,
    }


STREAMED = ("gpus", "nodes", "links")  # the tables RunWriter streams while the simulation runs


class RunWriter:
    """A run directory in the making, opened before the simulation (an AtomicDir).

    `sinks()` are handed to the engine (twin.sim.engine.simulate(sinks=...)): the gpus, nodes and
    links tables, most of the bytes, are then encoded into their Parquet files while the
    simulation runs, on the second core, instead of after it. `finish(result)` writes the rest and the
    manifest; leaving the block renames the directory into place, or, on an exception or Ctrl-C,
    stops the streams and removes everything.
    """

    def __init__(self, run_dir: Path, *, force: bool = False, lock: OutputLock | None = None) -> None:
        self._atomic = AtomicDir(Path(run_dir), force=force, kind=RUN_KIND, lock=lock)
        self._sinks: dict[str, StreamedParquet] = {}
        self.tmp: Path | None = None
        self._finished = False

    def __enter__(self) -> "RunWriter":
        self.tmp = self._atomic.__enter__()
        return self

    def sinks(self) -> dict[str, StreamedParquet]:
        """One StreamedParquet per streamed table, writing into the run's telemetry directory."""
        tdir = self.tmp / "telemetry"
        tdir.mkdir(exist_ok=True)
        for name in STREAMED:
            if name not in self._sinks:
                self._sinks[name] = StreamedParquet(name, tdir / f"{name}.parquet")
        return dict(self._sinks)

    def finish(self, result: SimResult, *, stage: Callable[[Path], dict] | None = None,
               overrides: Mapping[str, object] | None = None, source: Path | None = None,
               meanwhile: Callable[[], None] | None = None) -> dict:
        """Telemetry + manifest (+ stage via the `stage` callback) into the directory; the manifest.
        `meanwhile` runs while the last row groups are encoded (e.g. the stage's imports)."""
        tables = {name: cols if hasattr(cols, "blocks") else to_table(name, cols)
                  for name, cols in result.columns.items()}
        for name, sink in self._sinks.items():
            if getattr(tables.get(name), "sink", None) is not sink:  # simulated without this writer's sinks
                sink.abort()
        tmp = self.tmp
        rows = write_tables(tmp, tables, meanwhile)
        man = manifest(result, rows, overrides, source)
        man["wall_time_s"] = round(result.wall_time_s, 3)
        (tmp / "scenario.yaml").write_text(resolved_scenario_yaml(result, overrides, source))
        write_json_atomic(tmp / "manifest.json", man)
        if stage is not None:
            man["stage"] = stage(tmp)
            write_json_atomic(tmp / "manifest.json", man)
            if (tmp / "stage").is_dir():  # its own marker: `twin scene --force` may replace it alone
                write_marker(tmp / "stage", STAGE_KIND)
        self._finished = True
        return man

    def __exit__(self, exc_type, exc, tb) -> bool:
        unfinished = exc_type is None and not self._finished
        if unfinished:  # a half-streamed table must not be renamed into place as a run
            exc = RuntimeError("RunWriter left without finish(): no run written")
            exc_type = type(exc)
        try:
            if exc_type is not None:  # no spool thread may write into what AtomicDir removes next
                with signals_deferred():
                    for sink in self._sinks.values():
                        sink.abort()
        finally:
            self._atomic.__exit__(exc_type, exc, tb)
        if unfinished:
            raise exc
        return False


def write_run(result: SimResult, run_dir: Path, *, force: bool = False,
              stage: Callable[[Path], dict] | None = None, overrides: Mapping[str, object] | None = None,
              source: Path | None = None, lock: OutputLock | None = None) -> dict:
    """Write telemetry + manifest (+ stage via the `stage` callback) into `run_dir` atomically.

    `overrides` (dotted field -> value, incl. simulation.seed for --seed) and `source` (the
    scenario file) are recorded in the manifest; scenario.yaml is the resolved scenario.
    Returns the manifest. Byte-identical determinism is promised for the Parquet telemetry; the
    manifest also records wall time and versions, which naturally differ between machines.
    `lock` is the OutputLock on `run_dir` the caller already holds, if any (twin.telemetry.atomic).
    To stream the largest tables while simulating, open a RunWriter before simulate() instead.
    """
    with RunWriter(run_dir, force=force, lock=lock) as run:
        return run.finish(result, stage=stage, overrides=overrides, source=source)
