"""Sealed racks: per-rack pressure-flow balance (twin.model.airflow), by hand and by conservation."""
import numpy as np
import pytest

from twin.model import airflow as af
from twin.model import thermal as th

RHO = 1.2
# refinery chassis fan: 70 CFM free air (0.033 m3/s), 30 Pa shut-off, 45 CFM (0.021) in the chassis
Q0, P0, QOP = 0.033, 30.0, 0.021
K = float(af.fan_impedance_pa_s2_m6(Q0, P0, QOP))


def test_impedance_puts_the_operating_point_where_the_catalogue_says():
    assert K == pytest.approx(30 * (1 - 0.021 / 0.033) / 0.021 ** 2)
    assert float(af.fan_flow_m3_s(0.0, Q0, P0, 1.0, K)) == pytest.approx(QOP)


def test_fan_laws_with_a_quadratic_system_curve_make_flow_proportional_to_speed():
    for s in (0.3, 0.5, 0.8):
        assert float(af.fan_flow_m3_s(0.0, Q0, P0, s, K)) == pytest.approx(s * QOP)


def test_chamber_pressure_helps_or_hinders_the_server_fans():
    for assist in (-10.0, 5.0, 20.0):
        q = float(af.fan_flow_m3_s(assist, Q0, P0, 1.0, K))
        # the fan curve plus the chamber pressure equals the system loss k Q^2
        assert P0 * (1 - q / Q0) + assist == pytest.approx(K * q ** 2)
    assert float(af.fan_flow_m3_s(-31.0, Q0, P0, 1.0, K)) == 0.0     # a suction beyond shut-off stalls it


def test_leakage_grows_with_the_square_root_of_pressure_and_keeps_its_sign():
    # orifice: 0.61 x 0.01 m2 x sqrt(2 x 10 Pa / 1.2 kg/m3) = 0.0249 m3/s
    assert float(af.leakage_flow_m3_s(10.0, 0.01, RHO)) == pytest.approx(0.61 * 0.01 * (2 * 10 / 1.2) ** 0.5)
    assert float(af.leakage_flow_m3_s(40.0, 0.01, RHO)) == pytest.approx(2 * float(af.leakage_flow_m3_s(10.0, 0.01, RHO)))
    assert float(af.leakage_flow_m3_s(-10.0, 0.01, RHO)) < 0


def _rack(speed: float, leak_area: float = 0.01) -> af.RackAirflow:
    # one rack of 10 nodes, 3 chassis fans each at `speed`; blower 0.6 m3/s free / 100 Pa; plenum 12.5 Pa
    nodes = np.arange(10)
    fans = af.FanGroups(node=nodes, count=np.full(10, 3.0), free_flow_m3_s=np.full(10, Q0),
                        shutoff_pa=np.full(10, P0), k_pa_s2_m6=np.full(10, K), speed_frac=np.full(10, speed))
    return af.rack_balance(fans, np.zeros(10, dtype=int), 1, plenum_pa=12.5, blower_free_flow_m3_s=0.6,
                           blower_shutoff_pa=100.0, blower_speed_frac=1.0, leak_area_m2=leak_area, rho_kg_m3=RHO)


@pytest.mark.parametrize("speed", [0.3, 0.7, 1.0])
def test_what_the_blower_gives_the_servers_and_leaks_take(speed):
    r = _rack(speed)
    assert r.blower_m3_s[0] == pytest.approx(r.node_m3_s.sum() + r.leak_m3_s[0], abs=1e-9)


def test_deficit_depressurises_the_chamber_draws_hot_air_in_and_cuts_server_flow():
    r = _rack(1.0)      # 10 x 3 x 0.021 = 0.63 m3/s wanted at 0 Pa vs a 0.6 m3/s (at 12.5 Pa plenum: 0.675) blower
    assert r.chamber_pa[0] > 0                   # the blower still wins at full plenum pressure
    weak = af.rack_balance(  # a weaker blower on a dead plenum (e.g. CRAH units tripped)
        af.FanGroups(node=np.arange(10), count=np.full(10, 3.0), free_flow_m3_s=np.full(10, Q0),
                     shutoff_pa=np.full(10, P0), k_pa_s2_m6=np.full(10, K), speed_frac=np.ones(10)),
        np.zeros(10, dtype=int), 1, plenum_pa=0.0, blower_free_flow_m3_s=0.4, blower_shutoff_pa=100.0,
        blower_speed_frac=1.0, leak_area_m2=0.01, rho_kg_m3=RHO)
    assert weak.chamber_pa[0] < 0 and weak.leak_in_m3_s[0] > 0
    assert weak.node_m3_s.sum() < 0.63 < r.node_m3_s.sum()    # below the 0 Pa demand; the strong rack above it
    # the intake mixes blower air with the hot air leaking in
    inlet = af.sealed_inlet_c(20.0, np.array([45.0]), weak.blower_m3_s, weak.leak_in_m3_s)
    w = weak.leak_in_m3_s[0] / (weak.leak_in_m3_s[0] + weak.blower_m3_s[0])
    assert inlet[0] == pytest.approx(20 + 25 * w)
    # an open rack would spill the whole shortfall over the top: more hot air than the sealed leak
    open_frac = th.recirculation_frac(np.array([0.63]), weak.blower_m3_s)[0]
    assert w < open_frac


def test_surplus_pressurises_the_chamber_and_the_intake_is_pure_supply():
    r = _rack(0.3)
    assert r.chamber_pa[0] > 0 and r.leak_in_m3_s[0] == 0
    assert af.sealed_inlet_c(18.0, np.array([40.0]), r.blower_m3_s, r.leak_in_m3_s)[0] == 18.0
    assert r.node_m3_s[0] > 3 * 0.3 * QOP                      # pressurised: a little more than at 0 Pa
