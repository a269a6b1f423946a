"""Fabric scaling: build time, per-tick sharing time and memory at 160 / 1,600 / 16,000 nodes.

The yardstick, run in the same invocation, is the two-tier leaf-spine at 160 nodes (the default
surge's fabric); the pod fabrics are the shipped halls' designs (scenarios/hall-1600.yaml,
hall-16000.yaml) and a 4-pod 160-node one. Traffic is a worst case for sharing: every node
serves a 4-node pipeline replica whose stages sit in different racks (and, with pods, pods), so
every hop crosses the spines; 5 % of the nodes load weights over the network (capped at PCIe
H2D, 25 GB/s, through 4 x 200 GB/s storage targets, so storage links saturate and max-min runs
every tick); leaves are 4:1 oversubscribed. Replicas push 500-5,000 tokens/s (x 36,864 B of
activations per hop), redrawn each tick;
"steady" ticks keep the set of busy replicas (the flow set is cached), "churn" ticks change it
(the flow set is regathered: what a busy hall does most ticks). Two more rows run the shipped
halls' own traffic (pipelines inside racks, weights from NVMe, non-blocking). Each case runs on
the numpy reference path and on the compiled one `twin run` takes (fabric_kernel, its max-min
filling included), and the replicas' NIC rates of the two are compared; peak MB is the numpy
path's (tracemalloc does not see numba's allocations).

    python benchmarks/bench_fabric.py [--ticks 20] [--kernels both|numpy|numba]
"""
from __future__ import annotations

import argparse
import time
import tracemalloc
from types import SimpleNamespace

import numpy as np

from twin.model.fabric_flows import FabricModel
from twin.spec.scenario import FabricSectionSpec

NIC = SimpleNamespace(achievable_gb_s=46.0, latency_s=1e-6)  # ConnectX-7 (catalogue)
H2D_GB_S = 25.0                                             # PCIe 4.0 x16 host-to-device, achievable
HIDDEN_B = 18432 * 2.0                                      # Nemotron-4 340B activations per token


def hall(n_nodes: int, per_rack: int = 10, span: int = 4, spread: bool = True):
    """A topology stand-in and each replica's cross-node hops. spread: replica r's stages are nodes
    r, r + stride, r + 2 stride, ... (stride = a quarter of the hall), so hops cross racks and pods;
    else as the shipped halls place them: two 4-node replicas in each 10-node rack (nodes 0-3, 4-7)."""
    racks = n_nodes // per_rack
    names = tuple(f"R{i:04d}" for i in range(racks))
    if spread:
        stride = n_nodes // span
        units = [tuple(r + i * stride for i in range(span)) for r in range(stride)]
    else:
        units = [tuple(rk * per_rack + g * span + i for i in range(span)) for rk in range(racks) for g in range(2)]
    hops = tuple(tuple(zip(u, u[1:])) for u in units)
    topo = SimpleNamespace(rack_names=names, node_rack=np.arange(n_nodes) // per_rack, n_nodes=n_nodes,
                           unit_nodes=tuple(units), replicas=tuple(range(len(units))))
    return topo, hops


def peak_mb(spec: FabricSectionSpec, n_nodes: int, spread: bool, loads: bool) -> float:
    """Peak traced allocation (MB) of building the model and placing its first flow set (a
    separate pass: tracemalloc slows the Python it traces, so it must not time anything)."""
    topo, hops = hall(n_nodes, spread=spread)
    tracemalloc.start()
    m = FabricModel(spec, topo, NIC, H2D_GB_S, 1.0, hops, np.full(len(hops), HIDDEN_B))
    loading = np.arange(0, n_nodes, 20) if loads else np.zeros(0, dtype=np.int64)
    m.step(np.arange(len(hops)), loading, np.full(len(hops), 2000.0))
    _, peak_b = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak_b / 1e6


def measure(label: str, spec: FabricSectionSpec, n_nodes: int, ticks: int, spread: bool = True, seed: int = 1,
            compiled: bool = False) -> dict:
    topo, hops = hall(n_nodes, spread=spread)
    rng = np.random.default_rng(seed)
    loads = spec.load_from == "network"
    t0 = time.perf_counter()
    m = FabricModel(spec, topo, NIC, H2D_GB_S, 1.0, hops, np.full(len(hops), HIDDEN_B), compiled=compiled)
    build_s = time.perf_counter() - t0
    n_rep = len(hops)
    loading = np.sort(rng.choice(n_nodes, size=max(1, n_nodes // 20), replace=False)) if loads \
        else np.zeros(0, dtype=np.int64)
    all_reps = np.arange(n_rep)
    t0 = time.perf_counter()
    m.step(all_reps, loading, rng.uniform(500.0, 5000.0, n_rep))   # first flow set (cold)
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(ticks):  # demands change, the flow set does not
        m.step(all_reps, loading, rng.uniform(500.0, 5000.0, n_rep))
    steady_s = (time.perf_counter() - t0) / ticks
    subsets = [np.flatnonzero(rng.random(n_rep) < 0.9) for _ in range(ticks)]
    t0 = time.perf_counter()
    for active in subsets:  # a different set of busy replicas every tick
        m.step(active, loading, rng.uniform(500.0, 5000.0, n_rep))
    churn_s = (time.perf_counter() - t0) / ticks
    m.sample(float(2 * ticks + 1), 2 * ticks + 1)
    flows = m._cache.rep.size if m._cache is not None else 0
    entries = m._cache.entry_col.size if m._cache is not None else 0
    return dict(label=label, nodes=n_nodes, cables=m.fg.n_links, flows=flows, entries=entries, build_s=build_s,
                first_s=first_s, steady_s=steady_s, churn_s=churn_s,
                peak_mb=peak_mb(spec, n_nodes, spread, loads) if not compiled else float("nan"),
                nic=m.rep_nic_gb_s.copy())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=20)
    ap.add_argument("--kernels", choices=["both", "numpy", "numba"], default="both",
                    help="the numpy reference path, the compiled one (what `twin run` uses), or both")
    args = ap.parse_args()
    os4 = dict(oversubscription=4.0, load_from="network", storage_targets=4, storage_gb_s=200.0)
    cases = [
        ("two-tier 160 (yardstick)", FabricSectionSpec(spines=2, **os4), 160, True),
        ("pods 160 (4 x 4 racks)", FabricSectionSpec(spines=5, racks_per_pod=4, super_spines=20, **os4), 160, True),
        ("two-tier 1,600", FabricSectionSpec(spines=2, **os4), 1_600, True),
        ("pods 1,600 (hall-1600)", FabricSectionSpec(spines=5, racks_per_pod=32, super_spines=20, **os4), 1_600, True),
        ("pods 16,000 (hall-16000)", FabricSectionSpec(spines=5, racks_per_pod=32, super_spines=160, **os4), 16_000,
         True),
        # the shipped halls' traffic: pipelines inside racks, weights from NVMe, non-blocking
        ("hall-1600 as shipped", FabricSectionSpec(spines=5, racks_per_pod=32, super_spines=20), 1_600, False),
        ("hall-16000 as shipped", FabricSectionSpec(spines=5, racks_per_pod=32, super_spines=160), 16_000, False),
    ]
    paths = {"both": (False, True), "numpy": (False,), "numba": (True,)}[args.kernels]
    for compiled in paths:
        rows = [measure(label, spec, n, args.ticks, spread=spread, compiled=compiled) for label, spec, n, spread in cases]
        if compiled and len(paths) == 2:
            same = all(np.array_equal(a["nic"], b["nic"]) for a, b in zip(rows, numpy_rows))
            print(f"compiled path: the replicas' NIC rates after the last tick are "
                  f"{'identical' if same else 'NOT identical'} to the numpy path's in every case")
        y = rows[0]
        print(f"\n{'numba (twin run)' if compiled else 'numpy (reference)'}:")
        print(f"{'fabric':26s} {'nodes':>6s} {'cables':>6s} {'flows':>6s} {'entries':>7s} {'build s':>8s} "
              f"{'1st ms':>7s} {'tick ms':>8s} {'churn ms':>8s} {'peak MB':>8s}  tick x / churn x vs yardstick")
        for r in rows:
            print(f"{r['label']:26s} {r['nodes']:6d} {r['cables']:6d} {r['flows']:6d} {r['entries']:7d} "
                  f"{r['build_s']:8.3f} {r['first_s'] * 1e3:7.1f} {r['steady_s'] * 1e3:8.2f} {r['churn_s'] * 1e3:8.2f} "
                  f"{r['peak_mb']:8.1f}  {r['steady_s'] / y['steady_s']:6.1f} / {r['churn_s'] / y['churn_s']:6.1f}",
                  flush=True)
        numpy_rows = rows


if __name__ == "__main__":
    main()
