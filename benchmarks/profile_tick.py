"""Profile: CPU seconds per part of the engine's tick on a scenario (cProfile, cumulative).

The table in docs/performance.md ("The engine: one tick at 160 nodes") comes from this script,
run on two trees one after the other (PYTHONPATH=<tree> python <tree>/benchmarks/profile_tick.py).
The first simulate() loads the compiled kernels and is not counted; the second is timed without
the profiler (process CPU time), the third under it. cProfile adds ~20 % on the compiled path.
`--minima N` instead times every tick of N runs (no profiler) and prints the sum over ticks of each
tick's fastest run: on a shared machine, where whole runs swing by ±20 %, the steadiest figure for
comparing two trees (run them alternately). Not a test: numbers only.

    python benchmarks/profile_tick.py [SCENARIO] [--fabric on|off] [--kernels auto|numba|numpy] [--top N]
    python benchmarks/profile_tick.py --minima 5 [SCENARIO] [--fabric on|off]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import time
from pathlib import Path

from twin.model.validate import load_scenario
from twin.sim import engine as sim_engine
from twin.sim.engine import simulate

ROOT = Path(__file__).resolve().parent.parent

# part of the tick -> the function whose cumulative time it is (file:line(function), by pattern)
PARTS = {
    "tick (all)": r"engine\.py:\d+\(_tick\)",
    "plant step": r"plant\.py:\d+\(step\)",
    "serving step": r"batching\.py:\d+\(step\)",
    "sampling": r"engine\.py:\d+\(_sample\)",
    "admission": r"engine\.py:\d+\(_admit\)",
    "network": r"network\.py:\d+\(step\)",
    "lifecycle": r"lifecycle\.py:\d+\(follow_traffic\)",
    "arrivals": r"requests\.py:\d+\(arrive\)",
    "collect": r"result\.py:\d+\(collect\)",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", nargs="?", type=Path, default=ROOT / "scenarios" / "surge.yaml")
    ap.add_argument("--fabric", choices=["on", "off"], default="on")
    ap.add_argument("--kernels", choices=["auto", "numba", "numpy"], default="auto")
    ap.add_argument("--top", type=int, default=15, help="how many of the most frequent calls to list")
    ap.add_argument("--minima", type=int, default=0, metavar="N",
                    help="sum of each tick's fastest wall time over N runs (no profiler)")
    args = ap.parse_args()
    sc = load_scenario(args.scenario, overrides={"fabric.enabled": args.fabric == "on"})
    simulate(sc, kernels=args.kernels)  # loads (or compiles) the kernels
    if args.minima:
        tick_minima(sc, args)
        return
    c0 = time.process_time()
    simulate(sc, kernels=args.kernels)
    plain = time.process_time() - c0
    prof = cProfile.Profile()
    prof.enable()
    simulate(sc, kernels=args.kernels)
    prof.disable()
    got = dict.fromkeys(PARTS, 0.0)
    stats = pstats.Stats(prof).stats
    ticks, calls = 0, []
    for (path, line, fn), (_, ncalls, tot, cum, _) in stats.items():
        key = f"{Path(path).name}:{line}({fn})"
        ticks = ncalls if re.fullmatch(PARTS["tick (all)"], key) else ticks
        calls.append((ncalls, tot, key))
        for part, pattern in PARTS.items():
            if re.fullmatch(pattern, key):
                got[part] += cum
    print(f"{sc.name}, fabric {args.fabric}, kernels {args.kernels}: {plain:.2f} s CPU without the profiler")
    for part, sec in sorted(got.items(), key=lambda kv: -kv[1]):
        print(f"  {part:<14} {sec:6.2f} s (cProfile cumulative)")
    # the fixed per-tick cost is mostly Python-level calls (functions, numpy calls, kernel dispatches)
    ticks = max(ticks, 1)
    print(f"  {sum(c[0] for c in calls) / ticks:.0f} Python-level calls per tick ({ticks} ticks); the most frequent:")
    for ncalls, tot, key in sorted(calls, key=lambda c: -c[0])[:args.top]:
        print(f"    {ncalls / ticks:6.2f} per tick  {tot / ncalls * 1e6:7.1f} us own time per call  {key}")


def tick_minima(sc, args) -> None:
    """Per tick, its fastest wall time over args.minima runs; their sum (and each run's tick total)."""
    tick, per_run, now = sim_engine.Engine._tick, [], time.perf_counter
    times: list[float] = []

    def timed(self, k: int) -> None:
        t = now()
        tick(self, k)
        times.append(now() - t)

    sim_engine.Engine._tick = timed   # this process only: the script's own measurement
    try:
        for _ in range(args.minima):
            times.clear()
            simulate(sc, kernels=args.kernels)
            per_run.append(list(times))
    finally:
        sim_engine.Engine._tick = tick
    fastest = [min(ts) for ts in zip(*per_run)]
    print(f"{sc.name}, fabric {args.fabric}, kernels {args.kernels}: sum of each tick's fastest of {args.minima} "
          f"runs {sum(fastest):.3f} s ({sum(fastest) / len(fastest) * 1e6:.0f} us a tick, {len(fastest)} ticks); "
          f"tick totals per run {min(map(sum, per_run)):.3f}-{max(map(sum, per_run)):.3f} s")


if __name__ == "__main__":
    main()
