"""twin — AI inference refinery digital twin.

The package import is kept light: ``twin.load_run``, ``twin.Run``, ``twin.simulate`` and
``twin.write_run`` are resolved lazily (PEP 562 module ``__getattr__``) so that ``import twin``
pulls in neither pyarrow, duckdb nor the engine. See twin/api.py for a notebook example.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and IDEs only
    from twin.api import simulate, write_run
    from twin.telemetry.read import Run, load_run

__all__ = ["Run", "load_run", "simulate", "write_run"]

_LAZY = {"Run": "twin.telemetry.read", "load_run": "twin.telemetry.read", "simulate": "twin.api",
         "write_run": "twin.api"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'twin' has no attribute {name!r}")
