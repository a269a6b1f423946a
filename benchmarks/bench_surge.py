"""Benchmark: the engine alone on the default one-hour, 160-node surge, against the yardstick.

Prints simulated seconds per wall second, CPU time (user+sys of the process: steadier than wall
on a loaded machine), requests per wall second and peak memory (RSS), fabric off and on, beside
the plain SimPy yardstick (benchmarks/yardstick.py) measured before and after in the same
invocation. The first simulate() of a process loads numba's compiled kernels (~0.4-0.6 s; a
machine's very first run compiles them, ~40 s): a short warm-up run takes that cost, and its
time is printed apart. Each mode runs --repeat times; the fastest is reported (a shared machine
only ever adds time).

Targets (issue 19, on a 2-core machine): the engine >= 100k requests per wall second; <= 60 s
wall and < 2 GB; fabric on <= 1.5x fabric off. Not a test: numbers only.

    python benchmarks/bench_surge.py [SCENARIO] [--fabric off|on|both] [--repeat 2]
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from yardstick import ENGINE_TARGET_REQUESTS_PER_WALL_S, describe, yardstick

from twin.model.validate import load_scenario
from twin.sim.engine import simulate

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", nargs="?", default=str(ROOT / "scenarios" / "surge.yaml"))
    ap.add_argument("--fabric", choices=["on", "off", "both"], default="both")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each mode; the fastest is reported")
    args = ap.parse_args()
    modes = ["off", "on"] if args.fabric == "both" else [args.fabric]
    before = yardstick()
    print(describe(before), "(before)", flush=True)

    t0 = time.perf_counter()   # the process's first simulate(): numba's set-up and kernel loading
    simulate(load_scenario(args.scenario, overrides={"simulation.duration_s": 60.0}))
    print(f"warm-up (60 simulated s, loads the compiled kernels): {time.perf_counter() - t0:.2f} wall s", flush=True)

    best: dict[str, dict] = {}
    for mode in modes:
        sc = load_scenario(args.scenario, overrides={"fabric.enabled": mode == "on"})
        for _ in range(max(1, args.repeat)):
            t0, c0 = time.perf_counter(), time.process_time()
            res = simulate(sc)
            run = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0,
                   "requests": res.summary["requests_arrived"], "duration": sc.spec.simulation.duration_s}
            if mode not in best or run["wall"] < best[mode]["wall"]:
                best[mode] = run
    after = yardstick()
    print(describe(after), "(after)", flush=True)
    yard = (before + after) / 2 if before and after else None   # the machine drifts: measured on both sides

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for mode, r in best.items():
        rate = r["requests"] / r["wall"]
        ratio = f" = {rate / yard:.2f}x yardstick" if yard else ""
        print(f"{Path(args.scenario).stem} fabric={mode}: {r['duration']:.0f} simulated s in {r['wall']:.2f} wall s = "
              f"{r['duration'] / r['wall']:.0f}x real time (CPU user+sys {r['cpu']:.2f} s); {r['requests']:,} requests = "
              f"{rate:,.0f} requests/wall s{ratio} (target >= {ENGINE_TARGET_REQUESTS_PER_WALL_S:,.0f}: "
              f"{'met' if rate >= ENGINE_TARGET_REQUESTS_PER_WALL_S else 'not met'})", flush=True)
    print(f"peak RSS of the process {rss_mb:.0f} MB (target < 2,048)")
    if len(best) == 2:
        print(f"fabric on / off wall time: {best['on']['wall'] / best['off']['wall']:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
