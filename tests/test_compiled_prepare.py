"""twin.sim.compiled.prepare_numba: numba learns BLAS is there without importing scipy.linalg."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba")
ROOT = Path(__file__).resolve().parent.parent


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_a_run_on_the_compiled_path_does_not_import_scipy_linalg():
    out = _python(
        "import sys\n"
        "from twin.model.validate import load_scenario\n"
        "from twin.sim.engine import simulate\n"
        "simulate(load_scenario('scenarios/tiny.yaml'), kernels='numba')\n"
        "import numba.np.arraymath as am\n"
        "print(am._HAVE_BLAS, 'scipy.linalg' in sys.modules)\n")
    assert out == "True False"


def test_numba_linear_algebra_still_works_after_it():
    out = _python(
        "from twin.sim.compiled import prepare_numba\n"
        "prepare_numba()\n"
        "import numpy as np, numba\n"
        "f = numba.njit(lambda a, b: np.dot(a, b))\n"
        "print(f(np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])))\n")
    assert out == "32.0"                      # 1*4 + 2*5 + 3*6, through scipy's BLAS
