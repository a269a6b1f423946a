"""`twin report` cost on a full run: seconds per chart and table, page size, peak memory.
Prints numbers, the whole report also in yardstick-seconds (benchmarks/yardstick.py, measured in
the same invocation); not a timed test.

    python benchmarks/bench_report.py [RUN_DIR]

Without RUN_DIR it simulates the default surge (fabric off, ~6 s) into a temp directory first.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from yardstick import describe, yardstick, yardstick_seconds

from twin.telemetry.read import load_run
from twin.tools.plots import PLOTS, png_bytes
from twin.tools.report import REPORT_TABLES, write_report

ROOT = Path(__file__).resolve().parent.parent


def _surge(tmp: Path) -> Path:
    from twin.model.validate import load_scenario
    from twin.sim.engine import simulate
    from twin.telemetry.write import write_run

    sc = load_scenario(ROOT / "scenarios" / "surge.yaml", overrides={"fabric.enabled": False})
    run_dir = tmp / "surge"
    write_run(simulate(sc), run_dir)
    return run_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", type=Path)
    args = ap.parse_args()
    ys = yardstick()
    print(describe(ys), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        run = load_run(args.run_dir or _surge(Path(tmp)))
        print(f"run {run.name}: {run.manifest.get('tables', {}).get('gpus', 0):,} GPU rows")
        for kind in PLOTS:
            t0 = time.perf_counter()
            size = len(png_bytes(run, kind))
            print(f"  plot  {kind:18s} {time.perf_counter() - t0:5.2f} s  {size / 1e3:6.0f} kB PNG")
        for t in REPORT_TABLES:
            t0 = time.perf_counter()
            rows = run.sql(t.query).num_rows
            print(f"  table {t.key:18s} {time.perf_counter() - t0:5.2f} s  {rows:6,} rows")
        out = Path(tmp) / "report.html"
        t0 = time.perf_counter()
        write_report(run, out)
        wall = time.perf_counter() - t0
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"report: {out.stat().st_size / 1e6:.2f} MB in {wall:.2f} s{yardstick_seconds(wall, ys)}; "
              f"peak RSS {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
