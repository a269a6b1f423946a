"""Fault handlers alone (hand-built state, no tick), overlapping faults and the run's end in whole runs.

Handlers get the parts of an Engine built for scenarios/tiny.yaml (4 nodes of 3 GPUs, one
one-node llama unit each, 1 PSU per node, 6 kW of cooling) and are called directly; state is
set by hand. Whole runs check the accounting of the summary against the tables.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.model.facility import BINDING
from twin.model.states import FAILED, OFF, SERVING
from twin.model.validate import scenario_from_text
from twin.sim.engine import Engine, simulate
from twin.sim.faults import FAULT_HANDLERS
from twin.sim.plant import Alarms
from twin.spec.scenario import FAULT_KINDS, FaultSpec

TINY = (Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml").read_text()
LINK = "leaf:A01-spine:0"


def engine(faults: str = "") -> Engine:
    e = Engine(scenario_from_text(TINY + faults))
    e.life.state[:] = SERVING
    e.life.unit_ready[:] = True
    return e


def apply(e: Engine, kind: str, target=None, value=None):
    return FAULT_HANDLERS[kind](e.fleet, FaultSpec(at_s=0, kind=kind, target=target, value=value), f"{kind} test")


def kinds(e: Engine) -> list[str]:
    return [r[1] for r in e.log.rows]


def test_every_fault_kind_has_a_handler():
    assert set(FAULT_HANDLERS) == set(FAULT_KINDS)


def test_node_crash_fails_the_node_and_loses_its_unit_until_every_crash_clears():
    e = engine()
    first = apply(e, "node_crash", 0)
    assert e.life.state[0] == FAILED and e.life.unit_failed[0]
    assert kinds(e) == ["state_change", "unit_lost"]
    second = apply(e, "node_crash", 0)
    first()
    assert e.life.state[0] == FAILED, "the second crash is still active"
    second()
    assert e.life.state[0] == OFF and e.log.rows[-1][5] == "FAILED->OFF"


def test_psu_faults_take_one_supply_each_and_each_repair_gives_one_back():
    e = engine()
    e.plant.psu_ok[0] = 2  # a node with redundant supplies
    e.fleet.psu_count = 2
    a = apply(e, "psu_failure", 0)
    assert e.plant.psu_ok[0] == 1 and e.life.state[0] == SERVING and e.log.rows[-1][5] == "1 of 2 PSUs left"
    b = apply(e, "psu_failure", 0)
    assert e.plant.psu_ok[0] == 0 and e.life.state[0] == FAILED
    assert apply(e, "psu_failure", 0) is None, "no working supply left to fail"
    a()
    assert e.plant.psu_ok[0] == 1 and e.life.state[0] == OFF, "one working supply again: the node may restart"
    b()
    assert e.plant.psu_ok[0] == 2


def test_a_psu_overload_trip_holds_the_node_until_a_supply_is_swapped():
    e = engine()
    e.plant.psu_ok[0] = 2
    undo = apply(e, "psu_failure", 0)
    al = Alarms(psu_overload=np.array([0]), throttle_changed=np.zeros(0, int), hot_nodes=np.zeros(0, int),
                gpu_max_c=np.zeros(4), cooling_short=None)
    e.plant.out = e.plant.out._replace(alarms=al, node_dc_w=np.full(4, 1700.0))
    e.life.react()
    e.life.react()  # still over: the trip is one hold, not one per tick
    assert e.life.state[0] == FAILED and e.life.node_holds[0] == 1
    assert any("psu_overload (1700 W on 1 PSUs)" in r[5] for r in e.log.rows)
    undo()
    assert e.life.state[0] == OFF and e.life.node_holds[0] == 0


def test_gpu_failure_loses_the_replica_and_a_swap_waits_for_every_fault_on_the_gpu():
    e = engine()
    first = apply(e, "gpu_failure", 1)   # node 0's only replica runs on GPUs 0-2
    assert not e.life.gpu_ok[1] and e.life.rep_lost[0]
    assert kinds(e) == ["replica_lost", "state_change", "unit_lost"]  # the unit drains: SERVING->DRAINING
    second = apply(e, "gpu_failure", 1)
    first()
    assert not e.life.gpu_ok[1] and e.life.rep_lost[0]
    second()
    assert e.life.gpu_ok[1] and not e.life.rep_lost[0]


def test_a_gpu_swap_does_not_revive_a_node_that_crashed():
    e = engine()
    crash = apply(e, "node_crash", 0)
    swap = apply(e, "gpu_failure", 2)
    swap()
    assert e.life.state[0] == FAILED
    crash()
    assert e.life.state[0] == OFF


def test_fan_failures_overlap():
    e = engine()
    a, b = apply(e, "fan_failure", 3), apply(e, "fan_failure", 3)
    a()
    assert not e.plant.fan_ok[3]
    b()
    assert e.plant.fan_ok.all()


@pytest.mark.parametrize("kind, values, get, healthy", [
    ("cooling_failure", (0.2, 0.5), lambda e: e.plant.plenum_frac, 1.0),
    ("cooling_capacity", (2.0, 4.0), lambda e: e.plant.cooling_capacity_w / 1e3, 6.0),   # tiny: a 6 kW plant
    ("power_cap", (100.0, 150.0), lambda e: float(e.plant.gpu_cap_w.max()), math.inf),
    ("facility_power_cap", (3.0, 5.0), lambda e: e.cap.cap_w / 1e3, math.inf),
])
def test_overlapping_degradations_apply_the_most_severe_and_restore_in_any_order(kind, values, get, healthy):
    e = engine()
    severe = apply(e, kind, value=values[0])
    assert get(e) == values[0]
    mild = apply(e, kind, value=values[1])
    assert get(e) == values[0], "the milder fault does not lift the severe one"
    severe()
    assert get(e) == values[1]
    mild()
    assert get(e) == healthy


def test_cooling_failure_defaults_to_most_crah_units_down():
    e = engine()
    apply(e, "cooling_failure")
    assert e.plant.plenum_frac == 0.3 and e.plant.cooling_available_w == pytest.approx(0.3 * 6e3)


def test_lifting_a_binding_facility_cap_is_an_event():
    e = engine()
    undo = apply(e, "facility_power_cap", value=3.0)
    e.cap.regime = BINDING
    undo()
    assert e.log.rows[-1][1:] == ("power_cap_released", -1, -1, -1, "cap lifted")


def test_a_link_stays_down_until_every_fault_on_it_clears():
    e = engine(f"faults:\n  - {{at_s: 10, kind: link_down, target: '{LINK}'}}\n")
    a, b = apply(e, "link_down", LINK), apply(e, "link_down", LINK)
    assert len(e.network.fabric.down_links) == 1
    a()
    assert len(e.network.fabric.down_links) == 1
    b()
    assert not e.network.fabric.down_links


def test_losing_every_spine_cuts_every_unit_off_and_restoring_one_reconnects_them():
    e = engine("faults:\n  - {at_s: 10, kind: switch_down, target: 'spine:0'}\n")
    s0 = apply(e, "switch_down", "spine:0")
    assert not e.network.unit_cut.any(), "spine 1 still reaches every leaf"
    s1 = apply(e, "switch_down", "spine:1")
    assert e.network.unit_cut.all() and kinds(e).count("unit_disconnected") == 4
    s0()
    assert not e.network.unit_cut.any() and kinds(e).count("unit_reconnected") == 4
    s1()


def test_fabric_faults_without_a_fabric_model_change_nothing():
    e = engine()  # tiny: no pipeline crosses a NIC, so no fabric model is built
    assert e.network.fabric is None and apply(e, "link_down", LINK) is None


# ---------------------------------------------------------------- whole runs
def run(text: str, faults: list[str]):
    return simulate(scenario_from_text(text + "faults:\n" + "".join(f"  - {f}\n" for f in faults)))


def node_rows(res, node: int) -> tuple[np.ndarray, np.ndarray]:
    nd = res.columns["nodes"]
    t, nid, state = np.array(nd["time_s"]), np.array(nd["node_id"]), np.array(nd["state"])
    return t[nid == node], state[nid == node]


def assert_accounts(res) -> None:
    """Summary = the tables: arrivals, completions and drops per interval add up, and the last row's
    queue and in-flight counts are the summary's."""
    s, fac, req = res.summary, res.columns["facility"], res.columns["requests"]
    status = np.array(req["status"])
    assert s["requests_arrived"] == len(status) == int(np.sum(fac["arrivals"]))
    assert s["requests_arrived"] == (s["requests_completed"] + s["requests_dropped"] + s["requests_queued"]
                                     + s["requests_in_flight"])
    assert s["requests_completed"] == int(np.sum(fac["completed"])) == int((status == "completed").sum())
    assert s["requests_dropped"] == int(np.sum(fac["dropped"])) == int((status == "dropped").sum())
    assert s["requests_queued"] == int(fac["queued"][-1]) and s["requests_in_flight"] == int(fac["in_flight"][-1])
    assert np.all(np.array(req["arrival_s"]) < fac["time_s"][-1])


ROOMY = TINY.replace("nodes_per_rack: 4", "nodes_per_rack: 8").replace("nodes: 4,", "nodes: 8,")


def test_overlapping_crashes_keep_the_node_down_until_the_last_one_clears():
    res = run(ROOMY.replace("sample_s: 5", "sample_s: 1"), ["{at_s: 150, kind: node_crash, target: 0, duration_s: 60}",
                                                            "{at_s: 180, kind: node_crash, target: 0, duration_s: 100}"])
    assert_accounts(res)
    t, state = node_rows(res, 0)
    assert np.all(state[(t > 151) & (t < 280)] == "FAILED")
    repairs = [(e, d) for e, k, n, d in zip(res.columns["events"]["time_s"], res.columns["events"]["kind"],
                                            res.columns["events"]["node_id"], res.columns["events"]["detail"])
               if k == "state_change" and n == 0 and d == "FAILED->OFF"]
    assert repairs == [(280.0, "FAILED->OFF")]


def test_a_fault_at_the_very_end_of_the_run_never_happens():
    base = simulate(scenario_from_text(TINY))
    res = run(TINY, ["{at_s: 600, kind: node_crash, target: 0}"])
    assert res.summary["faults"] == 0 and not len(res.columns["events"]["time_s"][res.columns["events"]["time_s"] >= 600])
    assert_accounts(res)
    assert res.summary == base.summary


@pytest.mark.parametrize("duration", ["602.5", "603", "600.5"])
def test_a_duration_that_is_not_whole_intervals_runs_the_whole_intervals_inside_it(duration):
    res = simulate(scenario_from_text(TINY.replace("duration_s: 600", f"duration_s: {duration}")))
    assert res.columns["facility"]["time_s"][-1] == 600.0
    assert_accounts(res)


NODE0 = ("node_crash", "gpu_failure", "psu_failure", "fan_failure")
SHORT = TINY.replace("duration_s: 600", "duration_s: 240").replace("sample_s: 5", "sample_s: 1")


@st.composite
def node0_fault(draw) -> dict:
    kind = draw(st.sampled_from(NODE0))
    f = {"at_s": draw(st.integers(0, 239)), "kind": kind, "target": draw(st.integers(0, 2)) if kind == "gpu_failure" else 0}
    if duration := draw(st.sampled_from([None, 10, 60, 120])):
        f["duration_s"] = duration
    return f


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(node0_fault(), min_size=2, max_size=6))
def test_overlapping_faults_on_one_node_conserve_requests_and_no_repair_ends_a_crash_early(faults):
    import yaml
    res = simulate(scenario_from_text(SHORT + yaml.safe_dump({"faults": faults}, default_flow_style=None)))
    assert_accounts(res)
    req = res.columns["requests"]
    reason = np.array(req["drop_reason"])
    assert np.all(reason[np.array(req["status"]) == "dropped"] != "")
    t, state = node_rows(res, 0)
    for f in faults:
        if f["kind"] == "node_crash":
            end = f["at_s"] + f.get("duration_s", 1e9)
            # the row at T shows the state after the tick ending at T; one tick of slack either side
            assert np.all(state[(t > f["at_s"] + 1) & (t < end - 1)] == "FAILED"), f
