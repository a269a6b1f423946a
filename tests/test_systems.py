"""The four planned systems: their scenarios run, and the twin meets the planning documents' figures.

Tolerances (issue 7): power within 10 %; throughput inside the planned range, or the deviation
is explained here and in docs/validation.md. Planned figures are from shared/reference/hardware.md
("Other systems users will model").
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.sim.engine import simulate
from twin.errors import SpecError
from twin.tools.predict import (prefill_tokens_per_s, burn_test, concurrency_table, idle_power, peak_power, psu_headroom_frac, resolve_box)
from twin.model.validate import load_scenario, scenario_from_text

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SYSTEMS = ("dual-3090", "ws-4x4090-405b", "rtx5090-server", "epyc7542-4x4090")


@pytest.fixture(scope="module")
def runs():
    return {name: simulate(load_scenario(SCENARIOS / f"{name}.yaml")) for name in SYSTEMS}


def box_of(scenario):
    """The scenario's single node and pool as a `twin predict` box."""
    spec, pool = scenario.spec, scenario.spec.pools[0]
    return resolve_box(scenario.catalogue, spec.topology.node_type, pool.model, pool.quantisation, pool.engine,
                       tp=pool.tp, pp=pool.pp, memory_utilisation=pool.memory_utilisation,
                       max_batch=pool.max_batch, kv_bytes=pool.kv_bytes)


@pytest.mark.parametrize("name", SYSTEMS)
def test_system_scenario_serves_its_traffic_within_the_burn_test_envelope(runs, name):
    res = runs[name]
    s = res.summary
    assert s["requests_dropped"] == 0
    assert s["requests_completed"] >= 0.99 * s["requests_arrived"]
    box = box_of(res.scenario)
    burn = burn_test(box, ambient_c=res.scenario.spec.facility.supply_air_c, duration_s=900)
    # serving never draws more than the all-GPU burn (prefill activity 0.95 < 1) ...
    node_wall = np.asarray(res.columns["nodes"]["power_w"], dtype=float)
    assert node_wall.max() <= burn.node_wall_w[-1] * 1.01
    assert s["peak_gpu_temp_c"] <= burn.plateau_c.max() + 0.5
    # ... and stays inside the PSUs' rating
    dc = np.asarray(res.columns["nodes"]["dc_power_w"], dtype=float)
    assert dc.max() < box.psu.rated_w * box.node.psu_count
    assert s["throttled_gpu_s"] == 0


def test_dual_3090_power_budget_within_10_percent():
    """Planned: idle ~133 W, sustained ~851 W, peak ~1,021 W (DC budget for the 1,200 W PSU)."""
    box = resolve_box(load_scenario(SCENARIOS / "dual-3090.yaml").catalogue, "dual-3090-desktop",
                      "llama-3.3-70b", "awq-int4", "vllm", tp=2)
    # An inference box idles with its model resident (the engine's WARM state): 145 W, +9 %.
    assert idle_power(box, loaded=True).dc_w == pytest.approx(133, rel=0.10)
    # Recorded deviation: bare idle without a model is 115 W (-14 %); the plan's 133 W sits
    # between bare and loaded idle, so it most likely counts a resident model or a busier desktop.
    assert idle_power(box).dc_w == pytest.approx(114.5, abs=0.5)
    burn = burn_test(box, ambient_c=25.0, duration_s=900)
    assert burn.node_dc_w[-1] == pytest.approx(851, rel=0.10)      # 822 W, -3 %
    assert peak_power(box).dc_w == pytest.approx(1021, rel=0.10)    # 989 W, -3 %
    # PSU headroom: plan 1 - 1,021/1,200 = 15 %; twin 18 %; both leave the 1,200 W unit < 90 % loaded
    assert psu_headroom_frac(box, peak_power(box).dc_w) == pytest.approx(1 - 1021 / 1200, abs=0.05)


def test_dual_3090_70b_awq_tp2_throughput_vs_the_planned_50_to_70_tok_s():
    """50-70 tok/s is above the single-stream roofline; it is reachable only as aggregate throughput."""
    box = resolve_box(load_scenario(SCENARIOS / "dual-3090.yaml").catalogue, "dual-3090-desktop",
                      "llama-3.3-70b", "awq-int4", "vllm", tp=2)
    weights_gb = 70.6 * 0.567                       # 40.0 GB
    ideal_tok_s = 2 * 936 / weights_gb              # both GPUs streaming at 100 % of 936 GB/s: 46.8 tok/s
    assert ideal_tok_s < 50                         # so the plan cannot mean one stream
    one, busy = concurrency_table(box, [1, 16], 1020, 129)
    assert one.stream_tok_s < ideal_tok_s
    # Explained deviation: a single stream decodes at ~27 tok/s: 27.0 ms of weight streaming at eta_bw
    # 0.8, 2 ms vLLM step, 160 all-reduces x ~52 us without GeForce P2P (8.3 ms). Public check:
    # vllm-project/vllm#6955 measured 30 tok/s for 70B AWQ TP2 on 3090 Ti (1,008 vs 936 GB/s).
    assert one.stream_tok_s == pytest.approx(27.2, abs=1.0)
    # With Azure-median requests (1,020 in / 129 out) 11 fit the paged KV pool, but every output token
    # carries 7.9 prompt tokens at ~458 tok/s of prefill (awq_marlin on GA102, FP32-accumulate rate):
    # step(11)/11 + 1020 / 458 / 129 = 4.2 + 17.3 ms per token -> ~46 tok/s, prefill bound.
    per_token_s = 1 / busy.stream_tok_s / busy.batch + 1020 / prefill_tokens_per_s(box, 1020) / 129
    assert busy.batch == 11 and busy.aggregate_tok_s == pytest.approx(1 / per_token_s, rel=1e-6)
    assert 40 <= busy.aggregate_tok_s < 50
    # The planned 50-70 tok/s is the aggregate of chat-like requests with short prompts.
    (chat,) = concurrency_table(box, [16], 256, 256)
    assert chat.aggregate_tok_s > 70


def test_ws_4x4090_405b_plan_does_not_fit_in_vram_and_its_psus_cover_the_peak():
    sc = load_scenario(SCENARIOS / "ws-4x4090-405b.yaml")
    # the scenario serves 405B with llama.cpp partial offload; without it (vLLM, AWQ, TP4) it cannot fit
    text = sc.text.replace(", gpu_layers: auto", "").replace(
        "quantisation: gguf-q4_k_m, engine: llama.cpp, tp: 1, pp: 4", "quantisation: awq-int4, engine: vllm, tp: 4, pp: 1")
    with pytest.raises(SpecError) as exc:
        scenario_from_text(text)
    # 405.9e9 x 0.567 B = 230.1 GB of weights vs 4 x (23.99 GiB x 0.92 - 1.5 GiB) = 88.4 GB usable: no GPU-only plan fits
    assert "needs 230.1 GB of weights" in exc.value.problems[0] and "88.4 GB usable" in exc.value.problems[0]
    box = box_of(sc)
    # dual 1,300 W = 2,600 W; all parts at maximum: 4 x 450 + 350 + 8 x 4.5 + 50 + 6 + 6 x 1.56 = 2,251 W
    assert peak_power(box).dc_w == pytest.approx(4 * 450 + 350 + 8 * 4.5 + 50 + 6 + 6 * 1.56)
    assert peak_power(box).dc_w < 2600
    assert psu_headroom_frac(box, peak_power(box).dc_w) == pytest.approx(1 - 2251.36 / 2600, abs=1e-3)


def test_rtx5090_board_power_and_cap_from_the_plan():
    box = box_of(load_scenario(SCENARIOS / "rtx5090-server.yaml"))
    burn = burn_test(box, ambient_c=24.0, duration_s=600, power_cap_w=600.0)
    assert burn.gpu_power_w[-1, 0] == pytest.approx(575, rel=0.10)   # 575 W TGP under a 600 W cap


def _first_tokens_during_other_decodes(res, pool: str = "llamacpp-gpu") -> int:
    rq = res.columns["requests"]
    rep = np.asarray(rq["replica_id"])
    ft = np.asarray(rq["first_token_s"], dtype=float)
    done = np.asarray(rq["done_s"], dtype=float)
    # the llama.cpp GPU service only: the same GPU also runs vLLM, which batches continuously
    ok = np.isfinite(ft) & np.isfinite(done) & (np.asarray(rq["pool"], dtype=object) == pool)
    rep, ft, done = rep[ok], ft[ok], done[ok]
    same = rep[:, None] == rep[None, :]
    dt = res.scenario.spec.simulation.dt_s
    # B's first token strictly inside A's decode, a full tick after A started decoding
    inside = (ft[None, :] > ft[:, None] + dt + 1e-9) & (ft[None, :] < done[:, None] - 1e-9)
    return int((same & inside).sum())


def test_llama_cpp_without_continuous_batching_never_prefills_during_decode():
    """continuous_batching: false (llama.cpp --no-cont-batching): a prompt waits for decodes to end."""
    text = (SCENARIOS / "rtx5090-server.yaml").read_text().replace("duration_s: 1800", "duration_s: 900")
    slots = simulate(scenario_from_text(text))
    cont = simulate(scenario_from_text(text.replace("engine: llama.cpp,", "engine: llama.cpp-cb,")))
    assert _first_tokens_during_other_decodes(slots) == 0
    assert _first_tokens_during_other_decodes(cont) > 10
    for res in (slots, cont):   # both honour the 4 parallel slots
        rq = res.columns["requests"]
        pool = np.asarray(rq["pool"], dtype=object) == "llamacpp-gpu"
        adm, done = np.asarray(rq["admitted_s"], float)[pool], np.asarray(rq["done_s"], float)[pool]
        busiest = max(int(((adm <= t) & (done > t)).sum()) for t in adm[np.isfinite(adm)])
        assert busiest <= 4
    # the cost of waiting: time to first token is longer without continuous batching
    def ttft_p50(res):  # of the llama.cpp GPU service
        rq = res.columns["requests"]
        t = np.asarray(rq["ttft_s"], float)[np.asarray(rq["pool"], dtype=object) == "llamacpp-gpu"]
        return float(np.median(t[np.isfinite(t)]))
    assert ttft_p50(slots) > 1.5 * ttft_p50(cont)
