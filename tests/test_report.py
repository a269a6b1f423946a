"""twin report: one self-contained HTML page from the tiny engine run (tests/conftest.py).

The page is parsed with the standard library's HTMLParser (no browser in the suite); the
expected numbers are read from manifest.json and formatted here by hand, e.g. a peak facility
power of 4893.879 W must appear as "4.89" in the kW row.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shlex
import shutil
from html.parser import HTMLParser

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from synthetic_run import make_synthetic_run
from twin.cli.tools import register
from twin.tools.plots import DPI, FIGSIZE_IN, PLOTS
from twin.tools.report import (ReportOptions, column_decimals, column_heading, render_html, summary_rows, write_report)
from twin.errors import ToolError
from twin.telemetry.read import load_run

runner = CliRunner()
PNG_PREFIX = "data:image/png;base64,"


class Page(HTMLParser):
    """Collects what the tests look at: tags with src/href, images, table rows and text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, str]] = []  # (tag, attr, value)
        self.images: list[dict[str, str]] = []
        self.rows: list[list[str]] = []
        self.headings: list[str] = []
        self.tags: set[str] = set()
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._heading: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        a = dict(attrs)
        for key in ("src", "href", "action", "data"):
            if key in a:
                self.links.append((tag, key, a[key] or ""))
        if tag == "img":
            self.images.append(a)
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag in ("h2", "h3"):
            self._heading = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag in ("h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._heading is not None:
            self._heading.append(data)


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "tiny.html"
    result = runner.invoke(_app(), ["report", str(tiny_run), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    return out, text, Page(text)


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_page_is_self_contained(report):
    _, text, page = report
    assert page.links, "expected at least the embedded images"
    for tag, attr, value in page.links:
        assert not re.match(r"\s*(https?:)?//", value, re.I), (tag, attr, value)
        if attr == "src":
            assert value.startswith("data:"), (tag, value[:40])
    assert "script" not in page.tags and "link" not in page.tags  # no JS, no external stylesheet
    ids = set(re.findall(r'id="([^"]+)"', text))
    anchors = [v for tag, attr, v in page.links if attr == "href"]
    assert anchors and all(a.startswith("#") and a[1:] in ids for a in anchors)  # in-page links only
    assert "@import" not in text and "url(" not in text


def test_one_valid_png_per_plot_kind(report):
    _, _, page = report
    assert len(page.images) == len(PLOTS) == 6
    for img, kind in zip(page.images, PLOTS):
        assert img["alt"].startswith(f"{kind}:")
        assert img["src"].startswith(PNG_PREFIX)
        data = base64.b64decode(img["src"][len(PNG_PREFIX):], validate=True)
        with Image.open(io.BytesIO(data)) as im:
            im.verify()  # checks the PNG chunk CRCs
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == "PNG"
            assert im.size == (int(FIGSIZE_IN[0] * DPI), int(FIGSIZE_IN[1] * DPI))  # 1200 x 660 px
            im.load()


def test_summary_values_from_the_manifest_are_in_the_page(report, tiny_run):
    _, _, page = report
    summary = json.loads((tiny_run / "manifest.json").read_text())["summary"]
    rows = {r[0]: (r[1], r[2]) for r in page.rows if len(r) == 3}
    # formatted by hand: thousands separators; W -> kW (/1000); at least 4 significant digits
    # (tiny: 4.9 kW -> 3 decimals, 0.6 kWh -> 4, PUE 1.56 -> 3, 131.6 s -> 2 (TTFT's own), 71.4 °C -> 2)
    assert rows["requests arrived"] == (f"{summary['requests_arrived']:,}", "")
    assert rows["requests dropped"] == (f"{summary['requests_dropped']:,}", "")
    assert rows["peak facility power"] == (f"{summary['peak_facility_power_w'] / 1000:.3f}", "kW")
    assert rows["peak IT (wall) power"] == (f"{summary['peak_it_power_w'] / 1000:.3f}", "kW")
    assert rows["facility energy"] == (f"{summary['facility_energy_kwh']:.4f}", "kWh")
    assert rows["PUE (energy-weighted)"][0] == f"{summary['pue']:.3f}"
    assert rows["TTFT p99"] == (f"{summary['ttft_p99_s']:.2f}", "s")
    assert rows["latency p50"] == (f"{summary['latency_p50_s']:.1f}", "s")
    assert rows["peak GPU temperature"] == (f"{summary['peak_gpu_temp_c']:.2f}", "°C")
    # the money that decides a purchase is on the page too
    assert rows["cost per Mtok (total)"] == (f"{summary['cost_per_mtok_usd']:.3f}", "USD")
    assert rows["energy cost"][1] == "USD" and rows["capex share (amortised)"][1] == "USD"
    assert rows["drop reasons"][0] == ", ".join(f"{k} {v:,}" for k, v in sorted(summary["drop_reasons"].items()))
    # concretely for the tiny scenario (seed 7): 3,712 requests arrived
    assert rows["requests arrived"][0] == "3,712"


def test_recipe_tables_match_parquet(report, tiny_run):
    """energy-by-rack and hottest-gpus rows in the page equal values computed from Parquet here."""
    _, _, page = report
    racks = pq.read_table(tiny_run / "telemetry" / "racks.parquet").to_pydict()
    sample_s = json.loads((tiny_run / "manifest.json").read_text())["simulation"]["sample_s"]
    energy_kwh = sum(p * sample_s for p in racks["power_w"]) / 3.6e6  # one rack in the tiny scenario
    by_rack = [r for r in page.rows if r[:2] == ["0", "A01"]]
    # a column shows 4 significant digits at its largest value: 0.40 kWh -> 4 decimals
    assert 0.1 < energy_kwh < 1 and by_rack and by_rack[0][2] == f"{energy_kwh:.4f}"
    # share %: the only rack (DuckDB's window sum may give 99.99999999999999, shown as 100.0)
    assert by_rack[0][3] in ("100", "100.0")
    gpus = pq.read_table(tiny_run / "telemetry" / "gpus.parquet").to_pydict()
    hottest = max(gpus["temp_c"])
    assert 10 < hottest < 100  # -> 2 decimals
    hot_rows = [r for r in page.rows if len(r) == 6 and r[2] == "A01"]
    assert hot_rows[0][4] == f"{hottest:.2f}"  # hottest-gpus first row, max_temp_c


def test_column_decimals_line_up():
    assert column_decimals([6.314, 3.1, 2.124]) == 3          # 6.314 has 4 significant digits
    assert column_decimals([12.43, 4.29]) == 2
    assert column_decimals([6314.2, 3100.0]) == 0
    assert column_decimals([0.0004027]) == 6                  # capped at 6 decimals
    assert column_decimals([1, 2, None, float("nan")]) == 0   # whole numbers and gaps
    assert column_decimals(["A01", True]) == 0


def test_headings_carry_units(report):
    _, text, page = report
    assert any("(kWh" in h for h in page.headings) and any("(°C)" in h for h in page.headings)
    assert column_heading("max_temp_c") == ("max temp", "°C")
    assert column_heading("energy_kwh") == ("energy", "kWh")
    assert column_heading("share_pct") == ("share", "%")
    assert column_heading("ignite_to_serving_s") == ("ignite to serving", "s")
    assert column_heading("rack_name") == ("rack name", "")
    # every numeric measurement column of the tables shows its unit under the name
    assert '<th title="energy_kwh">energy<br><span class="unit">kWh</span></th>' in text
    assert '<th title="mean_power_w">mean power<br><span class="unit">W</span></th>' in text


def test_strings_from_the_run_are_escaped(tmp_path):
    run_dir = make_synthetic_run(tmp_path / "run")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["scenario"]["name"] = "<script>alert('x')</script>"
    manifest["scenario"]["description"] = 'a "quoted" & <b>bold</b> one'
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    (run_dir / "scenario.yaml").write_text("name: </pre><img src=https://example.com/x.png>\n")
    text = render_html(load_run(run_dir))
    assert "<script>" not in text and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "&quot;quoted&quot; &amp; &lt;b&gt;bold&lt;/b&gt;" in text
    assert "example.com" in text and not any(
        v.startswith("https") for _, _, v in Page(text).links)


def test_partial_or_missing_summary_still_reports(tmp_path):
    run_dir = make_synthetic_run(tmp_path / "run")
    # the synthetic manifest has 4 of the summary keys; only those are shown (readers tolerate gaps)
    # IT peak at k=19: 12 nodes x 295 W + 10 W x (0+..+11) = 4200 W -> "4.200" kW (4 significant digits)
    assert summary_rows(load_run(run_dir).manifest) == [
        ("requests arrived", "200", ""), ("requests completed", "200", ""),
        ("requests dropped", "0", ""), ("peak IT (wall) power", "4.200", "kW")]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    del manifest["summary"]
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    run = load_run(run_dir)
    assert summary_rows(run.manifest) == []
    text = render_html(run, ReportOptions(max_table_rows=3))
    assert "manifest has no summary" in text
    # the synthetic run has no scenario.yaml: no section and no link to it
    assert not (run.path / "scenario.yaml").exists() and 'href="#scenario"' not in text
    assert len(Page(text).images) == len(PLOTS)
    # throttling is empty on the cool synthetic run; ignition has 1 node; hottest-gpus 10 -> 3 + note
    assert "No rows" in text and "… 7 more rows (10 total)" in text


def test_report_is_deterministic_and_written_atomically(report, tiny_run, tmp_path):
    first, _, _ = report  # written by the CLI in the fixture
    again = tmp_path / "again.html"
    write_report(load_run(tiny_run), again)
    assert again.read_bytes() == first.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["again.html"]  # no temp files left
    assert os.stat(again).st_mode & 0o777 == 0o644  # shareable, not mkstemp's 0600
    with pytest.raises(ToolError, match="does not exist"):
        write_report(load_run(tiny_run), tmp_path / "missing" / "r.html")


def test_heatmap_time_defaults_to_hottest_gpu_and_follows_at(report, tiny_run, tmp_path):
    _, _, page = report
    gpus = pq.read_table(tiny_run / "telemetry" / "gpus.parquet").to_pydict()
    peak_t = gpus["time_s"][max(range(len(gpus["temp_c"])), key=lambda i: (gpus["temp_c"][i], -gpus["time_s"][i]))]
    heat = next(i for i in page.images if i["alt"].startswith("heatmap:"))
    assert f"t ≈ {peak_t:g} s (when the hottest GPU peaked)" in heat["alt"]
    out = tmp_path / "r.html"
    result = runner.invoke(_app(), ["report", str(tiny_run), "-o", str(out), "--at", "300"])
    assert result.exit_code == 0, result.output
    assert "t ≈ 300 s (requested)" in out.read_text()


@pytest.mark.parametrize("args,needle", [
    (["{missing}", "-o", "{tmp}/r.html"], "no such run directory"),
    (["{tmp}", "-o", "{tmp}/r.html"], "no manifest.json"),
    (["{run}", "-o", "{tmp}/nodir/r.html"], "does not exist"),
    (["{run}", "-o", "{tmp}/r.html", "--at", "99999"], "outside the run"),
    (["{run}", "-o", "{tmp}/r.html", "--rows", "0"], "--rows must be at least 1"),
])
def test_bad_input_is_one_line_exit_2(tiny_run, tmp_path, args, needle):
    subst = {"{run}": str(tiny_run), "{missing}": str(tmp_path / "missing"), "{tmp}": str(tmp_path)}
    argv = ["report"] + [subst.get(a[:a.index("}") + 1], "") + a[a.index("}") + 1:] if a.startswith("{") else a
                         for a in args]
    result = runner.invoke(_app(), argv)
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and needle in err, err
    assert "Traceback" not in result.output
    assert not (tmp_path / "r.html").exists()


def test_real_twin_cli_has_report():
    from twin.cli.main import app

    result = runner.invoke(app, ["report", "--help"])
    assert result.exit_code == 0 and "self-contained" in result.stdout


def test_events_tables_count_kinds_and_list_faults_escaped(tiny_run, tmp_path):
    """Add eight fault-like events to a copy of the tiny run; the page lists them in time order,
    escaped, cut at --rows with the twin query command, and counts every kind as Parquet does."""
    copy = tmp_path / "faulty"
    shutil.copytree(tiny_run, copy)
    path = copy / "telemetry" / "events.parquet"
    events = pq.read_table(path)
    n = 8
    extra = pa.table({"time_s": [100.0 + 10 * i for i in range(n)],
                      "kind": ["fault", "throttle_start"] + ["fault"] * (n - 2),
                      "node_id": [2, 1] + [-1] * (n - 2), "rack_id": [0, 0] + [-1] * (n - 2),
                      "replica_id": [-1] * n,
                      "detail": ["fan <b>stuck</b> & slow", "gpu 4"] + ["cooling"] * (n - 2)}, schema=events.schema)
    pq.write_table(pa.concat_tables([events, extra]), path)
    kinds = pq.read_table(path).column("kind").to_pylist()
    text = render_html(load_run(copy), ReportOptions(max_table_rows=6))
    page = Page(text)
    by_kind = {r[0]: r[1] for r in page.rows if len(r) == 4 and r[0] != "kind"}
    assert by_kind == {k: str(kinds.count(k)) for k in set(kinds)}  # 6 kinds: fits in 6 rows
    # tiny: node 0 WARM->SERVING + 3 ignited nodes x 5 transitions (OFF->...->SERVING) = 16
    assert by_kind["fault"] == "7" and by_kind["state_change"] == "16"
    notable = [r for r in page.rows if len(r) == 6 and r[1] in ("fault", "throttle_start")]
    assert notable[:2] == [["100", "fault", "2", "0", "-1", "fan <b>stuck</b> & slow"],
                           ["110", "throttle_start", "1", "0", "-1", "gpu 4"]]
    assert len(notable) == 6 and "… 2 more rows (8 total)" in text
    assert "fan &lt;b&gt;stuck&lt;/b&gt; &amp; slow" in text
    # the twin query command that prints all rows, pasteable into a shell
    cmd = next(c for c in re.findall(r"<code>(.*?)</code>", text) if "FROM events WHERE" in c)
    argv = shlex.split(html.unescape(cmd))
    assert argv[:3] == ["twin", "query", str(copy)] and argv[3].startswith("SELECT time_s, kind")
    assert load_run(copy).sql(argv[3]).num_rows == 8
