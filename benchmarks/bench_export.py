"""Export throughput on a big synthetic run (prints numbers; not a timed test).

Each export's time is also given in yardstick-seconds (benchmarks/yardstick.py, measured in the
same invocation), which compare across machines.

    python benchmarks/bench_export.py [--samples 3600] [--keep DIR]

Default size: 2 rows x 8 racks x 10 nodes x 3 GPUs = 480 GPUs, 3600 samples of 1 s.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from synthetic_run import make_synthetic_run  # noqa: E402
from yardstick import describe, yardstick, yardstick_seconds  # noqa: E402

from twin.telemetry.read import load_run  # noqa: E402
from twin.tools.export import write_csv, write_openmetrics  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3600)
    parser.add_argument("--keep", type=Path, help="write the run and exports here instead of a temp dir")
    args = parser.parse_args()
    ys = yardstick()
    print(describe(ys), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        run_dir = base / "run"
        if not (run_dir / "manifest.json").exists():
            make_synthetic_run(run_dir, racks_per_row=8, nodes_per_rack=10, samples=args.samples, sample_s=1.0)
        run = load_run(run_dir)
        print(f"synthetic run: {run.manifest['tables']['gpus']:,} GPU rows "
              f"(made in {time.perf_counter() - t0:.1f} s)")
        for name, fn, suffix in [("openmetrics", write_openmetrics, "om"), ("csv", write_csv, "csv")]:
            out = base / f"export.{suffix}"
            t0 = time.perf_counter()
            n = fn(run, out)
            dt = time.perf_counter() - t0
            size = out.stat().st_size / 1e6
            print(f"{name:12s} {n:>10,} samples in {dt:6.2f} s = {n / dt:>12,.0f} samples/s, "
                  f"{size:,.0f} MB ({size / dt:,.0f} MB/s){yardstick_seconds(dt, ys)}", flush=True)


if __name__ == "__main__":
    main()
