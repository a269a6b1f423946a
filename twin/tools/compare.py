"""Side-by-side summary of two runs, computed from their telemetry tables.

Everything is derived from the tables (not the manifest summary) so synthetic and older runs
compare too. Energy is sum(power_w * sample_s) over the interval-mean powers (docs/telemetry.md).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from twin.telemetry.read import Run


@dataclass(frozen=True)
class Metric:
    """A compared quantity: key, human label, unit, and which direction is better."""

    key: str
    label: str
    unit: str
    better: str  # "lower", "higher" or "" (neither)


METRICS: tuple[Metric, ...] = (
    Metric("duration_s", "duration", "s", ""),
    Metric("it_energy_kwh", "IT energy", "kWh", "lower"),
    Metric("facility_energy_kwh", "facility energy", "kWh", "lower"),
    Metric("pue", "PUE (energy-weighted)", "", "lower"),
    Metric("peak_it_power_kw", "peak IT power", "kW", "lower"),
    Metric("peak_facility_power_kw", "peak facility power", "kW", "lower"),
    Metric("requests_arrived", "requests arrived", "", ""),
    Metric("requests_completed", "requests completed", "", "higher"),
    Metric("requests_dropped", "requests dropped", "", "lower"),
    Metric("drop_pct", "drop rate", "%", "lower"),
    Metric("ttft_p50_s", "TTFT p50", "s", "lower"),
    Metric("ttft_p99_s", "TTFT p99", "s", "lower"),
    Metric("latency_p50_s", "latency p50", "s", "lower"),
    Metric("latency_p99_s", "latency p99", "s", "lower"),
    Metric("output_tokens_per_s", "output tokens/s", "tok/s", "higher"),
    Metric("wh_per_1k_tokens", "facility energy per 1k output tokens", "Wh", "lower"),
    Metric("peak_gpu_temp_c", "peak GPU temperature", "°C", "lower"),
    Metric("throttled_gpu_s", "throttled GPU-seconds", "GPU·s", "lower"),
    Metric("peak_nodes_on", "peak nodes on", "", ""),
)

# One query per run; `getvariable('sample_s')` is set by twin.query.connect.
_SUMMARY_SQL = """
WITH f AS (
    SELECT max(time_s) AS duration_s,
           sum(it_power_w * getvariable('sample_s')) / 3.6e6 AS it_energy_kwh,
           sum(facility_power_w * getvariable('sample_s')) / 3.6e6 AS facility_energy_kwh,
           max(it_power_w) / 1e3 AS peak_it_power_kw,
           max(facility_power_w) / 1e3 AS peak_facility_power_kw,
           max(nodes_booting + nodes_loading + nodes_warm + nodes_serving + nodes_draining) AS peak_nodes_on
    FROM facility),
r AS (
    SELECT count(*) AS requests_arrived,
           count(*) FILTER (WHERE status = 'completed') AS requests_completed,
           count(*) FILTER (WHERE status = 'dropped') AS requests_dropped,
           quantile_cont(ttft_s, 0.5) FILTER (WHERE status = 'completed') AS ttft_p50_s,
           quantile_cont(ttft_s, 0.99) FILTER (WHERE status = 'completed') AS ttft_p99_s,
           quantile_cont(latency_s, 0.5) FILTER (WHERE status = 'completed') AS latency_p50_s,
           quantile_cont(latency_s, 0.99) FILTER (WHERE status = 'completed') AS latency_p99_s,
           CAST(sum(output_tokens) FILTER (WHERE status = 'completed') AS DOUBLE) AS output_tokens
    FROM requests),
g AS (
    SELECT max(temp_c) AS peak_gpu_temp_c,
           count(*) FILTER (WHERE throttled) * getvariable('sample_s') AS throttled_gpu_s
    FROM gpus)
SELECT * FROM f, r, g
"""


def _ratio(num: float | None, den: float | None, scale: float = 1.0) -> float | None:
    if num is None or not den:
        return None
    return scale * num / den


def summarise(run: Run) -> dict[str, float | None]:
    """The METRICS of one run (None where the run has no data, e.g. no completed requests)."""
    row = run.sql(_SUMMARY_SQL).to_pylist()[0]
    out: dict[str, Any] = {k: (float(v) if isinstance(v, (int, float)) else None) for k, v in row.items()}
    out["pue"] = _ratio(out["facility_energy_kwh"], out["it_energy_kwh"])
    out["drop_pct"] = _ratio(out["requests_dropped"], out["requests_arrived"], 100.0)
    out["output_tokens_per_s"] = _ratio(out["output_tokens"], out["duration_s"])
    # kWh * 1000 = Wh; tokens / 1000 = thousands of tokens
    out["wh_per_1k_tokens"] = _ratio(out["facility_energy_kwh"], out["output_tokens"], 1e6)
    for key, value in out.items():
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = None
    return {m.key: out.get(m.key) for m in METRICS}


@dataclass(frozen=True)
class Row:
    """One compared metric: values of A and B, B - A, and (B - A) / |A| in percent."""

    key: str
    label: str
    unit: str
    better: str
    a: float | None
    b: float | None
    delta: float | None
    pct: float | None


def compare(run_a: Run, run_b: Run) -> list[Row]:
    """Compare two runs metric by metric (B relative to A)."""
    sa, sb = summarise(run_a), summarise(run_b)
    rows = []
    for m in METRICS:
        a, b = sa[m.key], sb[m.key]
        delta = b - a if a is not None and b is not None else None
        pct = 100.0 * delta / abs(a) if delta is not None and a else None
        rows.append(Row(m.key, m.label, m.unit, m.better, a, b, delta, pct))
    return rows


def to_dict(run_a: Run, run_b: Run, rows: list[Row]) -> dict[str, Any]:
    """JSON-ready comparison: both runs' identities and the metric rows."""
    return {
        "a": {"path": str(run_a.path), "scenario": run_a.name},
        "b": {"path": str(run_b.path), "scenario": run_b.name},
        "metrics": [asdict(r) for r in rows],
    }


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "—"
    if value == int(value) and abs(value) < 1e12:
        return f"{int(value):,}"
    return f"{value:,.{digits}g}"


def render(run_a: Run, run_b: Run, rows: list[Row]) -> Any:
    """A rich Table; deltas coloured green when better, red when worse."""
    from rich.table import Table

    table = Table(title=f"A = {run_a.name} ({run_a.path})   B = {run_b.name} ({run_b.path})")
    for col, justify in [("metric", "left"), ("unit", "left"), ("A", "right"), ("B", "right"),
                         ("B − A", "right"), ("%", "right")]:
        table.add_column(col, justify=justify)
    for r in rows:
        style = ""
        if r.delta and r.better:
            style = "green" if (r.delta < 0) == (r.better == "lower") else "red"
        pct = "—" if r.pct is None else f"{r.pct:+.1f} %"
        delta = "—" if r.delta is None else ("+" if r.delta > 0 else "") + _fmt(r.delta)
        table.add_row(r.label, r.unit, _fmt(r.a), _fmt(r.b),
                      f"[{style}]{delta}[/]" if style else delta, f"[{style}]{pct}[/]" if style else pct)
    return table
