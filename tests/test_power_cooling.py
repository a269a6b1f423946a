"""The facility plant (twin.model.cooling) against its sources, and PUE at 10, 50 and 100 % load.

Published PUE: Uptime Institute annual surveys 1.56-1.58 (hardware.md) for typical, partly loaded
rooms; Schneider Electric WP 113: fixed (no-load) losses make lightly loaded rooms far less
efficient, PUE rising steeply below ~30 % load.
"""
import numpy as np
import pytest

from twin.model import cooling as co
from twin.spec.scenario import ElectricalSpec, PlantSpec

CAP = 200e3


def _plant(it_w: float) -> co.PlantPower:
    return co.plant_power(it_w, capacity_w=CAP, crah_airflow_m3_s=7.2, crah_design_airflow_m3_s=7.2,
                          plant=PlantSpec(), electrical=ElectricalSpec(), fixed_w=5e3)


def test_doe2_curves_are_normalised_at_their_reference_point():
    # EnergyPlus "DOE-2 Reciprocating/3.67COP": reference 6.67 C leaving chilled water, 29.4 C condenser
    assert co.chiller_eir_ft(6.67, 29.4) == pytest.approx(1.0, abs=0.01)
    assert float(co.chiller_eir_fplr(1.0)) == pytest.approx(1.0, abs=1e-5)
    p = float(co.chiller_power_w(CAP, CAP, 3.67, 6.67, 29.4))
    assert p == pytest.approx(CAP / 3.67, rel=0.01)
    # below the minimum part-load ratio the compressor cycles: the same power as at 10 %
    assert float(co.chiller_power_w(0.05 * CAP, CAP, 3.67, 6.67, 29.4)) == float(co.chiller_power_w(0.1 * CAP, CAP, 3.67, 6.67, 29.4))
    # a cooler condenser and warmer chilled water cut the compressor's lift and its power
    assert co.chiller_eir_ft(10.0, 24.0) < co.chiller_eir_ft(6.67, 29.4)


def test_pump_and_tower_shares_come_from_ashrae_90_1_appendix_g():
    ton_kw = 3.517
    assert PlantSpec().pump_w_per_kw == pytest.approx((22 * 2 + 19 * 3) / ton_kw, rel=0.01)   # W/gpm x gpm/ton
    assert PlantSpec().tower_w_per_kw == pytest.approx(3 / 38.2 * 745.7 / ton_kw, rel=0.01)    # gpm/hp
    assert co.pump_power_w(CAP, 28.7) == pytest.approx(5740.0)


def test_ups_losses_are_no_load_plus_proportional_plus_square_law():
    e = ElectricalSpec()
    for load in (0.25, 0.5, 1.0):
        loss = float(co.loss_w(load * CAP, CAP, e.ups_no_load_frac, e.ups_proportional_frac, e.ups_square_frac))
        assert loss == pytest.approx(CAP * (0.013 + 0.02 * load + 0.01 * load ** 2))
    eff = {x: x * CAP / (x * CAP + float(co.loss_w(x * CAP, CAP, 0.013, 0.02, 0.01))) for x in (0.25, 1.0)}
    assert eff[0.25] == pytest.approx(0.931, abs=0.001)      # modern double conversion: ~93 % at 25 %...
    assert eff[1.0] == pytest.approx(0.959, abs=0.001)       # ...~96 % at full load


def test_crah_fans_fixed_speed_are_a_fixed_share_and_variable_speed_follows_the_fan_law():
    design = 7.2 * 375 / 0.6
    assert float(co.crah_fan_power_w(3.6, 7.2, 375, 0.6, False, 0.3)) == pytest.approx(design)
    assert float(co.crah_fan_power_w(3.6, 7.2, 375, 0.6, True, 0.3)) == pytest.approx(design / 8)
    assert float(co.crah_fan_power_w(0.1, 7.2, 375, 0.6, True, 0.3)) == pytest.approx(design * 0.3 ** 3)


def test_pue_at_10_50_and_100_percent_load_against_published_curves():
    pue = {f: _plant(f * CAP).pue for f in (0.1, 0.5, 1.0)}
    assert pue[0.1] > 2.0                                   # WP 113: fixed losses dominate a lightly loaded room
    assert 1.48 <= pue[0.5] <= 1.66                         # Uptime survey averages 1.56-1.58
    assert 1.3 <= pue[1.0] < pue[0.5] < pue[0.1]            # falls with load
    assert pue == pytest.approx({0.1: 2.64, 0.5: 1.56, 1.0: 1.39}, abs=0.01)


def test_heat_beyond_capacity_is_not_removed():
    full = _plant(CAP)
    assert full.heat_removed_w == CAP
    assert full.heat_excess_w == pytest.approx(full.crah_fans_w + full.ups_loss_w + full.transformer_loss_w + 5e3)
    assert np.isfinite(full.pue)
