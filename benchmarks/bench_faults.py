"""Benchmark: what faults cost in wall time, on the default surge (fabric off).

Runs the plain surge, the surge under a facility power cap for the whole hour (the cap
controller bisects every tick) and scenarios/surge-cooling-failure.yaml, and prints wall time
and the headline outcomes, each time also as a ratio to the plain surge and in yardstick-seconds
(benchmarks/yardstick.py, measured in the same invocation). Not a test: numbers only.

    python benchmarks/bench_faults.py [CAP_KW ...]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from yardstick import describe, yardstick, yardstick_seconds

from twin.model.validate import load_scenario
from twin.sim.engine import simulate

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    caps_kw = [float(x) for x in sys.argv[1:]] or [100.0, 80.0]
    cases = [("surge", ROOT / "scenarios" / "surge.yaml", [])]
    cases += [(f"surge + facility_power_cap {c:g} kW", ROOT / "scenarios" / "surge.yaml",
               [{"at_s": 0, "kind": "facility_power_cap", "value": c}]) for c in caps_kw]
    cases.append(("surge-cooling-failure", ROOT / "scenarios" / "surge-cooling-failure.yaml", None))
    ys = yardstick()
    print(describe(ys), flush=True)
    simulate(load_scenario(cases[0][1], overrides={"simulation.duration_s": 60.0}))  # loads the compiled kernels
    base = None
    for name, path, faults in cases:
        overrides = {"fabric.enabled": False}
        if faults is not None:
            overrides["faults"] = faults
        sc = load_scenario(path, overrides=overrides)
        t0 = time.perf_counter()
        s = simulate(sc).summary
        wall = time.perf_counter() - t0
        base = base or wall   # the plain surge, run first: what a fault costs is the ratio
        print(f"{name}: {wall:.1f} wall s ({wall / base:.2f}x the plain surge{yardstick_seconds(wall, ys)}); peak facility {s['peak_facility_power_w'] / 1e3:.1f} kW; "
              f"completed {s['requests_completed']:,}, dropped {s['requests_dropped']:,}; "
              f"latency p99 {s['latency_p99_s']:.0f} s; peak GPU {s['peak_gpu_temp_c']:.1f} C; "
              f"throttled {s['throttled_gpu_s']:,.0f} GPU-s; retries {s.get('request_retries', 0)}", flush=True)


if __name__ == "__main__":
    main()
