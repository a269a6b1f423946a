"""Named SQL recipes over a finished run, and the query output formats (CSV, JSON, Parquet).

DuckDB itself lives in twin.telemetry.sql; the recipes are plain SQL text run through it.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from twin.errors import unknown_name
from twin.telemetry.atomic import atomic_write
from twin.telemetry.outputs import PARQUET_KEY
from twin.telemetry.sql import QueryError, batches, connect, sql  # noqa: F401 (re-exported for tools)

if TYPE_CHECKING:
    pass


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
        "GPUs that throttled: throttled seconds (samples x gpus_sample_s), first throttle time, max °C",
        """
        SELECT g.gpu_id, g.node_id, t.rack_name, g.gpu_index,
               count(*) FILTER (WHERE g.throttled) * getvariable('gpus_sample_s') AS throttled_s,
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


def write_parquet(table: pa.Table, path: Path, force: bool = False) -> None:
    """Write `table` to `path` as Parquet via a temp file + rename; an existing file only with
    `force`, and only a Parquet file twin wrote (its footer carries the ``twin`` key)."""
    signed = table.replace_schema_metadata({**(table.schema.metadata or {}), PARQUET_KEY: b"twin query"})
    atomic_write(path, lambda fh: pq.write_table(signed, fh, compression="zstd"), force=force, fmt="parquet")
