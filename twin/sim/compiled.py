"""Which path the engine's hot loops take: compiled (numba) or their pure-numpy fallback.

One rule for every part that has a kernel (router, plant, serving, sampler, lifecycle, fabric):
"auto" is numba when it is installed. Both paths give the same bytes (docs/architecture.md).
"""
from __future__ import annotations

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
