"""How well twin.model.resources predicts a run's peak memory: estimate vs measured peak RSS.

Each case runs `twin run --no-stage` in a fresh interpreter (os.wait4 gives that child's peak RSS)
and prints the validation-time estimate beside it, with tiny as the yardstick of the same
invocation. The estimate should stay at or above the measurement within a few tens of percent:
validation refuses a scenario whose estimate exceeds 80 % of this machine's memory.

    python benchmarks/bench_resources.py            # tiny, surge, surge without fabric, sample_s 10
    python benchmarks/bench_resources.py --hall     # + a 1,600-node hall (about 90 s, 3.5 GB)
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

HALL = {"topology.rows": 4, "topology.racks_per_row": 40, "pools.0.nodes": 1280, "pools.1.nodes": 320,
        "workload.base_rate_per_s": 60, "scheduler.initial_on_nodes": 120, "scheduler.warm_pool_nodes": 80,
        "scheduler.max_concurrent_boots": 480, "design.strict": False}
CASES = {
    "tiny": ("tiny.yaml", {}),
    "surge": ("surge.yaml", {}),
    "surge, no fabric": ("surge.yaml", {"fabric.enabled": False}),
    "surge, no fabric, sample_s 10": ("surge.yaml", {"fabric.enabled": False, "simulation.sample_s": 10}),
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
    ap.add_argument("--hall", action="store_true", help="also a 1,600-node hall (slow)")
    args = ap.parse_args()
    cases = dict(CASES)
    if args.hall:
        cases["hall, 1,600 nodes"] = ("surge.yaml", HALL)
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
