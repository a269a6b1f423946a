"""Benchmark: `twin run scenarios/surge.yaml` end to end, as a user runs it, against the yardstick.

Times the whole command in a fresh process (imports, scenario validation, compiled-kernel loading,
simulation, Parquet, manifest, USD stage and previews), once with the stage and once with
--no-stage, and runs the plain one-process-per-replica SimPy yardstick
(shared/bench/yardstick.py, requests per wall second) in the same invocation, so the ratio holds
on a shared machine. Issue 19's target: the default surge end to end >= 0.5x the yardstick.
The split comes from the run's manifest (`wall_time_s` is the simulation alone). The last line
is the bound any overlap of the stage with the simulation would meet: the stage's CPU (with
minus without) and max(the --no-stage wall time, all CPU / 2 cores). Not a test.

    python benchmarks/bench_e2e.py [SCENARIO] [--repeat 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from yardstick import describe, yardstick  # noqa: E402  (one definition of how the yardstick is run)


def timed_run(scenario: Path, out: Path, stage: bool) -> dict:
    """Wall and CPU seconds of one `twin run` in its own process, with the run's manifest."""
    cmd = [sys.executable, "-m", "twin", "run", str(scenario), "-o", str(out), "-q"]
    if not stage:
        cmd.append("--no-stage")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0, c0 = time.perf_counter(), os.times()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall, c1 = time.perf_counter() - t0, os.times()
    if done.returncode:
        raise SystemExit(f"twin run failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    man = json.loads((out / "manifest.json").read_text())
    return {"wall_s": wall, "cpu_s": (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system),
            "sim_s": man["wall_time_s"], "requests": man["summary"]["requests_arrived"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", nargs="?", type=Path, default=ROOT / "scenarios" / "surge.yaml")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each kind; the fastest is reported")
    args = ap.parse_args()
    ys = yardstick()
    print(describe(ys))
    best: dict[bool, dict] = {}
    with tempfile.TemporaryDirectory(prefix="twin-bench-e2e-") as tmp:
        for stage in (True, False):
            runs = [timed_run(args.scenario, Path(tmp) / f"run-{stage}-{i}", stage) for i in range(args.repeat)]
            r = best[stage] = min(runs, key=lambda x: x["wall_s"])
            rate = r["requests"] / r["wall_s"]
            label = "with stage" if stage else "--no-stage"
            print(f"twin run {args.scenario.name} {label}: {r['wall_s']:.1f} s wall ({r['cpu_s']:.1f} s CPU; "
                  f"simulation {r['sim_s']:.1f} s, the rest {r['wall_s'] - r['sim_s']:.1f} s); "
                  f"{r['requests']:,} requests = {rate:,.0f}/wall s"
                  + (f" = {rate / ys:.2f}x yardstick (target >= 0.5x)" if ys else ""), flush=True)
    print(bound_line(best[True], best[False], ys))


def bound_line(with_stage: dict, without: dict, ys: float | None, cores: int = 2) -> str:
    """What the stage costs in CPU, and the shortest the command could take with it on `cores`
    cores if that CPU were spread perfectly: max(the --no-stage wall time, all CPU / cores). A
    bound for any overlap of the stage with the simulation; only less CPU lowers it further."""
    stage_cpu = with_stage["cpu_s"] - without["cpu_s"]
    floor = max(without["wall_s"], with_stage["cpu_s"] / cores)
    ratio = f" = {with_stage['requests'] / floor / ys:.2f}x yardstick at best" if ys else ""
    return (f"the stage costs {stage_cpu:.1f} s of CPU; perfectly spread over {cores} cores the command with it could "
            f"take no less than {floor:.1f} s{ratio}")


if __name__ == "__main__":
    main()
