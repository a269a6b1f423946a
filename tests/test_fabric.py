"""The RDMA fabric against hand-computed values, and the engine's reactions to it."""
from __future__ import annotations

import numpy as np
import pytest

from twin.sim.engine import simulate
from twin.model.fabric import build_fabric, ecmp_paths, parse_element
from twin.model.maxmin import max_min_fair_gb_s
from twin.model.validate import load_scenario, scenario_from_text
from twin.model.serving import pipeline_hop_s

from conftest import SCENARIOS


def small_fabric(oversubscription: float = 1.0, spines: int = 2, storage: int = 0):
    """2 racks x 2 nodes; node 0,1 in A01, node 2,3 in A02."""
    return build_fabric(["A01", "A02"], np.array([0, 0, 1, 1]), nic_gb_s=46.0, nic_latency_s=1e-6,
                        spines=spines, oversubscription=oversubscription, switch_latency_s=0.7e-6,
                        storage_targets=storage, storage_gb_s=100.0)


def test_leaf_spine_cables_and_capacities():
    fg = small_fabric(oversubscription=2.0)
    kinds = [c.kind for c in fg.cables]
    assert kinds.count("nic-leaf") == 4 and kinds.count("leaf-spine") == 4  # 2 leaves x 2 spines
    up = [c for c in fg.cables if c.kind == "leaf-spine"][0]
    # rack downlink 2 x 46 GB/s, halved by 2:1 oversubscription, split over 2 spines
    assert up.capacity_gb_s == pytest.approx(2 * 46 / 2 / 2)


def test_ecmp_path_and_hop_counts():
    fg = small_fabric()
    same_rack = ecmp_paths(fg, "node:0", "node:1")
    assert len(same_rack) == 1 and len(same_rack[0]) == 2          # node-leaf-node
    cross = ecmp_paths(fg, "node:0", "node:3")
    assert len(cross) == 2 and all(len(p) == 4 for p in cross)     # one path per spine, 4 links
    fg4 = small_fabric(spines=4)
    assert len(ecmp_paths(fg4, "node:1", "node:2")) == 4


def test_reroute_after_link_and_switch_failure():
    fg = small_fabric()
    link = next(c.link_id for c in fg.cables if (c.a, c.b) == ("leaf:A01", "spine:0"))
    paths = ecmp_paths(fg, "node:0", "node:3", down_links=frozenset({link}))
    assert len(paths) == 1
    spine1 = next(c.link_id for c in fg.cables if (c.a, c.b) == ("leaf:A01", "spine:1"))
    assert 2 * spine1 in paths[0]                                   # leaves A01 through spine 1
    assert ecmp_paths(fg, "node:0", "node:3", down_elements=frozenset({"spine:0", "spine:1"})) == []
    assert len(ecmp_paths(fg, "node:0", "node:1", down_elements=frozenset({"spine:0", "spine:1"}))) == 1


def test_max_min_fair_textbook_example():
    # Bertsekas & Gallager style: link A (cap 1) carries flows 0,1,2; link B (cap 1) flows 0,3.
    inc = np.array([[1, 1], [1, 0], [1, 0], [0, 1]], dtype=bool)
    rates = max_min_fair_gb_s(inc, np.array([1.0, 1.0]), np.full(4, np.inf))
    # A saturates first at 1/3 each; flow 3 takes what B has left: 1 - 1/3 = 2/3
    assert rates == pytest.approx([1 / 3, 1 / 3, 1 / 3, 2 / 3])


def test_max_min_fair_with_demand_caps():
    inc = np.array([[1, 1], [1, 0], [1, 0], [0, 1]], dtype=bool)
    rates = max_min_fair_gb_s(inc, np.array([1.0, 1.0]), np.array([np.inf, 0.1, np.inf, np.inf]))
    # flow 1 stops at 0.1; A's other 0.9 splits 0.45/0.45; B gives flow 3 the remaining 0.55
    assert rates == pytest.approx([0.45, 0.1, 0.45, 0.55])
    assert (inc.T @ rates <= 1.0 + 1e-12).all()


def test_pipeline_hop_time_by_hand():
    # Nemotron-4 340B: hidden 18432 x 2 B = 36,864 B per token over 46 GB/s plus 2.7 us latency
    assert pipeline_hop_s(1, 18432, 46.0, 2.7e-6) == pytest.approx(36864 / 46e9 + 2.7e-6)
    assert pipeline_hop_s(64, 18432, 46.0, 2.7e-6) == pytest.approx(64 * 36864 / 46e9 + 2.7e-6)


def test_parse_element():
    assert parse_element("spine:0") == ("element", "spine:0")
    assert parse_element("leaf:A01-spine:1") == ("link", "leaf:A01-spine:1")
    assert parse_element("spine0") is None and parse_element("router:1") is None


def _congestion(oversubscription: float):
    sc = load_scenario(SCENARIOS / "fabric-congestion.yaml", overrides={"fabric.oversubscription": oversubscription})
    return simulate(sc)


@pytest.fixture(scope="module")
def congestion_runs():
    return {o: _congestion(o) for o in (1.0, 32.0)}


def test_latency_grows_with_oversubscription(congestion_runs):
    ttft = {o: np.nanmean(r.columns["requests"]["ttft_s"]) for o, r in congestion_runs.items()}
    assert ttft[32.0] > 1.2 * ttft[1.0]
    # the cause is visible in telemetry: saturated leaf uplinks while weights stream in
    links = congestion_runs[32.0].columns["links"]
    kind = np.array(links["kind"])
    assert np.max(np.asarray(links["utilisation"])[kind == "leaf-spine"]) > 0.99


def test_cross_rack_replica_pays_network_time(congestion_runs):
    r = congestion_runs[1.0]
    rq = r.columns["requests"]
    served = np.isfinite(rq["first_token_s"])
    replica = np.asarray(rq["replica_id"])
    net = np.asarray(rq["network_s"])
    assert served.any() and (net[served] > 0).all()  # every 340B replica spans 4 nodes
    assert r.summary["requests_arrived"] == (r.summary["requests_completed"] + r.summary["requests_dropped"]
                                             + r.summary["requests_queued"] + r.summary["requests_in_flight"])
    assert len(np.unique(replica[served])) == 3


def test_links_table_energy_of_bytes(congestion_runs):
    """Bytes over a sample = utilisation x capacity x interval for single-direction traffic."""
    links = congestion_runs[1.0].columns["links"]
    kind = np.array(links["kind"])
    storage = kind == "storage-spine"
    b = np.asarray(links["bytes"])[storage]
    u = np.asarray(links["utilisation"], dtype=float)[storage]
    cap_b_per_sample = 100.0 / 2 * 1e9 * 5.0  # 100 GB/s target over 2 spine cables, 5-s samples
    assert b == pytest.approx(u * cap_b_per_sample, rel=1e-5, abs=1.0)


LINK_DOWN = """
name: link-down
simulation: {duration_s: 900, dt_s: 1, sample_s: 5, seed: 3}
topology: {rows: 1, racks_per_row: 2, nodes_per_rack: 2}
pools:
  - {name: llama, model: llama-3.3-70b, quantisation: bf16, tp: 1, pp: 6, nodes: 4, max_batch: 32}
workload:
  base_rate_per_s: 0.5
  prompt_tokens: {median: 600, sigma: 0.5, max: 2048}
  output_tokens: {median: 80, sigma: 0.5, max: 256}
  surge: {start_s: 100, ramp_s: 60, peak_multiplier: 3, plateau_s: 300, decay_s: 60}
  timeout_s: 600
scheduler: {policy: cascade, warm_pool_nodes: 2, initial_on_nodes: 4, interval_s: 5}
fabric: {enabled: true, spines: 2}
faults:
  - {at_s: 300, kind: link_down, target: "node:0", duration_s: 200}
  - {at_s: 350, kind: switch_down, target: "spine:0", duration_s: 100}
"""


def test_link_down_loses_no_request_and_retries_elsewhere():
    r = simulate(scenario_from_text(LINK_DOWN))
    s = r.summary
    assert s["requests_arrived"] == (s["requests_completed"] + s["requests_dropped"] + s["requests_queued"]
                                     + s["requests_in_flight"])
    ev = r.columns["events"]
    kinds = list(ev["kind"])
    assert "unit_disconnected" in kinds and "unit_reconnected" in kinds
    cut_at = ev["time_s"][kinds.index("unit_disconnected")]
    back_at = ev["time_s"][kinds.index("unit_reconnected")]
    assert cut_at == pytest.approx(300) and back_at == pytest.approx(500)
    rq = r.columns["requests"]
    retried = np.asarray(rq["retries"]) > 0
    assert retried.any()
    # retried requests finished on the other unit's replica, not on the cut one (nodes 0-1)
    done = np.asarray(rq["status"], dtype=object) == "completed"
    assert (np.asarray(rq["replica_id"])[retried & done] == 1).all()
    # a spine loss alone reroutes: no extra disconnection at t=350
    assert kinds.count("unit_disconnected") == 1


def test_fabric_fault_target_is_validated():
    from twin.errors import SpecError
    bad = LINK_DOWN.replace('target: "spine:0"', 'target: "spine:7"')
    with pytest.raises(SpecError) as exc:
        scenario_from_text(bad)
    assert any(p.startswith("faults[1].target: unknown fabric element 'spine:7'") for p in exc.value.problems)


def test_fabric_is_deterministic():
    a = simulate(scenario_from_text(LINK_DOWN)).columns["links"]
    b = simulate(scenario_from_text(LINK_DOWN)).columns["links"]
    for k in ("bytes", "utilisation", "active_flows"):
        assert np.array_equal(np.asarray(a[k]), np.asarray(b[k]))


def test_the_structural_paths_of_a_healthy_fabric_are_the_graph_search_paths():
    import networkx as nx

    from twin.model.fabric import _directed, structural_paths
    fg = small_fabric(spines=3, storage=2)
    g = fg.graph
    names = sorted(g)
    pairs = [(a, b) for a in names for b in names if a != b and b.startswith("node:") and a.split(":")[0] in ("node", "storage")]
    assert len(pairs) == 20  # 4 x 3 node pairs + 2 storage x 4 nodes
    for a, b in pairs:
        searched = [_directed(fg, p) for p in sorted(nx.all_shortest_paths(g, a, b))]
        assert structural_paths(fg, a, b) == searched, (a, b)
