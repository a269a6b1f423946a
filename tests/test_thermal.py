"""Thermal physics against published or hand-computed values."""
import numpy as np
import pytest

from twin.model import thermal as th


def test_airflow_for_one_kilowatt_at_ten_kelvin_is_about_176_cfm():
    # hardware.md: ~176 CFM per kW at dT = 10 K (industry rule CFM = 3.16 W / dT_F -> 175.6)
    assert th.airflow_m3_s(1000.0, 10.0) / th.CFM_M3_S == pytest.approx(175.6, rel=0.01)


def test_exhaust_rise_by_hand():
    # 1 kW into 0.1 m3/s: 1000 / (1.2 * 1006 * 0.1) = 8.283 K
    assert th.exhaust_c(20.0, 1000.0, 0.1) == pytest.approx(28.283, abs=1e-3)
    assert th.exhaust_c(20.0, 1000.0, 0.0) == 20.0


def test_rc_step_reaches_63_percent_after_one_time_constant():
    r, tau = 0.25, 15.0
    c = tau / r
    t = th.rc_step_c(np.array([20.0]), np.array([20.0]), np.array([200.0]), np.array([r]), c, tau)
    # final value 20 + 200 * 0.25 = 70 C; after tau: 20 + 50 * (1 - 1/e) = 51.606 C
    assert t[0] == pytest.approx(20 + 50 * (1 - np.exp(-1)))


def test_rc_steps_compose_exactly():
    args = (np.array([200.0]), np.array([0.25]), 60.0)
    one = th.rc_step_c(np.array([30.0]), np.array([25.0]), *args, 10.0)
    two = th.rc_step_c(th.rc_step_c(np.array([30.0]), np.array([25.0]), *args, 5.0), np.array([25.0]), *args, 5.0)
    assert one[0] == pytest.approx(two[0])


def test_recirculation_is_the_airflow_shortfall():
    assert th.recirculation_frac(np.array([1.0]), np.array([0.6]))[0] == pytest.approx(0.4)
    assert th.recirculation_frac(np.array([0.5]), np.array([0.6]))[0] == 0.0
    assert th.mixed_inlet_c(20.0, np.array([40.0]), np.array([0.25]))[0] == pytest.approx(25.0)


def test_top_of_rack_gets_more_recirculation():
    f = th.node_recirculation_frac(np.array([0.2, 0.2, 0.2]), np.array([0.0, 0.5, 1.0]), 0.5)
    assert f.tolist() == pytest.approx([0.1, 0.2, 0.3])


def test_throttle_and_fan_curves():
    assert th.throttle_clock_frac(np.array([80.0, 92.0, 97.0, 102.0, 120.0]), 92, 102).tolist() == \
        pytest.approx([1.0, 1.0, 0.75, 0.5, 0.5])
    assert th.fan_curve_frac(np.array([30.0, 64.5, 84.0, 95.0]), 0.3, 45, 84).tolist() == \
        pytest.approx([0.3, 0.65, 1.0, 1.0])


def test_heatsink_resistance_grows_as_the_fan_slows():
    assert th.gpu_thermal_resistance_k_per_w(0.25, np.array([1.0]))[0] == pytest.approx(0.25)
    assert th.gpu_thermal_resistance_k_per_w(0.25, np.array([0.5]))[0] == pytest.approx(0.25 * 2 ** 0.8)


def test_two_node_ladder_steady_state_is_ambient_plus_power_times_both_resistances():
    die, sink = np.array([20.0]), np.array([20.0])
    for _ in range(200):  # 200 x 60 s >> both time constants
        die, sink = th.rc2_step_c(die, sink, np.array([25.0]), np.array([200.0]), 0.05, np.array([0.20]),
                                  300.0, 500.0, 60.0)
    assert sink[0] == pytest.approx(25 + 200 * 0.20)          # 65 C
    assert die[0] == pytest.approx(25 + 200 * (0.05 + 0.20))  # 75 C


def test_two_node_ladder_steps_compose_exactly_and_match_a_single_rc_when_the_sink_is_huge():
    args = (np.array([25.0]), np.array([150.0]), 0.05, np.array([0.20]), 300.0, 500.0)
    one = th.rc2_step_c(np.array([30.0]), np.array([28.0]), *args, 10.0)
    half = th.rc2_step_c(np.array([30.0]), np.array([28.0]), *args, 5.0)
    two = th.rc2_step_c(half[0], half[1], *args, 5.0)
    assert np.allclose(one, two, rtol=0, atol=1e-10)
    # a heatsink of enormous mass stays put: the die is a first-order RC (R_die C_die = 15 s) on top
    # of it, so after one time constant it has covered 1 - 1/e of its P R_die = 10 K rise
    die, sink = th.rc2_step_c(np.array([40.0]), np.array([40.0]), np.array([40.0]), np.array([200.0]), 0.05,
                              np.array([0.20]), 300.0, 1e12, 15.0)
    assert sink[0] == pytest.approx(40.0, abs=1e-6)
    assert die[0] == pytest.approx(40 + 10 * (1 - np.exp(-1)), rel=1e-6)
