"""Side-by-side summary of two runs, with the money, and notes on what makes a change misleading.

The numbers are the run's own summary (the manifest, exactly what `twin run` printed); keys an
older or synthetic run's manifest lacks are computed from its tables with the same definitions
(:mod:`twin.model.metrics`: nearest-rank percentiles, energy = sum(power_w * sample_s)). Money
(energy cost, amortised capex, USD per Mtok) needs the run's prices, so it comes from the
manifest only.

:func:`notes` explains "improvements" that are not wins: different durations or scenarios,
lower energy that comes from work not done (fewer completions, more drops) or from a power cap
slowing the GPUs, and a cost per token that moves against the energy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from twin.model.metrics import HIGHER, LOWER, METRICS, Metric, derived, percentile
from twin.spec.safe_yaml import load_yaml
from twin.telemetry.read import Run

# The rows of `twin compare`, in order: size, work, latency, power/energy, money, heat.
COMPARED: tuple[str, ...] = (
    "duration_s", "requests_arrived", "requests_completed", "requests_dropped", "drop_pct",
    "ttft_p50_s", "ttft_p99_s", "latency_p50_s", "latency_p99_s",
    "tokens_served", "output_tokens_per_s",
    "peak_it_power_w", "peak_facility_power_w", "it_energy_kwh", "facility_energy_kwh", "pue",
    "wh_per_1k_tokens", "tokens_per_kwh",
    "energy_cost_usd", "amortised_capex_usd", "total_cost_usd", "fleet_capex_usd",
    "cost_per_mtok_energy_usd", "cost_per_mtok_usd",
    "peak_gpu_temp_c", "throttled_gpu_s", "thermal_shutdowns", "peak_nodes_on",
)
COMPARED_METRICS: tuple[Metric, ...] = tuple(METRICS[k] for k in COMPARED)

# What the tables give for a run whose manifest has no summary (one query; sample_s is set by
# twin.telemetry.sql). Percentiles are not here: they come from percentile() over the requests.
_TABLE_SQL = """
WITH f AS (
    SELECT max(time_s) AS duration_s,
           sum(it_power_w * getvariable('sample_s')) / 3.6e6 AS it_energy_kwh,
           sum(facility_power_w * getvariable('sample_s')) / 3.6e6 AS facility_energy_kwh,
           max(it_power_w) AS peak_it_power_w,
           max(facility_power_w) AS peak_facility_power_w,
           max(nodes_booting + nodes_loading + nodes_warm + nodes_serving + nodes_draining) AS peak_nodes_on
    FROM facility),
r AS (
    SELECT count(*) AS requests_arrived,
           count(*) FILTER (WHERE status = 'completed') AS requests_completed,
           count(*) FILTER (WHERE status = 'dropped') AS requests_dropped,
           CAST(sum(output_tokens) FILTER (WHERE status = 'completed') AS DOUBLE) AS tokens_served
    FROM requests),
g AS (
    SELECT max(temp_c) AS peak_gpu_temp_c,
           count(*) FILTER (WHERE throttled) * getvariable('gpus_sample_s') AS throttled_gpu_s
    FROM gpus)
SELECT * FROM f, r, g
"""


def table_summary(run: Run) -> dict[str, float | None]:
    """Summary keys computed from the telemetry tables, by the definitions of twin.model.metrics.

    throttled_gpu_s here counts throttled *samples* x sample_s; the engine integrates every tick,
    which is why a manifest value, when present, is preferred (:func:`summarise`).
    """
    row = run.sql(_TABLE_SQL).to_pylist()[0]
    out: dict[str, float | None] = {k: (float(v) if isinstance(v, (int, float)) else None) for k, v in row.items()}
    out["pue"] = (out["facility_energy_kwh"] / out["it_energy_kwh"]) if out.get("it_energy_kwh") else None
    req = run.table("requests", columns=["status", "ttft_s", "latency_s"])
    done = np.asarray(req.column("status").to_pylist(), dtype=object) == "completed"
    for col in ("ttft", "latency"):
        values = np.asarray(req.column(f"{col}_s").to_numpy(zero_copy_only=False), dtype=np.float64)[done]
        out[f"{col}_p50_s"], out[f"{col}_p99_s"] = percentile(values, 50), percentile(values, 99)
    return out


def summarise(run: Run) -> dict[str, Any]:
    """Every compared key of one run: the manifest summary first, the tables for what it lacks."""
    manifest = run.manifest.get("summary") or {}
    tables = table_summary(run)
    out: dict[str, Any] = dict(tables)
    out.update({k: v for k, v in manifest.items() if k in METRICS})
    duration = run.manifest.get("simulation", {}).get("duration_s") or tables.get("duration_s")
    out.update(derived(out, float(duration) if duration else None))
    return {k: out.get(k) for k in COMPARED}


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


def _rows(sa: dict[str, Any], sb: dict[str, Any]) -> list[Row]:
    rows = []
    for m in COMPARED_METRICS:
        a, b = sa.get(m.key), sb.get(m.key)
        delta = b - a if a is not None and b is not None else None
        pct = 100.0 * delta / abs(a) if delta is not None and a else None
        rows.append(Row(m.key, m.label, m.unit, m.better, a, b, delta, pct))
    return rows


def compare(run_a: Run, run_b: Run) -> list[Row]:
    """Compare two runs metric by metric (B relative to A); values in the keys' units."""
    return _rows(summarise(run_a), summarise(run_b))


# ------------------------------------------------------------------ notes

def _diff(a: Any, b: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Differing leaves of two YAML documents; lists of sections of different length are one
    entry ('faults': '0 entries' -> '4 entries: cooling_failure, ...'), not one per field."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(a, list) and isinstance(b, list) and a != b and \
            all(isinstance(v, dict) for v in a + b):
        if len(a) == len(b):
            return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{path}.{i}")]
        return [(path, _entries(a), _entries(b))]
    return [] if a == b else [(path, a, b)]


def _entries(items: list[dict]) -> str:
    kinds = ", ".join(str(v.get("kind") or v.get("name") or "?") for v in items)
    return f"{len(items)} entries" + (f" ({kinds})" if items else "")


def scenario_differences(run_a: Run, run_b: Run) -> list[tuple[str, Any, Any]]:
    """(field, A value, B value) for each scenario field that differs (name/description ignored).

    Reads each run's scenario.yaml: the resolved scenario (defaults, --set and --seed applied) in
    runs written by this version; older runs hold the text as given, so defaults may show as
    missing there.
    """
    docs = []
    for run in (run_a, run_b):
        path = run.path / "scenario.yaml"
        try:
            doc = load_yaml(path.read_text(), str(path), 1_000_000) or {}
        except Exception:  # an unreadable scenario only loses the note, never the comparison
            return []
        if not isinstance(doc, dict):
            return []
        docs.append({k: v for k, v in doc.items() if k not in ("name", "description")})
    return _diff(*docs)


def _cap_episodes(run: Run) -> list[str]:
    """Power caps that acted in `run`: 'facility_power_cap 110' etc. from its fault events, and
    whether the facility cap controller had to engage."""
    rows = run.sql("SELECT kind, detail FROM events WHERE kind IN ('fault', 'power_cap_engaged', "
                   "'power_cap_infeasible') ORDER BY time_s").to_pylist()
    caps = [" ".join(r["detail"].split()[1:]) for r in rows
            if r["kind"] == "fault" and r["detail"].split()[1:2] in (["power_cap"], ["facility_power_cap"])]
    engaged = sum(r["kind"] != "fault" for r in rows)
    return caps + ([f"cap controller engaged {engaged}x"] if engaged else [])


def _pct_text(row: Row) -> str:
    return "" if row.pct is None else f" ({row.pct:+.1f} %)"


def notes(run_a: Run, run_b: Run, rows: list[Row]) -> list[str]:
    """Plain-language warnings that keep a reader from taking a misleading row as a win."""
    r = {row.key: row for row in rows}
    out: list[str] = []
    dur = r["duration_s"]
    if dur.a and dur.b and abs(dur.a - dur.b) > 1e-9 * max(dur.a, dur.b):
        out.append(f"durations differ (A {dur.a:,.0f} s, B {dur.b:,.0f} s): energy, cost, tokens and request "
                   "counts are totals over different spans; compare rates and per-token rows")
    diffs = scenario_differences(run_a, run_b)
    if diffs:
        shown = ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diffs[:6])
        more = f" and {len(diffs) - 6} more" if len(diffs) > 6 else ""
        if [k for k, _, _ in diffs] == ["simulation.seed"]:
            out.append(f"only the seed differs ({shown}): the differences are one random draw against another")
        else:
            out.append(f"scenarios differ in {len(diffs)} field(s): {shown}{more}")
    done, energy = r["requests_completed"], r["facility_energy_kwh"]
    less_energy = energy.delta is not None and energy.delta < 0
    if done.delta is not None and done.delta < 0 and less_energy:
        out.append(f"B completed {-done.delta:,.0f} fewer requests{_pct_text(done)}: part of its lower energy is "
                   "work not done; judge by Wh per 1k tokens and USD per Mtok")
    dropped = r["requests_dropped"]
    if dropped.delta is not None and dropped.delta > 0:
        out.append(f"B dropped {dropped.delta:,.0f} more requests than A: its latency percentiles cover only "
                   "the requests it served")
    for name, run, other in (("A", run_a, "B"), ("B", run_b, "A")):
        caps = _cap_episodes(run)
        if caps:
            out.append(f"{name} ran under a power cap ({'; '.join(caps)}): lower peak power or energy there comes "
                       f"from slowed GPUs, not efficiency; see its latency and throttling rows against {other}")
    per_tok, total, capex = r["cost_per_mtok_usd"], r["total_cost_usd"], r["fleet_capex_usd"]
    if per_tok.delta is not None and less_energy and per_tok.delta > 0:
        why = ("its larger fleet capex outweighs the energy saved" if capex.delta and capex.delta > 0
               else "it served fewer tokens for the same hardware")
        out.append(f"B uses less energy but each token costs more (USD per Mtok {per_tok.a:,.3f} -> "
                   f"{per_tok.b:,.3f}{_pct_text(per_tok)}): {why}")
    elif total.a is None and total.b is None and r["energy_cost_usd"].a is None:
        out.append("neither run's manifest has costs (older or synthetic runs); money rows are empty")
    return out


# ------------------------------------------------------------------ output

def to_dict(run_a: Run, run_b: Run, rows: list[Row], note_lines: list[str] | None = None) -> dict[str, Any]:
    """JSON-ready comparison: both runs' identities, the metric rows and the notes."""
    return {
        "a": {"path": str(run_a.path), "scenario": run_a.name},
        "b": {"path": str(run_b.path), "scenario": run_b.name},
        "metrics": [asdict(r) for r in rows],
        "notes": list(note_lines or []),
    }


def _better_style(row: Row) -> str:
    if not row.delta or row.better not in (LOWER, HIGHER):
        return ""
    return "green" if (row.delta < 0) == (row.better == LOWER) else "red"


def render(run_a: Run, run_b: Run, rows: list[Row], note_lines: list[str] | None = None) -> Any:
    """A rich Table (values in display units, deltas green when better, red when worse)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"A = {run_a.name} ({run_a.path})   B = {run_b.name} ({run_b.path})"))
    for col, justify in [("metric", "left"), ("unit", "left"), ("A", "right"), ("B", "right"),
                         ("B − A", "right"), ("%", "right")]:
        table.add_column(col, justify=justify)
    for row in rows:
        m = METRICS[row.key]
        style = _better_style(row)
        pct = "—" if row.pct is None else f"{row.pct:+.1f} %"
        if row.delta is None:
            delta = "—"
        else:
            delta = ("+" if row.delta > 0 else "") + m.format(row.delta, unit=False, significant=4)
        a = "—" if row.a is None else m.format(row.a, unit=False, significant=4)
        b = "—" if row.b is None else m.format(row.b, unit=False, significant=4)
        # styles as Text, not markup: the CLI prints with markup off (run names are user strings)
        table.add_row(row.label, row.unit, a, b, Text(delta, style=style or ""), Text(pct, style=style or ""),
                      end_section=row.key in _SECTION_ENDS)
    if not note_lines:
        return table
    return Group(table, *(Text(f"note: {line}") for line in note_lines))


_SECTION_ENDS = {"drop_pct", "latency_p99_s", "output_tokens_per_s", "tokens_per_kwh", "cost_per_mtok_usd"}
