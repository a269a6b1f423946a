"""The yardstick the benchmarks here run in their own invocation (one definition of how it is run).

The yardstick is the workspace's plain one-process-per-replica SimPy model
(``shared/bench/yardstick.py``, beside or above this checkout: not part of the product). It
prints the requests it simulates per wall second. A shared 2-core machine drifts by tens of per
cent from one evening to the next (59.7k-98.7k requests per wall second have been seen), so a
benchmark prints its own figures beside the yardstick measured in the same invocation, and the
ratio is what compares across machines and sittings.

For benchmarks whose work is not a simulation (export, report), ``yardstick_seconds`` states a
time in yardstick-seconds: how long the yardstick takes for YARDSTICK_UNIT_REQUESTS requests on
this machine at the rate just measured (1 yardstick-second = 1 wall second at 60,000 requests per
wall second), so "4.2 yardstick-s" means the same amount of work on a fast and on a slow machine.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
YARDSTICK_UNIT_REQUESTS = 60_000
# issue 19's absolute engine target, the one figure benchmarks state beside the yardstick ratios
ENGINE_TARGET_REQUESTS_PER_WALL_S = 100_000.0


def yardstick_path() -> Path | None:
    """shared/bench/yardstick.py in the checkout's parent or grandparent directory, if present."""
    for base in (ROOT.parent, ROOT.parent.parent):
        y = base / "shared" / "bench" / "yardstick.py"
        if y.exists():
            return y
    return None


def yardstick() -> float | None:
    """Requests per wall second of one yardstick run in a fresh process (None if it is not here)."""
    y = yardstick_path()
    if y is None:
        return None
    out = subprocess.run([sys.executable, str(y)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def describe(rate: float | None) -> str:
    """The line a benchmark prints for the yardstick it measured."""
    return (f"yardstick (plain SimPy, one process per replica): {rate:,.0f} requests/wall s" if rate else
            "yardstick: shared/bench/yardstick.py not found (only absolute figures below)")


def yardstick_seconds(seconds: float, rate: float | None) -> str:
    """`seconds` of wall time in yardstick-seconds (module docstring), as text; "" without a yardstick."""
    if not rate:
        return ""
    return f" = {seconds * rate / YARDSTICK_UNIT_REQUESTS:.2f} yardstick-s"
