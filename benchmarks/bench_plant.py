"""Benchmark: `Plant.step` alone (power, air, heat, cooling) at 160 / 1,600 / 16,000 nodes.

Builds the plant of surge.yaml, hall-1600.yaml and hall-16000.yaml (topology and layout only: no
requests are generated) and steps it on synthetic but realistic inputs: most nodes serving with
replicas busy at random prefill/decode shares, batches and KV sizes, some warm, loading, off or
failed, seeded. Each scale runs the pure-numpy path and the compiled (numba) path in the same
invocation: the numpy path is the yardstick, the ratio is the comparison on a shared machine.
It also says whether both paths gave the same bytes. Not a test: numbers only.

    python benchmarks/bench_plant.py [--scales 160,1600,16000] [--steps 300]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from twin.model.states import FAILED, LOADING, OFF, SERVING, WARM
from twin.model.validate import load_scenario
from twin.sim.batching import ServingOutputs
from twin.sim.layout import build_layout
from twin.sim.plant import CapPreview, Plant
from twin.sim.plant_kernel import HAVE_NUMBA
from twin.spec.topology import build_topology

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {160: "surge", 1600: "hall-1600", 16000: "hall-16000"}


class NoCap:
    """No facility cap: the clocks before it (the default surge has none)."""

    def clock_limit(self, preview: CapPreview) -> np.ndarray:
        return preview.clock0


def build(n_nodes: int, kernels: str) -> tuple[Plant, tuple]:
    sc = load_scenario(ROOT / "scenarios" / f"{SCENARIOS[n_nodes]}.yaml")
    spec, cat = sc.spec, sc.catalogue
    topo = build_topology(sc)
    node = cat.node(spec.topology.node_type)
    lay = build_layout(sc, topo, node)
    engines = tuple(cat.engine(p.engine) for p in spec.pools)
    plant = Plant(topo, cat, node, spec.facility, lay, engines, NoCap(), spec.simulation.dt_s, kernels=kernels)
    rng = np.random.default_rng(19)
    state = rng.choice([SERVING, WARM, LOADING, OFF, FAILED], size=topo.n_nodes, p=[0.8, 0.1, 0.04, 0.05, 0.01])
    gpu_ok = rng.random(topo.n_gpus) > 0.002
    r = lay.n_rep
    batch = rng.integers(0, 48, r).astype(float)
    prefill = rng.random(r) * 0.3
    serving = ServingOutputs(prefill_frac=prefill, decode_frac=rng.random(r) * 0.7, batch=batch,
                             tokens_s=batch * rng.uniform(20, 60, r), prefill_tok_s=prefill * rng.uniform(2e3, 8e3, r),
                             decode_batch=batch, kv_tokens=batch * rng.uniform(500, 4000, r),
                             interval_s=rng.uniform(0.015, 0.06, r), decode_time_frac=1.0 - prefill)
    return plant, (state, gpu_ok, serving)


def run(n_nodes: int, kernels: str, steps: int) -> tuple[float, bytes]:
    """µs per step and the bytes of the last outputs (the paths must agree)."""
    plant, args = build(n_nodes, kernels)
    plant.step(*args)  # first tick: fans set, kernels compiled (numba caches them on disk)
    t0 = time.process_time()
    for _ in range(steps):
        out = plant.step(*args)
    us = (time.process_time() - t0) / steps * 1e6
    blob = b"".join(np.ascontiguousarray(getattr(out, f)).tobytes() for f in
                    ("gpu_power_w", "gpu_clock", "node_wall_w", "node_airflow_m3_s", "node_inlet_c", "node_exhaust_c",
                     "rack_supply_m3_s", "rack_recirc_frac")) + np.float64(out.facility_w).tobytes()
    blob += plant.gpu_temp.tobytes() + plant.gpu_sink.tobytes() + plant.gpu_mem.tobytes() + plant.cpu_temp.tobytes()
    return us, blob


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="160,1600,16000")
    ap.add_argument("--steps", type=int, default=300, help="ticks per path (CPU time of the process is measured)")
    args = ap.parse_args()
    print(f"Plant.step, CPU time per step (process user+sys), {args.steps} steps per path; numba: {HAVE_NUMBA}")
    for n in (int(x) for x in args.scales.split(",")):
        steps = max(10, args.steps * 160 // n) if n > 1600 else args.steps
        base, b_np = run(n, "numpy", steps)
        line = f"{n:>6,} nodes  numpy {base:9.0f} µs/step {base * 1e3 / n:7.0f} ns/node-step"
        if HAVE_NUMBA:
            fast, b_nb = run(n, "numba", steps)
            line += (f" | numba {fast:9.0f} µs/step {fast * 1e3 / n:7.0f} ns/node-step | numpy/numba "
                     f"{base / fast:4.2f}x | bytes {'identical' if b_np == b_nb else 'DIFFERENT'}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
