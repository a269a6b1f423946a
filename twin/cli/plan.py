"""`twin sweep`: planners' what-if runs over scenario variants (thin; the work is in twin.sweep).

User mistakes (bad sweep spec, unreachable scheduler, existing output) print one line per problem
and exit 2, never a traceback. Failed variants are reported, not fatal: the sweep still writes
its table with their status and error.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer


def sweep(spec: Annotated[Path, typer.Argument(help="Sweep spec YAML, e.g. scenarios/sweeps/upgrade.yaml")],
          out_dir: Annotated[Optional[Path], typer.Option("-o", "--out", help="Sweep directory (default runs/sweeps/<name>)")] = None,
          workers: Annotated[int, typer.Option(help="Local Dask worker processes; 0 runs serially in-process")] = 2,
          scheduler: Annotated[Optional[str], typer.Option(
              help="Existing Dask scheduler you trust, tcp://host:8786 or tls://host:8786 (see docs/safety.md)")] = None,
          tls_ca_file: Annotated[Optional[Path], typer.Option(help="tls://: CA certificate that signed the cluster's certificates")] = None,
          tls_cert: Annotated[Optional[Path], typer.Option(help="tls://: this client's certificate (PEM)")] = None,
          tls_key: Annotated[Optional[Path], typer.Option(help="tls://: this client's private key (PEM), if not in --tls-cert")] = None,
          force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing sweep directory that twin wrote")] = False,
          quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")] = False) -> None:
    """Run every variant of SPEC on Dask; write sweep.parquet, sweep.json and a comparison plot."""
    from twin.cli.common import _with_progress, err, fail
    from twin.errors import SpecError, ToolError
    from twin.telemetry.atomic import OutputLock, check_replaceable, prepare_target, target_path
    from twin.tools.sweep import SWEEP_KIND, plan_sweep, run_sweep, scheduler_security, write_sweep

    if workers < 0:
        fail(f"--workers: must be 0 or more, got {workers}")
    try:
        security = scheduler_security(scheduler, tls_ca_file, tls_cert, tls_key)  # before planning: cheap
        plan = plan_sweep(spec)
    except SpecError as exc:
        fail([p if p.startswith(str(spec)) else f"{spec}: {p}" for p in exc.problems])
    except ToolError as exc:
        fail(str(exc))
    target = out_dir or Path("runs") / "sweeps" / plan.spec.name
    try:  # the same refusal as `twin run`: only a sweep directory twin wrote may be replaced
        target = target_path(target)
        check_replaceable(target, force, SWEEP_KIND)
    except ToolError as exc:
        fail(str(exc))
    where = scheduler or (f"{workers} local Dask workers" if workers else "serially")
    err.print(f"{plan.spec.name}: {len(plan.variants)} variants, {where}")

    def go(cb):
        def progress(done: int, total: int, failed: int) -> None:
            if cb:
                cb(done / total, {"msg": f"{done}/{total} done, {total - done} left, {failed} failed"})
        return run_sweep(plan, workers=workers, scheduler=scheduler, security=security, progress=progress)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with OutputLock(target) as lock:  # held while the variants run: a second sweep into it is refused now
            prepare_target(target, force, SWEEP_KIND)
            result = _with_progress("variants", go, quiet)
            meta = write_sweep(result, target, force=force, lock=lock)
    except ToolError as exc:  # output exists or is not twin's, scheduler unreachable or refused
        fail(str(exc))
    except OSError as exc:  # unwritable output
        fail(f"cannot write {target}: {exc.strerror or exc}")
    _print_result(result, target, meta)


def _print_result(result, target: Path, meta: dict) -> None:
    from rich.table import Table

    from twin.cli.common import err, out, styled
    spec = result.plan.spec
    axes = list(spec.axes)
    t = Table(title=f"{spec.name} -> {target}")
    for col in ["variant", *axes, "status", spec.plot.x, spec.plot.y]:
        t.add_column(col, justify="left" if col in ("variant", "status") else "right", overflow="fold")
    for r in result.rows:
        xy = [r.get(spec.plot.x), r.get(spec.plot.y)]
        t.add_row(r["variant"], *[str(r.get(a)) for a in axes], r["status"],
                  *["n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.4g}" for v in xy])
    out.print(t)
    for f in meta["failures"]:
        err.print(styled(f"variant {f['variant']} {f['status']}:", "bold yellow", str(f["error"])), soft_wrap=True)
    ok = len(result.rows) - len(meta["failures"])
    out.print(f"{ok}/{len(result.rows)} variants ok in {result.total_wall_time_s:.1f} s; "
              f"table {target / 'sweep.parquet'}" + (f", plot {target / meta['plot']}" if meta["plot"] else ""),
              highlight=False)


def register(app: typer.Typer) -> None:
    """Add the planners' commands to `app`."""
    app.command("sweep")(sweep)
