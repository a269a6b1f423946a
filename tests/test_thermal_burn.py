"""The burn-test transient against published gpu-burn traces.

Published trace (validation): stibbons1990/hex, "The weirdest corrupted video on an NVidia card",
2022-11-05: `./gpu_burn 120` on an ASUS TUF RTX 3070 Ti, summary lines every ~13 s:
54, 59, 61, 64, 64, 66, 67, 67, 68, 68 C at 10.8 ... 100 % of 120 s. An exponential fit over
that window gives tau = 39 +- 5 s (the fidelity review quotes 31-38 s from several public logs).
"""
import math

import numpy as np
import pytest
from scipy.optimize import curve_fit

from twin.model import thermal as th
from twin.spec.catalogue import load_catalogue
from twin.tools.predict import burn_test, resolve_box

CAT = load_catalogue()
PCT = np.array([10.8, 21.7, 32.5, 43.3, 53.3, 64.2, 75.0, 85.8, 96.7, 100.0])
STIBBONS_T_S = PCT / 100 * 120
STIBBONS_C = np.array([54, 59, 61, 64, 64, 66, 67, 67, 68, 68], dtype=float)


def _approach(t, t_inf, a, tau):
    return t_inf - a * np.exp(-t / tau)


def test_the_published_3070ti_burn_settles_with_a_35_to_40_s_time_constant():
    (t_inf, _, tau), cov = curve_fit(_approach, STIBBONS_T_S, STIBBONS_C, p0=[70, 20, 30])
    assert tau == pytest.approx(39.3, abs=0.5)
    assert math.sqrt(cov[2, 2]) < 6
    assert t_inf == pytest.approx(68.8, abs=0.5)


@pytest.mark.parametrize("node", ["ws-4x4090-tr", "epyc7542-4x4090"])
def test_4090_box_burn_settles_like_published_traces(node):
    # issue #18: within ~1 K of the plateau by ~110 s and >= 80 % of the rise by 60 s, from idle
    burn = burn_test(resolve_box(CAT, node, "llama-3.1-8b", "fp8", "vllm"), ambient_c=25.0, duration_s=900)
    assert burn.time_to_plateau_s <= 115
    assert burn.rise_fraction_at(60.0) >= 0.80
    # ...but not instantly: the published 3070 Ti was still 4.8 K short of its plateau at 52 s
    assert burn.time_to_plateau_s >= 60
    assert burn.rise_fraction_at(30.0) <= 0.85
    # the fast die/spreader stage carries 30-40 % of the rise within seconds (published burns jump first)
    g = int(burn.plateau_c.argmax())
    jump = (burn.gpu_temp_c[4, g] - burn.start_c[g]) / (burn.plateau_c[g] - burn.start_c[g])
    assert 0.25 <= jump <= 0.45
    # and the heatsink stage fitted over the published window is in the published burns' range
    m = (burn.t_s >= 13) & (burn.t_s <= 120)
    (_, _, tau), _ = curve_fit(_approach, burn.t_s[m], burn.gpu_temp_c[m, g], p0=[80, 20, 30])
    assert 25 <= tau <= 45


def test_burn_starts_from_the_idle_equilibrium_not_from_ambient():
    box = resolve_box(CAT, "refinery-node", "nemotron-3-nano", "nvfp4", "vllm")
    burn = burn_test(box, ambient_c=25.0, duration_s=60)
    # P8 idle 15 W at the minimum blower 0.3 through R_spr + R_sink / 0.3^0.8, above the pre-heated intake
    r = 0.35 * 0.25 + 0.65 * 0.25 / 0.3 ** 0.8
    assert np.all(burn.start_c > 25 + 15 * r)
    assert np.all(burn.start_c < 25 + 15 * r + 5)


def test_heatsink_stage_uses_the_first_mode_of_a_distributed_fin():
    gpu = CAT.gpu("rtx-4090")
    assert th.gpu_heatsink_capacity_j_per_k(gpu) == pytest.approx(4 / math.pi ** 2 * 1100)
    # equilibrium of the two stages plus memory: sink = T_a + P R_sink(f), die = sink + P R_spr
    die, sink, mem = th.gpu_thermal_equilibrium(30.0, 400.0, 40.0, 1.0, gpu)
    assert float(sink) == pytest.approx(30 + 400 * 0.065)
    assert float(die) == pytest.approx(30 + 400 * 0.10)
    assert float(mem) == pytest.approx(float(sink) + 40 * 0.55)
    # a long step at constant inputs lands exactly on that equilibrium
    d, s, m = th.gpu_thermal_step(np.array([30.0]), np.array([30.0]), np.array([30.0]), np.array([30.0]),
                                  np.array([400.0]), np.array([40.0]), np.array([1.0]), gpu, 1e5)
    assert (d[0], s[0], m[0]) == pytest.approx((float(die), float(sink), float(mem)))
