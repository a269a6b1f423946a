"""The `twin` command line (Typer). Thin: every command parses, delegates, prints.

User mistakes (bad YAML, unknown parts, a run directory that exists) print one message per
problem on stderr and exit with code 2 — never a traceback. Exit code 1 is reserved for bugs.
"""
from __future__ import annotations

import atexit
import contextlib
import importlib
import math
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from twin.cli.common import CatalogueOption, SetOption, _with_progress, fail, load_scenario_or_exit, out, parse_sets

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="AI Inference Refinery digital twin: simulate, query and render the surge.")
catalogue_app = typer.Typer(no_args_is_help=True, help="Browse the parts and models catalogue.")
app.add_typer(catalogue_app, name="catalogue")


def _version(value: bool) -> None:
    if value:
        from importlib import metadata

        try:
            version = metadata.version("twin")
        except metadata.PackageNotFoundError:
            version = "unknown (not installed)"
        typer.echo(f"twin {version}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit")] = False) -> None:
    """AI Inference Refinery digital twin: simulate, query and render the surge."""

@app.command()
def run(scenario: Annotated[Path, typer.Argument(help="Scenario YAML, e.g. scenarios/surge.yaml")],
        out_dir: Annotated[Optional[Path], typer.Option("-o", "--out", help="Run directory (default runs/<scenario name>)")] = None,
        seed: Annotated[Optional[int], typer.Option(help="Override simulation.seed")] = None,
        sets: SetOption = None,
        catalogue: CatalogueOption = None,
        force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing run directory")] = False,
        stage: Annotated[bool, typer.Option("--stage/--no-stage", help="Also write the USD stage")] = True,
        stage_sample_s: Annotated[Optional[float], typer.Option(help="Seconds between stage time samples")] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")] = False) -> None:
    """Simulate SCENARIO and write telemetry (Parquet), a manifest and the USD stage."""
    from twin.telemetry.atomic import OutputError, OutputLock, check_replaceable, prepare_target, target_path
    from twin.telemetry.write import RUN_KIND, default_run_dir

    if stage_sample_s is not None and not (math.isfinite(stage_sample_s) and stage_sample_s > 0):
        fail(f"--stage-sample-s: must be a positive number of seconds, got {stage_sample_s:g}")  # before simulating
    sc = load_scenario_or_exit(scenario, seed, sets, catalogue)
    target = out_dir or default_run_dir(sc.name)
    try:  # before simulating: a refusal should not cost the user the whole run
        target = target_path(target)
        check_replaceable(target, force, RUN_KIND)
        target.parent.mkdir(parents=True, exist_ok=True)
        overrides = dict(parse_sets(sets))
        if seed is not None:
            overrides["simulation.seed"] = seed
        # held from here to the rename: a second `twin run -o` of this target is refused at once
        with OutputLock(target) as lock:
            prepare_target(target, force, RUN_KIND)
            with _interruptible(target):
                _run(sc, target, force, stage, stage_sample_s, quiet, overrides, scenario, lock)
    except OutputError as exc:
        fail(str(exc))
    except OSError as exc:  # -o under a read-only or full file system: a user-side problem
        fail(f"cannot write {target}: {exc.strerror or exc}")


@contextlib.contextmanager
def _interruptible(target: Path):
    """Ctrl-C (exit 130) or SIGTERM (exit 143): one line, no traceback. The run directory is built
    atomically (twin.telemetry.AtomicDir), so unwinding through it leaves nothing behind."""
    got: list[int] = []

    def on_term(signum, frame):
        got.append(signum)
        raise KeyboardInterrupt  # unwinds like Ctrl-C, through AtomicDir's cleanup

    main = threading.current_thread() is threading.main_thread()  # signal handlers only there
    previous = signal.signal(signal.SIGTERM, on_term) if main else None
    try:
        yield
    except (KeyboardInterrupt, SystemError) as exc:
        # a SystemError: the signal's KeyboardInterrupt raised while a compiled kernel returned;
        # CPython reports "returned a result with an exception set", the interrupt as its cause
        if not _caused_by_interrupt(exc):
            raise
        fail(f"interrupted; no partial run written to {target}", code=143 if got else 130)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _run(sc, target: Path, force: bool, stage: bool, stage_sample_s: float | None, quiet: bool,
         overrides: dict | None = None, source: Path | None = None, lock=None) -> None:
    from twin.sim.engine import simulate
    from twin.sim.gc_scope import freeze_what_is_new, older_objects_frozen
    from twin.telemetry.write import RunWriter

    stage_fn, data_job, meanwhile = None, None, None
    if stage:
        from scenes import HELPER_MIN_NODE_ROWS, build_stage, start_data_helper
        from twin.model.resources import estimate

        if estimate(sc.spec, sc.catalogue).rows["nodes"] >= HELPER_MIN_NODE_ROWS:
            # the stage's data layer is written by a helper process: started now, its imports run on
            # the second core while the simulation runs (scenes/data_layer.py)
            data_job = start_data_helper()

        def meanwhile() -> None:   # pxr and the stage's modules (~0.3 s) while the last row groups encode
            import scenes.stage  # noqa: F401
            freeze_what_is_new()   # and their ~20,000 objects join the frozen ones (twin.sim.gc_scope)

        def stage_fn(tmp: Path) -> dict:
            return _with_progress("writing USD stage", lambda cb: build_stage(
                tmp, stage_sample_s=stage_sample_s, data_job=data_job,
                progress=(lambda msg, frac: cb(frac, {"msg": msg})) if cb else None), quiet)  # cb is None with -q
    # the collector skips what the imports made, to the summary's last line (twin.sim.gc_scope): once
    # unfrozen, the ~150,000 objects would cost a full collection (~80 ms) at the next allocations
    with older_objects_frozen():
        try:
            # the run directory is open while simulating: the gpus, nodes and links tables stream into it
            with RunWriter(target, force=force, lock=lock) as run:
                result = _with_progress(f"simulating {sc.name}",
                                        lambda cb: simulate(sc, progress=cb, sinks=run.sinks()), quiet)
                man = run.finish(result, stage=stage_fn, overrides=overrides, source=source, meanwhile=meanwhile)
        finally:
            if data_job is not None:   # a failed run: the helper never got its work (build_stage closes it)
                data_job.close()
        print_summary(man, target)


# `twin run`'s summary: rows of one or more summary keys (twin.model.metrics defines each key's
# label, unit and digits; the row labels below only group them).
SUMMARY_LAYOUT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("requests arrived / completed", ("requests_arrived", "requests_completed")),
    ("dropped", ("requests_dropped",)),
    ("still queued / in flight at end", ("requests_queued", "requests_in_flight")),
    ("TTFT p50 / p99", ("ttft_p50_s", "ttft_p99_s")),
    ("latency p50 / p99", ("latency_p50_s", "latency_p99_s")),
    ("nodes ignited / peak on / peak serving", ("nodes_ignited", "peak_nodes_on", "peak_nodes_serving")),
    ("peak IT (wall) power", ("peak_it_power_w",)),
    ("peak facility power", ("peak_facility_power_w",)),
    ("energy IT / facility", ("it_energy_kwh", "facility_energy_kwh")),
    ("PUE (energy-weighted)", ("pue",)),
    ("peak GPU temperature", ("peak_gpu_temp_c",)),
    ("throttled GPU-seconds", ("throttled_gpu_s",)),
    ("thermal shutdowns", ("thermal_shutdowns",)),
    ("faults / units lost / request retries", ("faults", "units_lost", "request_retries")),
    ("KV preemptions (recompute)", ("preemptions",)),
    ("tokens served / per facility kWh", ("tokens_served", "tokens_per_kwh")),
    ("energy cost / amortised capex", ("energy_cost_usd", "amortised_capex_usd")),
    ("USD per Mtok energy / total", ("cost_per_mtok_energy_usd", "cost_per_mtok_usd")),
    ("GPU-hours serving / warm / booting+loading", ("gpu_hours_serving", "gpu_hours_warm", "gpu_hours_booting+loading")),
    ("training jobs / done", ("training_jobs", "training_jobs_done")),
    ("training tokens / steps", ("training_tokens", "training_steps")),
    ("training GPU-hours / energy / preempted", ("training_gpu_hours", "training_energy_kwh", "training_preempted_s")),
    ("simulation wall time", ("wall_time_s",)),
)
_UNITLESS_IN_SUMMARY = {"cost_per_mtok_energy_usd", "cost_per_mtok_usd", "tokens_per_kwh", "tokens_served",
                        "gpu_hours_serving", "gpu_hours_warm", "gpu_hours_booting+loading",
                        "training_jobs", "training_jobs_done", "training_tokens", "training_steps",
                        "training_gpu_hours"}  # the row label says it


def summary_rows(man: dict) -> list[tuple[str, str]]:
    """(row label, formatted values) of a manifest's summary, as `twin run` prints it."""
    from twin.model.metrics import metric

    s = dict(man["summary"], wall_time_s=man.get("wall_time_s"))
    if "gpu_hours_booting" in s:
        s["gpu_hours_booting+loading"] = s["gpu_hours_booting"] + s.get("gpu_hours_loading", 0.0)
    rows = []
    for label, keys in SUMMARY_LAYOUT:
        if not all(k in s for k in keys):  # economics keys are absent in older runs
            continue
        parts = []
        for k in keys:
            m = metric("gpu_hours_booting" if k == "gpu_hours_booting+loading" else k)
            parts.append(m.format(s[k], unit=k not in _UNITLESS_IN_SUMMARY))
        text = " / ".join(parts)
        if keys == ("requests_dropped",):
            reasons = ", ".join(f"{k} {v:,}" for k, v in s.get("drop_reasons", {}).items()) or "none"
            text = f"{text} ({reasons})"
        rows.append((label, text))
    return rows


def print_summary(man: dict, run_dir: Path) -> None:
    t = Table(title=f"{man['scenario']['name']} (seed {man['scenario']['seed']}) -> {run_dir}", show_header=False)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in summary_rows(man):
        t.add_row(k, v)
    out.print(t)


@app.command()
def validate(scenario: Annotated[Path, typer.Argument(help="Scenario YAML to check")],
             sets: SetOption = None) -> None:
    """Check SCENARIO and print every problem with its field path (exit 2 if any)."""
    sc = load_scenario_or_exit(scenario, sets=sets)
    topo = sc.spec.topology
    out.print(f"{scenario}: ok — {sc.name}: {topo.rows * topo.racks_per_row} racks, "
              f"{topo.rows * topo.racks_per_row * topo.nodes_per_rack} nodes, {len(sc.spec.pools)} pool(s), "
              f"{sc.spec.simulation.duration_s:g} s, seed {sc.seed}")


@catalogue_app.command("list")
def catalogue_list(kind: Annotated[Optional[str], typer.Argument(help="gpus, models, nodes, ... (default: all)")] = None) -> None:
    """List catalogue entries."""
    from twin.spec.catalogue import KINDS, load_catalogue
    cat = load_catalogue()
    kinds = [kind] if kind else list(KINDS)
    for k in kinds:
        if k not in KINDS:
            fail(f"unknown catalogue kind {k!r}; choose one of {', '.join(KINDS)}")
        out.print(Text.assemble((k, "bold"), ": " + ", ".join(cat.names(k))))


@catalogue_app.command("show")
def catalogue_show(name: Annotated[str, typer.Argument(help="Entry name, e.g. rtx-pro-4500-blackwell")]) -> None:
    """Show one entry with its numbers and sources."""
    import yaml

    from twin.errors import suggest
    from twin.spec.catalogue import load_catalogue
    cat = load_catalogue()
    for kind, entries in cat.entries.items():
        if name in entries:
            out.print(f"# {kind}")
            out.print(yaml.safe_dump(entries[name].model_dump(mode="json"), sort_keys=False), end="")
            return
    every = [n for e in cat.entries.values() for n in e]
    fail(f"no catalogue entry {name!r}{suggest(name, every)}")


# Commands contributed by other modules: each exposes register(app).
for _mod in ("twin.cli.scene", "twin.cli.tools", "twin.cli.predict", "twin.cli.plan", "twin.cli.schema",
             "twin.cli.replay", "twin.cli.calibrate", "twin.cli.train"):
    importlib.import_module(_mod).register(app)


def main() -> None:
    """The `twin` console script (and `python -m twin`)."""
    try:
        app()
    except SystemExit as exc:   # every finished command ends here (Typer's standalone mode)
        code = 0 if exc.code is None else exc.code
        if not isinstance(code, int):   # sys.exit("message"): printed, exit status 1, as Python does
            print(code, file=sys.stderr)
            code = 1
        _exit_now(code)


def _exit_now(code: int) -> None:
    """End the process without the interpreter's teardown of every module.

    Once numba has loaded its kernels, that teardown (LLVM's, mostly) takes 0.3-0.5 s, measured
    on every `twin` command that simulates (benchmarks/bench_e2e.py; tiny: 0.39 s after the last
    line ran). Everything a command owns is closed by then (run directories are atomic, writers
    are joined), so the exit keeps only what matters: the atexit handlers (logging, coverage, and
    weakref.finalize's, which remove a spilling spool's directory and any temporary directory
    still alive, garbage or not; tests/test_gc_scope.py), flushed streams. No full garbage
    collection first: it found nothing those handlers do not, and took 80-90 ms. Set
    TWIN_FULL_EXIT=1 for the ordinary interpreter exit.
    """
    if os.environ.get("TWIN_FULL_EXIT"):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe: nothing left to say
            pass
    os._exit(code)
