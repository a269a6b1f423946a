"""Power physics against published or hand-computed values."""
import numpy as np
import pytest

from twin.model import power as pw
from twin.spec.catalogue import load_catalogue

CAT = load_catalogue()
PSU = CAT.psu("dark-power-pro-13-1600w")
GPU = CAT.gpu("rtx-pro-4500-blackwell")


@pytest.mark.parametrize("load, eff", [(0.10, 0.90), (0.20, 0.94), (0.50, 0.96), (1.00, 0.94)])
def test_psu_efficiency_hits_the_80plus_titanium_points(load, eff):
    assert pw.psu_efficiency(np.array([load]), PSU)[0] == pytest.approx(eff)


def test_psu_efficiency_interpolates_between_points():
    # 35 % is halfway between 20 % (0.94) and 50 % (0.96)
    assert pw.psu_efficiency(np.array([0.35]), PSU)[0] == pytest.approx(0.95)
    # below 10 %: losses (fraction of rated) through 10 % and 20 %: 0.1 x (1/0.90 - 1) = 0.011111,
    # 0.2 x (1/0.94 - 1) = 0.012766 -> L = 0.009456 + 0.016550 x; at 5 %: 0.05 / (0.05 + 0.010284)
    assert pw.psu_efficiency(np.array([0.05]), PSU)[0] == pytest.approx(0.05 / (0.05 + 0.009456 + 0.01655 * 0.05),
                                                                      rel=1e-4)
    # continuous at the first test point, and the fixed loss (~15 W of 1,600 W) dominates near zero
    assert pw.psu_efficiency(np.array([0.1 - 1e-9]), PSU)[0] == pytest.approx(0.90, abs=1e-6)
    assert pw.wall_power_w(np.array([1.0]), PSU)[0] - 1.0 == pytest.approx((0.009456 + 0.01655 / 1600) * 1600, rel=1e-3)


def test_wall_power_at_half_load_is_dc_over_96_percent():
    assert pw.wall_power_w(np.array([800.0]), PSU)[0] == pytest.approx(800 / 0.96)
    assert pw.wall_power_w(np.array([0.0]), PSU)[0] == pytest.approx(PSU.standby_w)


def test_fan_cube_law_half_speed_is_one_eighth_power():
    assert pw.fan_power_w(2.5, np.array([1000.0]), 2000.0)[0] == pytest.approx(2.5 / 8)
    assert pw.fan_airflow_m3_s(0.02, np.array([1000.0]), 2000.0)[0] == pytest.approx(0.01)
