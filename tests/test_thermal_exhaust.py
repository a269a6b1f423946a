"""Node exhaust: first law over each tick (heat stored in a warming GPU/CPU does not reach the air)
and the second law (no exhaust hotter than the surfaces that heated it) in every shipped scenario.

Issue 18 follow-up: a node serving at t = 0 with its fans spinning up from rest, or an unpowered
node releasing heatsink heat into a coasting fan's vanishing flow, used to report exhausts of
100-170 C (and, with stored heat counted, diverging ones); exhaust = inlet + P / (rho c_p Q)
diverges as Q -> 0 unless P is the heat that actually reaches the stream.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from twin.model import thermal as th
from twin.model.validate import load_scenario
from twin.sim.engine import simulate
from twin.spec.catalogue import load_catalogue

ROOT = Path(__file__).resolve().parent.parent
GPU = "rtx-pro-4500-blackwell"


def test_heat_to_air_is_power_less_what_the_masses_store_by_hand():
    gpu = load_catalogue().gpu(GPU)
    # catalogue: R = 0.25 K/W, spreader 35 % of it with tau 3 s; heatsink 450 J/K x 4/pi^2
    c_spr = 3.0 / (0.35 * 0.25)                     # 34.2857 J/K
    c_sink = 450.0 * 4.0 / math.pi ** 2             # 182.378 J/K
    stored = th.gpu_stored_j(30.0, 32.0, 25.0, 25.5, gpu)
    assert stored == pytest.approx(c_spr * 2.0 + c_sink * 0.5, rel=1e-12)
    assert stored == pytest.approx(159.76, abs=0.01)
    assert th.heat_to_air_w(200.0, stored, 1.0) == pytest.approx(40.24, abs=0.01)
    # a cooling part gives back what it stored: more heat reaches the air than it draws
    assert th.heat_to_air_w(0.0, -50.0, 2.0) == pytest.approx(25.0)


def test_exact_step_conserves_energy_against_a_fine_integration():
    """P dt = stored + integral of (T_sink - T_air) / R_sink dt, the integral by 20,000 RK4 substeps."""
    gpu = load_catalogue().gpu(GPU)
    fan, amb, p, dt = 0.5, 24.0, 180.0, 1.0
    r_spr, r_sink = th.gpu_stage_resistances(gpu, np.array([fan]))
    c_spr, c_sink = th.gpu_spreader_capacity_j_per_k(gpu), th.gpu_heatsink_capacity_j_per_k(gpu)
    d0, s0 = 40.0, 33.0
    d1, s1, _ = th.gpu_thermal_step(np.array([d0]), np.array([s0]), np.array([s0]), np.array([amb]),
                                    np.array([p]), np.array([0.0]), np.array([fan]), gpu, dt)

    def rhs(x):
        d, s = x
        return np.array([(p - (d - s) / r_spr) / c_spr, ((d - s) / r_spr - (s - amb) / r_sink[0]) / c_sink])

    x, h, to_air = np.array([d0, s0]), dt / 20_000, 0.0
    for _ in range(20_000):
        k1 = rhs(x); k2 = rhs(x + h / 2 * k1); k3 = rhs(x + h / 2 * k2); k4 = rhs(x + h * k3)
        xn = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        to_air += h * ((x[1] + xn[1]) / 2 - amb) / r_sink[0]
        x = xn
    assert x == pytest.approx([d1[0], s1[0]], abs=1e-9)
    got = th.heat_to_air_w(p, th.gpu_stored_j(d0, d1[0], s0, s1[0], gpu), dt)
    assert got == pytest.approx(to_air / dt, rel=1e-6)


def test_blower_stream_cannot_be_hotter_than_its_heatsink():
    """Second law on the blower stream: the sink-to-air resistance is at least the stream's caloric
    resistance 1 / (rho c_p Q), at every fan speed down to the minimum the controller allows, for
    every catalogued GPU; else the model's air would leave hotter than the fins it passed."""
    cat = load_catalogue()
    for gpu in (cat.gpu(n) for n in cat.names("gpus")):
        for frac in (gpu.min_fan_frac, 0.5, 1.0):
            _, r_sink = th.gpu_stage_resistances(gpu, np.array([frac]))
            caloric = 1.0 / (th.RHO_AIR_KG_M3 * th.CP_AIR_J_PER_KG_K * gpu.blower_airflow_m3_s * frac)
            assert r_sink[0] + gpu.spreader_resistance_frac * gpu.thermal_resistance_k_per_w >= caloric, (gpu.name, frac)


SHIPPED = sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml") if not p.stem.startswith("hall-"))


@pytest.mark.parametrize("name", SHIPPED)
def test_no_shipped_scenario_has_an_exhaust_above_its_surfaces(name):
    """Air leaving a powered node is at most as hot as the hottest part the twin gives a temperature
    (GPU die, CPU package, or the inlet air itself), plus what the parts without one (DIMMs at their
    active power, board, NIC, chassis fans at full speed) could add to the smallest stream a powered
    node has: its GPU blowers at their minimum duty (they never stop while the board is powered;
    Intel 4-wire PWM fan spec rev 1.3, type A: minimum rpm below minimum duty). A node with no power
    has no stream: its exhaust is its rack's hot-aisle air, bounded by the rack's hottest bound.
    The hall-1600/16000 scenarios are the surge's node, rack and fan physics at 10x/100x scale."""
    sc = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    res = simulate(sc)
    cat = sc.catalogue
    node = cat.node(sc.spec.topology.node_type)
    nodes = res.columns["nodes"]
    gpu, nic, fan = cat.gpu(node.gpu), cat.nic(node.nic), cat.fan(node.chassis_fan)
    unmodelled_w = (node.dimms * node.dimm_power_w + node.platform_power_w + nic.power_w
                    + node.chassis_fan_count * fan.max_power_w)
    q_min = node.gpu_count * gpu.min_fan_frac * gpu.blower_airflow_m3_s
    rise = unmodelled_w / (sc.spec.facility.air_density_kg_m3 * th.CP_AIR_J_PER_KG_K * q_min)
    ex = np.asarray(nodes["exhaust_c"], dtype=float)
    surf = np.maximum.reduce([np.asarray(nodes[k], dtype=float) for k in ("gpu_temp_max_c", "cpu_temp_c", "inlet_c")])
    bound = surf + rise
    t = np.asarray(nodes["time_s"], dtype=float)
    rack = np.asarray(nodes["rack_id"])
    key = np.unique(np.stack([t, rack]), axis=1, return_inverse=True)[1].ravel()
    rack_bound = np.full(key.max() + 1, -np.inf)
    np.maximum.at(rack_bound, key, np.where(np.asarray(nodes["dc_power_w"]) > 0, bound, -np.inf))
    bound = np.where(np.asarray(nodes["dc_power_w"]) > 0, bound, np.maximum(rack_bound[key], surf))
    worst = int(np.argmax(ex - bound))
    assert ex[worst] <= bound[worst] + 1e-3, (name, t[worst], int(np.asarray(nodes["node_id"])[worst]),
                                             ex[worst], bound[worst])
