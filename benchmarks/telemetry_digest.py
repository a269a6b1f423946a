"""Behaviour-preservation check: SHA-256 of every telemetry Parquet file of tiny and surge.

Refactors must not change a byte of telemetry. Run this before a change with --save, after it
with --check; a mismatch names the table that moved.

    python benchmarks/telemetry_digest.py --save /tmp/before.json     # on the old code
    python benchmarks/telemetry_digest.py --check /tmp/before.json    # on the new code (exit 1 on a diff)
    python benchmarks/telemetry_digest.py tiny                        # just print
    python benchmarks/telemetry_digest.py --kernels numpy --check /tmp/before.json   # the fallback path
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from twin.model.validate import load_scenario
from twin.sim.engine import simulate
from twin.telemetry.write import RunWriter

ROOT = Path(__file__).resolve().parent.parent


def digests(name: str, kernels: str = "auto") -> dict[str, str]:
    """{table: sha256} of the telemetry `name`.yaml writes (no stage), on the `kernels` path, as
    `twin run` writes it: the gpus and nodes tables streamed while simulating (RunWriter)."""
    sc = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    with tempfile.TemporaryDirectory(prefix="twin-digest-") as tmp:
        run_dir = Path(tmp) / name
        with RunWriter(run_dir) as run:
            run.finish(simulate(sc, kernels=kernels, sinks=run.sinks()))
        return {p.stem: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted((run_dir / "telemetry").glob("*.parquet"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", default=["tiny", "surge"])
    ap.add_argument("--save", type=Path, help="write the digests to this JSON file")
    ap.add_argument("--check", type=Path, help="compare with digests saved earlier; exit 1 on a difference")
    ap.add_argument("--kernels", choices=["auto", "numba", "numpy"], default="auto",
                    help="engine path (twin.sim.engine.simulate): both must give the same bytes")
    args = ap.parse_args()
    got = {name: digests(name, args.kernels) for name in args.scenarios}
    for name, tables in got.items():
        for table, digest in tables.items():
            print(f"{name:>8} {table:<10} {digest[:16]}")
    if args.save:
        args.save.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    if args.check:
        want = json.loads(args.check.read_text())
        bad = [f"{n}/{t}" for n in got for t in sorted(set(got[n]) | set(want.get(n, {})))
               if got[n].get(t) != want.get(n, {}).get(t)]
        print("identical" if not bad else "DIFFERENT: " + ", ".join(bad))
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
