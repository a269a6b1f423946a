"""CLI for query/plot/compare/export, via CliRunner on a local Typer app we register into.

Values come from tests/synthetic_run.py formulas (12 nodes, 20 samples of 10 s, facility = 1.5 x IT).
"""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import typer
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from typer.testing import CliRunner

from synthetic_run import make_synthetic_run
from twin.cli.tools import register
from twin.tools.plots import PLOTS
from twin.tools.query import RECIPES

runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_synthetic_run(tmp_path_factory.mktemp("cli") / "run")


def invoke(app, *args):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in err, err


def test_query_list_shows_every_recipe_with_description(app):
    result = invoke(app, "query", "--list")
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == list(RECIPES)
    assert all(RECIPES[ln.split()[0]].description in ln for ln in lines)


def test_query_sql_to_csv_stdout(app, run_dir):
    result = invoke(app, "query", run_dir, "SELECT max(facility_power_w) AS peak_w FROM facility", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout == "peak_w\n6300\n"


def test_query_recipe_json_and_table(app, run_dir, tmp_path):
    result = invoke(app, "query", run_dir, "--recipe", "peak-power", "--format", "json", "-o", tmp_path / "p.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "p.json").read_text())[0]["facility_power_w"] == 6300.0
    table = invoke(app, "query", run_dir, "--recipe", "energy-by-rack")
    assert table.exit_code == 0 and "B02" in table.stdout and "0.0429" in table.stdout  # 154,500 J = 0.0429167 kWh, 3 significant digits in a table


def test_query_parquet_output(app, run_dir, tmp_path):
    out = tmp_path / "g.parquet"
    result = invoke(app, "query", run_dir, "SELECT * FROM gpus WHERE time_s = 200", "--format", "parquet", "-o", out)
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).num_rows == 36


def test_query_table_truncates_to_limit(app, run_dir):
    result = invoke(app, "query", run_dir, "SELECT * FROM nodes", "--limit", "5")
    assert result.exit_code == 0 and "235 more rows (240 total)" in result.stdout


@pytest.mark.parametrize("args,needles", [
    (("query", "{missing}", "SELECT 1"), ["no such run directory"]),
    (("query", "{run}", "SELECT nope FROM gpus"), ["SQL error", "nope"]),
    (("query", "{run}", "--recipe", "peak-powr"), ["did you mean 'peak-power'"]),
    (("query", "{run}"), ["either SQL or --recipe"]),
    (("query", "{run}", "SELECT 1", "--recipe", "peak-power"), ["either SQL or --recipe"]),
    (("query", "{run}", "SELECT 1", "--format", "parquet"), ["needs -o"]),
    (("query", "{run}", "SELECT 1", "--format", "xml"), ["unknown --format"]),
    (("query", "{run}", "SELECT 1", "-o", "{tmp}/x.xlsx"), ["unknown extension '.xlsx'"]),
    (("query", "{run}", "SELECT 1", "--format", "csv", "-o", "{tmp}/x.json"), ["a .json file is json, not csv"]),
    (("plot", "{run}", "power", "-o", "{tmp}/x.jpg"), ["unknown image extension '.jpg'"]),
    (("report", "{run}", "-o", "{tmp}/x.pdf"), ["name it .html"]),
    (("compare", "{run}", "{run}", "--format", "yaml"), ["unknown --format"]),
    (("export", "{run}", "-o", "{tmp}/x.csv", "--format", "openmetrics"), ["a .csv file is csv, not openmetrics"]),
    (("export", "{run}", "-o", "{tmp}/x.svg"), ["unknown extension '.svg'"]),
    (("plot", "{run}", "heatmp", "-o", "{tmp}/x.png"), ["did you mean 'heatmap'"]),
    (("plot", "{run}", "heatmap", "--at", "9999", "-o", "{tmp}/x.png"), ["outside the run"]),
    (("plot", "{run}", "power"), ["-o"]),
    (("plot", "{run}", "power", "--at", "5", "-o", "{tmp}/x.png"), ["heatmap only"]),
    (("plot", "{tmp}", "power", "-o", "{tmp}/x.png"), ["no manifest.json"]),
    (("compare", "{run}", "{missing}"), ["no such run directory"]),
    (("export", "{run}", "-o", "{tmp}/x", "--format", "xml"), ["unknown --format"]),
    (("export", "{run}", "-o", "{tmp}/nodir/x.om"), ["does not exist"]),
])
def test_user_errors_are_one_line_exit_2(app, run_dir, tmp_path, args, needles):
    subst = {"{run}": str(run_dir), "{missing}": str(tmp_path / "missing"), "{tmp}": str(tmp_path)}
    argv = []
    for a in args:
        for k, v in subst.items():
            a = a.replace(k, v)
        argv.append(a)
    assert_user_error(invoke(app, *argv), *needles)


def test_plot_list_and_write(app, run_dir, tmp_path):
    listed = invoke(app, "plot", "--list")
    assert listed.exit_code == 0 and [ln.split()[0] for ln in listed.stdout.splitlines()] == list(PLOTS)
    result = invoke(app, "plot", run_dir, "heatmap", "--at", "100", "-o", tmp_path / "h.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_json(app, run_dir, tmp_path):
    other = make_synthetic_run(tmp_path / "b", samples=40)
    result = invoke(app, "compare", run_dir, other, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {m["key"]: m for m in json.loads(result.stdout)["metrics"]}
    # peak IT at k=39 vs k=19: +5 W x 20 samples x 12 nodes = +1.2 kW (values in the key's unit, W)
    assert rows["peak_it_power_w"]["delta"] == pytest.approx(1200)
    table = invoke(app, "compare", run_dir, other)
    assert table.exit_code == 0 and "peak IT (wall) power" in table.stdout
    assert "note: durations differ (A 200 s, B 400 s)" in " ".join(table.stdout.split())


def test_export_openmetrics_parses(app, run_dir, tmp_path):
    out = tmp_path / "run.om"
    result = invoke(app, "export", run_dir, "-o", out, "--start-epoch", "1000", "-q")
    assert result.exit_code == 0, result.output
    assert "wrote 7,520 samples" in result.stdout
    fams = list(text_string_to_metric_families(out.read_text()))
    assert sum(len(f.samples) for f in fams) == 7520
    assert min(float(s.timestamp) for f in fams for s in f.samples) == 1010.0


@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_plot_writes_the_format_its_extension_names(app, run_dir, tmp_path, suffix, magic):
    out = tmp_path / f"power{suffix}"
    result = invoke(app, "plot", run_dir, "power", "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(magic)


def test_no_short_flag_means_two_things():
    """-f is --force wherever it exists, -q is --quiet, and --format has no short flag."""
    from twin.cli.main import app as real_app

    cli = typer.main.get_command(real_app)
    seen: dict[str, set[str]] = {}
    for name, cmd in cli.commands.items():
        for sub in getattr(cmd, "commands", {cmd.name: cmd}).values():
            for p in sub.params:
                if getattr(p, "param_type_name", "") == "option":
                    longs = [o for o in p.opts + p.secondary_opts if o.startswith("--")]
                    for short in (o for o in p.opts if len(o) == 2):
                        seen.setdefault(short, set()).update(longs[:1])
    assert seen.get("-f", {"--force"}) == {"--force"} and seen.get("-q", {"--quiet"}) == {"--quiet"}
    assert all(len(v) == 1 for v in seen.values()), seen


def test_real_twin_cli_has_the_tools():
    from twin.cli.main import app as real_app

    result = runner.invoke(real_app, ["query", "--list"])
    assert result.exit_code == 0 and "energy-by-rack" in result.stdout


def test_tools_work_on_a_real_engine_run(app, tiny_run, tmp_path):
    """End to end on the engine's tiny scenario: every recipe, plot kind and export format runs."""
    for name in RECIPES:
        r = invoke(app, "query", tiny_run, "--recipe", name, "--format", "json")
        assert r.exit_code == 0, (name, r.output)
    for kind in PLOTS:
        r = invoke(app, "plot", tiny_run, kind, "-o", tmp_path / f"{kind}.png")
        assert r.exit_code == 0, (kind, r.output)
    r = invoke(app, "export", tiny_run, "-o", tmp_path / "t.om", "-q")
    assert r.exit_code == 0, r.output
    assert list(text_string_to_metric_families((tmp_path / "t.om").read_text()))
    r = invoke(app, "compare", tiny_run, tiny_run, "--format", "json")
    assert r.exit_code == 0 and all(m["delta"] in (0, None) for m in json.loads(r.stdout)["metrics"])


def test_long_commands_report_progress_and_accept_quiet(app, run_dir, tmp_path):
    from twin.telemetry.read import load_run
    from twin.tools.export import export
    from twin.tools.report import write_report

    seen: list[tuple[float, str]] = []
    export(load_run(run_dir), tmp_path / "p.om", progress=lambda f, what: seen.append((f, what)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0 and fractions[-1] == 1.0
    assert "DCGM_FI_DEV_GPU_TEMP" in {w for _, w in seen}
    seen.clear()
    write_report(load_run(run_dir), tmp_path / "r.html", progress=lambda f, what: seen.append((f, what)))
    assert [w for _, w in seen if w.startswith("chart")] and seen == sorted(seen, key=lambda x: x[0])
    for args in (("export", run_dir, "-o", tmp_path / "q.om", "-q"), ("report", run_dir, "-o", tmp_path / "q.html", "-q")):
        r = invoke(app, *args)
        assert r.exit_code == 0 and r.stderr == "", (args, r.output)
