"""twin.model.metrics: the one percentile and the one table of summary metrics (issue 13)."""
from __future__ import annotations

import re

import numpy as np
import pytest
from typer.testing import CliRunner

from twin.model.metrics import METRICS, derived, metric, nearest_rank, percentile

ROOT_SCENARIOS = __import__("pathlib").Path(__file__).resolve().parent.parent / "scenarios"


def test_nearest_rank_percentile_by_hand():
    ten = np.arange(1.0, 11.0)  # 1..10
    assert percentile(ten, 50) == 5.0    # ceil(0.50 x 10) = 5th smallest
    assert percentile(ten, 99) == 10.0   # ceil(0.99 x 10) = 10th
    assert percentile(ten, 90) == 9.0    # ceil(0.90 x 10) = 9th, no interpolation
    assert percentile(np.array([7.0, np.nan, 3.0, np.inf]), 50) == 3.0  # non-finite values ignored
    assert percentile(np.array([]), 99) is None
    # 1,000 values: p99 is the 990th smallest, an actual value
    assert percentile(np.arange(1000.0)[::-1], 99) == 989.0


def test_the_engine_summary_uses_the_one_percentile(tiny_result):
    """The manifest's p50/p99 are the nearest-rank values of the requests table (hand-checkable)."""
    import math
    rq = tiny_result.columns["requests"]
    done = np.array(rq["status"]) == "completed"
    lat = np.sort((np.asarray(rq["done_s"]) - np.asarray(rq["arrival_s"]))[done])
    rank = math.ceil(0.99 * lat.size)  # 1-based nearest rank
    assert tiny_result.summary["latency_p99_s"] == pytest.approx(lat[rank - 1])


def test_every_summary_key_the_engine_writes_has_one_definition(tiny_result):
    keys = {k for k, v in tiny_result.summary.items() if not isinstance(v, dict)}
    assert keys <= set(METRICS), sorted(keys - set(METRICS))
    for m in METRICS.values():
        assert m.better in ("lower", "higher", ""), m.key
        assert m.label and m.key.islower()


def test_format_and_units():
    assert METRICS["peak_it_power_w"].format(94_214.0) == "94.2 kW"
    assert METRICS["latency_p99_s"].format(279.94) == "279.9 s"
    assert METRICS["requests_arrived"].format(130_298) == "130,298"
    assert METRICS["it_energy_kwh"].format(0.41234, significant=4) == "0.4123 kWh"
    assert METRICS["pue"].format(None) == "n/a"
    assert metric("some_new_key").label == "some new key"
    assert METRICS["latency_p99_s"].axis_label == "latency p99 (s)"


def test_derived_rates_by_hand():
    d = derived({"requests_dropped": 5, "requests_arrived": 200, "tokens_served": 20_000,
                 "facility_energy_kwh": 0.5}, 100.0)
    assert d["drop_pct"] == pytest.approx(2.5)
    assert d["output_tokens_per_s"] == pytest.approx(200.0)
    assert d["wh_per_1k_tokens"] == pytest.approx(500 / 20)  # 500 Wh over 20 thousand tokens


def _cell(text: str, label: str) -> str:
    line = next(ln for ln in text.splitlines() if label in ln)
    return [c.strip() for c in line.split("│") if c.strip()][-1]


def test_twin_run_and_twin_compare_print_the_same_p99(tmp_path):
    from twin.cli.main import app

    runner = CliRunner()
    run_dir = tmp_path / "tiny"
    ran = runner.invoke(app, ["run", str(ROOT_SCENARIOS / "tiny.yaml"), "-o", str(run_dir), "-q", "--no-stage"])
    assert ran.exit_code == 0, ran.output
    ttft_run, lat_run = (_cell(ran.stdout, "TTFT p50 / p99"), _cell(ran.stdout, "latency p50 / p99"))
    cmp = runner.invoke(app, ["compare", str(run_dir), str(run_dir)], env={"COLUMNS": "200"})
    assert cmp.exit_code == 0, cmp.output
    row = {ln.split("│")[1].strip(): [c.strip() for c in ln.split("│")[3:5]]
           for ln in cmp.stdout.splitlines() if ln.startswith("│")}
    assert ttft_run.split(" / ")[1] == row["TTFT p99"][0] + " s"
    assert lat_run.split(" / ")[1] == row["latency p99"][0] + " s"
    assert re.fullmatch(r"[\d.]+ s / [\d.]+ s", lat_run)


def test_nearest_rank_of_an_array_of_counts_is_the_scalar_rule_elementwise():
    """_interval_percentiles takes every interval's index at once: the same rule as one count."""
    counts = np.arange(0, 3000)
    for q in (0, 0.1, 1, 33.3, 50, 90, 95, 99, 99.9, 100):
        assert list(nearest_rank(counts, q)) == [nearest_rank(int(n), q) for n in counts], q
    assert nearest_rank(10, 50) == 4 and nearest_rank(10, 99) == 9 and nearest_rank(0, 50) == 0  # by hand
