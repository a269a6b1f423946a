"""`twin scene` (rebuild a run's USD stage), `twin render` (Cycles stills) and `twin showreel`
(a rendered camera move, encoded to MP4).

Thin Typer commands over scenes/: user errors print one line ``error: ...`` on stderr and exit 2
(twin.cli.common.fail); -q hides the progress bars.
Outputs are built under a temporary name and renamed into place when complete
(twin.telemetry.AtomicDir), so an interrupted command leaves the old result intact; --force
replaces only a stage/, PNG or showreel twin wrote (docs/safety.md). pxr and bpy are imported
inside the commands so `twin --help` stays fast.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from twin.cli.common import ForceOption, QuietOption, _with_progress, fail

CAMERAS = "Hero (eased move down the aisle), CloseUp (into a node), Overview or Front"
ColourBy = Annotated[Optional[str], typer.Option("--colour-by", help="gpu_temp (default), exhaust, power_density or util")]
ColourRange = Annotated[Optional[str], typer.Option("--colour-range", help="auto (fitted to the run, default), physical or LO:HI")]


def _check_run(run_dir: Path) -> None:
    from twin.telemetry.read import NotARunError, load_run
    try:
        load_run(run_dir)  # readable: manifest fields, tables, nothing linked from outside
    except NotARunError as exc:
        fail(str(exc))


def _check_own_run(run_dir: Path) -> None:
    """`twin scene` writes into RUN_DIR: it must be a run this version of twin wrote."""
    from twin.telemetry.outputs import is_twin_dir
    from twin.telemetry.write import RUN_KIND

    _check_run(run_dir)
    if not is_twin_dir(run_dir, RUN_KIND):
        fail(f"{run_dir}: not written by this version of twin (no .twin marker), so `twin scene` does not "
             f"write into it; re-run the scenario with `twin run` to get a run it may update")


def _window(text: Optional[str]) -> Optional[tuple[float, float]]:
    if text is None:
        return None
    try:
        a, b = (float(v) for v in text.split(":"))
    except ValueError:
        fail(f"--window: expected START:END in simulated seconds (e.g. 1200:1260), got {text!r}")
    if not (math.isfinite(a) and math.isfinite(b) and b > a):
        fail(f"--window: need START < END, got {text!r}")
    return a, b


def _check_mapping(colour_by: Optional[str], colour_range: Optional[str]) -> None:
    from scenes.mapping import parse_range, quantity
    try:
        quantity(colour_by)
        parse_range(colour_range)
    except ValueError as exc:
        fail(str(exc))


def _progress(quiet: bool):
    """A rich progress bar on stderr (None with -q): returns (context, callback(label, done, total))."""
    import contextlib
    if quiet:
        return contextlib.nullcontext(), None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from twin.cli.common import err
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn(), console=err, transient=True)
    tasks: dict[str, int] = {}

    def cb(label: str, done: float, total: float) -> None:
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=total)
        bar.update(tasks[label], completed=done, total=total)
    return bar, cb


def scene(run_dir: Annotated[Path, typer.Argument(help="A finished run directory (twin run -o ...)")],
          stage_sample_s: Annotated[Optional[float], typer.Option(help="Simulated seconds per stage frame (default 5)")] = None,
          force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing stage/ that twin wrote")] = False,
          previews: Annotated[bool, typer.Option("--previews/--no-previews", help="Also write the legend and heat-map previews")] = True,
          colour_by: ColourBy = None, colour_range: ColourRange = None,
          window: Annotated[Optional[str], typer.Option(help="Only simulated seconds START:END of the run")] = None,
          realtime: Annotated[bool, typer.Option("--realtime", help="24 frames per simulated second (use with --window)")] = False,
          quiet: QuietOption = False,
          ) -> None:
    """Regenerate RUN_DIR/stage (refinery.usda + telemetry.usdc + data.usdc + previews) without re-simulating."""
    from twin.errors import ToolError
    from twin.telemetry.atomic import AtomicDir, write_json_atomic
    from twin.telemetry.read import read_manifest
    from twin.telemetry.write import STAGE_KIND

    _check_own_run(run_dir)
    if stage_sample_s is not None and not (math.isfinite(stage_sample_s) and stage_sample_s > 0):
        fail(f"--stage-sample-s: must be a positive number of seconds, got {stage_sample_s}")
    _check_mapping(colour_by, colour_range)
    span = _window(window)
    from scenes import build_stage
    try:
        with AtomicDir(run_dir / "stage", force=force, kind=STAGE_KIND, elsewhere=None) as tmp:  # no -o here
            info = _with_progress("writing USD stage", lambda cb: build_stage(
                run_dir, stage_sample_s=stage_sample_s, out_dir=tmp, previews=previews, colour_by=colour_by,
                colour_range=colour_range, window=span, realtime=realtime,
                progress=(lambda msg, frac: cb(frac, {"msg": msg})) if cb else None), quiet)
    except ToolError as exc:  # the stage exists, is not twin's, or is being written by another process
        fail(str(exc))
    except (FileNotFoundError, ValueError, KeyError) as exc:
        fail(str(exc).strip("'\""))
    except OSError as exc:
        fail(f"cannot write {run_dir / 'stage'}: {exc.strerror or exc}")
    tmp_name = Path(tmp).name        # paths are recorded relative to the run directory, as `twin run` does
    for key in ("root", "telemetry", "data"):
        info[key] = info[key].replace(tmp_name, "stage")
    info["previews"] = [p.replace(tmp_name, "stage") for p in info["previews"]]
    manifest = read_manifest(run_dir)
    manifest["stage"] = info
    write_json_atomic(run_dir / "manifest.json", manifest)
    c = info["colour"]
    typer.echo(f"wrote {run_dir / info['root']}: {info['prims']['nodes']} nodes, {info['frames']} frames, "
               f"{info['samples']:,} samples in {info['seconds']['total']:.1f} s; colour {c['twin:colour_by']} "
               f"{c['twin:colour_range_lo']:.4g}..{c['twin:colour_range_hi']:.4g} ({c['twin:colour_range_mode']})")


def _frame_number(frame: str, root: Path) -> int:
    """--frame: a time code, or a story beat (idle, ignition, cascade_end, peak, decay, last)."""
    if frame.lstrip("-").isdigit():
        return int(frame)
    from scenes import stage_beats
    beats = stage_beats(root)
    if frame not in beats:
        fail(f"--frame: {frame!r} is neither a frame number nor a beat ({', '.join(beats) or 'none in this stage'})")
    return int(round(beats[frame]))


def render(run_dir: Annotated[Path, typer.Argument(help="A run directory with a stage/ (twin run or twin scene)")],
           frame: Annotated[str, typer.Option("--frame", "-n", help="Stage frame (USD time code) or beat: idle, ignition, peak, decay")] = "1",
           out: Annotated[Path, typer.Option("-o", "--out", help="Output PNG")] = Path("frame.png"),
           width: Annotated[int, typer.Option(help="Image width, px")] = 480,
           height: Annotated[int, typer.Option(help="Image height, px")] = 270,
           samples: Annotated[int, typer.Option(help="Cycles samples per pixel (denoised)")] = 16,
           camera: Annotated[str, typer.Option(help=f"Stage camera: {CAMERAS}")] = "Hero",
           force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing PNG that twin wrote")] = False,
           quiet: QuietOption = False,
           ) -> None:
    """Render one frame of RUN_DIR's stage with Blender Cycles on the CPU (needs bpy; see --help)."""
    import os

    from scenes.render import RenderError, render_frame
    from twin.errors import ToolError
    from twin.telemetry.atomic import atomic_write, check_output_file
    from twin.telemetry.outputs import tag_png

    if width < 16 or height < 16 or samples < 1:
        fail("--width/--height must be >= 16 px and --samples >= 1")
    if out.suffix.lower() != ".png":
        fail(f"-o {out}: the output must be a .png file")
    root = run_dir / "stage" / "refinery.usda"
    if not root.is_file():
        fail(f"{root}: no stage (run `twin scene {run_dir}` first)")
    number = _frame_number(frame, root)
    try:
        check_output_file(out, force, "png")  # before the minutes of rendering
    except ToolError as exc:
        fail(str(exc))
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.render.png")   # Blender writes here; we tag and rename
    try:
        if quiet:
            render_frame(root, number, tmp, size=(width, height), samples=samples, camera=camera)
        else:  # Cycles runs in a child process and reports no fraction: a spinner with the elapsed time
            from twin.cli.common import err
            with err.status(f"rendering frame {number} ({width}x{height}, {samples} samples, Cycles on CPU)"):
                render_frame(root, number, tmp, size=(width, height), samples=samples, camera=camera)
        png = tag_png(tmp.read_bytes(), "twin render")  # twin's signature: render --force replaces only its own
        atomic_write(out, lambda fh: fh.write(png), force=force, fmt="png")
    except (RenderError, ToolError) as exc:
        fail(str(exc))
    except OSError as exc:  # an unwritable output folder
        fail(f"cannot write {out}: {exc.strerror or exc}")
    finally:
        tmp.unlink(missing_ok=True)
    typer.echo(f"wrote {out} (frame {number}, {width}x{height}, {samples} samples, camera {camera})")


def showreel(run_dir: Annotated[Path, typer.Argument(help="A finished run directory")],
             out_dir: Annotated[Path, typer.Option("-o", "--out", help="Output directory (showreel.mp4, frames/, stage/)")],
             seconds: Annotated[float, typer.Option(help="Video length: the whole run plays in this many seconds")] = 8.0,
             fps: Annotated[int, typer.Option(help="Frames per second")] = 24,
             width: Annotated[int, typer.Option(help="Frame width, px")] = 320,
             height: Annotated[int, typer.Option(help="Frame height, px")] = 180,
             samples: Annotated[int, typer.Option(help="Cycles samples per pixel (denoised)")] = 8,
             camera: Annotated[str, typer.Option(help=f"Stage camera: {CAMERAS}")] = "Hero",
             colour_by: ColourBy = None, colour_range: ColourRange = None,
             force: ForceOption = False,
             quiet: QuietOption = False,
             ) -> None:
    """Render a camera move over RUN_DIR (Cycles, CPU, preview quality) and encode it to MP4."""
    from scenes.render import RenderError, find_bpy_python
    from scenes.showreel import make_showreel
    from twin.errors import ToolError
    from twin.telemetry.atomic import AtomicDir

    _check_run(run_dir)
    if not (0 < seconds <= 600) or not (1 <= fps <= 60):
        fail("--seconds must be in (0, 600] and --fps in 1..60")
    if width < 16 or height < 16 or width % 2 or height % 2 or samples < 1:
        fail("--width/--height must be even and >= 16 px (H.264), --samples >= 1")
    _check_mapping(colour_by, colour_range)
    try:
        find_bpy_python()                       # before staging: say at once if Blender is missing
        import imageio_ffmpeg  # noqa: F401
    except RenderError as exc:
        fail(str(exc))
    except ImportError:
        fail("imageio-ffmpeg is not installed: pip install 'imageio-ffmpeg>=0.5' (it bundles ffmpeg)")
    bar, cb = _progress(quiet)
    try:
        with bar, AtomicDir(out_dir, force=force, kind="showreel") as tmp:  # --force: only a showreel twin wrote
            rec = make_showreel(run_dir, tmp, seconds=seconds, fps=fps, size=(width, height), samples=samples,
                                camera=camera, colour_by=colour_by, colour_range=colour_range, progress=cb)
    except ToolError as exc:  # exists, is not twin's showreel, or another process is writing it
        fail(str(exc))
    except RenderError as exc:
        fail(str(exc))
    except (FileNotFoundError, ValueError, KeyError) as exc:
        fail(str(exc).strip("'\""))
    typer.echo(f"wrote {out_dir / 'showreel.mp4'}: {rec['frames']} frames, {rec['seconds']:.1f} s at {fps} fps, "
               f"{rec['size'][0]}x{rec['size'][1]}, {rec['mp4_bytes'] / 1e6:.2f} MB (camera {camera}; "
               f"render {rec['wall_s']['render']:.0f} s)")


def register(app: typer.Typer) -> None:
    """Add `scene`, `render` and `showreel` to the main `twin` app."""
    app.command("scene")(scene)
    app.command("render")(render)
    app.command("showreel")(showreel)
