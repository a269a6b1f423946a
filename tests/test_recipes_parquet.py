"""Every `twin query` recipe on a real engine run, checked against the same quantity computed
here straight from the Parquet files with pyarrow + numpy (no DuckDB), so a recipe that
misreads the engine's data (event detail format, NaN handling, grouping) fails.

tests/test_query.py checks the recipes against closed-form synthetic runs; this file checks
them against the engine's tiny scenario (tests/conftest.py).
"""
from __future__ import annotations

import json
import shutil
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from twin.tools.query import RECIPES
from twin.telemetry.read import load_run


def _table(run_dir, name) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in pq.read_table(run_dir / "telemetry" / f"{name}.parquet").to_pydict().items()}


def _sample_s(run_dir) -> float:
    return float(json.loads((run_dir / "manifest.json").read_text())["simulation"]["sample_s"])


def _recipe(run_dir, name) -> list[dict]:
    return load_run(run_dir).sql(RECIPES[name].sql).to_pylist()


def test_recipes_cover_every_registered_name():
    # a new recipe must get a Parquet cross-check below too
    assert set(RECIPES) == {"peak-power", "hottest-gpus", "throttling", "latency-over-time",
                            "ignition-timeline", "energy-by-rack"}


def test_peak_power(tiny_run):
    f = _table(tiny_run, "facility")
    i = int(np.argmax(f["facility_power_w"]))  # first index on ties, like ORDER BY ..., time_s
    [row] = _recipe(tiny_run, "peak-power")
    assert row["time_s"] == f["time_s"][i]
    for col in ("facility_power_w", "it_power_w", "cooling_power_w", "overhead_power_w", "pue"):
        assert row[col] == pytest.approx(float(f[col][i]), rel=1e-6), col


def test_hottest_gpus(tiny_run):
    g = _table(tiny_run, "gpus")
    peak = defaultdict(lambda: -np.inf)
    for gpu, temp in zip(g["gpu_id"], g["temp_c"]):
        peak[int(gpu)] = max(peak[int(gpu)], float(temp))
    expected = sorted(peak.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    rows = _recipe(tiny_run, "hottest-gpus")
    assert [(r["gpu_id"], r["max_temp_c"]) for r in rows] == [(gid, pytest.approx(t)) for gid, t in expected]
    for r in rows:  # at_time_s is a sample where that GPU was at its peak
        at = (g["gpu_id"] == r["gpu_id"]) & (g["time_s"] == r["at_time_s"])
        assert float(g["temp_c"][at][0]) == pytest.approx(r["max_temp_c"])
        assert r["node_id"] == r["gpu_id"] // 3 and r["gpu_index"] == r["gpu_id"] % 3 and r["rack_name"] == "A01"


def test_throttling(tiny_run, tmp_path):
    assert _recipe(tiny_run, "throttling") == []  # the tiny run stays below 92 °C ...
    g = _table(tiny_run, "gpus")
    assert not g["throttled"].any()
    # ... so mark its hottest tenth of GPU samples as throttled in a copy and count them by hand
    copy = tmp_path / "hot"
    shutil.copytree(tiny_run, copy)
    path = copy / "telemetry" / "gpus.parquet"
    table = pq.read_table(path)
    hot = g["temp_c"] > np.quantile(g["temp_c"], 0.9)
    assert 0 < hot.sum() < hot.size
    pq.write_table(table.set_column(table.schema.get_field_index("throttled"), "throttled", pa.array(hot)), path)
    sample_s = _sample_s(tiny_run)
    rows = {r["gpu_id"]: r for r in _recipe(copy, "throttling")}
    assert set(rows) == {int(x) for x in np.unique(g["gpu_id"][hot])}
    for gid, r in rows.items():
        mine = g["gpu_id"] == gid
        assert r["throttled_s"] == pytest.approx(sample_s * (hot & mine).sum())
        assert r["first_throttled_s"] == g["time_s"][hot & mine].min()
        assert r["max_temp_c"] == pytest.approx(float(g["temp_c"][mine].max()))
    assert list(rows) == sorted(rows, key=lambda k: (-rows[k]["throttled_s"], k))


def test_latency_over_time(tiny_run):
    q = _table(tiny_run, "requests")
    done = q["status"] == "completed"
    window = np.floor(q["done_s"][done] / 60) * 60
    rows = _recipe(tiny_run, "latency-over-time")
    assert [r["window_start_s"] for r in rows] == sorted(np.unique(window).tolist())
    for r in rows:
        sel = window == r["window_start_s"]
        assert r["completed"] == sel.sum()
        # DuckDB quantile_cont is linear interpolation, numpy's default method
        assert r["ttft_p50_s"] == pytest.approx(np.quantile(q["ttft_s"][done][sel], 0.5))
        assert r["ttft_p99_s"] == pytest.approx(np.quantile(q["ttft_s"][done][sel], 0.99))
        assert r["latency_p50_s"] == pytest.approx(np.quantile(q["latency_s"][done][sel], 0.5))
        assert r["latency_p99_s"] == pytest.approx(np.quantile(q["latency_s"][done][sel], 0.99))
    assert sum(r["completed"] for r in rows) == done.sum()


def test_ignition_timeline(tiny_run):
    e = pq.read_table(tiny_run / "telemetry" / "events.parquet").to_pylist()
    first: dict[int, dict[str, float]] = defaultdict(dict)
    for ev in e:  # events are in time order; keep the first occurrence of each milestone
        node, detail, kind = ev["node_id"], ev["detail"], ev["kind"]
        if node < 0:
            continue
        marks = []
        if kind == "ignite" or (kind == "state_change" and detail.startswith("OFF->")):
            marks.append("ignited_s")
        if kind == "state_change":
            marks += [f"{s.lower()}_s" for s in ("LOADING", "WARM", "SERVING") if detail.endswith(f"->{s}")]
        for m in marks:
            first[node].setdefault(m, ev["time_s"])
    rows = {r["node_id"]: r for r in _recipe(tiny_run, "ignition-timeline")}
    assert set(rows) == set(first)
    ignited = [n for n in first if "ignited_s" in first[n]]
    assert len(ignited) == 3  # tiny: node 0 starts WARM, three more are ignited
    for node, marks in first.items():
        r = rows[node]
        for m in ("ignited_s", "loading_s", "warm_s", "serving_s"):
            assert r[m] == marks.get(m), (node, m)
        if "ignited_s" in marks and "serving_s" in marks:
            assert r["ignite_to_serving_s"] == pytest.approx(marks["serving_s"] - marks["ignited_s"])


def test_energy_by_rack(tiny_run):
    r = _table(tiny_run, "racks")
    sample_s = _sample_s(tiny_run)
    rows = _recipe(tiny_run, "energy-by-rack")
    total_j = float((r["power_w"].astype(float) * sample_s).sum())
    assert [x["rack_id"] for x in rows] == sorted(np.unique(r["rack_id"]).tolist())
    for x in rows:
        p = r["power_w"][r["rack_id"] == x["rack_id"]].astype(float)
        assert x["energy_kwh"] == pytest.approx(p.sum() * sample_s / 3.6e6)  # J -> kWh
        assert x["share_pct"] == pytest.approx(100 * p.sum() * sample_s / total_j)
        assert x["mean_power_w"] == pytest.approx(p.mean())
        assert x["peak_power_w"] == pytest.approx(p.max())
    # and the racks add up to the facility IT energy the engine integrated (manifest summary)
    summary = json.loads((tiny_run / "manifest.json").read_text())["summary"]
    assert sum(x["energy_kwh"] for x in rows) == pytest.approx(summary["it_energy_kwh"], rel=1e-4)
