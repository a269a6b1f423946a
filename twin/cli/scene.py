"""`twin scene` (regenerate a run's USD stage from its telemetry) and `twin render` (one frame, Cycles).

Thin Typer commands: user errors print one line ``error: ...`` on stderr and exit 2. The stage
is built in a temporary directory next to RUN_DIR/stage and renamed into place only when it is
complete (twin.telemetry.AtomicDir), so an interrupted `twin scene` leaves the old stage intact.
pxr and bpy are imported inside the commands so `twin --help` stays fast.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from twin.cli.common import QuietOption, _with_progress


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _check_run(run_dir: Path) -> None:
    if not (run_dir / "manifest.json").is_file() or not (run_dir / "telemetry").is_dir():
        _fail(f"{run_dir}: not a twin run directory (no manifest.json / telemetry/)")


def scene(run_dir: Annotated[Path, typer.Argument(help="A finished run directory (twin run -o ...)")],
          stage_sample_s: Annotated[Optional[float], typer.Option(help="Seconds between stage time samples (default 5)")] = None,
          force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing stage/")] = False,
          previews: Annotated[bool, typer.Option("--previews/--no-previews", help="Also write the Pillow previews")] = True,
          quiet: QuietOption = False,
          ) -> None:
    """Regenerate RUN_DIR/stage (refinery.usda + telemetry.usdc + previews) without re-simulating."""
    from twin.telemetry.atomic import AtomicDir, RunExistsError, write_json_atomic
    from twin.telemetry.read import read_manifest

    _check_run(run_dir)
    if stage_sample_s is not None and not (math.isfinite(stage_sample_s) and stage_sample_s > 0):
        _fail(f"--stage-sample-s: must be a positive number of seconds, got {stage_sample_s}")
    from scenes import build_stage
    try:
        with AtomicDir(run_dir / "stage", force=force) as tmp:
            info = _with_progress("writing USD stage", lambda cb: build_stage(
                run_dir, stage_sample_s=stage_sample_s, out_dir=tmp, previews=previews,
                progress=(lambda msg, frac: cb(frac, {"msg": msg})) if cb else None), quiet)
    except RunExistsError:
        _fail(f"{run_dir / 'stage'} already exists; pass --force to replace it")
    except (FileNotFoundError, ValueError, KeyError) as exc:
        _fail(str(exc).strip("'\""))
    # paths are recorded relative to the run directory, as `twin run` does
    tmp_name = Path(tmp).name
    for key in ("root", "telemetry"):
        info[key] = info[key].replace(tmp_name, "stage")
    info["previews"] = [p.replace(tmp_name, "stage") for p in info["previews"]]
    manifest = read_manifest(run_dir)
    manifest["stage"] = info
    write_json_atomic(run_dir / "manifest.json", manifest)
    typer.echo(f"wrote {run_dir / info['root']}: {info['prims']['nodes']} nodes, {info['frames']} frames, "
               f"{info['samples']:,} samples in {info['seconds']['total']:.1f} s")


def render(run_dir: Annotated[Path, typer.Argument(help="A run directory with a stage/ (twin run or twin scene)")],
           frame: Annotated[int, typer.Option("--frame", "-n", help="Stage frame (USD time code) to render")] = 1,
           out: Annotated[Path, typer.Option("-o", "--out", help="Output PNG")] = Path("frame.png"),
           width: Annotated[int, typer.Option(help="Image width, px")] = 480,
           height: Annotated[int, typer.Option(help="Image height, px")] = 270,
           samples: Annotated[int, typer.Option(help="Cycles samples per pixel")] = 16,
           camera: Annotated[str, typer.Option(help="Stage camera: Hero (walks the aisle), Front (row A square-on) or Overview")] = "Hero",
           quiet: QuietOption = False,
           ) -> None:
    """Render one frame of RUN_DIR's stage with Blender Cycles on the CPU (needs the bpy package)."""
    from scenes.render import RenderError, render_frame

    if width < 16 or height < 16 or samples < 1:
        _fail("--width/--height must be >= 16 px and --samples >= 1")
    if out.suffix.lower() != ".png":
        _fail(f"-o {out}: the output must be a .png file")
    if not out.resolve().parent.is_dir():
        _fail(f"{out.parent}: output directory does not exist")
    root = run_dir / "stage" / "refinery.usda"
    if not root.is_file():
        _fail(f"{root}: no stage (run `twin scene {run_dir}` first)")
    tmp = out.with_name(f".{out.stem}.tmp.png")   # render to a temp name, rename when complete
    try:
        if quiet:
            render_frame(root, frame, tmp, size=(width, height), samples=samples, camera=camera)
        else:  # Cycles runs in a child process and reports no fraction: a spinner with the elapsed time
            from twin.cli.common import err
            with err.status(f"rendering frame {frame} ({width}x{height}, {samples} samples, Cycles on CPU)"):
                render_frame(root, frame, tmp, size=(width, height), samples=samples, camera=camera)
        tmp.replace(out)
    except RenderError as exc:
        tmp.unlink(missing_ok=True)
        _fail(str(exc))
    typer.echo(f"wrote {out} (frame {frame}, {width}x{height}, {samples} samples, camera {camera})")


def register(app: typer.Typer) -> None:
    """Add `scene` and `render` to the main `twin` app."""
    app.command("scene")(scene)
    app.command("render")(render)
