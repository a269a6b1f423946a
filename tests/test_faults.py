"""Fault events: the engine reacts physically and operationally, and never loses a request.

Scenarios are small variants of scenarios/tiny.yaml (one rack, four nodes, 600 s) so each run
takes about a second. Physics expectations are hand-computed from the scenario's own inputs.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from twin.sim.engine import simulate
from twin.errors import SpecError
from twin.telemetry.write import write_run
from twin.spec.scenario import FAULT_KINDS
from twin.model.validate import scenario_from_text

TINY = (Path(__file__).resolve().parent.parent / "scenarios" / "tiny.yaml").read_text()
TINY_1S = TINY.replace("sample_s: 5", "sample_s: 1")  # one facility row per physics tick
# a nano pool: three one-GPU replicas per node, so a GPU failure leaves the node two replicas
NANO = TINY_1S.replace(
    "- {name: llama, model: llama-3.3-70b, quantisation: awq-int4, tp: 1, pp: 3, nodes: 4, max_batch: 32}",
    "- {name: nano, model: nemotron-3-nano, quantisation: nvfp4, tp: 1, pp: 1, nodes: 4, max_batch: 32}")
# eight nodes for a load that needs about four: spare capacity to ignite replacements from
ROOMY = TINY.replace("nodes_per_rack: 4", "nodes_per_rack: 8").replace("nodes: 4,", "nodes: 8,")


def run(text: str, faults: list[str]):
    return simulate(scenario_from_text(text + "faults:\n" + "".join(f"  - {f}\n" for f in faults)))


def events(res, kind: str | None = None) -> list[tuple]:
    ev = res.columns["events"]
    rows = list(zip(ev["time_s"], ev["kind"], ev["node_id"], ev["replica_id"], ev["detail"]))
    return [r for r in rows if kind is None or r[1] == kind]


def assert_conserved(res) -> None:
    """arrived = completed + dropped-with-reason + queued + in flight, per request and in the summary."""
    req, s = res.columns["requests"], res.summary
    status = np.array(req["status"])
    reason = np.array(req["drop_reason"])
    assert set(status) <= {"completed", "dropped", "queued", "in_flight"}
    assert np.all(reason[status == "dropped"] != "") and np.all(reason[status != "dropped"] == "")
    assert s["requests_arrived"] == len(status) == (s["requests_completed"] + s["requests_dropped"]
                                                    + s["requests_queued"] + s["requests_in_flight"])
    assert s["requests_completed"] == int((status == "completed").sum())
    # every retry is an event, and each event names its request, reason and fault
    retries = events(res, "request_retry")
    assert int(np.sum(req["retries"])) == len(retries)
    for _, _, _, rep, detail in retries:
        assert rep >= 0 and detail.startswith("request ") and "; reason " in detail


# one fault per kind, timed in the surge plateau (t = 60..390 s) so that requests are in flight
FAULTS = {
    "node_crash": "{at_s: 150, kind: node_crash, target: 0}",
    "gpu_failure": "{at_s: 150, kind: gpu_failure, target: 1}",
    "fan_failure": "{at_s: 150, kind: fan_failure, target: 0}",
    "psu_failure": "{at_s: 150, kind: psu_failure, target: 0, duration_s: 100}",
    "cooling_failure": "{at_s: 150, kind: cooling_failure, value: 0.1}",
    "cooling_capacity": "{at_s: 150, kind: cooling_capacity, value: 1}",
    "power_cap": "{at_s: 150, kind: power_cap, value: 120}",
    "facility_power_cap": "{at_s: 150, kind: facility_power_cap, value: 3}",
    "link_down": "{at_s: 150, kind: link_down, target: 'leaf:A01-spine:0'}",
    "switch_down": "{at_s: 150, kind: switch_down, target: 'spine:0'}",
}


def test_every_fault_kind_has_a_conservation_case():
    assert set(FAULTS) == set(FAULT_KINDS)


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_requests_are_conserved_under_every_fault_kind(kind):
    res = run(TINY, [FAULTS[kind]])
    assert_conserved(res)
    (fault,) = events(res, "fault")
    assert fault[0] == 150 and f"faults[0] {kind}" in fault[4]


def test_node_crash_retries_its_requests_with_the_reason_and_the_fault():
    # the other units ignited at 30-85 s are ready only after ~250 s of cold start (POST, weights,
    # torch.compile, CUDA graphs): a 300 s queue timeout lets the retried requests wait for them
    res = run(TINY.replace("timeout_s: 120", "timeout_s: 300"), [FAULTS["node_crash"]])
    retries = events(res, "request_retry")
    assert retries, "node 0 was serving at t=150 s"
    assert all(t == 150 and "reason node_crash faults[0] on node 0" in d for t, _, _, _, d in retries)
    (lost,) = events(res, "unit_lost")
    assert lost[0] == 150 and lost[2] == 0
    # the retried requests were served elsewhere (or are still waiting), never on replica 0 again
    req = res.columns["requests"]
    retried = np.array(req["retries"]) > 0
    done = retried & (np.array(req["status"]) == "completed")
    assert done.any() and not np.any(np.array(req["replica_id"])[done] == 0)
    assert np.all(np.array(req["admitted_s"])[done] >= 150)


def test_the_scheduler_ignites_a_replacement_at_once_after_a_crash():
    # a milder surge: at t=100 s the scheduler still has OFF units and free boot slots
    text = ROOMY.replace("max_concurrent_boots: 4", "max_concurrent_boots: 8").replace("peak_multiplier: 10",
                                                                                         "peak_multiplier: 3")
    base = simulate(scenario_from_text(text))
    res = run(text, ["{at_s: 100, kind: node_crash, target: 0}"])
    assert_conserved(res)
    replacements = [e for e in events(res, "ignite") if "replaces unit 0 (node_crash faults[0]" in e[4]]
    assert len(replacements) == 1 and replacements[0][0] == 100, "reacts at the fault, not at the next interval"
    assert not any(e[0] == 100 for e in events(base, "ignite")), "the ignition at 100 s is the reaction"
    unit = int(replacements[0][4].split()[1])
    ready = [e for e in events(res, "ready") if e[4] == f"unit {unit}" and e[0] > 100]
    assert ready, "the replacement comes up and takes traffic"


def test_a_gpu_failure_loses_one_replica_and_the_node_serves_on():
    res = run(NANO, ["{at_s: 350, kind: gpu_failure, target: 1}"])  # GPU 1 = node 0, replica 1
    assert_conserved(res)
    (lost,) = events(res, "replica_lost")
    assert lost[:4] == (350, "replica_lost", 0, 1)
    assert not events(res, "unit_lost"), "two replicas are left on node 0"
    retries = events(res, "request_retry")
    assert retries and all(r[3] == 1 and "gpu_failure faults[0] on gpu 1" in r[4] for r in retries)
    req = res.columns["requests"]
    admitted, rep = np.array(req["admitted_s"]), np.array(req["replica_id"])
    after = admitted > 350
    assert np.any(rep[after] == 0) and np.any(rep[after] == 2), "node 0's other replicas keep serving"
    assert not np.any(rep[after] == 1)
    g = res.columns["gpus"]
    t, gid, pw_ = np.array(g["time_s"]), np.array(g["gpu_id"]), np.array(g["power_w"])
    assert np.all(pw_[(gid == 1) & (t > 350)] == 0.0), "a dead GPU draws nothing"
    assert np.all(pw_[(gid == 0) & (t > 350) & (t < 400)] > 50), "its neighbours keep working"


def test_a_node_comes_back_after_its_fault_is_cleared():
    res = run(ROOMY, ["{at_s: 150, kind: node_crash, target: 0, duration_s: 60}"])
    changes = [(t, d) for t, _, n, _, d in events(res, "state_change") if n == 0]
    assert (150, "SERVING->FAILED") in changes and (210, "FAILED->OFF") in changes
    assert events(res, "fault_cleared")[0][0] == 210


PP6 = TINY.replace("tp: 1, pp: 3, nodes: 4", "tp: 1, pp: 6, nodes: 4") + "fabric: {enabled: false}\n"  # 2-node units


def test_a_crash_during_a_multi_node_ignition_aborts_it_and_the_unit_returns_after_repair():
    # unit 1 = nodes 2 and 3, ignited at t=75 s and still booting at 100 s
    res = run(PP6, ["{at_s: 100, kind: node_crash, target: 3, duration_s: 100}"])
    assert_conserved(res)
    changes = [(t, n, d) for t, _, n, _, d in events(res, "state_change") if n in (2, 3)]
    assert (100, 3, "BOOTING->FAILED") in changes
    assert (100, 2, "BOOTING->FAILED") in changes and (100, 2, "FAILED->OFF") in changes, "the healthy node is freed"
    assert (200, 3, "FAILED->OFF") in changes
    # the abandoned ignition never resumes; the unit is ignited again only after the repair
    assert not any(100 < t < 200 for t, _, _ in changes)
    again = [e for e in events(res, "ignite") if e[4].startswith("unit 1 ")]
    assert again and again[0][0] >= 200 and "replaces unit 1" in again[0][4]
    assert any(e[4] == "unit 1" and e[0] > 200 for e in events(res, "ready"))


def test_a_fault_on_a_powered_off_node_keeps_it_from_being_ignited_until_repaired():
    res = run(PP6, ["{at_s: 20, kind: node_crash, target: 3, duration_s: 100}"])  # before unit 1's ignition (30 s)
    changes = [(t, n, d) for t, _, n, _, d in events(res, "state_change") if n == 3]
    assert changes[0] == (20, 3, "OFF->FAILED") and (120, 3, "FAILED->OFF") in changes
    assert min(e[0] for e in events(res, "ignite") if e[4].startswith("unit 1")) >= 120


def test_redundant_psus_carry_the_node_until_the_last_one_fails(tmp_path):
    import yaml

    from twin.spec.catalogue import load_catalogue
    from twin.model.power import psu_efficiency
    node = load_catalogue().node("refinery-node").model_dump(mode="json")
    node.update(name="refinery-node-2psu", psu_count=2)
    (tmp_path / "two_psus.yaml").write_text(yaml.safe_dump({"nodes": [node]}))
    text = TINY_1S.replace("name: tiny", f"name: tiny\ncatalogue: [{tmp_path / 'two_psus.yaml'}]").replace(
        "nodes_per_rack: 4}", "nodes_per_rack: 4, node_type: refinery-node-2psu}")
    res = run(text, ["{at_s: 150, kind: psu_failure, target: 0}", "{at_s: 300, kind: psu_failure, target: 0}"])
    assert_conserved(res)
    assert [e[4] for e in events(res, "psu_degraded")] == ["1 of 2 PSUs left"]
    changes = [(t, d) for t, _, n, _, d in events(res, "state_change") if n == 0]
    assert not [c for c in changes if 150 <= c[0] < 300 and c[1].endswith("FAILED")], "one PSU carries the node"
    assert (300, "SERVING->FAILED") in changes
    # wall power = DC / efficiency(DC / (1600 W x PSUs working)): the curve point moves when one fails
    nd = res.columns["nodes"]
    t, nid = np.array(nd["time_s"]), np.array(nd["node_id"])
    psu = load_catalogue().psu(node["psu"])
    for when, working in ((140, 2), (200, 2 - 1)):
        row = (t == when) & (nid == 0)
        dc, wall = float(np.array(nd["dc_power_w"])[row][0]), float(np.array(nd["power_w"])[row][0])
        assert wall == pytest.approx(dc / float(psu_efficiency(dc / (psu.rated_w * working), psu)), rel=2e-3)


OPEN_1S = TINY_1S.replace("cooling_capacity_kw: 6,", "cooling_capacity_kw: 6, containment: open,")


def test_cooling_failure_cuts_plenum_airflow_and_inlets_rise():
    # open racks (facility.containment: open): the intake shortfall spills over the rack top
    base = simulate(scenario_from_text(OPEN_1S))
    res = run(OPEN_1S, ["{at_s: 150, kind: cooling_failure, value: 0.2}"])
    rk, rb = res.columns["racks"], base.columns["racks"]
    t = np.array(rk["time_s"])
    supply = np.array(rk["airflow_supply_m3_s"])
    assert supply[t <= 150] == pytest.approx(0.3) and supply[t > 150] == pytest.approx(0.3 * 0.2)
    demand = np.array(rk["airflow_demand_m3_s"])
    late = t > 160
    # recirculation = (demand - supply) / demand, the hot-aisle share of the intake
    expect = np.clip((demand[late] - 0.06) / demand[late], 0, 1)
    assert np.array(rk["recirculation_frac"])[late] == pytest.approx(expect, rel=1e-4, abs=1e-6)
    inlet, inlet0 = np.array(rk["inlet_c"]), np.array(rb["inlet_c"])
    assert np.all(inlet[t > 200] > inlet0[t > 200] + 5)
    gt = np.array(res.columns["gpus"]["temp_c"]).reshape(len(t), -1).max(axis=1)
    gt0 = np.array(base.columns["gpus"]["temp_c"]).reshape(len(t), -1).max(axis=1)
    assert gt[t > 250].max() > gt0[t > 250].max() + 10


def test_sealed_cooling_failure_starves_the_blowers_of_cold_air_and_inlets_rise():
    base = simulate(scenario_from_text(TINY_1S))
    res = run(TINY_1S, ["{at_s: 150, kind: cooling_failure, value: 0.2}"])
    t = np.array(res.columns["racks"]["time_s"])
    inlet, inlet0 = np.array(res.columns["racks"]["inlet_c"]), np.array(base.columns["racks"]["inlet_c"])
    # the rack blowers now draw 5 x what the CRAHs deliver: room air comes back through the floor
    assert np.all(inlet[t > 200] > inlet0[t > 200] + 3)


def test_cooling_capacity_loss_warms_the_supply_air_by_the_excess_heat():
    res = run(TINY_1S, ["{at_s: 150, kind: cooling_capacity, value: 1.5}"])  # heat ~4 kW > 1.5 kW
    fc = res.columns["facility"]
    t, it_w, supply = np.array(fc["time_s"]), np.array(fc["it_power_w"], float), np.array(fc["supply_c"], float)
    over_w = np.array(fc["overhead_power_w"], float)
    assert np.all(supply[t <= 150] == 20.0)
    # dT = sum((heat - capacity) dt) / C, C = 5e6 J/K (facility.room_heat_capacity_j_per_k default); the
    # heat in the room: IT + UPS/transformer losses and fixed loads (overhead) + the CRAH fans in the air
    # stream (constant speed: 0.3 m3/s x 375 Pa / 0.6 = 187.5 W)
    window = (t > 150) & (t <= 400)
    assert np.all(it_w[window] > 1500)
    rise = np.sum(it_w[window] + over_w[window] + 187.5 - 1500.0) * 1.0 / 5.0e6
    assert supply[t == 400][0] - 20.0 == pytest.approx(rise, rel=1e-3)
    (overload,) = events(res, "cooling_overload")
    assert overload[0] == 150 and "cooling 1.5 kW" in overload[4]


HOT = (TINY_1S.replace("facility: {plenum_airflow_per_rack_m3_s: 0.3, cooling_capacity_kw: 6",
                       "facility: {supply_air_c: 35, room_heat_capacity_j_per_k: 2.0e4, "
                       "plenum_airflow_per_rack_m3_s: 0.3, cooling_capacity_kw: 6"))


def test_gpus_throttle_before_a_thermal_shutdown_and_requests_are_retried():
    res = run(HOT, ["{at_s: 100, kind: cooling_failure, value: 0.0}"])  # every CRAH down
    assert_conserved(res)
    shutdowns = events(res, "thermal_shutdown")
    assert shutdowns, "with no cooling at all the room heats until GPUs reach 102 C"
    throttles = events(res, "throttle_start")
    for t, _, node, _, _ in shutdowns:
        assert any(tt < t and n == node for tt, _, n, _, _ in throttles), f"node {node} shut down unthrottled"
    g = res.columns["gpus"]
    assert np.array(g["clock_factor"]).min() < 0.75, "clocks fell well below full before the shutdown"
    nodes = res.columns["nodes"]
    down = {n for _, _, n, _, _ in shutdowns}
    last = np.array(nodes["time_s"]) == 600
    assert {s for n, s in zip(np.array(nodes["node_id"])[last], np.array(nodes["state"])[last]) if n in down} == {"FAILED"}
    assert any("reason thermal_shutdown" in d for *_, d in events(res, "request_retry"))


def test_per_gpu_power_cap_holds_every_gpu_under_the_cap():
    res = run(TINY_1S, ["{at_s: 150, kind: power_cap, value: 120}"])
    g = res.columns["gpus"]
    t, pw_ = np.array(g["time_s"]), np.array(g["power_w"])
    assert pw_[t <= 150].max() > 150, "uncapped GPUs exceed the cap before it applies"
    assert pw_[t > 150].max() <= 120 + 1e-3


def test_facility_power_cap_holds_facility_power_under_the_cap():
    base = simulate(scenario_from_text(TINY_1S))
    peak_w = base.summary["peak_facility_power_w"]
    cap_kw = round(0.8 * peak_w / 1e3, 3)
    res = run(TINY_1S, [f"{{at_s: 150, kind: facility_power_cap, value: {cap_kw}}}"])
    assert_conserved(res)
    fc = res.columns["facility"]
    t, fac_w = np.array(fc["time_s"]), np.array(fc["facility_power_w"], float)
    # the controller solves for the cap inside each tick, so there is not even one tick's overshoot
    assert fac_w[t > 150].max() <= cap_kw * 1e3 * (1 + 1e-6)
    assert fac_w[t > 150].max() >= cap_kw * 1e3 * 0.999, "it caps no more than it must"
    engaged = events(res, "power_cap_engaged")
    assert engaged and "GPUs limited to" in engaged[0][4]
    assert np.array(res.columns["gpus"]["clock_factor"]).min() < 1.0


def test_facility_power_cap_delays_ignition_and_releases():
    base = simulate(scenario_from_text(TINY_1S))
    # 2.2 kW: above the idle hall with its plant's fixed loads (~2.0 kW), below two serving units
    res = run(TINY_1S, ["{at_s: 0, kind: facility_power_cap, value: 2.2, duration_s: 300}"])
    assert_conserved(res)
    delayed = events(res, "ignition_delayed")
    assert delayed and all("facility_power_cap 2.2 kW" in d for *_, d in delayed)
    assert all(t < 300 for t, *_ in delayed)
    fc = res.columns["facility"]
    t, fac_w = np.array(fc["time_s"]), np.array(fc["facility_power_w"], float)
    assert fac_w[t <= 300].max() <= 2200 * (1 + 1e-6)
    # base ignites its last unit before 300 s; under the cap that one waits until the cap lifts
    assert max(e[0] for e in events(res, "ignite")) == 300 > max(e[0] for e in events(base, "ignite"))
    assert [e[0] for e in events(res, "power_cap_released")] == [300]
    assert res.summary["requests_dropped"] > base.summary["requests_dropped"], "the cap costs service"


def test_same_seed_and_faults_give_byte_identical_tables(tmp_path):
    faults = ["{at_s: 120, kind: node_crash, target: 1, duration_s: 100}",
              "{at_s: 130, kind: gpu_failure, target: 6}",
              "{at_s: 150, kind: cooling_failure, value: 0.3, duration_s: 200}",
              "{at_s: 200, kind: facility_power_cap, value: 3}"]
    digests = []
    for name in ("a", "b"):
        write_run(run(TINY, faults), tmp_path / name)
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in sorted((tmp_path / name / "telemetry").glob("*.parquet"))})
    assert digests[0] == digests[1] and len(digests[0]) == 9  # 8 + the (empty) jobs table


@pytest.mark.parametrize("fault, message", [
    ("{at_s: 10, kind: gpu_failure, target: 12}", "faults[0].target: gpu_failure needs a GPU id 0..11"),
    ("{at_s: 10, kind: node_crash, target: true}", "faults[0].target: Input should be a valid integer"),
    ("{at_s: 10, kind: facility_power_cap}", "faults[0].value: facility_power_cap needs a positive facility limit in kW"),
    ("{at_s: 10, kind: node_crahs, target: 0}", "(did you mean 'node_crash'?)"),
    ("{at_s: 700, kind: fan_failure, target: 0}", "faults[0].at_s: 700.0 is after the end of the run"),
])
def test_bad_faults_are_reported_with_their_field_path(fault, message):
    with pytest.raises(SpecError) as exc:
        scenario_from_text(TINY + f"faults:\n  - {fault}\n")
    assert any(message in p for p in exc.value.problems), exc.value.problems


# ---------------------------------------------------------------- property: any valid fault list
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SHORT = TINY.replace("duration_s: 600", "duration_s: 240")
NODE_KINDS = ("node_crash", "gpu_failure", "fan_failure", "psu_failure")
VALUE = {"cooling_failure": lambda x: x / 1000, "cooling_capacity": lambda x: x / 100,  # 0..1, kW
         "power_cap": lambda x: 20 + x / 5, "facility_power_cap": lambda x: x / 200}   # W per GPU, kW


@st.composite
def valid_fault(draw) -> dict:
    kind = draw(st.sampled_from([k for k in FAULT_KINDS if k not in ("link_down", "switch_down")]))
    f = {"at_s": draw(st.integers(0, 240)), "kind": kind}
    if duration := draw(st.sampled_from([None, 1, 30, 120])):
        f["duration_s"] = duration
    if kind in NODE_KINDS:
        f["target"] = draw(st.integers(0, 3)) * (3 if kind == "gpu_failure" else 1) + (kind == "gpu_failure") * draw(
            st.integers(0, 2))
    if kind in VALUE:
        f["value"] = VALUE[kind](draw(st.integers(1, 1000)))
    return f


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_fault(), min_size=1, max_size=5))
def test_any_valid_list_of_faults_simulates_and_conserves_requests(faults):
    import yaml
    res = simulate(scenario_from_text(SHORT + yaml.safe_dump({"faults": faults}, default_flow_style=None)))
    assert_conserved(res)
    # the run covers [0, 240 s): a fault at its very end never happens
    assert len(events(res, "fault")) == sum(f["at_s"] < 240 for f in faults)
    caps = [f for f in faults if f["kind"] == "facility_power_cap"]
    if len(caps) == 1 and "duration_s" not in caps[0] and not events(res, "power_cap_infeasible"):
        fac = res.columns["facility"]
        t, fw = np.array(fac["time_s"]), np.array(fac["facility_power_w"], float)
        assert np.all(fw[t > caps[0]["at_s"] + 5] <= caps[0]["value"] * 1e3 * (1 + 1e-6))
