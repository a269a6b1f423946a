"""The plant's compiled tick (twin.sim.plant_step, twin.sim.plant_step_kernel) against the numpy
step and the model functions it re-expresses: the same bytes.

Plant.step on random inputs through both paths (sealed and open racks, shared GPUs, training,
CPU-resident work, fan/PSU faults, per-GPU caps, a clock limiter), tick after tick; the PSU
curve's interpolation, GPU/node/wall power and the facility cap's search against power.py on
random inputs; numpy's pow and exp, per element (the Newton steps drop converged GPUs from the pow;
the ladder's two exponents share one exp).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.model import power as pw
from twin.model.states import BOOTING, DRAINING, FAILED, LOADING, OFF, POWERING_ON, SERVING, WARM
from twin.model.validate import load_scenario
from twin.sim import plant_kernel as pk
from twin.sim import plant_step_kernel as sk
from twin.sim.batching import ServingOutputs
from twin.sim.layout import build_layout
from twin.sim.plant import CapPreview, Plant
from twin.sim.power_cap import CapSearch
from twin.spec.catalogue import load_catalogue
from twin.spec.topology import build_topology

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not pk.HAVE_NUMBA, reason="numba not installed: only the numpy step exists")


class Limiter:
    """A clock limiter: the clocks before it, or at most `frac` of them (a cap of some kind)."""

    def __init__(self, frac: float | None) -> None:
        self.frac = frac

    def clock_limit(self, pv: CapPreview) -> np.ndarray:
        return pv.clock0 if self.frac is None else np.minimum(pv.clock0, self.frac)


def _plants(scenario: str, containment: str, frac: float | None) -> dict[str, Plant]:
    sc = load_scenario(ROOT / "scenarios" / f"{scenario}.yaml", overrides={"facility.containment": containment})
    spec, cat = sc.spec, sc.catalogue
    topo = build_topology(sc)
    node = cat.node(spec.topology.node_type)
    lay = build_layout(sc, topo, node)
    engines = tuple(cat.engine(p.engine) for p in spec.pools)
    return {k: Plant(topo, cat, node, spec.facility, lay, engines, Limiter(frac), spec.simulation.dt_s, kernels=k)
            for k in ("numpy", "numba")}


def _inputs(rng, plant: Plant, extras: bool):
    n, g, r = plant.N, plant.G, plant.lay.n_rep
    state = rng.choice([SERVING, WARM, LOADING, OFF, FAILED, POWERING_ON, BOOTING, DRAINING], size=n,
                       p=[0.5, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05])
    gpu_ok = rng.random(g) > 0.05
    batch = np.where(rng.random(r) < 0.2, 0.0, rng.integers(1, 64, r).astype(float))
    prefill = np.where(rng.random(r) < 0.3, 0.0, rng.random(r) * 0.4)
    serving = ServingOutputs(
        prefill_frac=prefill, decode_frac=rng.random(r) * 0.8, batch=batch, tokens_s=batch * rng.uniform(10, 80, r),
        prefill_tok_s=prefill * rng.uniform(1e3, 2e4, r), decode_batch=batch, kv_tokens=batch * rng.uniform(0, 8000, r),
        interval_s=rng.uniform(0.01, 0.2, r), decode_time_frac=1.0 - prefill)
    if not extras:
        return state, gpu_ok, serving, None, None, None
    return (state, gpu_ok, serving, rng.uniform(0.2, 1.0, r), np.where(rng.random(g) < 0.3, rng.random(g), 0.0),
            np.where(rng.random(n) < 0.3, rng.random(n), 0.0))


def _bytes(p: Plant) -> list[bytes]:
    o, a = p.out, p.out.alarms
    arrays = [getattr(o, f) for f in o._fields if f != "alarms"]
    arrays += [a.psu_overload, a.throttle_changed, a.hot_nodes, a.gpu_max_c, np.array([a.cooling_short], dtype=object)]
    arrays += [p.gpu_temp, p.gpu_sink, p.gpu_mem, p.gpu_fan, p.fan_rpm, p.cpu_temp, p.rack_exhaust, p.gpu_last_work_s,
               p.gpu_throttled, np.array([p.supply_c, p.t_s]),
               np.zeros(0) if p.rack_pa is None else p.rack_pa]
    return [np.asarray(x).dtype.str.encode() + np.asarray(x).tobytes() for x in arrays]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), where=st.sampled_from([("tiny", "sealed"), ("tiny", "open"),
                                                             ("surge", "sealed"), ("ws-4x4090-405b", "open")]),
       extras=st.booleans(), frac=st.sampled_from([None, 0.7]), faults=st.booleans())
def test_the_compiled_tick_is_the_numpy_tick_bit_for_bit(seed, where, extras, frac, faults):
    """Six ticks from a cold start (the first sets the fans) with new random inputs each tick:
    every output, alarm and integrated state the same on both paths (surge: a dense and an MoE
    pool; ws-4x4090-405b: llama.cpp layers offloaded to system memory)."""
    rng = np.random.default_rng(seed)
    plants = _plants(*where, frac)
    ref = plants["numpy"]
    if faults:  # chassis fans lost, a PSU down, per-GPU caps, CRAH airflow lost (as twin.sim.faults sets them)
        fan_ok = rng.random(ref.N) > 0.2
        psu_ok = np.where(rng.random(ref.N) < 0.3, ref.psu_ok - 1, ref.psu_ok)
        cap = np.where(rng.random(ref.G) < 0.3, rng.uniform(60, 200, ref.G), np.inf)
        for p in plants.values():
            p.fan_ok[:], p.psu_ok[:], p.gpu_cap_w[:], p.plenum_frac = fan_ok, psu_ok, cap, 0.5
    drew = 0.0
    for _ in range(6):
        args = _inputs(rng, ref, extras)
        got = {k: (p.step(*args), _bytes(p))[1] for k, p in plants.items()}
        assert got["numpy"] == got["numba"]
        drew += float(ref.out.gpu_power_w.sum())
    assert drew > 0 and (ref.out.node_wall_w > 0).any()   # GPUs drew power; a node off draws standby


def test_the_compiled_tick_drives_the_hot_paths_it_claims():
    """The random ticks above reach the board limiter, the memory and thermal throttles and the
    shutdown alarm on both paths (so the comparisons cover them): a surge room run hot."""
    rng = np.random.default_rng(7)
    plants = _plants("surge", "sealed", None)
    g = plants["numpy"].G
    temp, mem = np.where(rng.random(g) < 0.1, 130.0, 60.0), np.where(rng.random(g) < 0.3, 120.0, 70.0)
    cap = np.where(rng.random(g) < 0.5, 90.0, np.inf)
    for p in plants.values():  # one draw for both plants
        p.gpu_temp[:], p.gpu_mem[:], p.gpu_cap_w[:] = temp, mem, cap
    hot = 0
    for _ in range(2):  # the second tick: memory clocks from the first's memory junctions
        args = _inputs(rng, plants["numpy"], False)
        got = {k: (p.step(*args), _bytes(p))[1] for k, p in plants.items()}
        assert got["numpy"] == got["numba"]
        hot += len(plants["numba"].out.alarms.hot_nodes)
    out = plants["numba"].out
    assert (out.gpu_clock < 1).any() and (out.gpu_mem_clock < 1).any() and hot


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 50))
def test_the_compiled_interpolation_is_numpys(seed, n):
    """np.interp on curves like the PSUs': below, on and between the points, exactly on each, above."""
    rng = np.random.default_rng(seed)
    pts = np.sort(rng.choice(np.linspace(0.05, 1.0, 20), size=int(rng.integers(2, 6)), replace=False))
    eff = rng.uniform(0.8, 0.97, len(pts))
    x = np.concatenate([rng.uniform(-0.2, 1.3, n), pts, [pts[0] - 1e-12, pts[-1] + 1e-12, 0.0]])
    want = np.interp(x, pts, eff)
    got = np.array([sk.interp(float(v), pts, eff) for v in x])
    assert want.tobytes() == got.tobytes()


def _preview(rng, gpu, n_nodes: int, gpn: int) -> CapPreview:
    g = n_nodes * gpn
    return CapPreview(
        clock0=np.where(rng.random(g) < 0.3, rng.uniform(0.3, 1.0, g), 1.0), powered=rng.random(g) < 0.9,
        idle_w=rng.choice([pw.gpu_active_idle_w(gpu), gpu.idle_power_w], g),
        mem_gb_s=np.where(rng.random(g) < 0.2, 0.0, rng.uniform(0, gpu.memory_bandwidth_gb_s, g)),
        sm_util=np.where(rng.random(g) < 0.2, rng.choice([0.0, 1.0]), rng.random(g)),
        other_dc_w=np.where(rng.random(n_nodes) < 0.1, 0.0, rng.uniform(50, 600, n_nodes)),
        psus_working=rng.integers(1, 3, n_nodes), facility_w_at=lambda w: w, kernels="numba")


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_nodes=st.integers(1, 40), gpn=st.integers(1, 8),
       name=st.sampled_from(["rtx-pro-4500-blackwell", "rtx-5090", "h100-pcie", "a40"]))
def test_the_compiled_cap_search_is_power_py_bit_for_bit(seed, n_nodes, gpn, name):
    """FacilityCap's clocks at a uniform limit and the wall power behind them (limits from 0 to
    the board's, nodes drawing nothing, light PSU loads) as pw.clock_for_board_limit,
    gpu_board_power_w and wall_power_w compute them."""
    cat = load_catalogue()
    rng = np.random.default_rng(seed)
    gpu, psu = cat.gpu(name), _a_psu()
    pv = _preview(rng, gpu, n_nodes, gpn)
    search = CapSearch(gpu, psu, 230, np.arange(n_nodes * gpn) // gpn, n_nodes)
    for limit in (0.0, float(rng.uniform(0, gpu.board_power_w)), float(gpu.board_power_w)):
        clock = np.minimum(pv.clock0, pw.clock_for_board_limit(limit, pv.idle_w, pv.mem_gb_s, pv.sm_util, gpu))
        g = np.where(pv.powered, pw.gpu_board_power_w(pv.idle_w, pv.mem_gb_s, pv.sm_util, clock, gpu), 0.0)
        dc = np.bincount(np.arange(n_nodes * gpn) // gpn, weights=g, minlength=n_nodes) + pv.other_dc_w
        it = float(pw.wall_power_w(dc, psu, pv.psus_working, 230).sum())
        assert search.clock_at(pv, limit).tobytes() == clock.tobytes()
        assert np.float64(search.it_at(pv, limit)).tobytes() == np.float64(it).tobytes()


def _a_psu():
    """The PSU of the surge's node type (an 80 PLUS Titanium curve)."""
    sc = load_scenario(ROOT / "scenarios" / "surge.yaml")
    return sc.catalogue.psu(sc.catalogue.node(sc.spec.topology.node_type).psu)


def test_numpys_pow_is_per_element():
    """The Newton steps take x^3 over the GPUs still moving only: numpy's pow of an element must
    not depend on where it sits in the array or what surrounds it (SIMD lanes, tails)."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0.3, 1.0, 4099)
    whole = np.power(x, 3)
    for off in range(9):
        for n in (1, 2, 3, 7, 8, 9, 15, 17, 63, 1000):
            out = np.empty(n)
            np.power(x[off:off + n], 3, out=out)
            assert out.tobytes() == whole[off:off + n].tobytes()


def test_numpys_exp_is_per_element():
    """The heat ladder's two exponents per GPU go through one exp over a (2, G) buffer: numpy's exp
    of an element must not depend on where it sits (SIMD lanes, tails, the row it is in)."""
    rng = np.random.default_rng(5)
    x = rng.uniform(-0.5, 0.0, 4099)
    whole = np.exp(x)
    for off in range(9):
        for n in (1, 2, 3, 7, 8, 9, 15, 17, 63, 480, 1000):
            two = np.stack([x[off:off + n], x[::-1][off:off + n]])
            np.exp(two, out=two)
            assert two[0].tobytes() == whole[off:off + n].tobytes()
            assert two[1].tobytes() == whole[::-1][off:off + n].tobytes()


_SURGE_FACILITY = load_scenario(ROOT / "scenarios" / "surge.yaml").spec.facility


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), variable=st.booleans(), ups_kw=st.sampled_from([None, 150.0, 900.0]))
def test_the_cached_facility_is_cooling_plant_power_bit_for_bit(seed, variable, ups_kw):
    """FacilityTerms (the plant's per-tick facility) against cooling.plant_power and
    thermal.room_supply_c: IT loads from 0 to beyond the cooling, CRAHs down to none running,
    variable and constant-speed fans, a UPS sized by the plant or rated on its own."""
    from twin.model import cooling
    from twin.model import thermal as th
    from twin.sim.plant_step import FacilityTerms
    fac = _SURGE_FACILITY
    fac = fac.model_copy(update={"plant": fac.plant.model_copy(update={"crah_variable_speed": variable}),
                                 "electrical": fac.electrical.model_copy(update={"ups_rating_kw": ups_kw})})
    rng = np.random.default_rng(seed)
    n_racks = int(rng.integers(1, 40))
    terms = FacilityTerms(fac, n_racks)
    design_w = fac.cooling_capacity_kw * 1e3
    for _ in range(20):
        share = float(rng.choice([0.0, 0.25, 0.5, 1.0, rng.random()]))
        it_w = float(rng.choice([0.0, rng.uniform(0, 2 * design_w)]))
        cap_w, crah = design_w * share, fac.plenum_airflow_per_rack_m3_s * n_racks * share
        want = cooling.plant_power(it_w, capacity_w=cap_w, crah_airflow_m3_s=crah,
                                   crah_design_airflow_m3_s=fac.plenum_airflow_per_rack_m3_s * n_racks,
                                   plant=fac.plant, electrical=fac.electrical, fixed_w=fac.fixed_overhead_kw * 1e3,
                                   design_capacity_w=design_w)
        got = terms.at(it_w, cap_w, crah)
        assert np.array(got).tobytes() == np.array([want.total_w, want.cooling_w, want.overhead_w,
                                                    want.heat_excess_w]).tobytes()
        supply, excess, dt = float(rng.uniform(15, 40)), float(rng.choice([-1.0, rng.uniform(0, 1e6)])), 1.0
        assert np.float64(terms.room_supply_c(supply, excess, dt)).tobytes() == np.float64(th.room_supply_c(
            supply, fac.supply_air_c, excess, fac.room_heat_capacity_j_per_k, fac.supply_recovery_s, dt)).tobytes()


def test_the_compiled_ticks_outputs_hold_until_the_tick_after_next():
    """The compiled step writes its outputs into two alternating sets: what one tick returned (which
    the next tick's serving step and the plant itself read, e.g. out.gpu_clock) is not touched by
    the next tick, and each tick's arrays are the numpy step's."""
    rng = np.random.default_rng(3)
    plants = _plants("surge", "sealed", 0.7)
    prev = None
    for _ in range(4):
        args = _inputs(rng, plants["numpy"], True)
        for p in plants.values():
            p.step(*args)
        assert _bytes(plants["numpy"]) == _bytes(plants["numba"])
        if prev is not None:
            held, kept = prev
            assert [np.asarray(getattr(held, f)).tobytes() for f in held._fields if f != "alarms"] == kept
        out = plants["numba"].out
        prev = out, [np.asarray(getattr(out, f)).tobytes() for f in out._fields if f != "alarms"]
