"""Benchmark: the engine's per-tick serving work on the default surge, compiled path against numpy.

Runs the surge (fabric off unless --fabric on) once per path in this process, alternating
numpy / numba for --rounds rounds, and prints the CPU seconds (process time: steadier than wall
on a loaded machine) spent in ServingStep.step, Engine._admit (router + RequestBook.admit) and
RequestBook.arrive, the whole tick and the whole simulate(), with numpy / numba ratios. Each
function's first call is reported apart (numba loads its compiled code then, once per process),
and whether both paths gave the same request table (SHA-256 of its columns). Not a test: numbers only.

    python benchmarks/bench_serving.py [SCENARIO] [--fabric on] [--rounds 2]
"""
from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np

from twin.model.validate import load_scenario
from twin.sim import batching, engine, requests

ROOT = Path(__file__).resolve().parent.parent
PARTS = (("step", batching.ServingStep, "step"), ("admit", engine.Engine, "_admit"),
         ("arrive", requests.RequestBook, "arrive"), ("tick", engine.Engine, "_tick"))


class Meter:
    """Process-time accumulators around the measured methods (first call kept apart)."""

    def __init__(self) -> None:
        self.steady_s: dict[str, float] = {}
        self.first_s: dict[str, float] = {}
        for key, cls, name in PARTS:
            setattr(cls, name, self._timed(key, getattr(cls, name)))

    def _timed(self, key: str, fn):
        def timed(*a, **kw):
            c = time.process_time()
            out = fn(*a, **kw)
            d = time.process_time() - c
            if key in self.first_s:
                self.steady_s[key] = self.steady_s.get(key, 0.0) + d
            else:
                self.first_s[key] = d
            return out
        return timed

    def reset(self) -> None:
        self.steady_s, self.first_s = {}, {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", nargs="?", default=str(ROOT / "scenarios" / "surge.yaml"))
    ap.add_argument("--fabric", choices=["on", "off"], default="off")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    sc = load_scenario(args.scenario, overrides={"fabric.enabled": args.fabric == "on"})
    meter = Meter()
    best: dict[str, dict[str, float]] = {"numpy": {}, "numba": {}}
    first: dict[str, dict[str, float]] = {}
    tables = {}
    for rnd in range(args.rounds):
        for kernels in ("numpy", "numba"):
            meter.reset()
            c = time.process_time()
            res = engine.simulate(sc, kernels=kernels)
            row = dict(meter.steady_s, simulate=time.process_time() - c)
            for k, v in row.items():
                best[kernels][k] = min(best[kernels].get(k, np.inf), v)
            first.setdefault(kernels, meter.first_s)
            tables[kernels] = hashlib.sha256(b"".join(np.asarray(v).tobytes()
                                                      for v in res.columns["requests"].values())).hexdigest()
            print(f"round {rnd + 1} {kernels}: " + ", ".join(f"{k} {v:.3f} s" for k, v in row.items()), flush=True)
    n_req = res.summary["requests_arrived"]
    print(f"{sc.name} fabric={args.fabric}, {n_req:,} requests; CPU s, best of {args.rounds} (steady calls; "
          f"first calls apart)")
    for k in ("step", "admit", "arrive", "tick", "simulate"):
        a, b = best["numpy"][k], best["numba"][k]
        print(f"  {k:9s} numpy {a:7.3f}  numba {b:7.3f}  ratio {a / b:5.2f}x")
    print("  first calls (numba):", ", ".join(f"{k} {v:.3f} s" for k, v in first["numba"].items()))
    print(f"  engine requests per CPU s (numba): {n_req / best['numba']['tick']:,.0f} in the ticks, "
          f"{n_req / best['numba']['simulate']:,.0f} in simulate()")
    print("  request tables identical:", tables["numpy"] == tables["numba"])


if __name__ == "__main__":
    main()
