"""Benchmark: a 16-variant sweep run serially in-process vs on a local Dask cluster.

Prints both wall times (the Dask figure includes starting and stopping the cluster) and their
ratio; target: Dask on 2 workers <= 0.65x serial. Also checks that both produce identical rows.
Not a test: numbers only. The machine is shared, so run it when the load average is low.

    python benchmarks/bench_sweep.py [SPEC] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from twin.sweep import plan_sweep, run_sweep, to_table

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec", nargs="?", default=str(ROOT / "scenarios" / "sweeps" / "bench-small.yaml"))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    plan = plan_sweep(args.spec)
    print(f"{plan.spec.name}: {len(plan.variants)} variants, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    t0 = time.perf_counter()
    serial = run_sweep(plan, workers=0)
    serial_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    dask = run_sweep(plan, workers=args.workers)
    dask_s = time.perf_counter() - t0
    per_variant = sum(serial.wall_time_s.values()) / len(plan.variants)
    print(f"serial:             {serial_s:7.2f} s  ({per_variant:.2f} s per variant)")
    print(f"dask, {args.workers} workers:    {dask_s:7.2f} s  (incl. cluster start/stop)")
    print(f"ratio dask/serial:  {dask_s / serial_s:7.2f}  (target <= 0.65)")
    print(f"rows identical:     {to_table(serial).equals(to_table(dask))}")
    failed = [r["variant"] for r in serial.rows + dask.rows if r["status"] != "ok"]
    if failed:
        print(f"failed variants: {failed}")


if __name__ == "__main__":
    main()
