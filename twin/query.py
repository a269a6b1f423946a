"""SQL over a finished run: DuckDB views on the run's Parquet tables, plus named recipes.

This is the only module that imports duckdb (ARCHITECTURE.md: one library per module);
plots, compare and export reach DuckDB through :func:`sql` and :func:`batches`.

Every connection exposes each telemetry table present in the run as a view of the same name
(``gpus``, ``nodes``, ``racks``, ``facility``, ``requests``, ``events``, ``links``,
``topology``) and two variables, read with ``getvariable('name')``:

* ``sample_s``       telemetry sample interval in seconds (energy J = sum(power_w * sample_s))
* ``gpu_slowdown_c`` GPU slowdown threshold in °C (manifest ``thresholds.gpu_slowdown_c``, else 90)
"""
from __future__ import annotations

import io
import json
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from twin.run import ToolError, unknown_name

if TYPE_CHECKING:
    from twin.run import Run


class QueryError(ToolError):
    """DuckDB rejected the SQL (syntax, unknown column/table, type error...)."""


@dataclass(frozen=True)
class Recipe:
    """A named, documented SQL query over a run."""

    description: str
    sql: str


# The registry: one dict of SQL text. Add a recipe here and it appears in `twin query --list`.
RECIPES: dict[str, Recipe] = {
    "peak-power": Recipe(
        "the sample with the highest facility power (W), with IT power, cooling and PUE",
        """
        SELECT time_s, facility_power_w, it_power_w, cooling_power_w, overhead_power_w, pue
        FROM facility
        ORDER BY facility_power_w DESC, time_s
        LIMIT 1
        """),
    "hottest-gpus": Recipe(
        "the 10 GPUs with the highest temperature (°C) and when they reached it",
        """
        SELECT g.gpu_id, g.node_id, t.rack_name, g.gpu_index,
               max(g.temp_c) AS max_temp_c,
               arg_max(g.time_s, g.temp_c) AS at_time_s
        FROM gpus g LEFT JOIN topology t USING (node_id)
        GROUP BY ALL
        ORDER BY max_temp_c DESC, g.gpu_id
        LIMIT 10
        """),
    "throttling": Recipe(
        "GPUs that throttled: throttled seconds (samples x sample_s), first throttle time, max °C",
        """
        SELECT g.gpu_id, g.node_id, t.rack_name, g.gpu_index,
               count(*) FILTER (WHERE g.throttled) * getvariable('sample_s') AS throttled_s,
               min(g.time_s) FILTER (WHERE g.throttled) AS first_throttled_s,
               max(g.temp_c) AS max_temp_c
        FROM gpus g LEFT JOIN topology t USING (node_id)
        GROUP BY ALL
        HAVING count(*) FILTER (WHERE g.throttled) > 0
        ORDER BY throttled_s DESC, g.gpu_id
        """),
    "latency-over-time": Recipe(
        "p50/p99 TTFT and end-to-end latency (s) of completed requests per 60 s window",
        """
        SELECT floor(done_s / 60) * 60 AS window_start_s,
               count(*) AS completed,
               quantile_cont(ttft_s, 0.5) AS ttft_p50_s,
               quantile_cont(ttft_s, 0.99) AS ttft_p99_s,
               quantile_cont(latency_s, 0.5) AS latency_p50_s,
               quantile_cont(latency_s, 0.99) AS latency_p99_s
        FROM requests
        WHERE status = 'completed'
        GROUP BY 1
        ORDER BY 1
        """),
    "ignition-timeline": Recipe(
        "per node: when it was ignited, reached LOADING/WARM/SERVING, and ignite-to-serving (s)",
        """
        SELECT e.node_id, any_value(t.rack_name) AS rack_name,
               min(e.time_s) FILTER (WHERE e.kind = 'ignite' OR e.detail LIKE 'OFF->%') AS ignited_s,
               min(e.time_s) FILTER (WHERE e.detail LIKE '%->LOADING') AS loading_s,
               min(e.time_s) FILTER (WHERE e.detail LIKE '%->WARM') AS warm_s,
               min(e.time_s) FILTER (WHERE e.detail LIKE '%->SERVING') AS serving_s,
               serving_s - ignited_s AS ignite_to_serving_s
        FROM events e LEFT JOIN topology t USING (node_id)
        WHERE e.node_id >= 0 AND e.kind IN ('ignite', 'state_change')
        GROUP BY e.node_id
        ORDER BY ignited_s NULLS LAST, e.node_id
        """),
    "energy-by-rack": Recipe(
        "wall energy per rack (kWh = sum(power_w * sample_s) / 3.6e6), share of total, mean/peak W",
        """
        SELECT r.rack_id, any_value(t.rack_name) AS rack_name,
               sum(r.power_w * getvariable('sample_s')) / 3.6e6 AS energy_kwh,
               100 * energy_kwh / sum(energy_kwh) OVER () AS share_pct,
               avg(r.power_w) AS mean_power_w,
               max(r.power_w) AS peak_power_w
        FROM racks r LEFT JOIN (SELECT DISTINCT rack_id, rack_name FROM topology) t USING (rack_id)
        GROUP BY r.rack_id
        ORDER BY r.rack_id
        """),
}


def recipe(name: str) -> Recipe:
    """The recipe called `name`; ToolError with a did-you-mean hint otherwise."""
    try:
        return RECIPES[name]
    except KeyError:
        raise unknown_name("recipe", name, RECIPES) from None


def _sql_string(text: str) -> str:
    """Quote `text` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def connect(run: Run) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection with the run's tables as views (closed on exit)."""
    con = duckdb.connect(":memory:")
    try:
        for name in run.tables():
            path = run.path / "telemetry" / f"{name}.parquet"
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({_sql_string(str(path))})")
        # repr() of a Python float is exact and valid SQL; the cast avoids DECIMAL typing.
        con.execute(f"SET VARIABLE sample_s = CAST({float(run.sample_s)!r} AS DOUBLE)")
        con.execute(f"SET VARIABLE gpu_slowdown_c = CAST({float(run.gpu_slowdown_c)!r} AS DOUBLE)")
        yield con
    finally:
        con.close()


def _one_line(exc: duckdb.Error) -> str:
    """DuckDB messages span several lines (caret diagrams); keep the first."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def sql(run: Run, query: str) -> pa.Table:
    """Run `query` over `run` and return the whole result as a pyarrow Table.

    Raises QueryError (one line) when DuckDB rejects the query.
    """
    with connect(run) as con:
        try:
            rel = con.sql(query)
            if rel is None:  # a statement with no result (SET, CREATE ...)
                return pa.table({})
            return rel.to_arrow_table()
        except duckdb.Error as exc:
            raise QueryError(f"SQL error: {_one_line(exc)}") from None


def batches(run: Run, query: str, batch_rows: int = 1 << 20) -> Iterator[pa.RecordBatch]:
    """Stream the result of `query` as record batches of at most `batch_rows` rows.

    Lets exporters write results far larger than memory would comfortably hold as Python objects.
    """
    with connect(run) as con:
        try:
            reader = con.sql(query).to_arrow_reader(batch_rows)
        except duckdb.Error as exc:
            raise QueryError(f"SQL error: {_one_line(exc)}") from None
        yield from reader


# ---------------------------------------------------------------- output formats

def to_csv(table: pa.Table) -> str:
    """CSV text with a header row; strings quoted only where needed."""
    buf = io.BytesIO()
    # pyarrow always quotes header names; write a plain header ourselves for readability.
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    header = ",".join(f'"{n}"' if any(c in n for c in ',"\n') else n for n in table.column_names)
    return header + "\n" + buf.getvalue().decode()


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/Inf
    return value


def to_json(table: pa.Table) -> str:
    """A JSON array of row objects; NaN/Inf become null."""
    rows = [{k: _json_value(v) for k, v in row.items()} for row in table.to_pylist()]
    return json.dumps(rows, indent=2, default=str) + "\n"


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write `table` to `path` as Parquet via a temp file + rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
