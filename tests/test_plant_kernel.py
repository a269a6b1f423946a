"""The plant's compiled kernel (twin.sim.plant_kernel) against the numpy solver: the same bytes.

Random rooms (hypothesis) for the sealed-rack balance, cold and warm started, with stopped fans,
exact zeros of both signs and pressures far from the root; and whole runs of a sealed-rack
scenario through both paths, telemetry compared byte for byte.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from twin.model import airflow as af
from twin.model.validate import load_scenario
from twin.sim import plant_kernel as pk
from twin.sim.engine import simulate
from twin.sim.plant_step import BoardLimit
from twin.telemetry.write import write_run

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not pk.HAVE_NUMBA, reason="numba not installed: only the fallback exists")


def _bytes(bal: af.RackAirflow) -> bytes:
    return b"".join(np.ascontiguousarray(x, dtype=float).tobytes()
                    for x in (bal.chamber_pa, bal.blower_m3_s, bal.leak_m3_s, bal.node_m3_s))


def _room(rng, n_racks, per_rack, gpn, blower_scalar):
    """A random room: fan groups with stopped (exact 0 and -0), minimum, full or any speed, and the
    balance's keyword arguments."""
    n = n_racks * per_rack
    node_rack = np.repeat(np.arange(n_racks), per_rack)
    gpu_node = np.repeat(np.arange(n), gpn)
    speeds = rng.choice([0.0, -0.0, 0.2, 1.0, 0.55], size=n + len(gpu_node))
    speeds = np.where(rng.random(len(speeds)) < 0.5, rng.random(len(speeds)), speeds)
    fan = type("Fan", (), {"free_air_flow_m3_s": 0.033, "max_static_pa": 30.0, "max_airflow_m3_s": 0.021})()
    gpu = type("Gpu", (), {"blower_free_flow_m3_s": 0.012, "blower_airflow_m3_s": 0.008, "blower_shutoff_pa": 60.0})()
    fans = af.server_fan_groups(n, fan, 3, speeds[:n], gpu, gpu_node, speeds[n:])
    blower = float(rng.uniform(0, 1.2)) if blower_scalar else rng.choice([0.0, 0.3, 1.0, 1.1], size=n_racks)
    kw = dict(plenum_pa=float(rng.uniform(0, 25)), blower_free_flow_m3_s=float(rng.uniform(0.05, 1.0)),
              blower_shutoff_pa=float(rng.uniform(20, 200)), blower_speed_frac=blower,
              leak_area_m2=float(rng.uniform(1e-4, 0.05)), rho_kg_m3=1.2)
    return fans, node_rack, kw


def _guess(rng, kind, ref, n_racks):
    return {"none": None, "near": ref.chamber_pa + rng.normal(0, 0.5, n_racks),
            "far": rng.uniform(-900, 900, n_racks), "zero": np.zeros(n_racks),
            "negzero": np.full(n_racks, -0.0), "mixed": np.where(rng.random(n_racks) < 0.5, ref.chamber_pa,
                                                                 rng.uniform(-900, 900, n_racks))}[kind]


GUESSES = st.sampled_from(["none", "near", "far", "zero", "negzero", "mixed"])


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_racks=st.integers(1, 12), per_rack=st.integers(1, 12),
       gpn=st.integers(0, 4), guess=GUESSES, blower_scalar=st.booleans())
def test_the_compiled_balance_is_the_numpy_balance_bit_for_bit(seed, n_racks, per_rack, gpn, guess, blower_scalar):
    rng = np.random.default_rng(seed)
    fans, node_rack, kw = _room(rng, n_racks, per_rack, gpn, blower_scalar)
    ref = af.rack_balance(fans, node_rack, n_racks, **kw)
    g = _guess(rng, guess, ref, n_racks)
    a = af.rack_balance(fans, node_rack, n_racks, guess_pa=g, **kw)
    b = pk.rack_balance_compiled(fans, node_rack, n_racks, guess_pa=g, **kw)
    assert _bytes(a) == _bytes(b)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_racks=st.integers(2, 8), per_rack=st.integers(1, 6),
       gpn=st.integers(0, 3), guess=GUESSES)
def test_each_rack_stops_on_its_own_residual_so_a_room_solves_as_its_racks_alone(seed, n_racks, per_rack, gpn,
                                                                                  guess):
    """Racks exchange no air, so a rack's pressure must be the one it gets solved on its own: with a
    room-wide stopping test, racks that had converged kept iterating while the worst one did."""
    rng = np.random.default_rng(seed)
    fans, node_rack, kw = _room(rng, n_racks, per_rack, gpn, blower_scalar=False)
    g = _guess(rng, guess, af.rack_balance(fans, node_rack, n_racks, **kw), n_racks)
    for solve in (af.rack_balance, pk.rack_balance_compiled):
        room = solve(fans, node_rack, n_racks, guess_pa=g, **kw)
        for r in range(n_racks):
            mine = np.flatnonzero(node_rack[fans.node] == r)
            alone = af.FanGroups(node=fans.node[mine] - r * per_rack, count=fans.count[mine],
                                 free_flow_m3_s=fans.free_flow_m3_s[mine], shutoff_pa=fans.shutoff_pa[mine],
                                 k_pa_s2_m6=fans.k_pa_s2_m6[mine], speed_frac=fans.speed_frac[mine])
            one = solve(alone, np.zeros(per_rack, dtype=np.int64), 1, guess_pa=None if g is None else g[r:r + 1],
                        **{**kw, "blower_speed_frac": kw["blower_speed_frac"][r:r + 1]})
            assert room.chamber_pa[r].tobytes() == one.chamber_pa[0].tobytes()
            assert room.node_m3_s[node_rack == r].tobytes() == one.node_m3_s.tobytes()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_racks=st.integers(1, 8), per_rack=st.integers(1, 8),
       gpn=st.integers(0, 4), blower_scalar=st.booleans())
def test_a_cached_balance_follows_the_fan_speeds_tick_after_tick(seed, n_racks, per_rack, gpn, blower_scalar):
    """The plant's case: one FanGroups whose speeds are rewritten in place every tick (fans lagging,
    failing, stopping with their nodes), one BalanceCache; then the blowers' inputs change."""
    rng = np.random.default_rng(seed)
    fans, node_rack, kw = _room(rng, n_racks, per_rack, gpn, blower_scalar)
    cache, g = pk.BalanceCache(), None
    for tick in range(6):
        if tick:
            fans.speed_frac[:] = np.where(rng.random(len(fans.node)) < 0.3, rng.choice([0.0, -0.0, 1.0]),
                                          fans.speed_frac * rng.uniform(0.9, 1.1))
        if tick == 4:
            kw = {**kw, "leak_area_m2": kw["leak_area_m2"] * 2, "blower_shutoff_pa": kw["blower_shutoff_pa"] + 7}
        a = af.rack_balance(fans, node_rack, n_racks, guess_pa=g, **kw)
        b = pk.rack_balance_compiled(fans, node_rack, n_racks, guess_pa=g, cache=cache, **kw)
        assert _bytes(a) == _bytes(b)
        g = a.chamber_pa


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_gpus=st.integers(1, 300),
       name=st.sampled_from(["rtx-pro-4500-blackwell", "rtx-5090", "h100-pcie", "a40"]))
def test_the_compiled_board_limiter_is_the_numpy_limiter_bit_for_bit(seed, n_gpus, name):
    """Boards far over, just over and under their limit, at the clock floor, with zero work (of both
    signs), DRAM traffic alone and per-GPU caps: the same clocks as power.clock_for_board_limit."""
    from twin.model import power as pw
    from twin.spec.catalogue import load_catalogue
    rng = np.random.default_rng(seed)
    gpu = load_catalogue().gpu(name)
    limit = np.where(rng.random(n_gpus) < 0.3, rng.uniform(20, gpu.board_power_w, n_gpus), gpu.board_power_w)
    idle = rng.choice([15.0, 30.0, 45.0], n_gpus)
    gb = np.where(rng.random(n_gpus) < 0.3, rng.choice([0.0, -0.0]), rng.uniform(0, gpu.memory_bandwidth_gb_s, n_gpus))
    sm = np.where(rng.random(n_gpus) < 0.3, rng.choice([0.0, -0.0, 1.0, 1.2]), rng.random(n_gpus))
    want = pw.clock_for_board_limit(limit, idle, gb, sm, gpu)
    got = BoardLimit(gpu, n_gpus).clock(limit, idle, gb, sm)
    assert want.tobytes() == got.tobytes()
    assert (want < 1).any() or not (pw.gpu_board_power_w(idle, gb, sm, 1.0, gpu) > limit).any()


def test_a_board_a_hair_over_its_limit_settles_in_the_first_step_as_numpy_does():
    """Boards over their limit by a few ulps at full clock: the first Newton step (taken in the
    kernel without numpy's pow, since 1^3 = 1 exactly) leaves some at exactly 1, others just below;
    the clocks are power.clock_for_board_limit's, bit for bit."""
    from twin.model import power as pw
    from twin.spec.catalogue import load_catalogue
    assert np.power(np.ones(8), 3).tobytes() == np.ones(8).tobytes()   # IEEE 754: pow(1, y) = 1
    gpu = load_catalogue().gpu("rtx-pro-4500-blackwell")
    rng = np.random.default_rng(7)
    n = 400
    idle, gb, sm = np.full(n, 30.0), rng.uniform(0, gpu.memory_bandwidth_gb_s, n), rng.random(n)
    full = pw.gpu_board_power_w(idle, gb, sm, 1.0, gpu)
    limit = full - full * np.finfo(float).eps * rng.integers(0, 64, n)
    want = pw.clock_for_board_limit(limit, idle, gb, sm, gpu)
    got = BoardLimit(gpu, n).clock(limit, idle, gb, sm)
    assert want.tobytes() == got.tobytes()
    w_dram = pw.gpu_dram_w_per_gb_s(gpu)
    over = (pw.gpu_memory_w_per_gb_s(gpu) - w_dram) * gb + pw.gpu_sm_power_w(gpu) * sm > limit - idle - w_dram * gb
    assert (over & (want == 1.0)).any() and (over & (want < 1.0)).any()   # both cases reached


def test_the_kernels_switch_is_the_routers_and_rejects_anything_else():
    assert pk.resolve("auto") == "numba" and pk.resolve("numpy") == "numpy"
    with pytest.raises(ValueError, match="kernels"):
        pk.resolve("fortran")


def _telemetry(tmp: Path, plant_kernels: str, monkeypatch) -> dict[str, str]:
    """A tiny run with sealed racks, the engine's kernels (router and plant) chosen by simulate()."""
    from twin.sim.plant_step import CompiledStep
    calls = []
    real = CompiledStep.clocks
    monkeypatch.setattr(CompiledStep, "clocks", lambda *a, **k: calls.append(1) or real(*a, **k))
    sc = load_scenario(ROOT / "scenarios" / "tiny.yaml", overrides={"facility.containment": "sealed"})
    res = simulate(sc, kernels=plant_kernels)
    assert bool(calls) == (plant_kernels == "numba")  # the path asked for is the one that ran
    write_run(res, tmp / plant_kernels)
    return {p.stem: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((tmp / plant_kernels / "telemetry").glob("*"))}


def test_a_sealed_run_writes_the_same_telemetry_with_the_plant_kernel_off(tmp_path, monkeypatch):
    fast = _telemetry(tmp_path, "numba", monkeypatch)
    assert fast == _telemetry(tmp_path, "numpy", monkeypatch)


def _plant(kernels: str):
    from twin.sim.layout import build_layout
    from twin.sim.plant import Plant
    from twin.spec.topology import build_topology
    sc = load_scenario(ROOT / "scenarios" / "tiny.yaml", overrides={"facility.containment": "sealed"})
    spec, cat = sc.spec, sc.catalogue
    topo = build_topology(sc)
    node = cat.node(spec.topology.node_type)
    engines = tuple(cat.engine(p.engine) for p in spec.pools)
    return Plant(topo, cat, node, spec.facility, build_layout(sc, topo, node), engines, None, spec.simulation.dt_s,
                 kernels=kernels)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
@example(seed=272)  # all racks without flow: the rack exhaust is the supply air
def test_the_compiled_heat_step_is_the_numpy_heat_step_bit_for_bit(seed):
    """Three ticks of Plant heat (CPU/GPU temperatures, exhausts, memory clocks, blowers, throttle
    flags) on random inputs: nodes off or without a stream, stopped and full blowers, dies beyond
    slowdown and shutdown, memory junctions beyond their limit, exact zeros of power."""
    from twin.model.node_power import NodeParts
    rng = np.random.default_rng(seed)
    plants = {k: _plant(k) for k in ("numpy", "numba")}
    n, g, r = plants["numpy"].N, plants["numpy"].G, plants["numpy"].R
    start = {"gpu_temp": rng.uniform(15, 105, g), "gpu_sink": rng.uniform(15, 80, g), "gpu_mem": rng.uniform(15, 125, g),
             "gpu_fan": rng.choice([0.0, 1.0, 0.3], g) * (rng.random(g) < 0.5) + rng.random(g) * 0.5,
             "cpu_temp": rng.uniform(15, 95, n), "rack_exhaust": rng.uniform(18, 50, r)}
    supply_c = 18.0 + rng.random()  # one draw for both plants (a draw each made a rack with no flow differ)
    for p in plants.values():
        for k, v in start.items():
            getattr(p, k)[:] = v
        p.supply_c = supply_c
    for _ in range(3):
        on = rng.random(n) < 0.8
        airflow = np.where(rng.random(n) < 0.2, rng.choice([0.0, 1e-10], n), rng.uniform(0.01, 0.2, n))
        inlet = rng.uniform(18, 40, n)
        parts = NodeParts(*(np.where(on, rng.uniform(0, 400, n), 0.0) for _ in range(5)))
        node_dc = parts.dc_w(rng.uniform(0, 900, n))
        powered = (rng.random(g) < 0.85) & on[plants["numpy"].topo.gpu_node]
        g_pow = np.where(powered, rng.uniform(0, 300, g), 0.0)
        gb_s = np.where(rng.random(g) < 0.3, 0.0, rng.uniform(0, 900, g))
        got = {}
        for k, p in plants.items():
            if k == "numba":  # the compiled step's heat pass alone (twin.sim.plant_step)
                ex, thr, hot = p._fast.heat(p, on, airflow, inlet, parts.cpu_w, parts.upstream_w, node_dc, g_pow,
                                            gb_s, powered)
            else:
                ex, thr, hot = p._heat_numpy(on, airflow, inlet, parts, node_dc, g_pow, gb_s, powered)
            p.gpu_throttled = thr  # as Plant.step does
            got[k] = (ex.tobytes(), thr.tobytes(), hot.tobytes(), hot.dtype,
                      *(getattr(p, a).tobytes() for a in (*start, "gpu_mem_clock")))
        assert got["numpy"] == got["numba"]


def test_a_sealed_surge_writes_the_same_telemetry_with_the_plant_kernels_off(tmp_path):
    """The first 15 minutes of the surge (nodes igniting, GPUs warming under load) through both paths."""
    out = {}
    for k in ("numba", "numpy"):
        res = simulate(load_scenario(ROOT / "scenarios" / "surge.yaml", overrides={"simulation.duration_s": 900}),
                       kernels=k)
        write_run(res, tmp_path / k)
        out[k] = {p.stem: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((tmp_path / k / "telemetry").glob("*"))}
    assert out["numba"] == out["numpy"]
