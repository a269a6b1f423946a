"""How well twin.model.resources predicts a run's peak memory: estimate vs measured peak RSS.

Each case runs `twin run --no-stage` in a fresh interpreter (os.wait4 gives that child's peak RSS)
and prints the validation-time estimate beside it, with tiny as the yardstick of the same
invocation. The estimate should stay at or above the measurement within a few tens of percent:
validation refuses a scenario whose estimate exceeds 80 % of this machine's memory.

    python benchmarks/bench_resources.py            # tiny, surge, no fabric, sample_s 10, request-heavy tiny
    python benchmarks/bench_resources.py --hall     # + scenarios/hall-1600.yaml (a few minutes)
    python benchmarks/bench_resources.py --hall-16000   # + hall-16000 three ways (~10 minutes)
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.model.resources import estimate  # noqa: E402
from twin.model.validate import load_scenario  # noqa: E402

CASES = {
    "tiny": ("tiny.yaml", {}),
    "surge": ("surge.yaml", {}),
    "surge, no fabric": ("surge.yaml", {"fabric.enabled": False}),
    "surge, no fabric, sample_s 10": ("surge.yaml", {"fabric.enabled": False, "simulation.sample_s": 10}),
    # request-heavy, telemetry-light: these constrain the per-request cost of the fit
    "tiny, sample_s 60, 100/s": ("tiny.yaml", {"simulation.sample_s": 60, "workload.base_rate_per_s": 100}),
    "tiny, sample_s 60, 400/s": ("tiny.yaml", {"simulation.sample_s": 60, "workload.base_rate_per_s": 400}),
    # telemetry-heavy with a coarse GPU table (per-table rows, simulation.telemetry)
    "surge, GPU table every 10 s": ("surge.yaml", {"simulation.telemetry.gpus.sample_s": 10}),
}


def _yaml_scalar(v: object) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def measure(scenario: Path, overrides: dict, out: Path) -> tuple[float, float]:
    """(peak RSS bytes, wall s) of `twin run` on `scenario` with `overrides`."""
    args = [sys.executable, "-m", "twin", "run", str(scenario), "-o", str(out), "--no-stage", "-q"]
    for k, v in overrides.items():
        args += ["--set", f"{k}={_yaml_scalar(v)}"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    import time
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{scenario.name} {overrides} failed: {proc.stderr.read().decode()[-400:]}")
    return usage.ru_maxrss * 1024.0, wall  # Linux reports kB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hall", action="store_true", help="also scenarios/hall-1600.yaml (slow)")
    ap.add_argument("--hall-16000", action="store_true",
                    help="also scenarios/hall-16000.yaml as shipped, without its fabric, and without it at 1 s (slow)")
    ap.add_argument("--only", default=None, help="comma-separated case labels to run (default: all)")
    args = ap.parse_args()
    cases = dict(CASES)
    if args.only:
        cases = {k: v for k, v in cases.items() if k in args.only.split(",")}
    if args.hall:
        cases["hall-1600"] = ("hall-1600.yaml", {})
    if args.hall_16000:
        every_1_s = {f"simulation.telemetry.{t}.sample_s": 1 for t in ("gpus", "nodes", "links")}
        cases["hall-16000"] = ("hall-16000.yaml", {})
        cases["hall-16000, no fabric"] = ("hall-16000.yaml", {"fabric.enabled": False})
        cases["hall-16000, no fabric, 1 s"] = ("hall-16000.yaml", {"fabric.enabled": False, **every_1_s})
    print(f"{'case':32s} {'rows':>12s} {'requests':>10s} {'estimate':>10s} {'measured':>10s} {'est/meas':>8s} {'wall':>7s}")
    yard = None
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, (name, overrides)) in enumerate(cases.items()):
            sc = load_scenario(ROOT / "scenarios" / name, overrides=overrides)
            est = estimate(sc.spec, sc.catalogue)
            rss, wall = measure(ROOT / "scenarios" / name, overrides, Path(tmp) / f"r{i}")
            yard = yard or rss
            print(f"{label:32s} {est.telemetry_rows:12,.0f} {est.expected_requests:10,.0f} {est.memory_b / 1e6:8,.0f} MB "
                  f"{rss / 1e6:8,.0f} MB {est.memory_b / rss:8.2f} {wall:6.1f}s   ({rss / yard:.1f}x tiny)")


if __name__ == "__main__":
    main()
