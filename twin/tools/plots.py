"""PNG charts of a finished run (the only module that imports matplotlib).

Figures are built with ``matplotlib.figure.Figure`` directly, never pyplot, so there is no
global figure state and no GUI backend: saving a Figure to PNG uses the Agg canvas.
Data comes from the run through DuckDB SQL (:meth:`twin.run.Run.sql`).

Kinds (``PLOTS``): power, rack-power, gpu-temp, latency, ignition, heatmap.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.figure import Figure

from twin.errors import ToolError, unknown_name
from twin.telemetry.atomic import atomic_write, check_output_file
from twin.telemetry.outputs import SIGNATURE
from twin.telemetry.read import Run

FIGSIZE_IN = (10.0, 5.5)
DPI = 120


@dataclass(frozen=True)
class PlotOptions:
    """Per-plot options. `at_s`: simulation time (s) for the heatmap; None = last sample."""

    at_s: float | None = None


@dataclass(frozen=True)
class PlotKind:
    description: str
    draw: Callable[[Run, Figure, PlotOptions], None]


def _time_axis(t: np.ndarray) -> tuple[np.ndarray, str]:
    """Simulation seconds scaled to s / min / h so tick labels stay readable."""
    span = float(t.max()) if t.size else 0.0
    if span > 3 * 3600:
        return t / 3600.0, "time (h)"
    if span > 1200:
        return t / 60.0, "time (min)"
    return t, "time (s)"


def _col(table, name: str) -> np.ndarray:
    """A column as float64 numpy (nulls -> NaN)."""
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=float)


def _draw_power(run: Run, fig: Figure, opts: PlotOptions) -> None:
    f = run.sql("SELECT time_s, facility_power_w, it_power_w, cooling_power_w, pue FROM facility ORDER BY time_s")
    t, xlabel = _time_axis(_col(f, "time_s"))
    ax = fig.add_subplot()
    ax.plot(t, _col(f, "facility_power_w") / 1e3, label="facility", color="tab:red", lw=1.6)
    ax.plot(t, _col(f, "it_power_w") / 1e3, label="IT", color="tab:blue", lw=1.2)
    ax.plot(t, _col(f, "cooling_power_w") / 1e3, label="cooling", color="tab:cyan", lw=1.0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("power (kW, interval mean)")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.plot(t, _col(f, "pue"), label="PUE", color="black", lw=1.0, ls="--")
    ax2.set_ylabel("PUE (–)")
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="upper left")
    ax.set_title(f"{run.name} — facility power and PUE")
    ax.grid(alpha=0.3)


def _draw_rack_power(run: Run, fig: Figure, opts: PlotOptions) -> None:
    r = run.sql("""
        SELECT r.time_s, r.rack_id, coalesce(t.rack_name, CAST(r.rack_id AS VARCHAR)) AS rack, r.power_w
        FROM racks r LEFT JOIN (SELECT DISTINCT rack_id, rack_name FROM topology) t USING (rack_id)
        ORDER BY r.rack_id, r.time_s""")
    rack_ids = r.column("rack_id").to_numpy()
    racks, first = np.unique(rack_ids, return_index=True)
    names = [r.column("rack")[int(i)].as_py() for i in first]
    times = np.unique(_col(r, "time_s"))
    power = np.zeros((len(racks), len(times)))
    # rows are sorted by rack then time, so each rack's block maps onto its time indices
    power[np.searchsorted(racks, rack_ids), np.searchsorted(times, _col(r, "time_s"))] = _col(r, "power_w") / 1e3
    t, xlabel = _time_axis(times)
    ax = fig.add_subplot()
    colours = [colormaps["tab20"](i % 20) for i in range(len(racks))]
    ax.stackplot(t, power, labels=names, colors=colours, linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rack wall power (kW, stacked)")
    ax.set_title(f"{run.name} — power by rack")
    # legend outside the axes: with 16+ racks it would hide the stack
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=max(1, len(racks) // 16),
              fontsize="small", title="rack")
    ax.grid(alpha=0.3)


def _node_at_gpu_time(run: Run) -> str:
    """SQL joining each GPU row `g` to its node's row `s` at the same time; when the two tables
    sample on different intervals (simulation.telemetry), to the node row whose interval holds it."""
    if run.table_sample_s("gpus") == run.table_sample_s("nodes"):
        return "JOIN nodes s ON s.time_s = g.time_s AND s.node_id = g.node_id"
    return "ASOF JOIN nodes s ON s.node_id = g.node_id AND g.time_s <= s.time_s"


def _draw_gpu_temp(run: Run, fig: Figure, opts: PlotOptions) -> None:
    """Temperature bands over *powered* GPUs only (their node neither OFF nor FAILED): a cold OFF
    card at room temperature would otherwise stretch the band down to the inlet air."""
    g = run.sql(f"""
        SELECT t.time_s, p.lo, p.p10, p.mid, p.p90, p.hi, coalesce(p.n, 0) AS n
        FROM (SELECT DISTINCT time_s FROM gpus) t LEFT JOIN (
            SELECT g.time_s, min(g.temp_c) AS lo, quantile_cont(g.temp_c, 0.1) AS p10, median(g.temp_c) AS mid,
                   quantile_cont(g.temp_c, 0.9) AS p90, max(g.temp_c) AS hi, count(*) AS n
            FROM gpus g {_node_at_gpu_time(run)}
            WHERE s.state NOT IN ('OFF', 'FAILED') GROUP BY g.time_s) p USING (time_s)
        ORDER BY t.time_s""")
    t, xlabel = _time_axis(_col(g, "time_s"))
    ax = fig.add_subplot()
    ax.fill_between(t, _col(g, "lo"), _col(g, "hi"), color="tab:orange", alpha=0.18, lw=0, label="min–max")
    ax.fill_between(t, _col(g, "p10"), _col(g, "p90"), color="tab:orange", alpha=0.4, lw=0, label="p10–p90")
    ax.plot(t, _col(g, "mid"), color="tab:orange", lw=1.5, label="median")
    ax.plot(t, _col(g, "hi"), color="tab:red", lw=0.8, label="max")
    slowdown = run.gpu_slowdown_c
    ax.axhline(slowdown, color="black", ls="--", lw=1, label=f"slowdown {slowdown:g} °C")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("GPU temperature (°C), powered GPUs")
    ax.set_title(f"{run.name} — GPU temperature bands over powered GPUs")
    ax.grid(alpha=0.3)
    axn = ax.twinx()
    axn.step(t, _col(g, "n"), where="post", color="tab:gray", lw=0.8, alpha=0.7, label="powered GPUs")
    axn.set_ylabel("powered GPUs (count)")
    axn.set_ylim(bottom=0)
    lines = [h for h in ax.get_legend_handles_labels()[0]] + axn.get_lines()
    ax.legend(lines, [h.get_label() for h in lines], loc="upper left", fontsize="small", ncol=2)


def latency_windows(run: Run, target_windows: int = 120) -> tuple[float, dict[str, np.ndarray]]:
    """p50/p99 TTFT and latency of completed requests per window of completion time, by the one
    percentile definition (twin.model.metrics.percentile, nearest rank). The window is a whole
    number of samples giving about `target_windows` windows, so each holds enough requests for a
    p99 (one second of a surge holds a handful). Returns (window_s, columns incl. window end_s)."""
    from twin.model.metrics import percentile

    req = run.sql("SELECT done_s, ttft_s, latency_s FROM requests WHERE status = 'completed' ORDER BY done_s")
    end = run.sql("SELECT max(time_s) AS t FROM facility").column(0)[0].as_py() or 0.0
    window = max(1, round(end / target_windows / run.sample_s)) * run.sample_s if end else run.sample_s
    n = max(1, int(np.ceil(end / window))) if end else 1
    done = _col(req, "done_s")
    idx = np.clip(np.ceil(done / window - 1e-9).astype(np.int64) - 1, 0, n - 1) if done.size else done
    out = {"end_s": (np.arange(n) + 1) * window, "count": np.bincount(idx.astype(np.int64), minlength=n)[:n]
           if done.size else np.zeros(n)}
    bounds = np.searchsorted(idx, np.arange(n + 1)) if done.size else np.zeros(n + 1, dtype=np.int64)
    for col in ("ttft_s", "latency_s"):
        values = _col(req, col)
        for q in (50, 99):
            key = f"{col[:-2]}_p{q}_s"
            out[key] = np.array([percentile(values[bounds[i]:bounds[i + 1]], q) if bounds[i + 1] > bounds[i]
                                 else np.nan for i in range(n)], dtype=float)
    return window, out


def _draw_latency(run: Run, fig: Figure, opts: PlotOptions) -> None:
    """p50 and p99 on a log axis: in a surge p99 is minutes while p50 stays seconds, and a linear
    axis would flatten p50 onto zero."""
    window, w = latency_windows(run)
    f = run.sql("SELECT time_s, queued, in_flight FROM facility ORDER BY time_s")
    t, xlabel = _time_axis(_col(f, "time_s"))
    tw, _ = _time_axis(np.concatenate([w["end_s"], _col(f, "time_s")[-1:]]))
    tw = tw[:-1]
    ax, axq = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for key, colour, ls, label in (("latency_p99_s", "tab:red", "-", "latency p99"),
                                   ("latency_p50_s", "tab:red", "--", "latency p50"),
                                   ("ttft_p99_s", "tab:blue", "-", "TTFT p99"),
                                   ("ttft_p50_s", "tab:blue", "--", "TTFT p50")):
        y = np.where(w[key] > 0, w[key], np.nan)  # log axis: no zeros
        ax.step(tw, y, where="pre", color=colour, lw=1.5 if ls == "-" else 1.2, ls=ls, label=label)
    finite = np.concatenate([v[np.isfinite(v) & (v > 0)] for k, v in w.items() if k.endswith("_s") and k != "end_s"])
    ax.set_yscale("log")
    if finite.size:
        ax.set_ylim(finite.min() / 1.5, finite.max() * 1.5)
    ax.set_ylabel(f"seconds, log scale ({window:g} s windows)")
    ax.legend(loc="upper left", ncol=2, fontsize="small")
    ax.grid(alpha=0.3, which="both")
    ax.set_title(f"{run.name} — request latency (completed requests per {window:g} s window) and queue")
    axq.plot(t, _col(f, "queued"), color="tab:purple", lw=1.2, label="queued")
    axq.plot(t, _col(f, "in_flight"), color="tab:green", lw=1.0, label="in flight")
    axq.set_ylabel("requests")
    axq.set_xlabel(xlabel)
    axq.set_ylim(bottom=0)
    axq.legend(loc="upper left", ncol=2)
    axq.grid(alpha=0.3)


_STATE_COLUMNS = [("off", "OFF", "#bbbbbb"), ("booting", "BOOTING / POWERING_ON", "#f4a259"),
                  ("loading", "LOADING", "#f6d55c"), ("warm", "WARM", "#8bc1f7"),
                  ("serving", "SERVING", "#3a923a"), ("draining", "DRAINING", "#9d7fd3"),
                  ("failed", "FAILED", "#c0392b")]


def _draw_ignition(run: Run, fig: Figure, opts: PlotOptions) -> None:
    cols = ", ".join(f"nodes_{c}" for c, _, _ in _STATE_COLUMNS)
    f = run.sql(f"SELECT time_s, {cols} FROM facility ORDER BY time_s")
    t, xlabel = _time_axis(_col(f, "time_s"))
    ax = fig.add_subplot()
    ax.stackplot(t, [_col(f, f"nodes_{c}") for c, _, _ in _STATE_COLUMNS],
                 labels=[label for _, label, _ in _STATE_COLUMNS],
                 colors=[colour for _, _, colour in _STATE_COLUMNS], linewidth=0, step="post")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("nodes")
    ax.set_title(f"{run.name} — node states over time (ignition)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", title="state")
    ax.margins(x=0)
    ax.grid(alpha=0.3)


def _heatmap_time(run: Run, at_s: float | None) -> float:
    """The sample time nearest to `at_s` (the last sample if None); ToolError if outside the run."""
    span = run.sql("SELECT min(time_s) AS lo, max(time_s) AS hi FROM gpus").to_pylist()[0]
    if span["hi"] is None:
        raise ToolError(f"{run.path}: the gpus table is empty; nothing to draw")
    if at_s is None:
        return float(span["hi"])
    lo = span["lo"] - run.table_sample_s("gpus")  # a sample at t covers (t - sample_s, t]
    if not lo <= at_s <= span["hi"]:
        raise ToolError(f"--at {at_s:g} s is outside the run ({lo:g}..{span['hi']:g} s)")
    row = run.sql(f"SELECT time_s FROM (SELECT DISTINCT time_s FROM gpus) "
                  f"ORDER BY abs(time_s - {float(at_s)!r}), time_s LIMIT 1").to_pylist()[0]
    return float(row["time_s"])


def _draw_heatmap(run: Run, fig: Figure, opts: PlotOptions) -> None:
    """Rack elevations side by side: x = rack (row A's racks, a gap, row B's), y = slot in the rack
    (bottom = slot 0), colour = the node's hottest GPU at one sample. Both axes are positions in
    the room; nodes without powered GPUs are grey."""
    t = _heatmap_time(run, opts.at_s)
    n = run.sql(f"""
        SELECT tp.node_id, tp.rack_id, tp.rack_name, tp.row, tp.slot, g.temp_max_c, s.state
        FROM topology tp
        LEFT JOIN (SELECT node_id, max(temp_c) AS temp_max_c FROM gpus WHERE time_s = {t!r} GROUP BY node_id) g
            USING (node_id)
        LEFT JOIN (SELECT node_id, arg_min(state, time_s) AS state FROM nodes WHERE time_s >= {t - 1e-9!r}
                   GROUP BY node_id) s USING (node_id)
        ORDER BY tp.rack_id, tp.slot""")
    racks = sorted({(r, name, row) for r, name, row in zip(n.column("rack_id").to_pylist(),
                                                            n.column("rack_name").to_pylist(),
                                                            n.column("row").to_pylist())})
    rows = list(dict.fromkeys(row for _, _, row in racks))
    # column of each rack: racks in id order, one empty column between rows (the aisle)
    col_of, names, x = {}, [], 0
    for i, (rid, name, row) in enumerate(racks):
        if i and row != racks[i - 1][2]:
            names.append("")
            x += 1
        col_of[rid] = x
        names.append(name)
        x += 1
    slots = int(max(n.column("slot").to_pylist(), default=0)) + 1
    grid = np.full((slots, len(names)), np.nan)
    off = np.zeros_like(grid, dtype=bool)
    for rid, slot, temp, state in zip(n.column("rack_id").to_pylist(), n.column("slot").to_pylist(),
                                      _col(n, "temp_max_c"), n.column("state").to_pylist()):
        if state in ("OFF", "FAILED"):
            off[slot, col_of[rid]] = True
        else:
            grid[slot, col_of[rid]] = temp
    ax = fig.add_subplot()
    powered = grid[np.isfinite(grid)]
    lo = float(powered.min()) if powered.size else 20.0
    hi = max(float(powered.max()) if powered.size else lo + 1, run.gpu_slowdown_c + 2)
    mesh = ax.pcolormesh(np.arange(len(names) + 1) - 0.5, np.arange(slots + 1) - 0.5, np.ma.masked_invalid(grid),
                         cmap="inferno", vmin=lo, vmax=hi, edgecolors="white", linewidth=0.5)
    ax.pcolormesh(np.arange(len(names) + 1) - 0.5, np.arange(slots + 1) - 0.5,
                  np.ma.masked_where(~off, np.ones_like(grid)), cmap="Greys", vmin=0, vmax=3,
                  edgecolors="white", linewidth=0.5)
    ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 20 else 0, fontsize=8)
    ax.set_yticks(range(slots))
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_ylim(-0.5, slots - 0.5)
    if grid.size <= 400:  # the number in each cell, while it still fits
        for (yi, xi), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(xi, yi, f"{v:.0f}", ha="center", va="center", fontsize=7,
                        color="black" if v > lo + 0.6 * (hi - lo) else "white")
    ax.set_xlabel(f"rack (rows {' | '.join(rows)}, in floor order)")
    ax.set_ylabel("slot in rack (0 = bottom)")
    cbar = fig.colorbar(mesh, ax=ax, label="hottest GPU in node (°C)")
    cbar.ax.axhline(run.gpu_slowdown_c, color="cyan", lw=1.5)
    ax.set_title(f"{run.name} — node max GPU temperature at t = {t:g} s (grey: OFF or failed; "
                 f"cyan on the scale: slowdown {run.gpu_slowdown_c:g} °C)", fontsize=10)


PLOTS: dict[str, PlotKind] = {
    "power": PlotKind("facility, IT and cooling power (kW) with PUE on a twin axis", _draw_power),
    "rack-power": PlotKind("stacked wall power per rack (kW)", _draw_rack_power),
    "gpu-temp": PlotKind("GPU temperature bands (°C) over powered GPUs, slowdown line, powered count",
                         _draw_gpu_temp),
    "latency": PlotKind("p50/p99 TTFT and latency (s, log axis) per window of completions, plus queue length",
                        _draw_latency),
    "ignition": PlotKind("nodes per state over time, stacked", _draw_ignition),
    "heatmap": PlotKind("rack elevations (rack x slot) coloured by max GPU temperature at --at SECONDS",
                        _draw_heatmap),
}


def figure(run: Run, kind: str, opts: PlotOptions | None = None) -> Figure:
    """Build (but do not save) plot `kind` of `run`."""
    if kind not in PLOTS:
        raise unknown_name("plot kind", kind, PLOTS)
    with _literal_text():
        fig = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
        PLOTS[kind].draw(run, fig, opts or PlotOptions())
    return fig


def _literal_text():
    """Run and rack names, pool names, sweep values are user strings: a '$' in one must print,
    not start mathtext (which raises on '$\\frac$' when the figure is drawn)."""
    return rc_context({"text.parse_math": False})


def png_bytes(run: Run, kind: str, opts: PlotOptions | None = None) -> bytes:
    """Plot `kind` of `run` as PNG bytes in memory (for embedding, e.g. in `twin report`)."""
    return _png(figure(run, kind, opts))


IMAGE_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def image_format(out: Path) -> str:
    """'png', 'svg' or 'pdf' from `out`'s extension; ToolError for anything else, so a PNG is
    never written under an .svg name."""
    fmt = IMAGE_FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        raise ToolError(f"-o {out}: unknown image extension {Path(out).suffix or '(none)'!r}; "
                        f"use {', '.join(IMAGE_FORMATS)}")
    return fmt


def plot(run: Run, kind: str, out: Path, opts: PlotOptions | None = None, force: bool = False) -> Path:
    """Draw plot `kind` of `run` and save it to `out` as PNG, SVG or PDF by its extension
    (temp file + rename); an existing `out` only with `force`, and only an image twin wrote
    (docs/safety.md)."""
    out = Path(out)
    fmt = image_format(out)
    check_output_file(out, force, fmt)  # before drawing
    return _save(figure(run, kind, opts), out, fmt, force)


def sweep_scatter(points: list[tuple[str, float, float, object]], x_label: str, y_label: str, group_label: str,
                  title: str, out: Path) -> Path:
    """Scatter of sweep variants, one point per variant, coloured by the first axis's value.

    `points`: (variant id, x, y, group value). Axis labels are summary keys (units in their names).
    """
    with _literal_text():
        return _sweep_scatter(points, x_label, y_label, group_label, title, Path(out))


def _sweep_scatter(points: list[tuple[str, float, float, object]], x_label: str, y_label: str, group_label: str,
                   title: str, out: Path) -> Path:
    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    groups = list(dict.fromkeys(str(p[3]) for p in points))
    cmap = colormaps["tab10"]
    for gi, group in enumerate(groups):
        sel = [p for p in points if str(p[3]) == group]
        ax.scatter([p[1] for p in sel], [p[2] for p in sel], color=cmap(gi % 10), label=f"{group_label} = {group}",
                   s=36, zorder=3)
        for vid, x, y, _ in sel:
            ax.annotate(vid, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out)


# No creation dates in SVG/PDF metadata, so the same run gives the same bytes. The creator is
# twin's signature (twin.telemetry.outputs): --force replaces only images that carry it.
_CREATOR = f"{SIGNATURE} plot, matplotlib"
_METADATA = {"svg": {"Date": None, "Creator": _CREATOR}, "pdf": {"CreationDate": None, "Creator": _CREATOR},
             "png": {"Software": _CREATOR}}


def _image(fig: Figure, fmt: str = "png") -> bytes:
    buf = io.BytesIO()
    with _literal_text():  # text is laid out when drawn, here
        fig.savefig(buf, format=fmt, dpi=DPI, metadata=_METADATA[fmt])
    return buf.getvalue()


def _png(fig: Figure) -> bytes:
    return _image(fig, "png")


def _save(fig: Figure, out: Path, fmt: str = "png", force: bool = False) -> Path:
    """Save `fig` to `out` via a temp file + rename, so readers never see half an image."""
    data = _image(fig, fmt)
    atomic_write(out, lambda fh: fh.write(data), force=force, fmt=fmt)
    return out
