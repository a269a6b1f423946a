"""GPU board power: idle by P-state + memory term + SM term, against published measurements.

Fitting set (the coefficients come from these): RTX 4090 single-stream decode 246.8 W at ~606 GB/s
(noonghunna/club-3090#697); H200 decode 137-300 W (arXiv:2605.11999). Out of sample: RTX 3090
decode at its power limit (ashalliants/ninfer-3090#72, noonghunna/club-3090#104), V100 decode
180-200 W vs prefill 270-300 W (1CatAI/1Cat-vLLM#535) for the decode < prefill ordering on HBM.
"""
import numpy as np
import pytest

from twin.model import power as pw
from twin.spec.catalogue import load_catalogue
from twin.tools.predict import decode_gpu_work, predict, resolve_box

CAT = load_catalogue()
G4090 = CAT.gpu("rtx-4090")
G3090 = CAT.gpu("rtx-3090")
H100 = CAT.gpu("h100-pcie")


def test_4090_decode_reproduces_its_fitting_point_by_hand():
    # club-3090#697: Qwen3-4B FP8 single stream, 137.7 tok/s x ~4.4 GB = 606 GB/s, SM at full clock,
    # 2 x 4e9 x 137.7 = 1.1 TFLOP/s of 330 FP8 TFLOPS: P = 60 + 0.31 x 606 + 468 x 0.0033 = 249.4 W
    p = pw.gpu_board_power_w(pw.gpu_active_idle_w(G4090), 606.0, 1.1 / 330.3, 1.0, G4090)
    assert float(p) == pytest.approx(60 + 0.31 * 606 + 1.2 * (450 - 60) * 1.1 / 330.3, rel=1e-9)
    assert float(p) == pytest.approx(246.8, rel=0.02)   # measured 245.7-247.0 W across caps 280-530 W


def test_dram_energy_does_not_follow_the_sm_clock_but_the_on_chip_part_does():
    # GDDR6X DRAM + PHY 7.25 pJ/bit = 0.058 W per GB/s; on-chip 0.31 - 0.058 = 0.252 scales with c^2
    at = lambda c: float(pw.gpu_board_power_w(60.0, 600.0, 0.0, c, G4090))
    assert at(0.0) == pytest.approx(60 + 0.058 * 600)
    assert at(0.8) == pytest.approx(60 + 0.058 * 600 + 0.252 * 600 * 0.64)
    # SM term ~ u c^3: half the math at 80 % clock
    assert float(pw.gpu_board_power_w(60.0, 0.0, 0.5, 0.8, G4090)) == pytest.approx(60 + 468 * 0.5 * 0.512)


def test_power_limiter_holds_the_limit_and_bottoms_out_at_the_clock_floor():
    c = pw.clock_for_board_limit(400.0, 60.0, 100.0, 1.0, G4090)
    assert float(pw.gpu_board_power_w(60.0, 100.0, 1.0, c, G4090)) == pytest.approx(400.0, abs=1e-6)
    # under the limit at full clock: 1
    assert float(pw.clock_for_board_limit(450.0, 60.0, 600.0, 0.0, G4090)) == 1.0
    # a limit below what DRAM traffic alone costs: the floor, and the board sits over its limit there
    floor = pw.clock_for_board_limit(50.0, 60.0, 900.0, 0.0, G4090)
    assert float(floor) == pytest.approx(pw.CLOCK_FLOOR)


def test_pstates_follow_activity_polling_and_context_holding_boards():
    ctx = np.array([True, True, True, False])
    since = np.array([5.0, 60.0, 60.0, 60.0])
    poll = np.array([False, False, True, True])
    # GeForce: P0 within the 10 s decay, P8 after it with a model resident, P0 while polled, P8 without context
    assert pw.pstate_active(ctx, since, poll, G4090).tolist() == [True, False, True, False]
    # H100 holds P0 whenever a context is open (wilicc/gpu-burn#114: P0 at 0 % util with 72 GB allocated)
    assert pw.pstate_active(ctx, since, poll, H100).tolist() == [True, True, True, False]
    # idle levels: 4090 60 W in P0 vs 20 W in P8 (lmstudio-bug-tracker#1403: 60 W vs 11 W)
    assert pw.gpu_idle_power_w(np.array([True, False]), G4090).tolist() == [60.0, 20.0]
    # 5090 with a model resident idles in P8 at 12-17 W (noonghunna/club-3090#761, #769, #859)
    assert 12 <= CAT.gpu("rtx-5090").idle_power_w <= 17


def test_hbm_card_decoding_at_16_clients_is_well_under_60_percent_of_tdp():
    # arXiv:2605.11999: a 700 W H200 draws 137-300 W (20-43 %) in decode. H100 PCIe, Llama 3.1 8B FP8
    box = resolve_box(CAT, "rtx5090-server", "llama-3.1-8b", "fp8", "vllm", gpu="h100-pcie")
    row = predict(box, [16], burn_s=60).gpu_power[0]
    assert row.decode_w < 0.45 * H100.board_power_w
    assert row.decode_clock == 1.0                      # no power limit anywhere near
    # prefill is compute bound and draws more than decode (V100 TP2: decode 180-200 W, prefill 270-300 W,
    # 1CatAI/1Cat-vLLM#535)
    assert row.prefill_w > 1.5 * row.decode_w


def test_gddr6x_3090_decode_runs_at_its_power_limit_out_of_sample():
    # ninfer-3090#72: a 3090 decoding a 27B model pins its 315 W cap, SM clock 1,500 MHz of 1,695 while
    # the memory clock never moves; club-3090#104: 369-399 W uncapped on a 420 W 3090.
    box = resolve_box(CAT, "dual-3090-desktop", "llama-3.1-8b", "fp8", "vllm", tp=1)
    gb_s, u = decode_gpu_work(box, 4, 1100)
    uncapped = float(pw.gpu_board_power_w(pw.gpu_active_idle_w(G3090), gb_s, u, 1.0, G3090))
    assert uncapped > 315.0
    c = float(pw.clock_for_board_limit(315.0, pw.gpu_active_idle_w(G3090), gb_s, u, G3090))
    assert 0.7 < c < 1.0                                  # SM clock pays; bandwidth (gb_s) is unchanged
    assert c == pytest.approx(1500 / 1695, abs=0.12)


def test_transient_allowance_only_on_power_limited_boards():
    # Puget quad-3090 at 300 W limits: 1-s peaks 15 % of the limit above it (fitted, docs/validation.md)
    assert pw.gpu_transient_peak_w(np.array([300.0, 200.0]), 300.0, G3090).tolist() == [345.0, 200.0]


def test_psu_115v_curve_is_the_80plus_115v_internal_points():
    psu = CAT.psu("dark-power-pro-13-1600w")
    for load, e230, e115 in ((0.1, 0.90, 0.90), (0.2, 0.94, 0.92), (0.5, 0.96, 0.94), (1.0, 0.94, 0.90)):
        assert pw.psu_efficiency(np.array([load]), psu, 230)[0] == pytest.approx(e230)
        assert pw.psu_efficiency(np.array([load]), psu, 115)[0] == pytest.approx(e115)
    # the same 1,500 W DC costs 4.4 % more at 115 V: 1500/0.9125 vs 1500/0.9475 (linear 50-100 %)
    w115 = pw.wall_power_w(np.array([1500.0]), psu, 1, 115)[0]
    w230 = pw.wall_power_w(np.array([1500.0]), psu, 1, 230)[0]
    assert w115 == pytest.approx(1500 / (0.94 + (0.90 - 0.94) * (1500 / 1600 - 0.5) / 0.5))
    assert w115 / w230 == pytest.approx((0.96 + (0.94 - 0.96) * 0.875) / (0.94 + (0.90 - 0.94) * 0.875))
    with pytest.raises(KeyError, match="no 115 V"):
        CAT.psu("platinum-1200w").model_copy(update={"efficiency_points_115v": None,
                                                     "efficiency_load_points_115v": None}).curve(115)


def test_host_cpu_follows_the_workload():
    # 3 vLLM replicas x 2 busy cores + 3,000 tok/s x 50 us on 32 cores
    assert float(pw.host_cpu_util(3 * 2.0, 3000.0, 5e-5, 32)) == pytest.approx((6 + 0.15) / 32)
    assert float(pw.host_cpu_util(100.0, 0.0, 0.0, 32)) == 1.0
