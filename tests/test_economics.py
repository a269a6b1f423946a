"""Economics: pure functions against the design issue's figures, and a tiny run's summary
against a hand computation from its own telemetry tables (not from the summary code)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from twin.spec.catalogue import load_catalogue
from twin.model.economics import (amortised_capex_usd, cost_per_million_tokens_usd, energy_cost_usd, tflops_per_kusd, tokens_per_kwh)


def test_pro_4500_price_performance_is_the_issues_17_9_tflops_per_kusd():
    gpu = load_catalogue().gpu("rtx-pro-4500-blackwell")
    # issue #9: 53.8 FP32 TFLOPS at $2,999 -> 53.8 / 2.999 = 17.94 TFLOPS per $1,000
    assert tflops_per_kusd(gpu.dense_tflops["fp32"], gpu.price_usd) == pytest.approx(17.9, abs=0.05)


def test_pro_4500_instead_of_pro_5000_72gb_saves_over_1_58_musd_on_480_gpus():
    cat = load_catalogue()
    saving = 480 * (cat.gpu("rtx-pro-5000-blackwell-72gb").price_usd - cat.gpu("rtx-pro-4500-blackwell").price_usd)
    assert saving == 480 * (6300 - 2999) == 1_584_480  # "a saving of over $1.58 M"


def test_energy_cost_and_per_token_figures_by_hand():
    assert energy_cost_usd(1234.5, 0.13) == pytest.approx(160.485)          # 1234.5 kWh x 0.13
    assert tokens_per_kwh(2_000_000, 4.0) == 500_000                          # 2e6 tok / 4 kWh
    assert tokens_per_kwh(10, 0.0) is None
    assert cost_per_million_tokens_usd(3.0, 1_500_000) == pytest.approx(2.0)  # 3 USD / 1.5 Mtok
    assert cost_per_million_tokens_usd(3.0, 0) is None


def test_amortisation_of_one_node_for_one_year_is_a_fifth_of_its_price():
    year_s = 365.25 * 86400
    assert amortised_capex_usd(18_500, year_s, 5.0) == pytest.approx(3_700.0)   # 18,500 / 5
    assert amortised_capex_usd(18_500, 3600, 5.0) == pytest.approx(18_500 / 5 / 8766)  # 8,766 h/year


def _tables(run):
    return {n: pq.read_table(run / "telemetry" / f"{n}.parquet").to_pydict() for n in ("requests", "facility")}


def test_tiny_run_summary_matches_a_hand_computation_from_its_telemetry(tiny_run):
    man = json.loads((tiny_run / "manifest.json").read_text())
    s = man["summary"]
    t = _tables(tiny_run)
    status = np.array(t["requests"]["status"])
    done = status == "completed"
    out_tok = int(np.array(t["requests"]["output_tokens"])[done].sum())
    prompt_tok = int(np.array(t["requests"]["prompt_tokens"])[done].sum())
    sample_s = 5.0                                       # tiny.yaml: sample_s 5
    fac_kwh = float(np.sum(np.array(t["facility"]["facility_power_w"], dtype=np.float64)) * sample_s / 3.6e6)
    it_kwh = float(np.sum(np.array(t["facility"]["it_power_w"], dtype=np.float64)) * sample_s / 3.6e6)
    assert s["tokens_served"] == out_tok > 0
    assert s["prompt_tokens_served"] == prompt_tok > out_tok
    # default tariff 0.13 USD/kWh on facility energy (IT x PUE)
    assert s["energy_cost_usd"] == pytest.approx(fac_kwh * 0.13, rel=1e-6)
    assert s["tokens_per_kwh"] == pytest.approx(out_tok / fac_kwh, rel=1e-6)
    assert s["tokens_per_it_kwh"] == pytest.approx(out_tok / it_kwh, rel=1e-6)
    # 4 refinery nodes x 18,500 USD = 74,000 USD, 5-year straight line, 600 s run:
    # 74,000 x 600 / (5 x 365.25 x 86,400) = 0.281390 USD
    assert s["fleet_capex_usd"] == 74_000
    assert s["amortised_capex_usd"] == pytest.approx(0.281390, rel=1e-5)
    assert s["cost_per_mtok_energy_usd"] == pytest.approx(fac_kwh * 0.13 / out_tok * 1e6, rel=1e-6)
    assert s["cost_per_mtok_usd"] == pytest.approx((fac_kwh * 0.13 + 0.281390) / out_tok * 1e6, rel=1e-5)


def test_tiny_run_gpu_hours_by_state_add_up_with_the_facility_node_counts(tiny_run):
    s = json.loads((tiny_run / "manifest.json").read_text())["summary"]
    fac = _tables(tiny_run)["facility"]
    # 3 GPUs per node, 5 s per sample: GPU-h = node-samples x 3 x 5 / 3600
    for key, col in (("gpu_hours_serving", "nodes_serving"), ("gpu_hours_warm", "nodes_warm"),
                     ("gpu_hours_booting", "nodes_booting"), ("gpu_hours_loading", "nodes_loading")):
        assert s[key] == pytest.approx(sum(fac[col]) * 3 * 5 / 3600), key
    on_gpu_h = sum(s[k] for k in s if k.startswith("gpu_hours_"))
    off_gpu_h = sum(fac["nodes_off"]) * 3 * 5 / 3600
    assert on_gpu_h + off_gpu_h == pytest.approx(4 * 3 * 600 / 3600)  # 4 nodes x 3 GPUs x 600 s = 2 GPU-h


def test_scenario_economics_overrides_flow_into_the_summary():
    from twin.sim.engine import simulate
    from twin.model.validate import load_scenario
    r = simulate(load_scenario(Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml", overrides={
        "economics.electricity_usd_per_kwh": 0.30, "economics.node_price_usd": 10_000,
        "economics.amortisation_years": 3}))
    s = r.summary
    assert s["energy_cost_usd"] == pytest.approx(s["facility_energy_kwh"] * 0.30)
    # 4 x 10,000 USD over 3 years, 600 s: 40,000 x 600 / (3 x 31,557,600) = 0.253504 USD
    assert s["amortised_capex_usd"] == pytest.approx(0.253504, rel=1e-5)
