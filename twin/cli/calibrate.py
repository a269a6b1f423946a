"""`twin calibrate LOG --gpu NAME`: fit a GPU's thermal and power constants to a telemetry log
(thin; parsing in twin.tools.gpu_log, the fit in twin.tools.calibrate). Unusable logs print one
line and exit 2."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from twin.cli.common import fail, out
from twin.errors import SpecError, ToolError, suggest

UNITS = {"thermal_resistance_k_per_w": "K/W", "spreader_resistance_frac": "", "spreader_capacity_ratio": "",
         "spreader_time_constant_s": "s",
         "heatsink_effective_j_per_k": "J/K", "heatsink_heat_capacity_j_per_k": "J/K",
         "heatsink_time_constant_s": "s", "intake_c": "°C",
         "start_offset_k": "K", "idle_power_w": "W", "loaded_power_w": "W"}


def _fmt(est) -> str:
    return f"{est.value:.4g} ± {est.sigma:.2g}"


def calibrate_cmd(
        log: Annotated[Path, typer.Argument(help="nvidia-smi --query-gpu CSV, nvidia-smi dmon, or OpenMetrics "
                                                 "(dcgm-exporter / twin export) log")],
        gpu: Annotated[str, typer.Option("--gpu", help="Catalogue GPU the log comes from, e.g. rtx-4090")],
        output: Annotated[Optional[Path], typer.Option("-o", "--out", help="Write a catalogue overlay YAML")] = None,
        force: Annotated[bool, typer.Option("--force", "-f", help="Replace an overlay calibrate wrote before")] = False,
        catalogue: Annotated[Optional[list[Path]], typer.Option(help="Extra catalogue YAML (repeatable)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")] = False) -> None:
    """Fit thermal time constants and resistances, idle and loaded power, with uncertainties."""
    from rich.table import Table

    from twin.spec.catalogue import load_catalogue
    from twin.tools.calibrate import calibrate, overlay_yaml, write_overlay
    from twin.tools.gpu_log import read_gpu_log

    try:
        cat = load_catalogue(catalogue or [])
    except SpecError as exc:
        fail(exc.problems)
    if gpu not in cat.entries.get("gpus", {}):
        fail(f"--gpu: unknown gpu {gpu!r}{suggest(gpu, cat.names('gpus'))}")
    spec = cat.gpu(gpu)
    try:
        text = log.read_text(errors="replace")
    except (OSError, IsADirectoryError) as exc:
        fail(f"{log}: cannot read ({getattr(exc, 'strerror', None) or exc})")
    try:
        traces = read_gpu_log(text, str(log))
        fits, pooled = calibrate(traces, spec, str(log))
        overlay = overlay_yaml(spec, pooled, str(log), fits)
        if output is not None:
            write_overlay(output, overlay, force)
    except ToolError as exc:
        fail(str(exc))
    if as_json:
        out.print_json(json.dumps({
            "gpu": gpu, "log": str(log),
            "gpus": [{"key": f.key, "name": f.name, "samples": f.samples, "rms_k": f.rms_k, "notes": list(f.notes),
                      "fit": {q: e.as_dict() for q, e in sorted(f.estimates.items())}} for f in fits],
            "pooled": {q: e.as_dict() for q, e in sorted(pooled.items())},
            "overlay": str(output) if output else None}))
        return
    t = Table(title=f"{log}: {len(fits)} GPU(s) fitted against {gpu}")
    for col in ("quantity", "unit", "value ± 1σ", "per GPU (min–max)"):
        t.add_column(col, justify="left" if col == "quantity" else "right")
    for q in UNITS:
        if q in pooled:
            vals = [f.estimates[q].value for f in fits if q in f.estimates]
            t.add_row(q, UNITS[q], _fmt(pooled[q]), f"{min(vals):.4g}–{max(vals):.4g}" if len(vals) > 1 else "")
    rms = [f.rms_k for f in fits if f.rms_k == f.rms_k]
    if rms:
        t.add_row("fit rms (die)", "K", f"{max(rms):.2f} (worst GPU)", "")
    out.print(t)
    for f in fits:
        for note in f.notes:
            out.print(f"[yellow]note:[/] {f.key}: {note}")
    if output is not None:
        out.print(f"overlay written to {output}: use `twin predict --catalogue {output}` or `twin run ... "
                  f"--catalogue {output}`")


def register(app: typer.Typer) -> None:
    """Add `twin calibrate` to `app`."""
    app.command("calibrate")(calibrate_cmd)
