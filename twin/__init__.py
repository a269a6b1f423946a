"""twin — AI inference refinery digital twin.

The package import is kept light: ``twin.load_run`` and ``twin.Run`` are resolved lazily
(PEP 562 module ``__getattr__``) so that ``import twin`` pulls in neither pyarrow nor duckdb.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and IDEs only
    from twin.telemetry.read import Run, load_run

__all__ = ["Run", "load_run"]

_LAZY = {"Run": "twin.telemetry.read", "load_run": "twin.telemetry.read"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'twin' has no attribute {name!r}")
