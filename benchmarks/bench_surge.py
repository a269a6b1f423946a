"""Benchmark: the default one-hour, 160-node surge at full scale.

Prints simulated seconds per wall second, CPU time (user+sys of the process: steadier than wall
on a loaded machine), requests per wall second and peak memory (RSS).
Target on a 2-core machine: <= 60 s wall (>= 60x real time) and < 2 GB. Not a test: numbers only.

    python benchmarks/bench_surge.py [SCENARIO] [--fabric off]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from twin.model.validate import load_scenario
from twin.sim.engine import simulate

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", nargs="?", default=str(ROOT / "scenarios" / "surge.yaml"))
    ap.add_argument("--fabric", choices=["on", "off", "both"], default="both")
    args = ap.parse_args()
    modes = ["off", "on"] if args.fabric == "both" else [args.fabric]
    walls = {}
    for mode in modes:
        sc = load_scenario(args.scenario, overrides={"fabric.enabled": mode == "on"})
        t0, c0 = time.perf_counter(), time.process_time()
        res = simulate(sc)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        walls[mode] = wall
        dur = sc.spec.simulation.duration_s
        n_req = res.summary["requests_arrived"]
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{sc.name} fabric={mode}: {dur:.0f} simulated s in {wall:.2f} wall s = "
              f"{dur / wall:.0f}x real time (CPU user+sys {cpu:.2f} s); {n_req:,} requests = {n_req / wall:,.0f} requests/wall s; "
              f"peak RSS {rss_mb:.0f} MB", flush=True)
    if len(walls) == 2:
        print(f"fabric on / off wall time: {walls['on'] / walls['off']:.2f}x (target <= 1.5x)")
    sys.exit(0)


if __name__ == "__main__":
    main()
