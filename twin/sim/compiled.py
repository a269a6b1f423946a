"""Which path the engine's hot loops take: compiled (numba) or their pure-numpy fallback.

One rule for every part that has a kernel (router, plant, serving, sampler, lifecycle, fabric):
"auto" is numba when it is installed. Both paths give the same bytes (docs/architecture.md).
"""
from __future__ import annotations

import sys
from importlib.util import find_spec

HAVE_NUMBA = find_spec("numba") is not None
KERNELS = ("auto", "numba", "numpy")


def resolve(kernels: str) -> str:
    """"numba" / "numpy" as asked; "auto": numba when it is installed. ValueError otherwise."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels: {kernels!r} is not one of {', '.join(KERNELS)}")
    if kernels == "auto":
        return "numba" if HAVE_NUMBA else "numpy"
    return kernels


def prepare_numba() -> None:
    """Before the first kernel call of a process: let numba learn that BLAS is there without
    importing scipy.linalg (0.17-0.32 s of every `twin run` here).

    numba's CPU target imports ``numba.np.arraymath`` the first time it loads or compiles a kernel,
    and that module asks, once, whether a BLAS is available (``_HAVE_BLAS``, which only decides how
    an inner product inside a kernel is computed) by importing ``scipy.linalg.cython_blas``: all of
    scipy.linalg. scipy is installed (a dependency), so the answer is yes; it is given here without
    the import, by importing arraymath while its ``ensure_blas`` is a no-op. numba's own linear
    algebra still calls the real ``ensure_blas`` (and imports scipy) if a kernel ever uses it.
    Nothing changes where the module is already imported, scipy is absent or numba's layout differs.
    """
    if not HAVE_NUMBA or "numba.np.arraymath" in sys.modules or find_spec("scipy") is None:
        return
    try:
        import numba.np.linalg as linalg
    except ImportError:
        return
    real = getattr(linalg, "ensure_blas", None)
    if real is None:
        return
    linalg.ensure_blas = _blas_is_there
    try:
        import numba.np.arraymath  # noqa: F401  (decides _HAVE_BLAS now)
    finally:
        linalg.ensure_blas = real


def _blas_is_there() -> None:
    """ensure_blas's answer when scipy is installed: no ImportError."""
