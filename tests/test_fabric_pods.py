"""The three-tier pod Clos fabric against hand-computed cable counts, capacities and shares."""
from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from twin.cli.main import app
from twin.model.fabric import (_directed, _search, build_fabric, cable_count, ecmp_paths, n_cables, reaches_top,
                               structural_paths)
from twin.model.fabric_flows import FabricModel
from twin.model.validate import load_scenario
from twin.spec.scenario import FabricSectionSpec

from conftest import SCENARIOS

NIC = 46.0  # GB/s, ConnectX-7 achievable (catalogue)


def pods_fabric(spines: int = 2, super_spines: int = 4, pod_os: float = 1.0, storage: int = 0, racks: int = 4):
    """2 nodes per rack, 2 racks per pod: nodes 0-3 in pod 0 (racks A01, A02), 4-7 in pod 1 (A03, A04)."""
    names = [f"A{i + 1:02d}" for i in range(racks)]
    return build_fabric(names, np.repeat(np.arange(racks), 2), nic_gb_s=NIC, nic_latency_s=1e-6, spines=spines,
                        oversubscription=1.0, switch_latency_s=0.7e-6, storage_targets=storage, storage_gb_s=80.0,
                        racks_per_pod=2, super_spines=super_spines, pod_oversubscription=pod_os)


def test_cable_counts_by_hand():
    fg = pods_fabric(storage=1)
    kinds = list(fg.cable_kind)
    # 8 NICs; 4 leaves x 2 pod spines; 2 pods x 2 spines x 2 super-spines of their plane; 1 storage x 4 supers
    assert [kinds.count(k) for k in ("nic-leaf", "leaf-spine", "spine-super", "storage-super")] == [8, 8, 8, 4]
    assert fg.n_links == 28 == n_cables(8, 4, 2, racks_per_pod=2, super_spines=4, storage_targets=1)
    # a partial last pod: 5 racks in pods of 2 -> 3 pods, each pod spine with 2 super-spine cables
    assert pods_fabric(racks=5).n_links == 10 + 5 * 2 + 3 * 4 == n_cables(10, 5, 2, 2, 4)
    # the shipped 100x hall: 16,000 NICs + 1,600 leaves x 5 spines + 50 pods x 160 super-spines
    sc = load_scenario(SCENARIOS / "hall-16000.yaml")
    assert cable_count(sc.spec.fabric, 16_000, 1_600) == 16_000 + 8_000 + 8_000
    # two-tier: nodes + racks x spines (+ storage x spines when weights load over the network)
    assert cable_count(FabricSectionSpec(spines=2), 160, 16) == 192
    assert cable_count(FabricSectionSpec(spines=2, load_from="network", storage_targets=3), 160, 16) == 198
    assert cable_count(FabricSectionSpec(enabled=False), 160, 16) == 0


def test_capacities_by_hand():
    fg = pods_fabric(pod_os=2.0)
    cap = dict(zip(fg.cable_kind, fg.cable_cap_gb_s))
    assert cap["leaf-spine"] == pytest.approx(2 * NIC / 2)            # rack 2 x 46 over 2 spines
    # pod 4 x 46 GB/s of NICs, uplinks halved (2:1), over 4 super-spines: each pod spine's 2 cables
    assert cap["spine-super"] == pytest.approx(4 * NIC / 2 / 4)
    ends = {(a, b) for a, b, k in zip(fg.cable_a, fg.cable_b, fg.cable_kind) if k == "spine-super"}
    # planes: pod spines 0 and 2 (k = 0) meet super 0, 1; spines 1 and 3 (k = 1) meet super 2, 3
    assert ends == {("spine:0", "super:0"), ("spine:0", "super:1"), ("spine:1", "super:2"), ("spine:1", "super:3"),
                    ("spine:2", "super:0"), ("spine:2", "super:1"), ("spine:3", "super:2"), ("spine:3", "super:3")}


def test_paths_are_the_graph_search_paths_and_count_by_tier():
    import networkx as nx
    fg = pods_fabric(storage=2)
    names = sorted(fg.graph)
    for a, b in itertools.product(names, names):
        if a != b and b.startswith("node:") and a.split(":")[0] in ("node", "storage"):
            assert structural_paths(fg, a, b) == [_directed(fg, p) for p in sorted(nx.all_shortest_paths(fg.graph, a, b))]
    assert len(ecmp_paths(fg, "node:0", "node:1")) == 1        # same rack: the leaf
    assert len(ecmp_paths(fg, "node:0", "node:2")) == 2        # same pod: one per pod spine
    assert len(ecmp_paths(fg, "node:0", "node:7")) == 4        # across pods: one per super-spine
    assert {len(p) for p in ecmp_paths(fg, "node:0", "node:7")} == {6}
    assert len(ecmp_paths(fg, "storage:1", "node:5")) == 4


def test_failures_keep_the_shortest_surviving_paths_or_search():
    """After any failures the paths are those of a graph search of the damaged fabric."""
    fg = pods_fabric(spines=2, super_spines=4, storage=1)
    rng = np.random.default_rng(7)
    switches = [e for e in sorted(fg.elements) if e.split(":")[0] in ("leaf", "spine", "super")]
    pairs = [("node:0", "node:7"), ("node:1", "node:3"), ("node:5", "node:4"), ("storage:0", "node:2")]
    for _ in range(40):
        links = frozenset(rng.choice(fg.n_links, size=int(rng.integers(0, 6)), replace=False).tolist())
        elems = frozenset(rng.choice(switches, size=int(rng.integers(0, 3)), replace=False).tolist())
        for a, b in pairs:
            assert ecmp_paths(fg, a, b, links, elems) == _search(fg, a, b, links, elems), (a, b, links, elems)


def test_reaching_the_super_spines():
    fg = pods_fabric()
    assert reaches_top(fg, frozenset({3}), frozenset()).tolist() == [True] * 3 + [False] + [True] * 4  # node 3's NIC
    assert not reaches_top(fg, frozenset(), frozenset(f"super:{s}" for s in range(4))).any()
    # pod 1's spines down: its nodes still see each other through their leaves, but no super-spine
    assert reaches_top(fg, frozenset(), frozenset({"spine:2", "spine:3"})).tolist() == [True] * 4 + [False] * 4


def _model(spec: FabricSectionSpec, hops, hidden_b: float = 1e12):
    """A FabricModel on the 2-pod hall: one replica per hop list, huge demands (elastic flows)."""
    racks = ("A01", "A02", "A03", "A04")
    topo = SimpleNamespace(rack_names=racks, node_rack=np.repeat(np.arange(4), 2), n_nodes=8,
                           unit_nodes=tuple((i,) for i in range(8)), replicas=tuple(range(len(hops))))
    nic = SimpleNamespace(achievable_gb_s=NIC, latency_s=1e-6)
    return FabricModel(spec, topo, nic, 25.0, 1.0, tuple(hops), np.full(len(hops), hidden_b))


def test_flows_across_pods_share_the_super_spine_uplink_by_hand():
    # one pod spine, one super-spine, 4:1 at the pod spine: pod uplink = 4 x 46 / 4 = 46 GB/s
    spec = FabricSectionSpec(spines=1, racks_per_pod=2, super_spines=1, pod_oversubscription=4.0)
    hops = [((0, 4),), ((1, 5),), ((2, 6),), ((3, 7),), ((0, 2),), ((5, 0),)]
    m = _model(spec, hops)
    m.step(np.arange(6), np.zeros(0, dtype=np.int64), np.full(6, 1.0))
    # the 4 cross-pod flows fill spine:0 -> super:0 first: 46 / 4 = 11.5 each; 0 -> 2 (inside
    # pod 0) then takes what node 0's NIC has left: 46 - 11.5 = 34.5 (its leaf uplink, 92, is not tight)
    # 5 -> 0 runs the other way (super:0 -> spine:0, node 0's NIC inbound): alone, it gets a full NIC
    assert m.rep_nic_gb_s == pytest.approx([11.5] * 4 + [34.5, 46.0])
    assert m.node_nic_gb_s[0] == pytest.approx(46.0 + 46.0) and m.node_nic_gb_s[4] == pytest.approx(11.5)
    t, b, util, flows = m.sample(1.0, 1)
    up = m.fg.cable_of[("spine:0", "super:0")]
    # the cable carries 4 flows up and 1 down: both count; bytes are both directions' sum
    assert util[up] == pytest.approx(1.0) and flows[up] == 5 and flows[0] == 3  # node 0's NIC: 2 out, 1 in
    assert b[up] == pytest.approx(46e9 + 46e9)
    # latency: 2 NIC traversals + 5 switches (leaf, pod spine, super, pod spine, leaf) across pods, 3 inside
    assert m.rep_cross_latency_s[0] == pytest.approx(2e-6 + 5 * 0.7e-6)
    assert m.rep_cross_latency_s[4] == pytest.approx(2e-6 + 3 * 0.7e-6)
    assert m.rep_cross_latency_s[5] == pytest.approx(2e-6 + 5 * 0.7e-6)


def test_a_super_spine_failure_moves_flows_to_the_other_plane():
    spec = FabricSectionSpec(spines=2, racks_per_pod=2, super_spines=2)
    m = _model(spec, [((0, 4),)])
    before = m.path("node:0", "node:4")
    used = {m.fg.cable_b[h // 2] for h in before} | {m.fg.cable_a[h // 2] for h in before}
    sup = next(e for e in used if e.startswith("super:"))
    m.fail(sup)
    after = m.path("node:0", "node:4")
    assert after is not None and sup not in {m.fg.cable_b[h // 2] for h in after}
    assert m.unit_connected().all()  # the other plane still reaches a super-spine
    m.fail("super:0" if sup == "super:1" else "super:1")
    assert m.path("node:0", "node:4") is None and not m.unit_connected().any()


runner = CliRunner()


@pytest.mark.parametrize("sets, line", [
    (["fabric.racks_per_pod=2"], "fabric.super_spines: a pod fabric (racks_per_pod 2) needs super-spines"),
    (["fabric.super_spines=4"], "fabric.super_spines: super-spines join pods"),
    (["fabric.racks_per_pod=2", "fabric.super_spines=3"], "fabric.super_spines: 3 super-spines do not split into 2 planes"),
    (["fabric.pod_oversubscription=2"], "fabric.pod_oversubscription: applies to a pod fabric only"),
    (["fabric.racks_per_pod=-1", "fabric.super_spines=2"], "fabric.racks_per_pod:"),
    (["fabric.racks_per_pod=1", "fabric.super_spines=2",
      "faults=[{at_s: 1, kind: link_down, target: 'leaf:A01-spine:2'}]"], "faults[0].target: no cable between leaf:A01 and spine:2"),
    (["fabric.racks_per_pod=1", "fabric.super_spines=2",
      "faults=[{at_s: 1, kind: switch_down, target: 'super:2'}]"], "faults[0].target: unknown fabric element 'super:2'"),
])
def test_pod_spec_errors_name_the_field_and_exit_2(sets, line):
    args = ["validate", str(SCENARIOS / "surge.yaml")]
    for s in sets:
        args += ["--set", s]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert line in " ".join(result.output.split()), result.output


def test_pod_fault_targets_that_exist_validate():
    sets = ["fabric.racks_per_pod=8", "fabric.super_spines=4",
            "faults=[{at_s: 1, kind: link_down, target: 'spine:3-super:3'}, {at_s: 2, kind: switch_down, target: 'super:1'},"
            " {at_s: 3, kind: link_down, target: 'leaf:B01-spine:2'}]"]
    args = ["validate", str(SCENARIOS / "surge.yaml")]
    for s in sets:
        args += ["--set", s]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


def test_two_tier_default_is_unchanged():
    spec = FabricSectionSpec()
    assert (spec.racks_per_pod, spec.super_spines, spec.pod_oversubscription) == (0, 0, 1.0)
    fg = build_fabric(["A01", "A02"], np.array([0, 0, 1, 1]), NIC, 1e-6, 2, 1.0, 0.7e-6, 1, 100.0)
    # link ids as before pods: NICs, then leaf-spine rack by rack, then storage-spine
    assert list(zip(fg.cable_a, fg.cable_b))[4:] == [("leaf:A01", "spine:0"), ("leaf:A01", "spine:1"),
                                                     ("leaf:A02", "spine:0"), ("leaf:A02", "spine:1"),
                                                     ("storage:0", "spine:0"), ("storage:0", "spine:1")]
    assert set(fg.cable_kind) == {"nic-leaf", "leaf-spine", "storage-spine"}
