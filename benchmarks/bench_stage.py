"""Benchmark: write the USD stage of the full default surge (1 h, 160 nodes) from its telemetry.

Target on a 2-core machine: <= 30 s wall and telemetry.usdc + data.usdc <= 150 MB. Builds the
stage twice in the same invocation, with the data layer (data.usdc + previews) in a helper
process (as `twin run` and `twin scene` do on the surge; scenes/data_layer.py) and in-process,
and prints for each the time of each phase (read: telemetry + mapping; layout: root-layer prims;
samples: telemetry.usdc in memory; save: telemetry.usdc; data_wait: waiting for, or writing,
data.usdc and the previews; data: their own time), the process CPU time, and a yardstick
measured before and after (a plain Sdf loop of 200,000 float time samples) so numbers from a busy
shared machine can be compared: "stage = N yardsticks". Here the helper is started with the
stage, so its ~0.7 s start-up counts; `twin run` starts it before simulating. Not a test.

    python benchmarks/bench_stage.py [RUN_DIR] [--links] [--stage-sample-s 5] [--keep DIR]

Without RUN_DIR the default surge (fabric on, so its real `links` rows become Fabric curves) is
simulated first (no stage) into a temporary directory; the run and the stage are deleted at
the end (about 38 MB) unless --keep DIR names where to leave them. --links replaces the links
table with synthetic rows (tests/stage_links.py: 2 spines, 1 storage) for a run that has none.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scenes import build_stage  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", nargs="?")
    ap.add_argument("--links", action="store_true")
    ap.add_argument("--stage-sample-s", type=float, default=None)
    ap.add_argument("--keep", type=Path, help="write the run and stage here and leave them")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="twin-bench-stage-") as tmp:
        _bench(args, Path(args.keep) if args.keep else Path(tmp))


def _bench(args: argparse.Namespace, base: Path) -> None:
    run_dir = Path(args.run_dir) if args.run_dir else base / "surge"
    if not args.run_dir:
        from twin.model.validate import load_scenario
        from twin.sim.engine import simulate
        from twin.telemetry.write import write_run
        t0 = time.perf_counter()
        res = simulate(load_scenario(ROOT / "scenarios" / "surge.yaml"))
        write_run(res, run_dir, force=True)
        print(f"simulated + wrote telemetry in {time.perf_counter() - t0:.1f} s -> {run_dir}", flush=True)
    if args.links:
        from tests.stage_links import add_synthetic_links
        print(f"synthetic links: {add_synthetic_links(run_dir)}", flush=True)
    yard_before = _yardstick()
    walls = {}
    for helper in (True, False):
        out = base / ("stage" if helper else "stage-in-process")
        shutil.rmtree(out, ignore_errors=True)
        t0, c0 = time.perf_counter(), time.process_time()
        info = build_stage(run_dir, stage_sample_s=args.stage_sample_s, out_dir=out, data_helper=helper)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        walls[helper] = wall
        sec = info["seconds"]
        mb = (info["telemetry_bytes"] + info["data_bytes"]) / 1e6
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"stage ({info['data_process']} data layer): {info['frames']} frames x {info['prims']['nodes']} nodes, "
              f"{info['prims']['links']} links, {info['samples']:,} samples ({info['telemetry_samples']:,} look + "
              f"{info['data_samples']:,} data) in {wall:.2f} s wall; usdc {mb:.1f} MB; peak RSS {rss_mb:.0f} MB")
        print("  phases: " + ", ".join(f"{k} {sec[k]:.2f} s" for k in ("read", "layout", "samples", "save", "data_wait",
                                                                         "data"))
              + f"; cpu of this process {cpu:.2f} s")
    yard_after = _yardstick()
    yard = (yard_before + yard_after) / 2   # a shared machine's speed drifts: measured on both sides
    print(f"yardstick {yard_before:.3f} s before, {yard_after:.3f} s after (200,000 Sdf float samples) -> stage = "
          f"{walls[True] / yard:.1f} yardsticks with the helper, {walls[False] / yard:.1f} in-process "
          f"(helper / in-process {walls[True] / walls[False]:.2f}x)")
    print(f"targets: wall <= 30 s {'OK' if walls[True] <= 30 else 'MISSED'}; usdc <= 150 MB {'OK' if mb <= 150 else 'MISSED'}")


def _yardstick(n_attrs: int = 250, n_frames: int = 800) -> float:
    """Seconds for a bare Sdf SetTimeSample loop of n_attrs x n_frames floats (machine speed now)."""
    from pxr import Sdf
    layer = Sdf.Layer.CreateAnonymous()
    paths = [Sdf.AttributeSpec(Sdf.CreatePrimInLayer(layer, f"/Y/P{k}"), "v", Sdf.ValueTypeNames.Float).path
             for k in range(n_attrs)]
    t0 = time.perf_counter()
    with Sdf.ChangeBlock():
        for k, path in enumerate(paths):
            for f in range(n_frames):
                layer.SetTimeSample(path, float(f), float(k + f))
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
