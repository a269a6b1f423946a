"""`twin report`: one self-contained HTML page per run, for sharing.

The page works offline and can be attached to a ticket: every plot is a PNG rendered in memory
by :mod:`twin.plots` and embedded as a ``data:image/png;base64`` URI, the CSS is inline, there
is no JavaScript and no external URL. Nothing is computed here that another module already
computes: the summary is the manifest's ``summary`` (docs/telemetry.md, "manifest summary
keys"), the tables are :data:`twin.query.RECIPES` (plus two views of the events table),
the charts are :data:`twin.plots.PLOTS`.

Every string that comes from the run (scenario name and text, rack names, SQL results) goes
through :func:`html.escape`. The page is deterministic: the same run gives the same bytes
(no timestamps; matplotlib's PNG metadata carries no date).
"""
from __future__ import annotations

import base64
import html
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from twin.model.metrics import metric
from twin.telemetry.atomic import atomic_write, check_output_file
from twin.telemetry.outputs import HTML_GENERATOR_TAG
from twin.telemetry.read import Run
from twin.tools.plots import DPI, FIGSIZE_IN, PLOTS, PlotOptions, png_bytes
from twin.tools.query import RECIPES


@dataclass(frozen=True)
class ReportOptions:
    """Report knobs.

    Attributes:
        heatmap_at_s: simulation time (s) of the floor heatmap; None = the sample at which the
            hottest GPU peaked (first row of the ``hottest-gpus`` recipe), else the last sample.
        max_table_rows: rows shown per table; the rest are counted with a hint to
            ``twin query``.
    """

    heatmap_at_s: float | None = None
    max_table_rows: int = 20


# ------------------------------------------------------------------ number formatting

def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt_fixed(decimals: int, scale: float = 1.0) -> Callable[[Any], str]:
    """A formatter: value x `scale` with `decimals` decimals and thousands separators."""
    def fmt(value: Any) -> str:
        return "—" if _is_missing(value) else f"{value * scale:,.{decimals}f}"
    return fmt


def fmt_number(value: Any) -> str:
    """Generic table cell: integers as such, floats to 4 significant digits, no exponent
    above 1; strings and booleans as text; missing values as '—'."""
    if _is_missing(value):
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def column_decimals(values: list[Any], significant: int = 4) -> int:
    """Decimals that give the column's largest magnitude `significant` digits (0 if all
    values are whole), so a table column lines up: 6.314, 3.100 rather than 6.314, 3.1."""
    numbers = [abs(float(v)) for v in values
               if isinstance(v, (int, float)) and not isinstance(v, bool) and not _is_missing(v)]
    if not numbers or all(n.is_integer() for n in numbers):
        return 0
    biggest = max(numbers)
    if biggest == 0:
        return 0
    return min(6, max(0, significant - 1 - math.floor(math.log10(biggest))))


def _drop_reasons(value: Any) -> str:
    if isinstance(value, dict) and not value:
        return "none"
    if not isinstance(value, dict):
        return "—"
    return ", ".join(f"{reason} {int(count):,}" for reason, count in sorted(value.items()))


# ------------------------------------------------------------------ summary (manifest)

# The summary keys the page shows, in order; label, unit and format are twin.model.metrics'
# (the same as `twin run` and `twin compare`), shown to 4 significant digits.
REPORT_SUMMARY_KEYS: tuple[str, ...] = (
    "requests_arrived", "requests_completed", "requests_dropped", "drop_reasons", "requests_queued",
    "requests_in_flight", "peak_arrival_rate_per_s", "ttft_p50_s", "ttft_p99_s", "latency_p50_s",
    "latency_p99_s", "peak_it_power_w", "peak_facility_power_w", "it_energy_kwh", "facility_energy_kwh",
    "pue", "peak_gpu_temp_c", "throttled_gpu_s", "nodes_ignited", "peak_nodes_on", "peak_nodes_serving",
    "thermal_shutdowns", "tokens_served", "tokens_per_kwh", "energy_cost_usd", "amortised_capex_usd",
    "total_cost_usd", "fleet_capex_usd", "cost_per_mtok_energy_usd", "cost_per_mtok_usd",
    "gpu_hours_serving", "gpu_hours_warm", "gpu_hours_booting", "gpu_hours_loading",
)


def summary_rows(manifest: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, formatted value, unit) for each summary key the manifest has.

    Readers must tolerate missing keys (docs/telemetry.md), so absent keys are skipped.
    """
    summary = manifest.get("summary") or {}
    rows = []
    for key in REPORT_SUMMARY_KEYS:
        if key not in summary:
            continue
        if key == "drop_reasons":
            rows.append(("drop reasons", _drop_reasons(summary[key]), "requests"))
            continue
        m = metric(key)
        value = m.format(summary[key], unit=False, significant=4)
        rows.append((m.label, "—" if value == "n/a" else value, m.unit))
    return rows


# ------------------------------------------------------------------ tables

# Column-name suffix -> unit, longest first (the query layer names columns with their unit).
_SUFFIX_UNITS: tuple[tuple[str, str], ...] = (
    ("_kwh", "kWh"), ("_pct", "%"), ("_per_s", "1/s"), ("_kw", "kW"), ("_w", "W"), ("_c", "°C"), ("_s", "s"),
)
_NAMED_UNITS = {"pue": "facility / IT", "completed": "requests", "events": "count"}
_ID_COLUMNS = ("_id", "_index", "_name")


def column_heading(name: str) -> tuple[str, str]:
    """('max temp', '°C') for 'max_temp_c'; ids and names get '' (no unit applies)."""
    if name in _NAMED_UNITS:
        return name, _NAMED_UNITS[name]
    if name.endswith(_ID_COLUMNS):
        return name.replace("_", " "), ""
    for suffix, unit in _SUFFIX_UNITS:
        if name.endswith(suffix):
            return name[: -len(suffix)].replace("_", " "), unit
    return name.replace("_", " "), ""


@dataclass(frozen=True)
class ReportTable:
    """A table in the page: a named recipe (``sql`` empty) or report-only SQL over the run.

    Attributes:
        key: the recipe name, or a slug for report-only SQL (also the HTML anchor).
        title: heading, with the units of its columns.
        sql: DuckDB SQL over the run's views; empty = ``twin.query.RECIPES[key]``.
        description: one line under the heading; empty = the recipe's description.
    """

    key: str
    title: str
    sql: str = ""
    description: str = ""

    @property
    def query(self) -> str:
        return self.sql or RECIPES[self.key].sql

    @property
    def about(self) -> str:
        return self.description or RECIPES[self.key].description

    def command(self, run_path: Path) -> str:
        """The `twin query` command line that prints the whole table."""
        if not self.sql:
            return f"twin query {shlex.quote(str(run_path))} --recipe {self.key}"
        sql = " ".join(self.sql.split())
        # SQL quotes strings with ' so shell double quotes read best, when nothing in it expands
        quoted = f'"{sql}"' if not any(c in sql for c in '"$`\\!') else shlex.quote(sql)
        return f"twin query {shlex.quote(str(run_path))} {quoted}"


# Event kinds that narrate the normal ignition story, plus per-request retries (thousands in a
# fault run; counted in events-by-kind). Everything else (faults, drains, throttling, thermal
# shutdowns, disconnects, ...) is what a reader of a shared report looks for.
ROUTINE_EVENT_KINDS = ("initial", "state_change", "ignite", "ready", "request_retry")
_ROUTINE_SQL = ", ".join(f"'{k}'" for k in ROUTINE_EVENT_KINDS)

REPORT_TABLES: tuple[ReportTable, ...] = (
    ReportTable("peak-power", "Peak facility power (W)"),
    ReportTable("energy-by-rack", "Energy by rack (kWh, W)"),
    ReportTable("hottest-gpus", "Hottest GPUs (°C)"),
    ReportTable("throttling", "Throttled GPUs (s, °C)"),
    ReportTable("ignition-timeline", "Ignition timeline (s)"),
    ReportTable("events-by-kind", "Events by kind (count, s)",
                "SELECT kind, count(*) AS events, min(time_s) AS first_s, max(time_s) AS last_s "
                "FROM events GROUP BY kind ORDER BY first_s, kind",
                "every event kind in the events table: how many, first and last time"),
    ReportTable("notable-events", "Faults, throttling and other notable events (s)",
                "SELECT time_s, kind, node_id, rack_id, replica_id, detail FROM events "
                f"WHERE kind NOT IN ({_ROUTINE_SQL}) ORDER BY time_s, kind, node_id",
                f"events other than {', '.join(ROUTINE_EVENT_KINDS)}, in time order (-1 = not applicable)"),
)


def _html_table(table, spec: ReportTable, run_path: Path, max_rows: int) -> str:
    """An escaped HTML table of a pyarrow result, headings carrying units."""
    if table.num_rows == 0:
        return '<p class="note">No rows (nothing matched).</p>'
    head = []
    for name in table.column_names:
        label, unit = column_heading(name)
        unit_html = f'<br><span class="unit">{html.escape(unit)}</span>' if unit else ""
        head.append(f'<th title="{html.escape(name)}">{html.escape(label)}{unit_html}</th>')
    shown = table.slice(0, max_rows)
    formats = {name: fmt_fixed(column_decimals(shown.column(name).to_pylist())) for name in shown.column_names}
    body = []
    for row in shown.to_pylist():
        cells = []
        for name, value in row.items():
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            text = formats[name](value) if numeric else fmt_number(value)
            cls = ' class="num"' if numeric or _is_missing(value) else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = ""
    if table.num_rows > max_rows:
        cmd = spec.command(run_path)
        more = (f'<p class="note">… {table.num_rows - max_rows:,} more rows ({table.num_rows:,} total): '
                f"<code>{html.escape(cmd)}</code></p>")
    return (f"<table><thead><tr>{''.join(head)}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>{more}")


# ------------------------------------------------------------------ page

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1240px;
padding:1em 1.5em;color:#222;line-height:1.4}
h1{margin-bottom:.1em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
.sub{color:#555;margin-top:0}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:.25em .6em;vertical-align:top}
th{background:#f3f3f3;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.unit{font-weight:normal;color:#666;font-size:.85em}.note{color:#666;font-size:.9em}
.grid{display:flex;flex-wrap:wrap;gap:0 2.5em}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}
nav{font-size:.88em;color:#666;margin:.6em 0}nav a{color:#2a5db0;text-decoration:none;white-space:nowrap}
@media print{figure{break-inside:avoid}h2{break-after:avoid}nav{display:none}}
"""


def _kv_table(rows: list[tuple[str, str, str]], headings: tuple[str, str, str], numeric: bool = True) -> str:
    """A three-column (name, value, unit) table; values right-aligned when `numeric`."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headings)
    cls = ' class="num"' if numeric else ""
    body = "".join(f"<tr><td>{html.escape(a)}</td><td{cls}>{html.escape(b)}</td>"
                   f"<td>{html.escape(c)}</td></tr>" for a, b, c in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def run_rows(run: Run) -> list[tuple[str, str, str]]:
    """(field, value, unit) identifying the run: scenario, seed, timing, layout, versions."""
    m = run.manifest
    scenario, sim, topo = m.get("scenario", {}), m.get("simulation", {}), m.get("topology", {})
    rows = [("scenario", run.name, ""), ("run directory", str(run.path), "")]
    if "seed" in scenario:
        rows.append(("seed", str(scenario["seed"]), ""))
    if scenario.get("sha256"):
        rows.append(("scenario sha256", str(scenario["sha256"]), ""))
    if scenario.get("source"):
        rows.append(("scenario file", str(scenario["source"]), ""))
    for key, value in (scenario.get("overrides") or {}).items():
        rows.append(("override", f"{key} = {value}", ""))
    for key, label in (("duration_s", "simulated duration"), ("dt_s", "physics tick"), ("sample_s", "sample interval")):
        if key in sim:
            rows.append((label, fmt_number(sim[key]), "s"))
    for table, how in (m.get("sampling") or {}).items():  # only a table with its own interval gets a row
        if isinstance(how, dict) and how.get("sample_s") not in (None, sim.get("sample_s")):
            rows.append((f"{table} sample interval", fmt_number(how["sample_s"]), "s"))
    if topo:
        layout = " × ".join(str(topo.get(k, "?")) for k in ("rows", "racks_per_row", "nodes_per_rack", "gpus_per_node"))
        rows.append(("rows × racks/row × nodes/rack × GPUs/node", layout, "count"))
    for pool in m.get("pools", []):
        desc = (f"{pool.get('model', '?')} {pool.get('quantisation', '')}, tp={pool.get('tp', '?')} "
                f"pp={pool.get('pp', '?')}, {pool.get('nodes', '?')} nodes, mix {pool.get('mix', '?')}")
        rows.append((f"pool {pool.get('name', '?')}", desc, ""))
    thresholds = m.get("thresholds", {})
    if thresholds:
        rows.append(("GPU slowdown / shutdown threshold",
                     f"{fmt_number(thresholds.get('gpu_slowdown_c'))} / {fmt_number(thresholds.get('gpu_shutdown_c'))}",
                     "°C"))
    if "wall_time_s" in m:
        rows.append(("simulation wall time", fmt_fixed(2)(m["wall_time_s"]), "s"))
    versions = dict(m.get("versions", {}))
    if "twin_version" in m:
        versions = {"twin": m["twin_version"], **versions}
    if versions:
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items()), ""))
    return rows


def _hottest_time_s(tables: dict[str, Any]) -> float | None:
    """When the hottest GPU peaked (s), from the hottest-gpus recipe result."""
    hottest = tables.get("hottest-gpus")
    if hottest is None or hottest.num_rows == 0:
        return None
    value = hottest.column("at_time_s")[0].as_py()
    return None if _is_missing(value) else float(value)


# pixel size of every chart, so the browser lays the page out before decoding the images
_IMG_W, _IMG_H = int(FIGSIZE_IN[0] * DPI), int(FIGSIZE_IN[1] * DPI)


def _figure(kind: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure id="plot-{html.escape(kind)}"><img src="data:image/png;base64,{data}" '
            f'alt="{html.escape(kind)}: {html.escape(caption)}" width="{_IMG_W}" height="{_IMG_H}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def render_html(run: Run, opts: ReportOptions | None = None,
                progress: Callable[[float, str], None] | None = None) -> str:
    """The whole report page for `run` as an HTML string (no I/O besides reading the run).

    `progress(fraction, what)` is called before each table and chart (they take the time).
    """
    opts = opts or ReportOptions()
    steps = len(REPORT_TABLES) + len(PLOTS)

    def step(i: int, what: str) -> None:
        if progress:
            progress(i / steps, what)

    tables = {}
    for i, t in enumerate(REPORT_TABLES):
        step(i, f"table {t.key}")
        tables[t.key] = run.sql(t.query)
    heatmap_at = opts.heatmap_at_s if opts.heatmap_at_s is not None else _hottest_time_s(tables)
    description = run.manifest.get("scenario", {}).get("description") or ""

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        HTML_GENERATOR_TAG,  # twin's signature: `twin report --force` replaces only pages that carry it
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>twin report — {html.escape(run.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>twin report — {html.escape(run.name)}</h1>",
    ]
    if description:
        parts.append(f'<p class="sub">{html.escape(description)}</p>')
    links = [("summary", "summary"), ("run", "run"), ("plots", "plots")]
    links += [(f"plot-{k}", k) for k in PLOTS] + [("tables", "tables")]
    links += [(f"table-{t.key}", t.key) for t in REPORT_TABLES]
    scenario_text = run.text("scenario.yaml")  # never a file linked from outside the run
    if scenario_text is not None:
        links.append(("scenario", "scenario"))
    parts.append("<nav>" + " · ".join(f'<a href="#{html.escape(a)}">{html.escape(label)}</a>'
                                      for a, label in links) + "</nav>")

    summary = summary_rows(run.manifest)
    parts.append('<div class="grid"><section><h2 id="summary">Summary</h2>')
    if summary:
        parts.append(_kv_table(summary, ("metric", "value", "unit")))
    else:
        parts.append('<p class="note">The manifest has no summary (older or synthetic run); '
                     "see the tables and plots below.</p>")
    parts.append('</section><section><h2 id="run">Run</h2>')
    parts.append(_kv_table(run_rows(run), ("field", "value", "unit"), numeric=False))
    parts.append("</section></div>")

    # the heatmap first: a bad --at fails before the other charts are drawn
    pngs = {}
    for i, kind in enumerate(sorted(PLOTS, key=lambda k: k != "heatmap")):
        step(len(REPORT_TABLES) + i, f"chart {kind}")
        pngs[kind] = png_bytes(run, kind, PlotOptions(at_s=heatmap_at) if kind == "heatmap" else None)
    parts.append('<h2 id="plots">Plots</h2>')
    for kind, spec in PLOTS.items():
        caption = spec.description.replace("--at SECONDS", "")
        if kind == "heatmap" and heatmap_at is not None:
            source = "requested" if opts.heatmap_at_s is not None else "when the hottest GPU peaked"
            caption = f"{caption} t ≈ {fmt_number(heatmap_at)} s ({source})"
        parts.append(_figure(kind, pngs[kind], f"{kind}: {caption.strip()}"))

    parts.append('<h2 id="tables">Tables</h2>')
    for t in REPORT_TABLES:
        parts.append(f'<h3 id="table-{html.escape(t.key)}">{html.escape(t.title)}</h3>')
        source = "" if t.sql else f" (<code>--recipe {html.escape(t.key)}</code>)"
        parts.append(f'<p class="note">{html.escape(t.about)}{source}</p>')
        parts.append(_html_table(tables[t.key], t, run.path, opts.max_table_rows))

    if scenario_text is not None:
        parts.append('<h2 id="scenario">Scenario</h2><details><summary>scenario.yaml as run</summary>')
        parts.append(f"<pre>{html.escape(scenario_text)}</pre></details>")
    parts.append('<p class="note">Generated by <code>twin report</code> from the run directory; '
                 "powers are interval means (energy = Σ power × sample interval), see docs/telemetry.md.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(run: Run, out: Path, opts: ReportOptions | None = None,
                 progress: Callable[[float, str], None] | None = None, force: bool = False) -> Path:
    """Render the report of `run` and write it to `out` atomically (temp file + rename).

    Raises ToolError when `out`'s directory does not exist, or `out` exists and `force` is not
    given or it is not a page twin wrote; nothing is left behind on failure.
    """
    out = Path(out)
    check_output_file(out, force, "html")  # fail before the seconds spent rendering
    page = render_html(run, opts, progress).encode("utf-8")  # render first: a failure writes nothing

    atomic_write(out, lambda fh: fh.write(page), force=force, fmt="html")
    return out
