"""`twin query | plot | compare | export | report`: engineers' tools over a finished run.

Thin Typer commands: parse, delegate to twin.query / plots / compare / export, print.
User errors (missing run, bad SQL, unknown recipe or kind, bad option) print one line
``error: ...`` on stderr and exit 2, never a traceback. Heavy libraries (duckdb, matplotlib)
are imported inside the commands so `twin --help` stays fast.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer

from twin.cli.common import QuietOption, check_choice, format_help

QUERY_FORMATS = ("table", "csv", "json", "parquet")
ForceOption = Annotated[bool, typer.Option("--force", "-f", help="Replace an existing -o file that twin wrote "
                                           "(never any other file; docs/safety.md)")]


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the tools' user-facing errors into a one-line message and exit code 2."""
    from twin.errors import ToolError

    try:
        yield
    except ToolError as exc:
        _fail(str(exc))
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))


def _load(path: Path | None, what: str = "RUN_DIR"):
    from twin.telemetry.read import load_run

    if path is None:
        _fail(f"missing argument {what}")
    return load_run(path)


def check_output_file(out: Path, force: bool, fmt: str) -> None:
    """Refuse an existing -o before the work (twin.telemetry.atomic; imported here to keep --help fast)."""
    from twin.telemetry.atomic import check_output_file as check

    check(out, force, fmt)


def _write_text(text: str, out: Path | None, fmt: str, force: bool = False) -> None:
    """Text to `out` (temp file + rename; an existing file only with --force, only twin's) or stdout."""
    if out is None:
        sys.stdout.write(text)
        return
    from twin.telemetry.atomic import atomic_write

    atomic_write(out, lambda fh: fh.write(text.encode()), force=force, fmt=fmt)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        # a readable table (--format csv/json/parquet keep full precision): kW-scale powers as
        # whole watts with separators, everyday magnitudes to 2 decimals, small ones to 3 digits
        mag = abs(value)
        if value != value or mag == float("inf") or mag == 0:
            return f"{value:g}"
        if mag >= 1000:
            return f"{value:,.0f}"
        return f"{value:.2f}" if mag >= 1 else f"{value:.3g}"
    return str(value)


def _print_table(table, limit: int) -> None:
    from rich.table import Table

    from twin.cli.common import console as plain_console

    view = Table(show_lines=False)
    for name in table.column_names:
        view.add_column(name, justify="left" if table.schema.field(name).type in ("string", "large_string") else "right")
    for row in table.slice(0, limit).to_pylist():
        view.add_row(*(_cell(v) for v in row.values()))
    console = plain_console()  # cells are user data: "[/bold]" in a pool name must print, not parse
    console.print(view)
    if table.num_rows > limit:
        console.print(f"… {table.num_rows - limit} more rows ({table.num_rows} total); "
                      f"use --limit or --format csv")


def query(
    run_dir: Annotated[Optional[Path], typer.Argument(help="Run directory")] = None,
    sql: Annotated[Optional[str], typer.Argument(help="DuckDB SQL over views gpus, nodes, racks, facility, "
                                                  "requests, events, links, topology")] = None,
    recipe: Annotated[Optional[str], typer.Option("--recipe", "-r", help="Run a named recipe instead of SQL")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the recipes and exit")] = False,
    fmt: Annotated[Optional[str], typer.Option("--format", metavar="[" + "|".join(QUERY_FORMATS) + "]",
                                               help=format_help(QUERY_FORMATS, "default table, or from -o's "
                                                                "extension"))] = None,
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Output file: .csv, .json or .parquet")] = None,
    limit: Annotated[int, typer.Option(help="Rows shown by --format table")] = 50,
    force: ForceOption = False,
    unsafe_sql: Annotated[bool, typer.Option("--unsafe-sql", help="Plain DuckDB: any statement, any file this "
                                             "user can read or write (default: one SELECT over the run only)")] = False,
) -> None:
    """Run SQL (or a named --recipe) over a run's telemetry tables (read-only, the run's files only)."""
    from twin.tools import query as q

    if list_:
        width = max(map(len, q.RECIPES))
        for name, r in q.RECIPES.items():
            typer.echo(f"{name:<{width}}  {r.description}")
        return
    check_choice(fmt, QUERY_FORMATS)
    if out is not None:
        by_suffix = {".csv": "csv", ".json": "json", ".parquet": "parquet"}.get(out.suffix.lower())
        if by_suffix is None:
            _fail(f"-o {out}: unknown extension {out.suffix or '(none)'!r}; use .csv, .json or .parquet")
        if fmt not in (None, by_suffix):
            _fail(f"-o {out}: a {out.suffix} file is {by_suffix}, not {fmt}; change the extension or the --format")
        fmt = by_suffix
    fmt = fmt or "table"
    if (sql is None) == (recipe is None):
        _fail("give either SQL or --recipe NAME (see twin query --list)")
    if fmt == "parquet" and out is None:
        _fail("--format parquet needs -o FILE")
    with _user_errors():
        if out is not None:
            check_output_file(out, force, fmt)  # before the query runs
        run = _load(run_dir)
        text = q.recipe(recipe).sql if recipe else sql
        result = run.sql(text, unrestricted=unsafe_sql)
        if fmt == "table":
            _print_table(result, limit)
        elif fmt == "csv":
            _write_text(q.to_csv(result), out, "csv", force)
        elif fmt == "json":
            _write_text(q.to_json(result), out, "json", force)
        else:
            q.write_parquet(result, out, force)


def plot(
    run_dir: Annotated[Optional[Path], typer.Argument(help="Run directory")] = None,
    kind: Annotated[Optional[str], typer.Argument(help="Plot kind (see --list)")] = None,
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Image to write: .png, .svg or .pdf")] = None,
    at: Annotated[Optional[float], typer.Option("--at", help="heatmap: simulation time in seconds "
                                                 "(default: last sample)")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the plot kinds and exit")] = False,
    force: ForceOption = False,
) -> None:
    """Draw a chart of a run (PNG, SVG or PDF): power, rack-power, gpu-temp, latency, ignition, heatmap."""
    from twin.tools import plots

    if list_:
        width = max(map(len, plots.PLOTS))
        for name, p in plots.PLOTS.items():
            typer.echo(f"{name:<{width}}  {p.description}")
        return
    with _user_errors():
        run = _load(run_dir)
        if kind is None:
            _fail("missing argument KIND (see twin plot --list)")
        if out is None:
            _fail("missing -o FILE (.png, .svg or .pdf)")
        if at is not None and kind != "heatmap":
            _fail("--at applies to the heatmap only")
        written = plots.plot(run, kind, out, plots.PlotOptions(at_s=at), force=force)
    typer.echo(f"wrote {written}")


COMPARE_FORMATS = ("table", "json")


def compare(
    run_a: Annotated[Path, typer.Argument(help="Baseline run directory (A)")],
    run_b: Annotated[Path, typer.Argument(help="Run directory to compare (B)")],
    fmt: Annotated[str, typer.Option("--format", metavar="[table|json]", help=format_help(COMPARE_FORMATS))] = "table",
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Write JSON here instead of stdout")] = None,
    force: ForceOption = False,
) -> None:
    """Compare two runs: work, latency, power, energy, money, heat (B vs A), with notes on what misleads."""
    import json

    from twin.tools import compare as cmp

    check_choice(fmt, COMPARE_FORMATS)
    if out is not None and fmt != "json":
        _fail("-o writes JSON; add --format json")
    with _user_errors():
        if out is not None:
            check_output_file(out, force, "json")
        a, b = _load(run_a), _load(run_b)
        rows = cmp.compare(a, b)
        notes = cmp.notes(a, b, rows)
        if fmt == "json":
            _write_text(json.dumps(cmp.to_dict(a, b, rows, notes), indent=2) + "\n", out, "json", force)
    if fmt != "json":
        from twin.cli.common import console as plain_console

        plain_console().print(cmp.render(a, b, rows, notes))  # run names are the manifests' strings: no markup


def export(
    run_dir: Annotated[Path, typer.Argument(help="Run directory")],
    out: Annotated[Path, typer.Option("-o", "--out", help="File to write: .om (OpenMetrics), .prom/.txt "
                                                         "(Prometheus text), .csv or .parquet")],
    fmt: Annotated[Optional[str], typer.Option("--format", metavar="[openmetrics|prometheus|csv|parquet]",
                                               help="default: from -o's extension")] = None,
    start_epoch: Annotated[Optional[float], typer.Option(help="Unix time (s) of simulation t=0 "
                                                              "(default: the run ends now)")] = None,
    scrape_s: Annotated[Optional[float], typer.Option(help="Keep one sample per this many seconds, like a "
                                                           "Prometheus scrape interval (default: every sample)")] = None,
    quiet: QuietOption = False,
    force: ForceOption = False,
) -> None:
    """Export a run as timestamped metrics (dcgm-exporter names and labels) for Prometheus/Grafana."""
    from twin.cli.common import _with_progress, progress_fraction
    from twin.tools.export import export as do_export
    from twin.tools.export import format_for

    from twin.tools.export import FORMATS

    check_choice(fmt, FORMATS)
    with _user_errors():
        fmt = format_for(out, fmt)
        check_output_file(out, force, fmt)  # before the export's seconds
        run = _load(run_dir)
        t0 = time.perf_counter()
        n = _with_progress(f"exporting {fmt}", lambda cb: do_export(run, out, fmt, start_epoch,
                                                                    progress=progress_fraction(cb),
                                                                    scrape_s=scrape_s, force=force), quiet)
    dt = time.perf_counter() - t0
    typer.echo(f"wrote {n:,} samples to {out} ({out.stat().st_size / 1e6:,.1f} MB) in {dt:.1f} s")


def report(
    run_dir: Annotated[Path, typer.Argument(help="Run directory")],
    out: Annotated[Path, typer.Option("-o", "--out", help="HTML file to write (.html)")],
    at: Annotated[Optional[float], typer.Option("--at", help="Floor heatmap time in seconds, as in twin plot "
                                                "(default: when the hottest GPU peaked)")] = None,
    rows: Annotated[int, typer.Option(help="Rows shown per table")] = 20,
    quiet: QuietOption = False,
    force: ForceOption = False,
) -> None:
    """Write one self-contained HTML page (summary with costs, plots, tables) for sharing; works offline."""
    from twin.cli.common import _with_progress, progress_fraction
    from twin.tools.report import ReportOptions, write_report

    if rows < 1:
        _fail(f"--rows must be at least 1 (got {rows})")
    if out.suffix.lower() not in (".html", ".htm"):
        _fail(f"-o {out}: the report is HTML; name it .html")
    with _user_errors():
        run = _load(run_dir)
        t0 = time.perf_counter()
        _with_progress("writing report", lambda cb: write_report(
            run, out, ReportOptions(heatmap_at_s=at, max_table_rows=rows), progress=progress_fraction(cb),
            force=force), quiet)
    dt = time.perf_counter() - t0
    typer.echo(f"wrote {out} ({out.stat().st_size / 1e6:,.2f} MB) in {dt:.1f} s")


def register(app: typer.Typer) -> None:
    """Add the query, plot, compare, export and report commands to `app`."""
    app.command("query")(query)
    app.command("plot")(plot)
    app.command("compare")(compare)
    app.command("export")(export)
    app.command("report")(report)
