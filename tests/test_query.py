"""twin.run / twin.query against the closed-form synthetic run (tests/synthetic_run.py).

Synthetic formulas (N nodes, sample k = 0..S-1, t = (k+1)*sample_s):
node power = 200 + 10 n + 5 k W; GPU temp = 30 + k + node + gpu_index °C; facility = 1.5 x IT.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from synthetic_run import make_synthetic_run
from twin.tools.query import RECIPES, recipe, to_csv, to_json
from twin.telemetry.sql import QueryError
from twin.telemetry.read import NotARunError, load_run
from twin.errors import ToolError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return load_run(make_synthetic_run(tmp_path_factory.mktemp("q") / "run"))


@pytest.fixture(scope="module")
def hot_run(tmp_path_factory):
    # 64 samples so the hottest GPUs cross 90 °C: temp = 30 + k + n + i > 90  <=>  k > 60 - n - i.
    return load_run(make_synthetic_run(tmp_path_factory.mktemp("q") / "hot", samples=64))


def test_load_run_exposes_manifest_path_and_tables(run):
    assert run.manifest["scenario"]["name"] == "synthetic" == run.name
    assert run.sample_s == 10.0
    assert run.table("gpus").num_rows == 12 * 3 * 20
    assert isinstance(run.path, Path)
    assert run.gpu_slowdown_c == 90.0  # synthetic manifest has no thresholds


@pytest.mark.parametrize("setup,needle", [
    (lambda p: None, "no such run directory"),
    (lambda p: p.mkdir(), "no manifest.json"),
    (lambda p: (p.mkdir(), (p / "manifest.json").write_text("{")), "unreadable manifest"),
    (lambda p: (p.mkdir(), (p / "manifest.json").write_text("{}")), "no telemetry/"),
])
def test_load_run_rejects_non_runs_with_a_reason(tmp_path, setup, needle):
    target = tmp_path / "x"
    setup(target)
    with pytest.raises(NotARunError, match=needle):
        load_run(target)


def test_unknown_table_suggests_a_name(run):
    with pytest.raises(ToolError, match="did you mean 'gpus'"):
        run.table("gpu")


def test_sql_sees_every_table_as_a_view(run):
    counts = run.sql("SELECT (SELECT count(*) FROM topology) AS t, (SELECT count(*) FROM nodes) AS n, "
                     "(SELECT count(*) FROM links) AS l").to_pylist()[0]
    assert counts == {"t": 12, "n": 12 * 20, "l": 0}


def test_bad_sql_is_a_one_line_query_error(run):
    with pytest.raises(QueryError) as info:
        run.sql("SELECT no_such_column FROM gpus")
    assert "no_such_column" in str(info.value) and "\n" not in str(info.value)


def test_unknown_recipe_suggests(run):
    with pytest.raises(ToolError, match="did you mean 'peak-power'"):
        recipe("peak-powr")


def test_every_recipe_has_a_description_and_runs(run):
    assert set(RECIPES) == {"peak-power", "hottest-gpus", "throttling", "latency-over-time",
                            "ignition-timeline", "energy-by-rack"}
    for name, r in RECIPES.items():
        assert r.description and "\n" not in r.description
        run.sql(r.sql)


def test_peak_power_is_the_last_sample(run):
    row = run.sql(RECIPES["peak-power"].sql).to_pylist()
    # IT at k=19: sum_n (200 + 10 n + 95) over n=0..11 = 12*295 + 10*66 = 4200 W; facility 1.5x.
    assert row == [pytest.approx({"time_s": 200.0, "facility_power_w": 6300.0, "it_power_w": 4200.0,
                                  "cooling_power_w": 1680.0, "overhead_power_w": 420.0, "pue": 1.5})]


def test_hottest_gpus_top_three(run):
    rows = run.sql(RECIPES["hottest-gpus"].sql).to_pylist()
    assert len(rows) == 10
    # max temp 30 + 19 + 11 + 2 = 62 on node 11 gpu 2 (gpu_id 35); ties at 61 ordered by gpu_id.
    assert [(r["gpu_id"], r["max_temp_c"]) for r in rows[:3]] == [(35, 62.0), (32, 61.0), (34, 61.0)]
    assert rows[0]["rack_name"] == "B02" and rows[0]["at_time_s"] == 200.0


def test_throttling_is_empty_when_cool_and_sums_by_hand_when_hot(run, hot_run):
    assert run.sql(RECIPES["throttling"].sql).num_rows == 0
    rows = hot_run.sql(RECIPES["throttling"].sql).to_pylist()
    # GPU (n, i) throttles for k in (60-n-i, 63]: 3 + n + i samples of 10 s.
    assert len(rows) == 36
    assert sum(r["throttled_s"] for r in rows) == 10 * sum(3 + n + i for n in range(12) for i in range(3))
    top = rows[0]
    assert (top["gpu_id"], top["throttled_s"], top["first_throttled_s"]) == (35, 160.0, 490.0)


def test_latency_over_time_windows(run):
    rows = run.sql(RECIPES["latency-over-time"].sql).to_pylist()
    # requests arrive each second 0..199 and finish 2 s later (done 2..201)
    assert [(r["window_start_s"], r["completed"]) for r in rows] == [(0, 58), (60, 60), (120, 60), (180, 22)]
    assert all(r["ttft_p99_s"] == pytest.approx(0.2) and r["latency_p50_s"] == pytest.approx(2.0) for r in rows)


def test_ignition_timeline_from_events(run):
    rows = run.sql(RECIPES["ignition-timeline"].sql).to_pylist()
    assert rows == [{"node_id": 0, "rack_name": "A01", "ignited_s": 20.0, "loading_s": None, "warm_s": None,
                     "serving_s": 40.0, "ignite_to_serving_s": 20.0}]


def test_energy_by_rack_matches_formula(run):
    rows = run.sql(RECIPES["energy-by-rack"].sql).to_pylist()
    assert [r["rack_name"] for r in rows] == ["A01", "A02", "B01", "B02"]
    for r in rows:
        nodes = range(3 * r["rack_id"], 3 * r["rack_id"] + 3)
        joules = sum((200 + 10 * n + 5 * k) * 10.0 for n in nodes for k in range(20))
        assert r["energy_kwh"] == pytest.approx(joules / 3.6e6)
    assert rows[0]["energy_kwh"] == pytest.approx(154_500 / 3.6e6)
    assert sum(r["share_pct"] for r in rows) == pytest.approx(100.0)


def test_csv_and_json_output(run):
    table = run.sql("SELECT time_s, rack_id, power_w FROM racks ORDER BY time_s, rack_id LIMIT 2")
    assert to_csv(table) == "time_s,rack_id,power_w\n10,0,630\n10,1,720\n"
    nan = run.sql("SELECT 'nan'::DOUBLE AS x")
    assert to_json(nan).replace(" ", "").replace("\n", "") == '[{"x":null}]'


def test_import_twin_is_light_and_load_run_is_lazy():
    code = ("import sys, twin; assert 'duckdb' not in sys.modules and 'pyarrow' not in sys.modules; "
            "assert callable(twin.load_run); assert 'duckdb' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
