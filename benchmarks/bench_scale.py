"""Benchmark: how the engine scales from the 160-node surge to 1,600 and 16,000 nodes.

For each scale, in its own process (so that peak RSS is that run's), written as `twin run`
writes it (the gpus and nodes tables stream into their Parquet files during the simulation):
wall time of simulate() with that streaming, wall time of writing the rest of the telemetry
(no stage), their sum, peak RSS, simulated requests per wall second.
In the same invocation, the plain one-process-per-replica SimPy yardstick
(shared/bench/yardstick.py, requests per wall second) so that ratios hold on a shared machine.
Not a test: numbers only. Targets (issue 19): engine >= 100k requests/wall s; 1,600 nodes
<= 10x the 160-node wall time and < 2 GB; 16,000 nodes one simulated hour <= 10 min and
< 16 GB; a 24-hour 160-node day <= 60 s.

    python benchmarks/bench_scale.py                       # 160 and 1,600 nodes
    python benchmarks/bench_scale.py --scales 160,1600,16000 [--duration-s 600] [--day]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from yardstick import ENGINE_TARGET_REQUESTS_PER_WALL_S, describe, yardstick  # one definition of how it is run

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {160: "surge", 1600: "hall-1600", 16000: "hall-16000"}

CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
from twin.model.validate import load_scenario
from twin.sim.engine import simulate
from twin.telemetry.write import RunWriter
path, overrides = sys.argv[1], json.loads(sys.argv[2])
sc = load_scenario(path, overrides=overrides)
with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp:
    # as `twin run` does it: the gpus and nodes tables stream into their files while simulating
    with RunWriter(Path(tmp) / "run") as run:
        t0 = time.perf_counter(); c0 = time.process_time()
        res = simulate(sc, sinks=run.sinks())
        sim_wall, sim_cpu = time.perf_counter() - t0, time.process_time() - c0
        t1 = time.perf_counter()
        run.finish(res)
    write_wall = time.perf_counter() - t1
print(json.dumps({"sim_wall_s": sim_wall, "sim_cpu_s": sim_cpu, "write_wall_s": write_wall,
                  "requests": res.summary["requests_arrived"], "duration_s": sc.spec.simulation.duration_s,
                  "dt_s": sc.spec.simulation.dt_s,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(name: str, overrides: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "scenarios" / f"{name}.yaml"), json.dumps(overrides)],
                         capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{name}: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="160,1600", help="node counts, from 160,1600,16000")
    ap.add_argument("--duration-s", type=float, default=None, help="shorten the 16,000-node run (simulated s)")
    ap.add_argument("--day", action="store_true", help="also a 24-hour 160-node day")
    args = ap.parse_args()
    ys = yardstick()
    print(describe(ys))
    # (label, nodes, scenario, overrides, one of the scales: on the per-node line)
    runs = [(f"{n:,} nodes", n, SCENARIOS[n], {"simulation.duration_s": args.duration_s}
             if n == 16000 and args.duration_s else {}, True) for n in (int(x) for x in args.scales.split(","))]
    if args.day:
        runs.append(("160 nodes, 24 h", 160, "surge", {"simulation.duration_s": 86400}, False))
    base = surge = None
    per_tick: list[tuple[int, float]] = []   # (nodes, wall s per tick) of the scale runs
    for label, nodes, name, ov, scale in runs:
        r = run(name, ov)
        if scale:
            per_tick.append((nodes, r["sim_wall_s"] / (r["duration_s"] / r["dt_s"])))
            if name == "surge":
                surge = r
        base = base or r["sim_wall_s"]
        rate = r["requests"] / r["sim_wall_s"]
        print(f"{label:>16}: {r['duration_s']:,.0f} simulated s, simulate {r['sim_wall_s']:.1f} s wall "
              f"({r['sim_cpu_s']:.1f} s CPU, {r['sim_wall_s'] / base:.1f}x the first), write {r['write_wall_s']:.1f} s "
              f"(total {r['sim_wall_s'] + r['write_wall_s']:.1f} s); "
              f"{r['requests']:,} requests = {rate:,.0f}/wall s"
              + (f" ({rate / ys:.2f}x yardstick)" if ys else "") + f"; peak RSS {r['rss_mb']:,.0f} MB", flush=True)
    if len({n for n, _ in per_tick}) >= 2:
        print(per_node_line(per_tick, surge))


def per_node_line(per_tick: list[tuple[int, float]], surge: dict | None) -> str:
    """A least-squares line through (nodes, wall s per tick): the fixed cost of a tick and the cost
    per node-tick; with the 160-node surge's run, what the per-node part alone costs it against
    the wall time issue 19's engine target allows for its requests. Each run's one-off kernel
    loading (~0.5 s) sits in the fixed part."""
    n = len(per_tick)
    mx = sum(x for x, _ in per_tick) / n
    my = sum(y for _, y in per_tick) / n
    slope = sum((x - mx) * (y - my) for x, y in per_tick) / sum((x - mx) ** 2 for x, _ in per_tick)
    fixed = my - slope * mx
    line = f"per tick: {fixed * 1e3:.2f} ms fixed + {slope * 1e6:.2f} us per node"
    if surge is None:
        return line
    ticks = surge["duration_s"] / surge["dt_s"]
    budget_s = surge["requests"] / ENGINE_TARGET_REQUESTS_PER_WALL_S
    return (f"{line}; the surge's 160 nodes x {ticks:,.0f} ticks cost {slope * 160 * ticks:.2f} s in the per-node "
            f"part alone, against {budget_s:.2f} s for {ENGINE_TARGET_REQUESTS_PER_WALL_S:,.0f} requests/wall s")

if __name__ == "__main__":
    main()
