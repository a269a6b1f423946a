"""Benchmark: `Plant.step` alone (power, air, heat, cooling) at 160 / 1,600 / 16,000 nodes.

Builds the plant of surge.yaml, hall-1600.yaml and hall-16000.yaml (topology and layout only: no
requests are generated) and steps it on synthetic but realistic inputs: most nodes serving with
replicas busy at random prefill/decode shares, batches and KV sizes, some warm, loading, off or
failed, seeded. Each scale runs the pure-numpy path and the compiled (numba) path in the same
invocation: the numpy path is the yardstick, the ratio is the comparison on a shared machine.
It also says whether both paths gave the same bytes. Not a test: numbers only.

    python benchmarks/bench_plant.py [--scales 160,1600,16000] [--steps 100] [--rounds 5]
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


def _blob(plant: Plant) -> bytes:
    out = plant.out
    blob = b"".join(np.ascontiguousarray(getattr(out, f)).tobytes() for f in
                    ("gpu_power_w", "gpu_clock", "node_wall_w", "node_airflow_m3_s", "node_inlet_c", "node_exhaust_c",
                     "rack_supply_m3_s", "rack_recirc_frac")) + np.float64(out.facility_w).tobytes()
    return blob + plant.gpu_temp.tobytes() + plant.gpu_sink.tobytes() + plant.gpu_mem.tobytes() + plant.cpu_temp.tobytes()


def run(n_nodes: int, paths: list[str], steps: int, rounds: int) -> dict[str, tuple[float, bytes]]:
    """Per path: the fastest round's µs per step, and the bytes of the last outputs (the paths must
    agree). Rounds alternate between the paths, so that a burst of load on the machine hits both."""
    built = {k: build(n_nodes, k) for k in paths}
    for plant, args in built.values():
        plant.step(*args)  # first tick: fans set, kernels compiled (numba caches them on disk)
    best = {k: float("inf") for k in paths}
    for _ in range(rounds):
        for k, (plant, args) in built.items():
            t0 = time.process_time()
            for _ in range(steps):
                plant.step(*args)
            best[k] = min(best[k], (time.process_time() - t0) / steps * 1e6)
    return {k: (best[k], _blob(built[k][0])) for k in paths}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="160,1600,16000")
    ap.add_argument("--steps", type=int, default=100, help="ticks per round at 160 and 1,600 nodes (fewer above)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(f"Plant.step, CPU time per step (process user+sys; fastest of {args.rounds} alternating rounds), "
          f"numba: {HAVE_NUMBA}")
    for n in (int(x) for x in args.scales.split(",")):
        steps = max(5, args.steps * 160 // n) if n > 1600 else args.steps
        got = run(n, ["numpy", "numba"] if HAVE_NUMBA else ["numpy"], steps, args.rounds)
        base, b_np = got["numpy"]
        line = f"{n:>6,} nodes, {steps} steps/round: numpy {base:8.0f} µs/step {base * 1e3 / n:6.0f} ns/node-step"
        if HAVE_NUMBA:
            fast, b_nb = got["numba"]
            line += (f" | numba {fast:8.0f} µs/step {fast * 1e3 / n:6.0f} ns/node-step | numpy/numba "
                     f"{base / fast:4.2f}x | bytes {'identical' if b_np == b_nb else 'DIFFERENT'}")
        print(line, flush=True)

if __name__ == "__main__":
    main()
