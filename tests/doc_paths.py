"""Every key/index path in a parsed YAML or JSON document: the places the fuzz tests mutate."""
from __future__ import annotations

from typing import Any


def paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key/index path in `doc` (containers and leaves), depth first."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, prefix + (i,))
    return out
