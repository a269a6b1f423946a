"""Export a run as timestamped metrics: OpenMetrics, Prometheus text, or long CSV / Parquet.

The families (names, labels, units) are :mod:`twin.tools.families`: dcgm-exporter's for GPUs,
``twin_*`` for nodes, racks and the facility.

Formats, chosen by ``fmt`` or by the output's extension (:func:`format_for`):

* ``openmetrics`` (``.om``) for ``promtool tsdb create-blocks-from openmetrics FILE DIR``: one
  ``# TYPE``/``# HELP`` (``# UNIT``) per family, each series contiguous in time order, timestamps
  in seconds with millisecond resolution, ``# EOF``.
* ``prometheus`` (``.prom``, ``.txt``): the Prometheus text exposition format, timestamps in
  integer milliseconds; ``promtool check metrics`` reads it.
* ``csv`` / ``parquet``: one row per sample (metric, timestamp_s, time_s, value, label columns).

Sample timestamp = start epoch + ``time_s``. By default the run *ends now* (the export's wall
clock, whole seconds), so a dashboard's "last N hours" shows it; ``start_epoch`` fixes t = 0,
which makes the file reproducible byte for byte.

Speed: lines are built by DuckDB (one query per family) and the resulting Arrow string buffers
are written to the file as-is, so no Python code runs per sample.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from twin.errors import ToolError
from twin.telemetry.atomic import atomic_write
from twin.telemetry.outputs import PARQUET_KEY
from twin.telemetry.read import Run
from twin.telemetry.sql import batches
from twin.tools.families import Family, Hardware, families_for, family_sql, hardware, header, label_columns

FORMATS = ("openmetrics", "prometheus", "csv", "parquet")
SUFFIXES = {".om": "openmetrics", ".openmetrics": "openmetrics", ".prom": "prometheus", ".txt": "prometheus",
            ".csv": "csv", ".parquet": "parquet"}

Progress = Callable[[float, str], None]  # (fraction done, family name)


def format_for(path: Path, fmt: str | None) -> str:
    """The export format: `fmt`, checked against the extension, or the extension's format.

    ToolError when the extension is unknown and no format is given, or when they disagree (so a
    CSV is never written under a .om name).
    """
    by_suffix = SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        if by_suffix is None:
            raise ToolError(f"-o {path}: unknown extension {Path(path).suffix or '(none)'!r}; use "
                            f"{', '.join(sorted(SUFFIXES))} or give --format")
        return by_suffix
    if fmt not in FORMATS:
        raise ToolError(f"unknown export format {fmt!r}; choose from: {', '.join(FORMATS)}")
    if by_suffix is not None and by_suffix != fmt:
        raise ToolError(f"-o {path}: a {Path(path).suffix} file is {by_suffix}, not {fmt}; "
                        f"change the extension or the --format")
    return fmt


def start_epoch_for(run: Run, start_epoch: float | None, now_s: float | None = None) -> float:
    """Unix time (s) of simulation t = 0: `start_epoch`, else such that the run ends now."""
    if start_epoch is not None:
        return float(start_epoch)
    end = run.sql("SELECT max(time_s) AS t FROM facility").column(0)[0].as_py() if "facility" in run.tables else 0
    now = time.time() if now_s is None else now_s
    return float(math.floor(now) - math.ceil(end or 0))


def _write_string_column(fh: BinaryIO, column: pa.Array) -> int:
    """Write a null-free string array's characters back to back, straight from its Arrow buffer.

    Each value already ends in a newline, so the contiguous data buffer *is* the text.
    Returns the number of values written.
    """
    if isinstance(column, pa.ChunkedArray):
        return sum(_write_string_column(fh, c) for c in column.chunks)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = column.cast(pa.large_string())
    if len(column) == 0:
        return 0
    if column.null_count:
        raise ValueError("metric lines must not be null")
    width = np.int64 if pa.types.is_large_string(column.type) else np.int32
    _, offsets_buf, data_buf = column.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=width, count=len(column) + 1,
                            offset=column.offset * np.dtype(width).itemsize)
    fh.write(memoryview(data_buf)[int(offsets[0]):int(offsets[-1])])
    return len(column)


def _atomic_output(path: Path, write: Callable[[BinaryIO], int], force: bool, fmt: str) -> int:
    """Call write(fh) on a temp file next to `path`, then rename it into place; an existing file
    only with `force`, and only one twin wrote (twin.telemetry.outputs)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ToolError(f"{path.parent}: output directory does not exist")
    return atomic_write(path, write, force=force, fmt=fmt)


def _each(families: list[Family], progress: Progress | None):
    for i, fam in enumerate(families):
        if progress:
            progress(i / len(families), fam.name)
        yield fam
    if progress:
        progress(1.0, "done")


def check_scrape(run: Run, scrape_s: float | None) -> float | None:
    """`scrape_s` if it is a whole multiple of the run's sample interval (None: every sample)."""
    if scrape_s is None:
        return None
    for table in ("facility", "gpus", "nodes"):  # each table may have its own interval (simulation.telemetry)
        every = run.table_sample_s(table)
        ratio = scrape_s / every
        if not scrape_s > 0 or abs(ratio - round(ratio)) > 1e-9:
            raise ToolError(f"--scrape-s {scrape_s:g}: must be a whole multiple of the run's "
                            f"{every:g} s sample interval" + ("" if every == run.sample_s else f" of its {table} table"))
    return float(scrape_s)


def write_text(run: Run, path: Path, style: str, start_epoch: float | None = None,
               batch_rows: int = 1 << 20, progress: Progress | None = None, scrape_s: float | None = None,
               force: bool = False) -> int:
    """Write `run` as OpenMetrics (style 's') or Prometheus text (style 'ms'). Returns samples.

    An existing `path` is replaced only with `force`, and only if twin wrote it (docs/safety.md).
    """
    scrape_s = check_scrape(run, scrape_s)
    hw = hardware(run)
    epoch_ms = round(start_epoch_for(run, start_epoch) * 1000)
    families = families_for(run, hw)

    def write(fh: BinaryIO) -> int:
        samples = 0
        for fam in _each(families, progress):
            fh.write(header(fam, style).encode())
            for batch in batches(run, family_sql(fam, hw, epoch_ms, style, scrape_s=scrape_s), batch_rows):
                samples += _write_string_column(fh, batch.column(0))
        if style == "s":
            fh.write(b"# EOF\n")
        return samples

    return _atomic_output(path, write, force, "openmetrics" if style == "s" else "prometheus")


def write_openmetrics(run: Run, path: Path, start_epoch: float | None = None, **kw) -> int:
    """OpenMetrics for promtool's backfill (timestamps in seconds, ms resolution). Returns samples."""
    return write_text(run, path, "s", start_epoch, **kw)


def write_prometheus(run: Run, path: Path, start_epoch: float | None = None, **kw) -> int:
    """Prometheus text format (timestamps in integer ms; promtool check metrics). Returns samples."""
    return write_text(run, path, "ms", start_epoch, **kw)


LONG_SCHEMA = pa.schema([("metric", pa.string()), ("timestamp_s", pa.float64()), ("time_s", pa.float64()),
                         ("value", pa.float64()), ("gpu", pa.string()), ("node", pa.string()),
                         ("rack", pa.string()), ("hostname", pa.string()), ("state", pa.string())])


def family_long_sql(fam: Family, hw: Hardware, epoch_ms: int, scrape_s: float | None = None) -> str:
    """SQL yielding the family in long format (one row per sample, label columns or NULL)."""
    from twin.tools.families import every_sql, sources

    source, key, _ = sources(fam.entity, hw)
    lab = label_columns(fam, hw)
    label_sql = ", ".join(f"CAST({v} AS VARCHAR) AS {k}" for k, v in lab["cols"].items())
    order = "x.time_s" if key == "0" else f"{key}, x.time_s"  # a bare 0 would be positional
    stamp = f"(CAST({int(epoch_ms)} AS BIGINT) + CAST(round(x.time_s * 1000) AS BIGINT)) / 1000.0"
    return f"""
        SELECT * FROM (
            SELECT '{fam.sample_name}' AS metric, {stamp} AS timestamp_s,
                   x.time_s, CAST({fam.value_sql(hw)} AS DOUBLE) AS value, {label_sql}
            FROM {source} {lab['join']}
            ORDER BY {order})
        WHERE {every_sql('time_s', scrape_s)}
    """


def write_long(run: Run, path: Path, fmt: str, start_epoch: float | None = None, batch_rows: int = 1 << 20,
               progress: Progress | None = None, scrape_s: float | None = None, force: bool = False) -> int:
    """Write `run` in long format as CSV or Parquet. Returns rows (= samples)."""
    scrape_s = check_scrape(run, scrape_s)
    hw = hardware(run)
    epoch_ms = round(start_epoch_for(run, start_epoch) * 1000)
    families = families_for(run, hw)
    # the footer key is twin's signature: export --force replaces only Parquet files that carry it
    schema = LONG_SCHEMA.with_metadata({PARQUET_KEY: b"twin export"})

    def write(fh: BinaryIO) -> int:
        rows = 0
        if fmt == "csv":
            writer = pacsv.CSVWriter(fh, LONG_SCHEMA, write_options=pacsv.WriteOptions(quoting_style="needed"))
        else:
            writer = pq.ParquetWriter(fh, schema, compression="zstd")
        with writer:
            for fam in _each(families, progress):
                for batch in batches(run, family_long_sql(fam, hw, epoch_ms, scrape_s), batch_rows):
                    writer.write_batch(batch.cast(LONG_SCHEMA if fmt == "csv" else schema))
                    rows += batch.num_rows
        return rows

    return _atomic_output(path, write, force, fmt)


def write_csv(run: Run, path: Path, start_epoch: float | None = None, **kw) -> int:
    return write_long(run, path, "csv", start_epoch, **kw)


def export(run: Run, path: Path, fmt: str | None = None, start_epoch: float | None = None,
           progress: Progress | None = None, scrape_s: float | None = None, force: bool = False) -> int:
    """Export `run` to `path` (format from `fmt` or the extension). Returns the samples written.

    `scrape_s` keeps one sample per that many seconds, as a Prometheus scraping every
    `scrape_s` would see (the full surge at 1 s samples is 3.7 GB of OpenMetrics; at 15 s, 1/15).
    An existing `path` is replaced only with `force`, and only if twin wrote it (docs/safety.md).
    """
    fmt = format_for(path, fmt)
    if fmt in ("openmetrics", "prometheus"):
        return write_text(run, path, "s" if fmt == "openmetrics" else "ms", start_epoch, progress=progress,
                          scrape_s=scrape_s, force=force)
    return write_long(run, path, fmt, start_epoch, progress=progress, scrape_s=scrape_s, force=force)
