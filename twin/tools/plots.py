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
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

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


def _draw_gpu_temp(run: Run, fig: Figure, opts: PlotOptions) -> None:
    g = run.sql("""
        SELECT time_s, min(temp_c) AS lo, median(temp_c) AS mid, max(temp_c) AS hi
        FROM gpus GROUP BY time_s ORDER BY time_s""")
    t, xlabel = _time_axis(_col(g, "time_s"))
    ax = fig.add_subplot()
    ax.fill_between(t, _col(g, "lo"), _col(g, "hi"), color="tab:orange", alpha=0.3, label="min–max")
    ax.plot(t, _col(g, "mid"), color="tab:orange", lw=1.5, label="median")
    ax.plot(t, _col(g, "hi"), color="tab:red", lw=0.8, label="max")
    slowdown = run.gpu_slowdown_c
    ax.axhline(slowdown, color="black", ls="--", lw=1, label=f"slowdown {slowdown:g} °C")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("GPU temperature (°C)")
    ax.set_title(f"{run.name} — GPU temperature envelope")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)


def _draw_latency(run: Run, fig: Figure, opts: PlotOptions) -> None:
    f = run.sql("""SELECT time_s, ttft_p50_s, ttft_p99_s, latency_p50_s, latency_p99_s, queued, in_flight
                   FROM facility ORDER BY time_s""")
    t, xlabel = _time_axis(_col(f, "time_s"))
    ax, axq = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    ax.plot(t, _col(f, "latency_p99_s"), color="tab:red", lw=1.4, label="latency p99")
    ax.plot(t, _col(f, "latency_p50_s"), color="tab:red", lw=1.0, ls="--", label="latency p50")
    ax.plot(t, _col(f, "ttft_p99_s"), color="tab:blue", lw=1.4, label="TTFT p99")
    ax.plot(t, _col(f, "ttft_p50_s"), color="tab:blue", lw=1.0, ls="--", label="TTFT p50")
    ax.set_ylabel("seconds (requests completed in interval)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", ncol=2)
    ax.grid(alpha=0.3)
    ax.set_title(f"{run.name} — request latency and queue")
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
    lo = span["lo"] - run.sample_s  # a sample at t covers (t - sample_s, t]
    if not lo <= at_s <= span["hi"]:
        raise ToolError(f"--at {at_s:g} s is outside the run ({lo:g}..{span['hi']:g} s)")
    row = run.sql(f"SELECT time_s FROM (SELECT DISTINCT time_s FROM gpus) "
                  f"ORDER BY abs(time_s - {float(at_s)!r}), time_s LIMIT 1").to_pylist()[0]
    return float(row["time_s"])


def _draw_heatmap(run: Run, fig: Figure, opts: PlotOptions) -> None:
    t = _heatmap_time(run, opts.at_s)
    n = run.sql(f"""
        SELECT tp.node_id, tp.rack_name, tp.slot, tp.rack_x_m, tp.rack_y_m, tp.facing, g.temp_max_c
        FROM topology tp LEFT JOIN (
            SELECT node_id, max(temp_c) AS temp_max_c FROM gpus WHERE time_s = {t!r} GROUP BY node_id
        ) g USING (node_id)
        ORDER BY tp.node_id""")
    x, y = _col(n, "rack_x_m"), _col(n, "rack_y_m")
    slot = n.column("slot").to_numpy()
    temp = _col(n, "temp_max_c")
    facing = n.column("facing").to_pylist()
    per_rack = int(slot.max()) + 1 if slot.size else 1
    # Rack footprint: width from the rack pitch along x, depth ~1 m (no depth in the contract).
    xs = np.unique(np.round(x, 6))
    width = 0.9 * (float(np.diff(xs).min()) if xs.size > 1 else 0.6)
    depth = min(1.0, 1.6 * float(np.abs(y).min())) if np.abs(y).min() > 0 else 1.0
    strip = depth / per_rack
    patches = []
    for xi, yi, si, face in zip(x, y, slot, facing):
        # slot 0 (bottom of the rack) drawn nearest the cold aisle the rack faces
        toward_aisle = 1.0 if face == "+y" else -1.0
        front = yi + toward_aisle * depth / 2
        y0 = front - toward_aisle * (si + 1) * strip if toward_aisle > 0 else front + si * strip
        patches.append(Rectangle((xi - width / 2, y0), width, strip))
    ax = fig.add_subplot()
    coll = PatchCollection(patches, cmap="inferno", edgecolor="white", linewidth=0.4)
    coll.set_array(np.ma.masked_invalid(temp))
    coll.set_clim(np.nanmin(temp) if np.isfinite(temp).any() else 0, max(np.nanmax(temp), run.gpu_slowdown_c)
                  if np.isfinite(temp).any() else 100)
    ax.add_collection(coll)
    for name, rx, ry in sorted({(r, a, b) for r, a, b in zip(n.column("rack_name").to_pylist(), x, y)}):
        ax.annotate(name, (rx, ry + np.sign(ry or 1) * (depth / 2 + 0.12)), ha="center", va="center", fontsize=8)
    ax.axhline(0, color="tab:blue", lw=0.8, ls=":", label="cold aisle centre")
    ax.update_datalim([(x.min() - width, y.min() - depth), (x.max() + width, y.max() + depth)])
    ax.autoscale_view()
    # equal metres on both axes; grow the data limits (not shrink the axes) to fill the figure
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.legend(loc="lower right", fontsize="small")
    fig.colorbar(coll, ax=ax, label="max GPU temperature in node (°C)")
    ax.set_title(f"{run.name} — node max GPU temperature at t = {t:g} s")
    ax.text(0.01, 0.01, f"each rack footprint split into {per_rack} slot strips, bottom slot nearest the cold aisle",
            transform=ax.transAxes, fontsize=7, color="dimgray")


PLOTS: dict[str, PlotKind] = {
    "power": PlotKind("facility, IT and cooling power (kW) with PUE on a twin axis", _draw_power),
    "rack-power": PlotKind("stacked wall power per rack (kW)", _draw_rack_power),
    "gpu-temp": PlotKind("GPU temperature min/median/max envelope (°C) with the slowdown line", _draw_gpu_temp),
    "latency": PlotKind("p50/p99 TTFT and latency (s) over time, plus queue length", _draw_latency),
    "ignition": PlotKind("nodes per state over time, stacked", _draw_ignition),
    "heatmap": PlotKind("floor plan of nodes coloured by max GPU temperature at --at SECONDS", _draw_heatmap),
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


def plot(run: Run, kind: str, out: Path, opts: PlotOptions | None = None, force: bool = False) -> Path:
    """Draw plot `kind` of `run` and save it as PNG to `out` (temp file + rename); an existing
    `out` only with `force`, and only a PNG twin wrote (docs/safety.md)."""
    out = Path(out)
    check_output_file(out, force, "png")  # before drawing
    return _save_png(figure(run, kind, opts), out, force)


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
    return _save_png(fig, out)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with _literal_text():  # text is laid out when drawn, here
        # the Software tag is twin's signature: --force replaces only PNGs that carry it
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": f"{SIGNATURE} plot (matplotlib)"})
    return buf.getvalue()


def _save_png(fig: Figure, out: Path, force: bool = False) -> Path:
    """Save `fig` to `out` via a temp file + rename, so readers never see half a PNG."""
    data = _png(fig)
    atomic_write(out, lambda fh: fh.write(data), force=force, fmt="png")
    return out
