"""End-to-end invariants on small scenarios: conservation, energy, legality, bounds, determinism."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from twin.sim.engine import simulate
from twin.telemetry.write import write_run
from twin.model.validate import scenario_from_text
from twin.model.states import LEGAL, STATE

TINY = (Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml").read_text()


def tab(run: Path, name: str) -> dict:
    return pq.read_table(run / "telemetry" / f"{name}.parquet").to_pydict()


def test_every_request_is_completed_dropped_or_still_waiting(tiny_run):
    req = tab(tiny_run, "requests")
    status = np.array(req["status"])
    man_counts = {s: int((status == s).sum()) for s in ("completed", "dropped", "queued", "in_flight")}
    assert sum(man_counts.values()) == len(status) > 1000
    reasons = np.array(req["drop_reason"])
    assert all(reasons[status == "dropped"] != "")
    assert all(reasons[status != "dropped"] == "")
    done = status == "completed"
    arr, ft, end = (np.array(req[k]) for k in ("arrival_s", "first_token_s", "done_s"))
    assert np.all(ft[done] >= arr[done]) and np.all(end[done] >= ft[done])
    fac = tab(tiny_run, "facility")
    assert sum(fac["arrivals"]) == len(status)
    assert sum(fac["completed"]) == man_counts["completed"]


def test_energy_in_the_tables_equals_the_integral_of_power(tiny_run):
    fac, nodes = tab(tiny_run, "facility"), tab(tiny_run, "nodes")
    sample_s = fac["time_s"][0]
    integral = sum(fac["it_power_w"]) * sample_s
    assert fac["it_energy_j"][-1] == pytest.approx(integral, rel=1e-3)
    assert fac["facility_energy_j"][-1] == pytest.approx(sum(fac["facility_power_w"]) * sample_s, rel=1e-3)
    # nodes' own cumulative energy adds up to the facility's IT energy
    last = np.array(nodes["time_s"]) == max(nodes["time_s"])
    assert np.array(nodes["energy_j"])[last].sum() == pytest.approx(fac["it_energy_j"][-1], rel=1e-3)
    # and rack power is the sum of its nodes' power
    racks = tab(tiny_run, "racks")
    assert sum(racks["power_w"]) == pytest.approx(sum(nodes["power_w"]), rel=1e-4)


def test_node_states_only_follow_legal_transitions(tiny_run):
    ev = tab(tiny_run, "events")
    changes = [d for k, d in zip(ev["kind"], ev["detail"]) if k == "state_change"]
    assert changes, "the tiny surge must ignite at least one node"
    for d in changes:
        old, new = d.split("->")
        assert (STATE[old], STATE[new]) in LEGAL or (old, new) == ("FAILED", "OFF"), d
    seen = {d for d in changes}
    for step in ("OFF->POWERING_ON", "POWERING_ON->BOOTING", "BOOTING->LOADING", "LOADING->WARM"):
        assert step in seen


def test_temperatures_stay_between_supply_air_and_shutdown(tiny_run, tiny_result):
    gpus = tab(tiny_run, "gpus")
    t = np.array(gpus["temp_c"])
    assert t.min() >= tiny_result.scenario.spec.facility.supply_air_c - 1e-3
    assert t.max() < tiny_result.thresholds["gpu_shutdown_c"]
    assert t.max() > 40, "serving GPUs must warm up"


def test_same_seed_gives_byte_identical_parquet(tmp_path):
    digests = []
    for name in ("a", "b"):
        res = simulate(scenario_from_text(TINY))
        write_run(res, tmp_path / name)
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in sorted((tmp_path / name / "telemetry").glob("*.parquet"))})
    assert digests[0] == digests[1]
    other = simulate(scenario_from_text(TINY, seed=8))
    write_run(other, tmp_path / "c")
    assert hashlib.sha256((tmp_path / "c/telemetry/requests.parquet").read_bytes()).hexdigest() != \
        digests[0]["requests.parquet"]


def test_surge_ignites_nodes_and_they_drain_afterwards(tiny_run):
    fac = tab(tiny_run, "facility")
    serving = np.array(fac["nodes_serving"]) + np.array(fac["nodes_warm"])
    assert serving.max() > serving[0]
    assert np.array(fac["it_power_w"]).max() > 1.5 * fac["it_power_w"][0]


def test_node_crash_loses_no_request():
    text = TINY + "faults:\n  - {at_s: 150, kind: node_crash, target: 0}\n"
    res = simulate(scenario_from_text(text))
    req = res.columns["requests"]
    status = np.array(req["status"])
    assert res.summary["requests_arrived"] == len(status)
    assert np.array(req["retries"]).sum() > 0, "requests in flight on the crashed node are retried"
    retried = np.array(req["retries"]) > 0
    assert set(status[retried]) <= {"completed", "dropped", "queued", "in_flight"}
    kinds = res.columns["events"]["kind"]
    assert "fault" in kinds and "request_retry" in kinds


def test_heat_throttles_gpus_and_slows_serving():
    """Closed loop: a cooling failure + fan failures heat GPUs past slowdown, clocks drop, latency grows."""
    base = simulate(scenario_from_text(TINY))
    hot_text = TINY.replace("facility: {plenum_airflow_per_rack_m3_s: 0.3",
                            "facility: {supply_air_c: 35, plenum_airflow_per_rack_m3_s: 0.05")
    hot_text += "faults:\n" + "".join(f"  - {{at_s: 0, kind: fan_failure, target: {i}}}\n" for i in range(4))
    hot = simulate(scenario_from_text(hot_text))
    assert hot.summary["throttled_gpu_s"] > 0
    assert base.summary["throttled_gpu_s"] == 0
    clocks = np.array(hot.columns["gpus"]["clock_factor"])
    assert clocks.min() < 1.0
    assert hot.summary["latency_p99_s"] > base.summary["latency_p99_s"]


def test_a_node_off_for_a_whole_interval_draws_exactly_psu_standby(tiny_run):
    """OFF = no DC load: the wall sees only the PSU's standby (catalogue: 3 W for the 1,600 W unit),
    even while the chassis fans are still coasting down after shutdown."""
    nodes = tab(tiny_run, "nodes")
    state = np.array(nodes["state"]).reshape(-1, 4)
    power = np.array(nodes["power_w"]).reshape(-1, 4)
    off_twice = (state[1:] == "OFF") & (state[:-1] == "OFF")   # OFF at both ends of the interval
    assert off_twice.any()
    assert np.all(power[1:][off_twice] == pytest.approx(3.0))


def test_progress_says_the_kernels_load_before_the_first_tick():
    """The first tick loads the compiled kernels (once per machine it compiles them, ~40 s): the
    progress bar must say so instead of sitting silently at 0 %."""
    from twin.sim import compiled

    tiny = (Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml").read_text()
    seen = []
    simulate(scenario_from_text(tiny, overrides={"simulation.duration_s": 60}),
             progress=lambda frac, info: seen.append((frac, info)))
    if compiled.HAVE_NUMBA:
        assert seen[0][0] == 0.0 and "compiled kernels" in seen[0][1]["msg"]
    ticks = [info for _, info in seen if "t_s" in info]
    assert ticks[-1]["t_s"] == 60 and seen[-1][0] == 1.0
    seen.clear()
    simulate(scenario_from_text(tiny, overrides={"simulation.duration_s": 60}),
             progress=lambda frac, info: seen.append((frac, info)), kernels="numpy")
    assert all("msg" not in info for _, info in seen)   # nothing to load on the numpy path
