"""Benchmark: a 16-variant sweep run serially in-process vs on a local Dask cluster.

Prints both wall times (the Dask figure includes starting and stopping the cluster) and their
ratio; target: Dask on 2 workers <= 0.65x serial. Also prints the mean time one variant took
inside each executor: if a Dask worker needs much longer per variant than the serial run, the
cores were busy with other work (the machine is shared) rather than Dask adding overhead.
With --repeat N the two are timed alternately N times and the best of each is compared
(timeit's rule: the minimum is the least disturbed). Not a test: numbers only.

    python benchmarks/bench_sweep.py [SPEC] [--workers 2] [--repeat 1]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from twin.tools.sweep import SweepResult, plan_sweep, run_sweep, to_table

ROOT = Path(__file__).resolve().parent.parent


def _timed(plan, workers: int) -> tuple[float, SweepResult]:
    t0 = time.perf_counter()
    result = run_sweep(plan, workers=workers)
    return time.perf_counter() - t0, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec", nargs="?", default=str(ROOT / "scenarios" / "sweeps" / "bench-small.yaml"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    plan = plan_sweep(args.spec)
    n = len(plan.variants)
    print(f"{plan.spec.name}: {n} variants, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    best: dict[str, tuple[float, SweepResult]] = {}
    for i in range(args.repeat):
        for label, workers in (("serial", 0), ("dask", args.workers)):
            wall, result = _timed(plan, workers)
            per = sum(result.wall_time_s.values()) / n
            print(f"  run {i + 1} {label:6s}: {wall:7.2f} s wall, {per:.2f} s per variant inside the executor")
            if label not in best or wall < best[label][0]:
                best[label] = (wall, result)
    (serial_s, serial), (dask_s, dask) = best["serial"], best["dask"]
    print(f"serial:            {serial_s:7.2f} s")
    print(f"dask, {args.workers} workers:   {dask_s:7.2f} s  (incl. cluster start/stop)")
    print(f"ratio dask/serial: {dask_s / serial_s:7.2f}  (target <= 0.65)")
    print(f"rows identical:    {to_table(serial).equals(to_table(dask))}")
    failed = [r["variant"] for r in serial.rows + dask.rows if r["status"] != "ok"]
    if failed:
        print(f"failed variants: {failed}")


if __name__ == "__main__":
    main()
