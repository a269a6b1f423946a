"""twin.compare on two synthetic runs; expectations from tests/synthetic_run.py formulas.

A: 20 samples of 10 s; B: 64 samples. 12 nodes, node power 200 + 10n + 5k W, facility = 1.5 x IT,
10 requests per sample (ttft 0.2 s, latency 2 s, 100 output tokens), GPU temp 30 + k + n + i.
"""
from __future__ import annotations

import json

import pytest

from synthetic_run import make_synthetic_run
from twin.tools.compare import COMPARED, compare, notes, summarise, table_summary, to_dict
from twin.telemetry.read import load_run

TINY = __import__("pathlib").Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml"


def it_energy_j(samples: int, sample_s: float = 10.0) -> float:
    return sum((200 + 10 * n + 5 * k) * sample_s for n in range(12) for k in range(samples))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("c")
    return load_run(make_synthetic_run(base / "a")), load_run(make_synthetic_run(base / "b", samples=64))


def test_summary_from_tables_matches_hand_values(runs):
    s = summarise(runs[0])
    assert it_energy_j(20) == 726_000
    assert s["it_energy_kwh"] == pytest.approx(726_000 / 3.6e6)
    assert s["facility_energy_kwh"] == pytest.approx(1.5 * 726_000 / 3.6e6)
    assert s["pue"] == pytest.approx(1.5)
    assert s["peak_it_power_w"] == pytest.approx(4200)   # 12*295 + 10*66 W at k=19
    assert s["peak_facility_power_w"] == pytest.approx(6300)
    assert (s["requests_arrived"], s["requests_completed"], s["requests_dropped"]) == (200, 200, 0)
    assert s["ttft_p99_s"] == pytest.approx(0.2) and s["latency_p99_s"] == pytest.approx(2.0)
    assert s["tokens_served"] == 200 * 100
    assert s["output_tokens_per_s"] == pytest.approx(200 * 100 / 200.0)
    assert s["wh_per_1k_tokens"] == pytest.approx(1.5 * 726_000 / 3600 / 20)  # Wh / (20 x 1k tokens)
    assert s["peak_gpu_temp_c"] == 62.0
    assert s["throttled_gpu_s"] == 0.0
    assert s["peak_nodes_on"] == 12


def test_compare_rows_give_absolute_and_percent_differences(runs):
    rows = {r.key: r for r in compare(*runs)}
    assert set(rows) == set(COMPARED)
    e = rows["it_energy_kwh"]
    assert e.b == pytest.approx(it_energy_j(64) / 3.6e6)
    assert e.delta == pytest.approx((it_energy_j(64) - it_energy_j(20)) / 3.6e6)
    assert e.pct == pytest.approx(100 * (it_energy_j(64) / it_energy_j(20) - 1))
    # B throttles: GPU (n, i) above 90 °C for 3 + n + i samples of 10 s; A never -> no percentage
    t = rows["throttled_gpu_s"]
    assert (t.a, t.b, t.delta, t.pct) == (0.0, 3420.0, 3420.0, None)
    assert rows["pue"].delta == pytest.approx(0.0)


def test_json_form_is_serialisable(runs):
    payload = to_dict(*runs, compare(*runs))
    text = json.dumps(payload)
    back = json.loads(text)
    assert back["a"]["scenario"] == "synthetic"
    assert [m["key"] for m in back["metrics"]] == list(COMPARED)


def test_table_summary_agrees_with_the_engines_manifest_summary(tiny_run):
    """An independent check: the engine computes its own summary when it writes the run; the
    tables, read back with twin.model.metrics' definitions, give the same numbers."""
    run = load_run(tiny_run)
    ours, engine = table_summary(run), run.manifest["summary"]
    for key in ("it_energy_kwh", "facility_energy_kwh", "pue", "peak_gpu_temp_c", "peak_it_power_w"):
        assert ours[key] == pytest.approx(engine[key], rel=1e-6, abs=1e-9), key
    for key in ("requests_dropped", "requests_completed", "peak_nodes_on", "tokens_served"):
        assert ours[key] == engine[key], key
    # one percentile definition (nearest rank): exactly equal, not approximately
    for key in ("ttft_p50_s", "ttft_p99_s", "latency_p50_s", "latency_p99_s"):
        assert ours[key] == engine[key], key


def test_synthetic_runs_have_no_money_and_say_so(runs):
    rows = {r.key: r for r in compare(*runs)}
    assert rows["cost_per_mtok_usd"].a is None
    assert any("durations differ (A 200 s, B 640 s)" in n for n in notes(*runs, list(rows.values())))
    assert any("neither run's manifest has costs" in n for n in notes(*runs, list(rows.values())))


def test_notes_explain_a_power_cap_and_the_scenario_difference(tiny_run, tmp_path):
    """A 3 kW facility cap on the tiny run (peak 4.9 kW uncapped) lowers its peak power; compare
    must say that came from a cap and name the scenario difference, not just colour it green."""
    import twin
    from twin.tools.compare import scenario_differences

    capped = twin.write_run(twin.simulate(TINY, overrides={
        "faults": [{"at_s": 60, "kind": "facility_power_cap", "value": 3.0}]}), tmp_path / "capped")
    base = load_run(tiny_run)
    rows = compare(base, capped)
    peak = next(r for r in rows if r.key == "peak_facility_power_w")
    assert peak.delta < 0  # the "improvement" the note has to explain
    text = " ".join(notes(base, capped, rows))
    assert "B ran under a power cap (facility_power_cap 3" in text and "not efficiency" in text
    assert scenario_differences(base, capped) == [("faults", "0 entries", "1 entries (facility_power_cap)")]


def test_only_the_seed_differs(tiny_run, tmp_path):
    import twin

    other = twin.write_run(twin.simulate(TINY, seed=8), tmp_path / "seed8")
    text = " ".join(notes(load_run(tiny_run), other, compare(load_run(tiny_run), other)))
    assert "only the seed differs (simulation.seed: 7 -> 8)" in text
